//! The one query API the SQL store runs its statements through, over two
//! drivers: sqlx for PostgreSQL, and rusqlite, called in place, for SQLite.
//!
//! Why not sqlx for SQLite too: sqlx runs each SQLite connection on its own
//! thread and hands it every statement, so a request of five statements cost
//! ~25 context switches, most of ferroflow's CPU per request (measured with
//! `perf` on `runs/create`). SQLite answers these statements in microseconds,
//! so they run on the request's own thread instead: one writer connection
//! behind an async mutex (writers queue, as SQLite allows one anyway) and a
//! small pool of reader connections (WAL lets them read while the writer
//! writes). A statement never spans an `.await`, so at most one reader per
//! runtime thread is in use; a long read (a 100,000-point history) holds its
//! runtime thread meanwhile, while the others go on serving.
//!
//! Statements are written once with `$1, $2, ...` placeholders. PostgreSQL
//! takes them as they are; for SQLite they become `?1, ?2, ...`, which it
//! binds by number (it reads `$N` as a *named* parameter and resolves each
//! name with a linear scan: quadratic for a 6,000-parameter batch insert).
//!
//! Another process may hold SQLite's write lock (a second server, `mlflow`
//! migrating a shared file). Waiting for it inside SQLite (`busy_timeout`)
//! would block a runtime thread, so connections give up at once and the wait
//! happens here, asynchronously, up to [`SQLITE_BUSY_DEADLINE`].

use std::borrow::Cow;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sqlx::postgres::{PgColumn, PgPool, PgRow, Postgres};
use sqlx::{Column, Row as _, TypeInfo};

use crate::error::{ErrorCode, MlflowError};

/// A database error as the store needs to tell them apart.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("no row")]
    RowNotFound,
    #[error("unique constraint violated: {0}")]
    UniqueViolation(String),
    /// A value too long or too large for its column (PostgreSQL enforces
    /// VARCHAR sizes and integer ranges; SQLite does not).
    #[error("{0}")]
    DataDoesNotFit(String),
    /// SQLite's write lock stayed with another process past the deadline.
    #[error("database is locked")]
    Busy,
    #[error(transparent)]
    Other(anyhow::Error),
}

impl DbError {
    pub fn is_unique_violation(&self) -> bool {
        matches!(self, DbError::UniqueViolation(_))
    }
}

impl From<DbError> for MlflowError {
    /// A value too long or too large for its column is the client's mistake
    /// (400, with the database's wording); a lock held elsewhere is a 503 the
    /// client retries; anything else is ours (500, logged, text hidden).
    fn from(err: DbError) -> Self {
        match err {
            DbError::DataDoesNotFit(message) => {
                Self::invalid_parameter(format!("A value does not fit its field: {message}"))
            }
            DbError::Busy => Self::new(
                ErrorCode::TemporarilyUnavailable,
                "The database is locked by another process; retry later.",
            ),
            other => Self::internal(other),
        }
    }
}

/// How the store reads a statement that may hit a unique constraint.
pub trait UniqueViolation<T> {
    /// A unique violation becomes `conflict()` (MLflow's "already exists"
    /// wording differs per entity); any other error converts as usual.
    fn or_conflict(self, conflict: impl FnOnce() -> MlflowError) -> Result<T, MlflowError>;
}

impl<T> UniqueViolation<T> for DbResult<T> {
    fn or_conflict(self, conflict: impl FnOnce() -> MlflowError) -> Result<T, MlflowError> {
        self.map_err(|err| match err {
            DbError::UniqueViolation(_) => conflict(),
            other => other.into(),
        })
    }
}

/// SQLSTATEs that mean the data does not fit the column:
/// string_data_right_truncation, numeric_value_out_of_range.
const DATA_DOES_NOT_FIT: [&str; 2] = ["22001", "22003"];

impl From<sqlx::Error> for DbError {
    fn from(err: sqlx::Error) -> Self {
        if let sqlx::Error::RowNotFound = err {
            return DbError::RowNotFound;
        }
        match err.as_database_error() {
            Some(db) if db.is_unique_violation() => DbError::UniqueViolation(db.message().into()),
            Some(db)
                if db
                    .code()
                    .is_some_and(|c| DATA_DOES_NOT_FIT.contains(&c.as_ref())) =>
            {
                DbError::DataDoesNotFit(db.message().into())
            }
            _ => DbError::Other(err.into()),
        }
    }
}

impl From<rusqlite::Error> for DbError {
    fn from(err: rusqlite::Error) -> Self {
        match &err {
            rusqlite::Error::QueryReturnedNoRows => DbError::RowNotFound,
            rusqlite::Error::SqliteFailure(e, message)
                if e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                    || e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY =>
            {
                DbError::UniqueViolation(message.clone().unwrap_or_default())
            }
            rusqlite::Error::SqliteFailure(e, _) if e.code == rusqlite::ErrorCode::DatabaseBusy => {
                DbError::Busy
            }
            _ => DbError::Other(err.into()),
        }
    }
}

pub type DbResult<T> = std::result::Result<T, DbError>;

/// A bound parameter or a column value. Parameters keep their type when
/// NULL, as PostgreSQL types every parameter.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Int(Option<i64>),
    Real(Option<f64>),
    Text(Option<String>),
    Bool(Option<bool>),
}

macro_rules! value_from {
    ($variant:ident: $($t:ty => $conv:expr),* $(,)?) => {$(
        impl From<$t> for Value {
            fn from(v: $t) -> Self {
                let conv: fn($t) -> _ = $conv;
                Value::$variant(conv(v))
            }
        }
    )*};
}
value_from!(Int: i64 => Some, Option<i64> => |v| v, i32 => |v| Some(v.into()));
value_from!(Real: f64 => Some, Option<f64> => |v| v);
value_from!(Bool: bool => Some);
value_from!(Text:
    String => Some,
    Option<String> => |v| v,
    &str => |v| Some(v.to_string()),
    &String => |v| Some(v.clone()),
    Option<&str> => |v| v.map(str::to_string),
    Option<&String> => |v| v.cloned(),
);

/// A column type a [`Row`] can be read as.
pub trait FromValue: Sized {
    fn from_value(value: &Value) -> Option<Self>;
}

impl FromValue for i64 {
    fn from_value(value: &Value) -> Option<Self> {
        match value {
            Value::Int(v) => *v,
            Value::Bool(v) => v.map(i64::from),
            _ => None,
        }
    }
}

impl FromValue for i32 {
    fn from_value(value: &Value) -> Option<Self> {
        i64::from_value(value).and_then(|v| v.try_into().ok())
    }
}

impl FromValue for f64 {
    fn from_value(value: &Value) -> Option<Self> {
        match value {
            Value::Real(v) => *v,
            Value::Int(v) => v.map(|v| v as f64),
            _ => None,
        }
    }
}

impl FromValue for bool {
    fn from_value(value: &Value) -> Option<Self> {
        match value {
            Value::Bool(v) => *v,
            Value::Int(v) => v.map(|v| v != 0),
            _ => None,
        }
    }
}

impl FromValue for String {
    fn from_value(value: &Value) -> Option<Self> {
        match value {
            Value::Text(v) => v.clone(),
            _ => None,
        }
    }
}

impl<T: FromValue> FromValue for Option<T> {
    fn from_value(value: &Value) -> Option<Self> {
        let is_null = match value {
            Value::Int(v) => v.is_none(),
            Value::Real(v) => v.is_none(),
            Value::Text(v) => v.is_none(),
            Value::Bool(v) => v.is_none(),
        };
        if is_null {
            Some(None)
        } else {
            T::from_value(value).map(Some)
        }
    }
}

/// A column by position or by name.
pub trait ColumnIndex {
    fn position(&self, columns: &[String]) -> Option<usize>;
}

impl ColumnIndex for usize {
    fn position(&self, columns: &[String]) -> Option<usize> {
        (*self < columns.len()).then_some(*self)
    }
}

impl ColumnIndex for &str {
    fn position(&self, columns: &[String]) -> Option<usize> {
        columns.iter().position(|c| c == self)
    }
}

/// One result row, owned, whichever driver produced it.
#[derive(Debug)]
pub struct Row {
    columns: Arc<[String]>,
    values: Vec<Value>,
}

impl Row {
    /// The column's value as `T`; an unknown column or a value of another
    /// type is an error (a bug in the statement, not the client's).
    pub fn try_get<T: FromValue, I: ColumnIndex>(&self, index: I) -> DbResult<T> {
        let position = index.position(&self.columns).ok_or_else(|| {
            DbError::Other(anyhow::anyhow!("no such column in {:?}", self.columns))
        })?;
        T::from_value(&self.values[position]).ok_or_else(|| {
            DbError::Other(anyhow::anyhow!(
                "column {} holds {:?}, not a {}",
                self.columns[position],
                self.values[position],
                std::any::type_name::<T>()
            ))
        })
    }
}

/// Connections of the embedded SQLite database.
pub struct SqliteDb {
    writer: Arc<tokio::sync::Mutex<rusqlite::Connection>>,
    readers: Mutex<Vec<rusqlite::Connection>>,
    open_reader: Box<dyn Fn() -> DbResult<rusqlite::Connection> + Send + Sync>,
    busy_deadline: Duration,
}

/// Reader connections kept open between requests.
const IDLE_READERS: usize = 8;

/// How long a statement waits for a lock another process holds before the
/// request fails with 503 (MLflow's SQLAlchemy store waits 30 s too).
pub const SQLITE_BUSY_DEADLINE: Duration = Duration::from_secs(30);

/// The longest pause between two tries of a locked statement.
const SQLITE_BUSY_MAX_PAUSE: Duration = Duration::from_millis(50);

impl SqliteDb {
    /// `writer` and the connections `open_reader` makes must not wait inside
    /// SQLite (`busy_timeout = 0`): waits happen in [`SqliteDb::retry_busy`].
    pub fn new(
        writer: rusqlite::Connection,
        open_reader: impl Fn() -> DbResult<rusqlite::Connection> + Send + Sync + 'static,
    ) -> Self {
        SqliteDb {
            writer: Arc::new(tokio::sync::Mutex::new(writer)),
            readers: Mutex::new(Vec::new()),
            open_reader: Box::new(open_reader),
            busy_deadline: SQLITE_BUSY_DEADLINE,
        }
    }

    #[cfg(test)]
    fn with_busy_deadline(mut self, deadline: Duration) -> Self {
        self.busy_deadline = deadline;
        self
    }

    /// Runs `attempt` again while another process holds the lock, pausing
    /// without blocking the runtime thread (1 ms, doubling up to 50 ms).
    async fn retry_busy<T>(&self, mut attempt: impl FnMut() -> DbResult<T>) -> DbResult<T> {
        let deadline = tokio::time::Instant::now() + self.busy_deadline;
        let mut pause = Duration::from_millis(1);
        loop {
            match attempt() {
                Err(DbError::Busy) if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(SQLITE_BUSY_MAX_PAUSE);
                }
                result => return result,
            }
        }
    }

    fn with_reader<T>(&self, f: impl FnOnce(&rusqlite::Connection) -> DbResult<T>) -> DbResult<T> {
        let pooled = self.readers.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let conn = match pooled {
            Some(conn) => conn,
            None => (self.open_reader)()?,
        };
        let result = f(&conn);
        let mut idle = self.readers.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < IDLE_READERS {
            idle.push(conn);
        }
        result
    }
}

/// The store's database: where statements outside a transaction read.
pub enum Db {
    Postgres(PgPool),
    Sqlite(Arc<SqliteDb>),
}

impl Db {
    /// Starts a write transaction. On SQLite it holds the writer connection
    /// until commit or drop (rollback).
    pub async fn begin(&self) -> DbResult<Tx> {
        match self {
            Db::Postgres(pool) => Ok(Tx::Postgres(pool.begin().await?)),
            Db::Sqlite(db) => {
                let mut conn = db.writer.clone().lock_owned().await;
                // IMMEDIATE takes the write lock now, so another process
                // holding it makes us wait here rather than fail halfway
                // through the transaction. (`&mut`: a connection is `Send`
                // but not `Sync`, and the wait crosses an `.await`.)
                let writer = &mut *conn;
                db.retry_busy(move || Ok(writer.execute_batch("BEGIN IMMEDIATE")?))
                    .await?;
                Ok(Tx::Sqlite(SqliteTx(Some(conn))))
            }
        }
    }
}

/// An open write transaction; dropped without [`Tx::commit`], it rolls back.
pub enum Tx {
    Postgres(sqlx::Transaction<'static, Postgres>),
    Sqlite(SqliteTx),
}

/// The writer connection inside `BEGIN IMMEDIATE`; `None` once committed.
pub struct SqliteTx(Option<tokio::sync::OwnedMutexGuard<rusqlite::Connection>>);

impl Tx {
    pub async fn commit(self) -> DbResult<()> {
        match self {
            Tx::Postgres(tx) => Ok(tx.commit().await?),
            Tx::Sqlite(mut tx) => {
                if let Some(conn) = tx.0.take() {
                    if let Err(err) = conn.execute_batch("COMMIT") {
                        let _ = conn.execute_batch("ROLLBACK");
                        return Err(err.into());
                    }
                }
                Ok(())
            }
        }
    }
}

impl Drop for SqliteTx {
    fn drop(&mut self) {
        if let Some(conn) = &self.0 {
            // Not committed: an error or a cancelled request. Nothing of it stays.
            let _ = conn.execute_batch("ROLLBACK");
        }
    }
}

/// Where a statement runs: on the database (reads), or in a transaction.
pub enum Target<'a> {
    Db(&'a Db),
    Tx(&'a mut Tx),
}

impl<'a> From<&'a Db> for Target<'a> {
    fn from(db: &'a Db) -> Self {
        Target::Db(db)
    }
}

impl<'a> From<&'a mut Tx> for Target<'a> {
    fn from(tx: &'a mut Tx) -> Self {
        Target::Tx(tx)
    }
}

/// A statement and its parameters, built like sqlx's `query(..).bind(..)`.
#[must_use = "a query does nothing until executed"]
pub struct Query<'q> {
    sql: &'q str,
    params: Vec<Value>,
}

pub fn query(sql: &str) -> Query<'_> {
    Query {
        sql,
        params: Vec::new(),
    }
}

/// What a statement returned.
struct Output {
    rows: Vec<Row>,
    rows_affected: u64,
}

impl<'q> Query<'q> {
    pub fn bind(mut self, value: impl Into<Value>) -> Self {
        self.params.push(value.into());
        self
    }

    /// Runs the statement; returns the number of rows it changed.
    pub async fn execute<'a>(self, target: impl Into<Target<'a>>) -> DbResult<u64> {
        Ok(self.run(target.into(), false).await?.rows_affected)
    }

    pub async fn fetch_all<'a>(self, target: impl Into<Target<'a>>) -> DbResult<Vec<Row>> {
        Ok(self.run(target.into(), true).await?.rows)
    }

    pub async fn fetch_optional<'a>(self, target: impl Into<Target<'a>>) -> DbResult<Option<Row>> {
        Ok(self.run(target.into(), true).await?.rows.into_iter().next())
    }

    pub async fn fetch_one<'a>(self, target: impl Into<Target<'a>>) -> DbResult<Row> {
        self.fetch_optional(target)
            .await?
            .ok_or(DbError::RowNotFound)
    }

    async fn run(self, target: Target<'_>, want_rows: bool) -> DbResult<Output> {
        match target {
            Target::Db(Db::Postgres(pool)) => self.run_sqlx(pool, want_rows).await,
            Target::Db(Db::Sqlite(db)) => {
                let sql = sqlite_placeholders(self.sql);
                // A reader runs what only reads; a statement that writes
                // outside a transaction takes the writer connection.
                let read = db
                    .retry_busy(|| {
                        db.with_reader(|conn| {
                            if conn.prepare_cached(&sql)?.readonly() {
                                self.run_sqlite(conn, &sql, want_rows).map(Some)
                            } else {
                                Ok(None)
                            }
                        })
                    })
                    .await?;
                match read {
                    Some(output) => Ok(output),
                    None => {
                        let mut conn = db.writer.lock().await;
                        let writer = &mut *conn;
                        db.retry_busy(move || self.run_sqlite(writer, &sql, want_rows))
                            .await
                    }
                }
            }
            Target::Tx(Tx::Postgres(tx)) => self.run_sqlx(&mut **tx, want_rows).await,
            Target::Tx(Tx::Sqlite(SqliteTx(Some(conn)))) => {
                self.run_sqlite(conn, &sqlite_placeholders(self.sql), want_rows)
            }
            Target::Tx(Tx::Sqlite(SqliteTx(None))) => {
                unreachable!("a committed transaction is consumed")
            }
        }
    }

    async fn run_sqlx<'e>(
        self,
        executor: impl sqlx::Executor<'e, Database = Postgres>,
        want_rows: bool,
    ) -> DbResult<Output> {
        let mut query = sqlx::query(self.sql);
        for param in self.params {
            query = match param {
                Value::Int(v) => query.bind(v),
                Value::Real(v) => query.bind(v),
                Value::Text(v) => query.bind(v),
                Value::Bool(v) => query.bind(v),
            };
        }
        if !want_rows {
            let done = query.execute(executor).await?;
            return Ok(Output {
                rows: Vec::new(),
                rows_affected: done.rows_affected(),
            });
        }
        let pg_rows = query.fetch_all(executor).await?;
        let Some(first) = pg_rows.first() else {
            return Ok(Output {
                rows: Vec::new(),
                rows_affected: 0,
            });
        };
        let columns: Arc<[String]> = first
            .columns()
            .iter()
            .map(|c| c.name().to_string())
            .collect();
        let kinds = first
            .columns()
            .iter()
            .map(PgKind::of)
            .collect::<DbResult<Vec<_>>>()?;
        let rows = pg_rows
            .iter()
            .map(|row| {
                Ok(Row {
                    columns: columns.clone(),
                    values: kinds
                        .iter()
                        .enumerate()
                        .map(|(i, kind)| kind.read(row, i))
                        .collect::<DbResult<_>>()?,
                })
            })
            .collect::<DbResult<Vec<_>>>()?;
        Ok(Output {
            rows_affected: rows.len() as u64,
            rows,
        })
    }

    /// Runs the statement, `sql` being its text with `?N` placeholders.
    fn run_sqlite(
        &self,
        conn: &rusqlite::Connection,
        sql: &str,
        want_rows: bool,
    ) -> DbResult<Output> {
        let mut statement = conn.prepare_cached(sql)?;
        let count = statement.parameter_count();
        if count > self.params.len() {
            return Err(DbError::Other(anyhow::anyhow!(
                "{count} parameters in the statement, {} bound",
                self.params.len()
            )));
        }
        // `?N` is parameter N, so parameters bind by position.
        for (index, value) in (1..=count).zip(&self.params) {
            match value {
                Value::Int(v) => statement.raw_bind_parameter(index, v)?,
                Value::Real(v) => statement.raw_bind_parameter(index, v)?,
                Value::Text(v) => statement.raw_bind_parameter(index, v)?,
                Value::Bool(v) => statement.raw_bind_parameter(index, v)?,
            }
        }
        if !want_rows {
            let changed = statement.raw_execute()?;
            return Ok(Output {
                rows: Vec::new(),
                rows_affected: changed as u64,
            });
        }
        let columns: Arc<[String]> = statement
            .column_names()
            .into_iter()
            .map(str::to_string)
            .collect();
        let width = columns.len();
        let mut rows = Vec::new();
        let mut cursor = statement.raw_query();
        while let Some(row) = cursor.next()? {
            let mut values = Vec::with_capacity(width);
            for i in 0..width {
                values.push(from_sqlite(row.get_ref(i)?)?);
            }
            rows.push(Row {
                columns: columns.clone(),
                values,
            });
        }
        Ok(Output {
            rows_affected: rows.len() as u64,
            rows,
        })
    }
}

/// The statement with `$N` placeholders spelled `?N`, which SQLite binds by
/// number. Store SQL has no `$` followed by a digit inside a string literal.
fn sqlite_placeholders(sql: &str) -> Cow<'_, str> {
    let bytes = sql.as_bytes();
    let mut out = String::new();
    let mut copied = 0;
    for (i, pair) in bytes.windows(2).enumerate() {
        if pair[0] == b'$' && pair[1].is_ascii_digit() {
            out.push_str(&sql[copied..i]);
            out.push('?');
            copied = i + 1;
        }
    }
    if copied == 0 {
        return Cow::Borrowed(sql);
    }
    out.push_str(&sql[copied..]);
    Cow::Owned(out)
}

/// How a PostgreSQL column is read: the store's statements return only these
/// types (aggregates are cast to text).
#[derive(Clone, Copy)]
enum PgKind {
    Bool,
    Int2,
    Int4,
    Int8,
    Float4,
    Float8,
    Text,
}

impl PgKind {
    fn of(column: &PgColumn) -> DbResult<Self> {
        Ok(match column.type_info().name() {
            "BOOL" => PgKind::Bool,
            "INT2" => PgKind::Int2,
            "INT4" => PgKind::Int4,
            "INT8" => PgKind::Int8,
            "FLOAT4" => PgKind::Float4,
            "FLOAT8" => PgKind::Float8,
            "TEXT" | "VARCHAR" | "BPCHAR" | "NAME" => PgKind::Text,
            other => {
                return Err(DbError::Other(anyhow::anyhow!(
                    "column {} has type {other}, which the store does not read",
                    column.name()
                )))
            }
        })
    }

    fn read(self, row: &PgRow, i: usize) -> DbResult<Value> {
        Ok(match self {
            PgKind::Bool => Value::Bool(row.try_get(i)?),
            PgKind::Int2 => Value::Int(row.try_get::<Option<i16>, _>(i)?.map(i64::from)),
            PgKind::Int4 => Value::Int(row.try_get::<Option<i32>, _>(i)?.map(i64::from)),
            PgKind::Int8 => Value::Int(row.try_get(i)?),
            PgKind::Float4 => Value::Real(row.try_get::<Option<f32>, _>(i)?.map(f64::from)),
            PgKind::Float8 => Value::Real(row.try_get(i)?),
            PgKind::Text => Value::Text(row.try_get(i)?),
        })
    }
}

fn from_sqlite(value: rusqlite::types::ValueRef<'_>) -> DbResult<Value> {
    use rusqlite::types::ValueRef;
    Ok(match value {
        ValueRef::Null => Value::Text(None),
        ValueRef::Integer(v) => Value::Int(Some(v)),
        ValueRef::Real(v) => Value::Real(Some(v)),
        ValueRef::Text(v) | ValueRef::Blob(v) => Value::Text(Some(
            std::str::from_utf8(v)
                .map_err(|e| DbError::Other(e.into()))?
                .to_string(),
        )),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sqlite_db() -> (tempfile::TempDir, Db) {
        let (dir, db) = sqlite_db_with(SQLITE_BUSY_DEADLINE);
        (dir, Db::Sqlite(db))
    }

    fn sqlite_db_with(busy_deadline: Duration) -> (tempfile::TempDir, Arc<SqliteDb>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let open = move || {
            let conn = rusqlite::Connection::open(&path)?;
            conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 0")?;
            Ok(conn)
        };
        let writer = open().unwrap();
        writer
            .execute_batch("CREATE TABLE t (k TEXT PRIMARY KEY, v INTEGER)")
            .unwrap();
        let db = SqliteDb::new(writer, open).with_busy_deadline(busy_deadline);
        (dir, Arc::new(db))
    }

    /// Another process (here: another connection) holding the write lock.
    fn hold_write_lock(dir: &tempfile::TempDir, for_: Duration) -> std::thread::JoinHandle<()> {
        let other = rusqlite::Connection::open(dir.path().join("t.db")).unwrap();
        other.execute_batch("BEGIN IMMEDIATE").unwrap();
        std::thread::spawn(move || {
            std::thread::sleep(for_);
            other.execute_batch("COMMIT").unwrap();
        })
    }

    async fn insert(db: &Db, key: &str) -> DbResult<()> {
        let mut tx = db.begin().await?;
        query("INSERT INTO t (k, v) VALUES ($1, 1)")
            .bind(key)
            .execute(&mut tx)
            .await?;
        tx.commit().await
    }

    /// `#[tokio::test]` runs on one thread: had the writer waited inside
    /// SQLite, the ticker could not tick until the lock was released.
    #[tokio::test]
    async fn a_lock_held_elsewhere_is_awaited_without_blocking_the_runtime() {
        let (dir, db) = sqlite_db_with(SQLITE_BUSY_DEADLINE);
        let db = Db::Sqlite(db);
        let held = Duration::from_millis(400);
        let started = std::time::Instant::now();
        let releaser = hold_write_lock(&dir, held);
        let ticker = async {
            for _ in 0..5 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            started.elapsed()
        };
        let write = async {
            insert(&db, "k").await.unwrap();
            started.elapsed()
        };
        let (ticked, written) = tokio::join!(ticker, write);
        releaser.join().unwrap();
        assert!(ticked < held / 2, "ticker blocked for {ticked:?}");
        assert!(
            written >= held,
            "wrote at {written:?}, before the lock was free"
        );
        let lone = query("UPDATE t SET v = 2").execute(&db).await.unwrap();
        assert_eq!(lone, 1);
    }

    #[tokio::test]
    async fn a_lock_held_past_the_deadline_is_503_and_writes_nothing() {
        let (dir, db) = sqlite_db_with(Duration::from_millis(100));
        let db = Db::Sqlite(db);
        let releaser = hold_write_lock(&dir, Duration::from_millis(600));
        let err = insert(&db, "late").await.unwrap_err();
        assert!(matches!(err, DbError::Busy), "{err}");
        let lone = query("INSERT INTO t (k, v) VALUES ('lone', 1)")
            .execute(&db)
            .await
            .unwrap_err();
        assert!(matches!(lone, DbError::Busy), "{lone}");
        assert_eq!(
            MlflowError::from(err).code,
            ErrorCode::TemporarilyUnavailable
        );
        releaser.join().unwrap();
        let rows = query("SELECT k FROM t").fetch_all(&db).await.unwrap();
        assert!(rows.is_empty());
    }

    #[test]
    fn dollar_placeholders_become_numbered_question_marks() {
        assert_eq!(
            sqlite_placeholders("SELECT $1, '$.x', $12 FROM t WHERE a = $2"),
            "SELECT ?1, '$.x', ?12 FROM t WHERE a = ?2"
        );
        assert!(matches!(sqlite_placeholders("SELECT 1"), Cow::Borrowed(_)));
    }

    #[tokio::test]
    async fn numbered_parameters_bind_by_number_on_sqlite() {
        let (_dir, db) = sqlite_db();
        let row = query("SELECT $2 AS b, $1 AS a, $2 AS b2")
            .bind("first")
            .bind(2_i64)
            .fetch_one(&db)
            .await
            .unwrap();
        assert_eq!(row.try_get::<String, _>("a").unwrap(), "first");
        assert_eq!(row.try_get::<i64, _>("b").unwrap(), 2);
        assert_eq!(row.try_get::<i64, _>(2).unwrap(), 2);
        assert!(row.try_get::<String, _>("b").is_err());
        assert!(row.try_get::<i64, _>("missing").is_err());
    }

    #[tokio::test]
    async fn transactions_commit_or_roll_back_and_lone_writes_take_the_writer() {
        let (_dir, db) = sqlite_db();
        let mut tx = db.begin().await.unwrap();
        query("INSERT INTO t (k, v) VALUES ($1, $2)")
            .bind("dropped")
            .bind(1_i64)
            .execute(&mut tx)
            .await
            .unwrap();
        drop(tx);
        let mut tx = db.begin().await.unwrap();
        query("INSERT INTO t (k, v) VALUES ($1, $2)")
            .bind("kept")
            .bind(2_i64)
            .execute(&mut tx)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        // Outside a transaction a write goes to the writer, a read to a reader.
        let changed = query("UPDATE t SET v = v + 1").execute(&db).await.unwrap();
        assert_eq!(changed, 1);
        let rows = query("SELECT k, v FROM t").fetch_all(&db).await.unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].try_get::<String, _>("k").unwrap(), "kept");
        assert_eq!(rows[0].try_get::<Option<i64>, _>("v").unwrap(), Some(3));
        let err = query("INSERT INTO t (k) VALUES ($1)")
            .bind("kept")
            .execute(&db)
            .await
            .unwrap_err();
        assert!(err.is_unique_violation(), "{err}");
    }
}
