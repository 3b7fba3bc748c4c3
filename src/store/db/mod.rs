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

mod postgres;
mod row;
mod sqlite;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use sqlx::postgres::{PgPool, Postgres};

use crate::error::{ErrorCode, MlflowError};

pub use row::{Row, Value};
use sqlite::sqlite_placeholders;
pub use sqlite::SqliteDb;

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
    /// A search pattern the database's regular expressions refuse
    /// (PostgreSQL's differ from the `regex` crate that checks them first).
    #[error("invalid regular expression: {0}")]
    InvalidRegex(String),
    /// SQLite's write lock stayed with another process past the deadline.
    #[error("database is locked")]
    Busy,
    /// The database cannot be reached or is shutting down (network, restart,
    /// failover): the client is told to retry (503) rather than given a 500.
    #[error("database unavailable: {0}")]
    Unavailable(String),
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
            DbError::InvalidRegex(message) => {
                Self::invalid_parameter(format!("Invalid regular expression: {message}"))
            }
            DbError::Busy => Self::new(
                ErrorCode::TemporarilyUnavailable,
                "The database is locked by another process; retry later.",
            ),
            DbError::Unavailable(detail) => {
                tracing::warn!(%detail, "database unavailable");
                Self::new(
                    ErrorCode::TemporarilyUnavailable,
                    "The database is unavailable; retry later.",
                )
            }
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
/// invalid_regular_expression: an RLIKE pattern PostgreSQL cannot read.
const INVALID_REGEX: &str = "2201B";

/// SQLSTATEs that mean the server is going away, refusing connections for
/// now, or cancelled a statement that ran past `statement_timeout`:
/// admin_shutdown, crash_shutdown, cannot_connect_now, too_many_connections,
/// query_canceled (class 08, connection exceptions, is matched whole).
const SERVER_UNAVAILABLE: [&str; 5] = ["57P01", "57P02", "57P03", "53300", "57014"];

impl From<sqlx::Error> for DbError {
    fn from(err: sqlx::Error) -> Self {
        match &err {
            sqlx::Error::RowNotFound => return DbError::RowNotFound,
            sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed => return DbError::Unavailable(err.to_string()),
            _ => {}
        }
        match err.as_database_error() {
            Some(db)
                if db.code().is_some_and(|c| {
                    c.starts_with("08") || SERVER_UNAVAILABLE.contains(&c.as_ref())
                }) =>
            {
                DbError::Unavailable(db.message().into())
            }
            Some(db) if db.is_unique_violation() => DbError::UniqueViolation(db.message().into()),
            Some(db)
                if db
                    .code()
                    .is_some_and(|c| DATA_DOES_NOT_FIT.contains(&c.as_ref())) =>
            {
                DbError::DataDoesNotFit(db.message().into())
            }
            Some(db) if db.code().is_some_and(|c| c == INVALID_REGEX) => {
                DbError::InvalidRegex(db.message().into())
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

/// The store's database: where statements outside a transaction read.
#[derive(Clone)]
pub enum Db {
    Postgres(PgPool),
    Sqlite(Arc<SqliteDb>),
}

impl Db {
    /// Starts a write transaction. On SQLite it holds the writer connection
    /// until commit or drop (rollback).
    pub async fn begin(&self) -> DbResult<Tx> {
        match self {
            Db::Postgres(pool) => Ok(Tx::Postgres(counted_wait(pool.begin()).await?)),
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

/// Requests waiting for a PostgreSQL connection, process-wide (one server
/// per process; `/metrics` shows it).
static WAITING_FOR_CONNECTION: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(0);

pub fn waiting_for_connection() -> i64 {
    WAITING_FOR_CONNECTION.load(std::sync::atomic::Ordering::Relaxed)
}

/// Runs `acquire` counted in [`waiting_for_connection`], also when the
/// request is cancelled while it waits.
async fn counted_wait<T>(acquire: impl std::future::Future<Output = T>) -> T {
    struct Waiting;
    impl Drop for Waiting {
        fn drop(&mut self) {
            WAITING_FOR_CONNECTION.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        }
    }
    WAITING_FOR_CONNECTION.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let _waiting = Waiting;
    acquire.await
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

/// Statements with more parameters than this are prepared afresh rather than
/// kept in a connection's statement cache. Multi-row inserts have a text per
/// row count (up to hundreds of rows): cached, each count would hold its own
/// large prepared statement, over 100 MB per connection under a varied load,
/// while preparing one costs little next to inserting its rows.
const MAX_CACHED_PARAMS: usize = 64;

impl Query<'_> {
    /// Whether the prepared statement is worth keeping for the next run.
    fn cacheable(&self) -> bool {
        self.params.len() <= MAX_CACHED_PARAMS
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
            Target::Db(Db::Postgres(pool)) => {
                let mut conn = counted_wait(pool.acquire()).await?;
                self.run_sqlx(&mut *conn, want_rows).await
            }
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
}
