//! Running statements on SQLite: the writer and reader connections, binding
//! `?N` parameters, and waiting out another process's lock asynchronously.

use std::borrow::Cow;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::{DbError, DbResult, Output, Query, Row, Value};
use crate::store::sqlite::Checkpointer;

/// Connections of the embedded SQLite database.
pub struct SqliteDb {
    pub(super) writer: Arc<tokio::sync::Mutex<rusqlite::Connection>>,
    pub(super) readers: Mutex<Vec<rusqlite::Connection>>,
    pub(super) open_reader: Box<dyn Fn() -> DbResult<rusqlite::Connection> + Send + Sync>,
    pub(super) busy_deadline: Duration,
    /// Kept for as long as the connections are (see its doc).
    checkpointer: Option<Checkpointer>,
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
            checkpointer: None,
        }
    }

    pub(in crate::store) fn with_checkpointer(mut self, checkpointer: Checkpointer) -> Self {
        self.checkpointer = Some(checkpointer);
        self
    }

    #[cfg(test)]
    pub(super) fn with_busy_deadline(mut self, deadline: Duration) -> Self {
        self.busy_deadline = deadline;
        self
    }

    /// Runs `attempt` again while another process holds the lock, pausing
    /// without blocking the runtime thread (1 ms, doubling up to 50 ms).
    pub(super) async fn retry_busy<T>(
        &self,
        mut attempt: impl FnMut() -> DbResult<T>,
    ) -> DbResult<T> {
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

    pub(super) fn with_reader<T>(
        &self,
        f: impl FnOnce(&rusqlite::Connection) -> DbResult<T>,
    ) -> DbResult<T> {
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

impl Query<'_> {
    /// Runs the statement, `sql` being its text with `?N` placeholders.
    pub(super) fn run_sqlite(
        &self,
        conn: &rusqlite::Connection,
        sql: &str,
        want_rows: bool,
    ) -> DbResult<Output> {
        let (mut cached, mut fresh);
        let statement: &mut rusqlite::Statement = if self.cacheable() {
            cached = conn.prepare_cached(sql)?;
            &mut cached
        } else {
            fresh = conn.prepare(sql)?;
            &mut fresh
        };
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
                Value::IntArray(_) | Value::RealArray(_) | Value::TextArray(_) => {
                    return Err(DbError::Other(anyhow::anyhow!(
                        "SQLite has no array parameters"
                    )))
                }
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
pub(super) fn sqlite_placeholders(sql: &str) -> Cow<'_, str> {
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
