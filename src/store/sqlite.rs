//! SQLite: the embedded default. WAL mode, one writer connection and a pool
//! of readers; the pragmas live here and nowhere else.

use std::time::Duration;

use sqlx::any::AnyPoolOptions;
use sqlx::{AnyPool, Executor};

use super::sql::Dialect;
use super::SqlStore;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");

/// Set on every connection. `case_sensitive_like` makes `LIKE` match case as
/// MLflow's LIKE does (ILIKE is rendered with `LOWER`); `busy_timeout` lets
/// another process (a second server, `mlflow` itself) hold the file briefly.
const PRAGMAS: &str = "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
     PRAGMA busy_timeout = 30000; PRAGMA foreign_keys = ON; PRAGMA case_sensitive_like = ON;";

const READER_CONNECTIONS: u32 = 8;

/// `sqlite:///relative.db` and `sqlite:////absolute.db`, as SQLAlchemy (and
/// so `mlflow server`) spells them, become a sqlx URL for the same file.
fn sqlx_url(uri: &str) -> anyhow::Result<String> {
    let path = uri
        .split_once(":///")
        .map(|(_, path)| path)
        .filter(|path| !path.is_empty())
        .ok_or_else(|| anyhow::anyhow!("expected sqlite:///<path>, got '{uri}'"))?;
    Ok(format!("sqlite://{path}?mode=rwc"))
}

async fn pool(url: &str, connections: u32) -> anyhow::Result<AnyPool> {
    Ok(AnyPoolOptions::new()
        .max_connections(connections)
        .acquire_timeout(Duration::from_secs(60))
        .after_connect(|conn, _meta| {
            Box::pin(async move {
                conn.execute(PRAGMAS).await?;
                Ok(())
            })
        })
        .connect(url)
        .await?)
}

pub(super) async fn open(uri: &str, default_artifact_root: &str) -> anyhow::Result<SqlStore> {
    sqlx::any::install_default_drivers();
    let url = sqlx_url(uri)?;
    let writer = pool(&url, 1).await?;
    MIGRATOR.run(&writer).await?;
    let reader = pool(&url, READER_CONNECTIONS).await?;
    Ok(SqlStore::new(
        writer,
        reader,
        Dialect::Sqlite,
        default_artifact_root,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mlflow_sqlite_uris_map_to_the_same_file() {
        assert_eq!(
            sqlx_url("sqlite:///mlflow.db").unwrap(),
            "sqlite://mlflow.db?mode=rwc"
        );
        assert_eq!(
            sqlx_url("sqlite:////tmp/x.db").unwrap(),
            "sqlite:///tmp/x.db?mode=rwc"
        );
        assert!(sqlx_url("sqlite://").is_err());
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
    #[tokio::test]
    async fn doubles_print_exactly() {
        sqlx::any::install_default_drivers();
        let pool = sqlx::AnyPool::connect("sqlite::memory:").await.unwrap();
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
            let sql = format!("SELECT {} AS text", Dialect::Sqlite.exact_real("?"));
            let row = sqlx::query(&sql)
                .bind(value)
                .fetch_one(&pool)
                .await
                .unwrap();
            let text: String = sqlx::Row::try_get(&row, "text").unwrap();
            let back: f64 = text.parse().unwrap();
            assert_eq!(
                back.to_bits(),
                value.to_bits(),
                "{value:e} printed as {text}"
            );
        }
    }
}
