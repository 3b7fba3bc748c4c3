//! SQLite: the embedded default. WAL mode, one writer connection and a pool
//! of readers (see `db.rs` for why they are rusqlite connections used in
//! place); the pragmas live here and nowhere else.

use std::sync::Arc;
use std::time::Duration;

use rusqlite::OpenFlags;
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::ConnectOptions;

use super::db::{Db, DbResult, SqliteDb};
use super::SqlStore;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");

/// Set on every connection. `case_sensitive_like` makes `LIKE` match case as
/// MLflow's LIKE does (ILIKE is rendered with `LOWER`); `busy_timeout` lets
/// another process (a second server, `mlflow` itself) hold the file briefly.
const PRAGMAS: &str = "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
     PRAGMA busy_timeout = 30000; PRAGMA foreign_keys = ON; PRAGMA case_sensitive_like = ON;";

/// Prepared statements kept per connection (searches render their SQL, so
/// the cache also holds a few shapes of those).
const STATEMENT_CACHE: usize = 256;

/// `sqlite:///relative.db` and `sqlite:////absolute.db`, as SQLAlchemy (and
/// so `mlflow server`) spells them, name the file `relative.db` and
/// `/absolute.db`.
fn file_path(uri: &str) -> anyhow::Result<String> {
    uri.split_once(":///")
        .map(|(_, path)| path.to_string())
        .filter(|path| !path.is_empty())
        .ok_or_else(|| anyhow::anyhow!("expected sqlite:///<path>, got '{uri}'"))
}

fn connect(path: &str) -> DbResult<rusqlite::Connection> {
    let conn = rusqlite::Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.execute_batch(PRAGMAS)?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    Ok(conn)
}

pub(super) async fn open(uri: &str, default_artifact_root: &str) -> anyhow::Result<SqlStore> {
    let path = file_path(uri)?;
    // Migrations go through sqlx's migrator (and its bookkeeping table), once.
    let mut migrator = SqliteConnectOptions::new()
        .filename(&path)
        .create_if_missing(true)
        .busy_timeout(Duration::from_secs(30))
        .connect()
        .await?;
    MIGRATOR.run(&mut migrator).await?;
    drop(migrator);
    let writer = connect(&path)?;
    let db = SqliteDb::new(writer, move || connect(&path));
    Ok(SqlStore::new(
        Db::Sqlite(Arc::new(db)),
        default_artifact_root,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sql::Dialect;

    #[test]
    fn mlflow_sqlite_uris_map_to_the_same_file() {
        assert_eq!(file_path("sqlite:///mlflow.db").unwrap(), "mlflow.db");
        assert_eq!(file_path("sqlite:////tmp/x.db").unwrap(), "/tmp/x.db");
        assert!(file_path("sqlite://").is_err());
    }

    #[test]
    fn both_dialects_have_the_same_migration_versions() {
        let versions = |dir: &str| {
            let mut names: Vec<String> = std::fs::read_dir(dir)
                .unwrap()
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".sql"))
                .filter_map(|n| n.split('_').next().map(str::to_string))
                .collect();
            names.sort();
            names
        };
        let sqlite = versions(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/sqlite"));
        let postgres = versions(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/postgres"));
        assert!(!sqlite.is_empty());
        assert_eq!(sqlite, postgres);
    }

    /// Search pages read metric values as text (see `Dialect::exact_real`):
    /// the bundled SQLite must print every double so it parses back to the
    /// same bits.
    #[test]
    fn doubles_print_exactly() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        let mut bits: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut values = vec![
            f64::MAX,
            f64::MIN_POSITIVE,
            5e-324,
            0.1,
            1.0 / 3.0,
            1e16,
            -0.0,
        ];
        for _ in 0..2000 {
            bits ^= bits << 13;
            bits ^= bits >> 7;
            bits ^= bits << 17;
            values.push(f64::from_bits(bits));
        }
        for value in values.into_iter().filter(|v| v.is_finite() && *v != 0.0) {
            let sql = format!("SELECT {}", Dialect::Sqlite.exact_real("?"));
            let text: String = conn.query_row(&sql, [value], |row| row.get(0)).unwrap();
            let back: f64 = text.parse().unwrap();
            assert_eq!(
                back.to_bits(),
                value.to_bits(),
                "{value:e} printed as {text}"
            );
        }
    }
}
