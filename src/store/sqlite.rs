//! SQLite: the embedded default. WAL mode, one writer connection and a pool
//! of readers (see `db.rs` for why they are rusqlite connections used in
//! place); the pragmas and the migration runner live here and nowhere else.

use std::sync::Arc;
use std::time::Instant;

use rusqlite::OpenFlags;

use super::db::{Db, DbResult, SqliteDb};

/// The migrations, embedded at build time. sqlx's macro only reads the files
/// (name, text, checksum); they are applied below, through rusqlite.
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");

/// Set on every connection. `case_sensitive_like` makes `LIKE` match case as
/// MLflow's LIKE does (ILIKE is rendered with `LOWER`). `busy_timeout = 0`:
/// a lock held by another process is waited for asynchronously in `db.rs`,
/// never inside SQLite on a runtime thread.
const PRAGMAS: &str = "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
     PRAGMA busy_timeout = 0; PRAGMA foreign_keys = ON; PRAGMA case_sensitive_like = ON;";

/// Migrations run once at startup, before serving, on a blocking thread: they
/// may wait as long as MLflow's store would for another process's lock.
const MIGRATION_BUSY_TIMEOUT_MS: u32 = 30_000;

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

/// Opens the file the URI names, creating and migrating it as needed.
pub(super) async fn open(uri: &str) -> anyhow::Result<Db> {
    let path = file_path(uri)?;
    let migrate_path = path.clone();
    tokio::task::spawn_blocking(move || {
        let mut conn = connect(&migrate_path)?;
        conn.busy_timeout(std::time::Duration::from_millis(
            MIGRATION_BUSY_TIMEOUT_MS.into(),
        ))?;
        migrate(&mut conn)
    })
    .await??;
    let writer = connect(&path)?;
    let db = SqliteDb::new(writer, move || connect(&path));
    Ok(Db::Sqlite(Arc::new(db)))
}

/// The bookkeeping table of sqlx's migrator, which ferroflow used for SQLite
/// before it applied migrations itself: databases migrated either way read
/// the same, and a changed migration file is still refused by its checksum.
const BOOKKEEPING: &str = "CREATE TABLE IF NOT EXISTS _sqlx_migrations (
    version BIGINT PRIMARY KEY,
    description TEXT NOT NULL,
    installed_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
    success BOOLEAN NOT NULL,
    checksum BLOB NOT NULL,
    execution_time BIGINT NOT NULL
)";

/// Applies the migrations the database lacks, all in one `IMMEDIATE`
/// transaction, so servers starting together on one file apply each once.
fn migrate(conn: &mut rusqlite::Connection) -> anyhow::Result<()> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    tx.execute_batch(BOOKKEEPING)?;
    let applied: Vec<(i64, bool, Vec<u8>)> = tx
        .prepare("SELECT version, success, checksum FROM _sqlx_migrations")?
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))?
        .collect::<Result<_, _>>()?;
    for migration in MIGRATOR
        .iter()
        .filter(|m| !m.migration_type.is_down_migration())
    {
        match applied
            .iter()
            .find(|(version, ..)| *version == migration.version)
        {
            Some((version, false, _)) => {
                anyhow::bail!("migration {version} failed earlier and left the database dirty")
            }
            Some((version, true, checksum)) if checksum[..] != migration.checksum[..] => {
                anyhow::bail!("migration {version} was applied from a different file")
            }
            Some(_) => {}
            None => {
                let started = Instant::now();
                tx.execute_batch(&migration.sql)?;
                tx.execute(
                    "INSERT INTO _sqlx_migrations \
                     (version, description, success, checksum, execution_time) \
                     VALUES (?1, ?2, TRUE, ?3, ?4)",
                    rusqlite::params![
                        migration.version,
                        &*migration.description,
                        &*migration.checksum,
                        i64::try_from(started.elapsed().as_nanos()).unwrap_or(i64::MAX),
                    ],
                )?;
            }
        }
    }
    tx.commit()?;
    Ok(())
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
    fn migrations_apply_once_and_a_changed_file_is_refused() {
        let mut conn = rusqlite::Connection::open_in_memory().unwrap();
        migrate(&mut conn).unwrap();
        migrate(&mut conn).unwrap();
        let count = |sql: &str| -> i64 { conn.query_row(sql, [], |row| row.get(0)).unwrap() };
        let applied = count("SELECT COUNT(*) FROM _sqlx_migrations WHERE success");
        assert_eq!(applied, MIGRATOR.iter().count() as i64);
        assert_eq!(count("SELECT COUNT(*) FROM alembic_version"), 1);
        conn.execute_batch("UPDATE _sqlx_migrations SET checksum = x'00' WHERE version = 2")
            .unwrap();
        let err = migrate(&mut conn).unwrap_err();
        assert!(err.to_string().contains("different file"), "{err}");
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
