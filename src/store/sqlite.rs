//! SQLite: the embedded default. WAL mode, one writer connection and a pool
//! of readers (see `db.rs` for why they are rusqlite connections used in
//! place); the pragmas, the SQL functions SQLite lacks (`regexp`,
//! `percentile_cont`) and the migration runner live here and nowhere else.

use std::borrow::Cow;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use regex::Regex;
use rusqlite::functions::{Aggregate, Context, FunctionFlags};
use rusqlite::types::ValueRef;
use rusqlite::OpenFlags;

use super::db::{Db, DbResult, SqliteDb};
use crate::search::rlike;

/// The migrations, embedded at build time. sqlx's macro only reads the files
/// (name, text, checksum); they are applied below, through rusqlite.
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");

/// Set on every connection. `case_sensitive_like` makes `LIKE` match case as
/// MLflow's LIKE does (ILIKE is rendered with `LOWER`). `busy_timeout = 0`:
/// a lock held by another process is waited for asynchronously in `db.rs`,
/// never inside SQLite on a runtime thread.
const PRAGMAS: &str = "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
     PRAGMA busy_timeout = 0; PRAGMA foreign_keys = ON; PRAGMA case_sensitive_like = ON; \
     PRAGMA temp_store = MEMORY;";

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
    register_functions(&conn)?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    Ok(conn)
}

/// What the shared SQL calls that SQLite lacks, on every connection:
/// - `regexp(pattern, text)`, behind `text REGEXP pattern`, as MLflow's own
///   SQLite store registers it (Python's `re.search`);
/// - `regexp_match(text, pattern)`, PostgreSQL's name, which search renders
///   RLIKE with ([`rlike`]): 1 when the text matches, NULL when it does not
///   (PostgreSQL returns the captures; only NULL-ness is portable);
/// - `percentile_cont(value, fraction)`, the aggregate PostgreSQL spells
///   `percentile_cont(fraction) WITHIN GROUP (ORDER BY value)`.
fn register_functions(conn: &rusqlite::Connection) -> rusqlite::Result<()> {
    let flags = FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC;
    conn.create_scalar_function("regexp", 2, flags, |ctx| regex_search(ctx, 0, 1))?;
    conn.create_scalar_function(rlike::SQL_FUNCTION, 2, flags, |ctx| {
        Ok(regex_search(ctx, 1, 0)?.filter(|&found| found))
    })?;
    conn.create_aggregate_function("percentile_cont", 2, flags, PercentileCont)
}

/// Whether the text argument matches the pattern argument anywhere; NULL if
/// either is NULL. SQLite keeps the compiled pattern with the statement while
/// the argument stays the same (a bound parameter does), so a search compiles
/// it once, not once a row. A pattern that does not compile matches nothing,
/// as in MLflow's SQLite store; searches check theirs first and answer 400.
fn regex_search(ctx: &Context<'_>, pattern: usize, text: usize) -> rusqlite::Result<Option<bool>> {
    if matches!(ctx.get_raw(pattern), ValueRef::Null) {
        return Ok(None);
    }
    let text: Cow<'_, str> = match ctx.get_raw(text) {
        ValueRef::Null => return Ok(None),
        ValueRef::Text(bytes) | ValueRef::Blob(bytes) => String::from_utf8_lossy(bytes),
        ValueRef::Integer(i) => i.to_string().into(),
        ValueRef::Real(f) => f.to_string().into(),
    };
    let compiled: Arc<Option<Regex>> = ctx.get_or_create_aux(pattern as i32, |value| {
        value
            .as_str()
            .map(|p| rlike::compile(p).ok())
            .map_err(|err| Box::new(err) as Box<dyn std::error::Error + Send + Sync>)
    })?;
    Ok(Some(
        compiled
            .as_ref()
            .as_ref()
            .is_some_and(|re| re.is_match(&text)),
    ))
}

/// PostgreSQL's `percentile_cont` for SQLite, as `percentile_cont(value,
/// fraction)`: NULL values are skipped, no values give NULL, a fraction
/// outside [0, 1] is an error, and between two neighbours the result is
/// interpolated linearly, as PostgreSQL and numpy's default both do: for the
/// sorted values `v` and `i = fraction * (n - 1)`,
/// `v[floor(i)] + (i - floor(i)) * (v[floor(i) + 1] - v[floor(i)])`.
struct PercentileCont;

/// The group's values and its fraction (NULL when any row's is NULL).
type PercentileState = (Vec<f64>, Option<f64>);

impl Aggregate<PercentileState, Option<f64>> for PercentileCont {
    fn init(&self, _: &mut Context<'_>) -> rusqlite::Result<PercentileState> {
        Ok((Vec::new(), Some(0.0)))
    }

    fn step(&self, ctx: &mut Context<'_>, state: &mut PercentileState) -> rusqlite::Result<()> {
        let fraction: Option<f64> = ctx.get(1)?;
        if let Some(f) = fraction.filter(|f| !(0.0..=1.0).contains(f)) {
            return Err(rusqlite::Error::UserFunctionError(
                format!("percentile value {f} is not between 0 and 1").into(),
            ));
        }
        state.1 = state.1.and(fraction);
        match ctx.get_raw(0) {
            ValueRef::Null => {}
            ValueRef::Integer(i) => state.0.push(i as f64),
            ValueRef::Real(f) => state.0.push(f),
            ValueRef::Text(_) | ValueRef::Blob(_) => {
                return Err(rusqlite::Error::UserFunctionError(
                    "percentile_cont takes numeric values".into(),
                ))
            }
        }
        Ok(())
    }

    fn finalize(
        &self,
        _: &mut Context<'_>,
        state: Option<PercentileState>,
    ) -> rusqlite::Result<Option<f64>> {
        let Some((mut values, Some(fraction))) = state else {
            return Ok(None);
        };
        if values.is_empty() {
            return Ok(None);
        }
        values.sort_by(f64::total_cmp);
        let index = fraction * (values.len() - 1) as f64;
        let low = index.floor() as usize;
        let high = (low + 1).min(values.len() - 1);
        Ok(Some(
            values[low] + (index - low as f64) * (values[high] - values[low]),
        ))
    }
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
    writer.pragma_update(None, "wal_autocheckpoint", WRITER_AUTOCHECKPOINT_PAGES)?;
    let checkpointer = Checkpointer::start(connect(&path)?)?;
    let db = SqliteDb::new(writer, move || connect(&path)).with_checkpointer(checkpointer);
    Ok(Db::Sqlite(Arc::new(db)))
}

/// How often the checkpointer copies the write-ahead log into the database.
const CHECKPOINT_INTERVAL: Duration = Duration::from_millis(50);

/// The log size (pages) at which the writer checkpoints itself, a fallback
/// for when the checkpointer falls behind: its checkpoints run while the
/// writer keeps appending, and SQLite restarts the log only once it has all
/// been copied. SQLite's default (1,000) would make it the writer's job again.
const WRITER_AUTOCHECKPOINT_PAGES: u32 = 8_000;

/// Copies the write-ahead log into the database file on a thread of its own.
/// SQLite otherwise does it inside the commit that fills the log, on the one
/// writer connection, so every write waited behind its page copies and its
/// two fsyncs (a fifth of the time span ingest spent writing). The thread
/// stops when this is dropped, with the database.
pub(super) struct Checkpointer {
    _stop: mpsc::Sender<()>,
}

impl Checkpointer {
    fn start(conn: rusqlite::Connection) -> std::io::Result<Self> {
        let (stop, stopped) = mpsc::channel::<()>();
        std::thread::Builder::new()
            .name("sqlite-checkpoint".into())
            .spawn(move || {
                while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(CHECKPOINT_INTERVAL)
                {
                    checkpoint(&conn);
                }
            })?;
        Ok(Self { _stop: stop })
    }
}

/// How many checkpoints one tick runs at most to catch up with the writer.
const CHECKPOINT_PASSES: usize = 4;

/// Copies the log into the database. PASSIVE never waits for, nor blocks,
/// readers or the writer, so the writer keeps appending while it copies; a
/// second, shorter pass copies what came meanwhile, and so on until a pass
/// finds nothing new: then the writer's next transaction starts the log
/// afresh (SQLite does so only once all of it is copied), keeping it short.
fn checkpoint(conn: &rusqlite::Connection) {
    let mut seen = 0;
    for _ in 0..CHECKPOINT_PASSES {
        let pass = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| {
            Ok((
                row.get::<_, i64>(0)?,
                row.get::<_, i64>(1)?,
                row.get::<_, i64>(2)?,
            ))
        });
        match pass {
            // All copied, and the log has grown since the last pass: again.
            Ok((0, in_log, copied)) if copied == in_log && in_log > seen => seen = in_log,
            // Nothing new, a reader still on old pages, or busy elsewhere.
            Ok(_) => return,
            Err(err) => {
                tracing::debug!(error = %err, "background checkpoint skipped");
                return;
            }
        }
    }
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

    /// Commits reach the database file within a few intervals, long before
    /// the log holds the pages at which SQLite would copy it itself.
    #[tokio::test]
    async fn the_checkpointer_copies_commits_into_the_database_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.db");
        let db = open(&format!("sqlite:///{}", path.display()))
            .await
            .unwrap();
        let mut tx = db.begin().await.unwrap();
        crate::store::db::query(
            "INSERT INTO experiments (name, lifecycle_stage) VALUES ($1, 'active')",
        )
        .bind("in-the-file")
        .execute(&mut tx)
        .await
        .unwrap();
        tx.commit().await.unwrap();
        // `immutable` reads the database file alone, never the log.
        let file_only = || {
            let uri = format!("file:{}?immutable=1", path.display());
            let conn = rusqlite::Connection::open_with_flags(
                uri,
                OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_URI,
            )
            .unwrap();
            conn.query_row(
                "SELECT COUNT(*) FROM experiments WHERE name = 'in-the-file'",
                [],
                |row| row.get::<_, i64>(0),
            )
            .unwrap()
        };
        let deadline = Instant::now() + Duration::from_secs(5);
        while file_only() == 0 {
            assert!(Instant::now() < deadline, "never checkpointed");
            tokio::time::sleep(CHECKPOINT_INTERVAL).await;
        }
    }

    #[test]
    fn percentile_cont_interpolates_like_postgres() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        register_functions(&conn).unwrap();
        conn.execute_batch(
            "CREATE TABLE t (g TEXT, x REAL); INSERT INTO t VALUES \
             ('a', 4), ('a', 1), ('a', NULL), ('a', 3), ('a', 2), ('b', 7), ('c', NULL);",
        )
        .unwrap();
        let at = |group: &str, fraction: f64| -> Option<f64> {
            conn.query_row(
                "SELECT percentile_cont(x, ?2) FROM t WHERE g = ?1",
                rusqlite::params![group, fraction],
                |row| row.get(0),
            )
            .unwrap()
        };
        assert_eq!(at("a", 0.0), Some(1.0));
        assert_eq!(at("a", 0.5), Some(2.5));
        assert_eq!(at("a", 1.0), Some(4.0));
        assert!((at("a", 0.9).unwrap() - 3.7).abs() < 1e-12);
        assert_eq!(at("b", 0.25), Some(7.0), "one value is every percentile");
        assert_eq!(at("c", 0.5), None, "only NULLs");
        assert_eq!(at("none", 0.5), None, "no rows");
        let grouped: Vec<(String, f64)> = conn
            .prepare(
                "SELECT g, percentile_cont(x, 0.5) FROM t WHERE g <> 'c' GROUP BY g ORDER BY g",
            )
            .unwrap()
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(grouped, [("a".to_string(), 2.5), ("b".to_string(), 7.0)]);
        let out_of_range = conn.query_row("SELECT percentile_cont(x, 1.5) FROM t", [], |row| {
            row.get::<_, Option<f64>>(0)
        });
        assert!(out_of_range.is_err());
    }

    #[test]
    fn regexp_searches_and_a_bad_pattern_matches_nothing() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        register_functions(&conn).unwrap();
        let ask = |sql: &str| -> Option<i64> { conn.query_row(sql, [], |row| row.get(0)).unwrap() };
        assert_eq!(ask("SELECT 'prod-eu' REGEXP 'd-(eu|us)$'"), Some(1));
        assert_eq!(ask("SELECT 'prod-eu' REGEXP 'PROD'"), Some(0));
        assert_eq!(ask("SELECT NULL REGEXP 'a'"), None);
        assert_eq!(ask("SELECT 'a(' REGEXP '('"), Some(0));
        assert_eq!(ask("SELECT regexp_match('tr-12', '^tr-[0-9]+$')"), Some(1));
        assert_eq!(ask("SELECT regexp_match('tr-12', '^x')"), None);
        let rows: i64 = conn
            .query_row(
                "WITH v(s) AS (VALUES ('alpha-1'), ('beta-22'), ('gamma'), (NULL)) \
                 SELECT COUNT(*) FROM v WHERE regexp_match(s, ?1) IS NOT NULL",
                ["^[a-z]+-[0-9]+$"],
                |row| row.get(0),
            )
            .unwrap();
        assert_eq!(rows, 2);
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
