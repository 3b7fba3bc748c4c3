//! Fresh databases for tests (unit tests, the store suite, the HTTP tests):
//! SQLite in a temporary file, PostgreSQL as a new database on the server at
//! `FERROFLOW_TEST_PG_URL`, dropped with the guard even when the test panics.
//! Not used by the server; public only so that `tests/` can share it.

use std::path::PathBuf;

use sqlx::Connection;

use super::SqlStore;

/// Where the PostgreSQL tests find a server (`postgresql://user@host:port`,
/// no database). Unset, they are skipped, so `cargo test` needs no server.
pub const PG_URL_VAR: &str = "FERROFLOW_TEST_PG_URL";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A migrated, empty database that disappears with this guard.
pub struct TestDatabase {
    uri: String,
    cleanup: Cleanup,
}

enum Cleanup {
    SqliteFile(PathBuf),
    PgDatabase { server: String, name: String },
}

impl TestDatabase {
    /// A new database, or `None` for PostgreSQL when [`PG_URL_VAR`] is unset
    /// (the caller skips its test; a line on stderr says so).
    pub async fn create(backend: Backend) -> Option<Self> {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let db = match backend {
            Backend::Sqlite => {
                let path = std::env::temp_dir().join(format!("ff_test_{id}.db"));
                TestDatabase {
                    uri: format!("sqlite:///{}", path.display()),
                    cleanup: Cleanup::SqliteFile(path),
                }
            }
            Backend::Postgres => {
                let Ok(server) = std::env::var(PG_URL_VAR) else {
                    eprintln!("skipped: {PG_URL_VAR} is not set");
                    return None;
                };
                let name = format!("ff_test_{id}");
                let mut admin = sqlx::PgConnection::connect(&format!("{server}/postgres"))
                    .await
                    .unwrap_or_else(|err| panic!("PostgreSQL at {PG_URL_VAR}: {err}"));
                sqlx::query(&format!("CREATE DATABASE {name}"))
                    .execute(&mut admin)
                    .await
                    .expect("CREATE DATABASE");
                TestDatabase {
                    uri: format!("{server}/{name}"),
                    cleanup: Cleanup::PgDatabase { server, name },
                }
            }
        };
        super::upgrade(&db.uri).await.expect("migrations apply");
        Some(db)
    }

    /// The backend-store URI, as `ferroflow server` takes it.
    pub fn uri(&self) -> &str {
        &self.uri
    }

    /// The store over this database, with MLflow's Default experiment.
    pub async fn store(&self) -> SqlStore {
        super::open(&self.uri, "mlflow-artifacts:/")
            .await
            .expect("store opens")
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        match &self.cleanup {
            Cleanup::SqliteFile(path) => {
                for suffix in ["", "-wal", "-shm"] {
                    let mut file = path.clone().into_os_string();
                    file.push(suffix);
                    let _ = std::fs::remove_file(file);
                }
            }
            Cleanup::PgDatabase { server, name } => {
                // Drop may run inside a runtime (or while a test panics):
                // the DROP gets a thread and a runtime of its own.
                let admin_url = format!("{server}/postgres");
                let drop_sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                let dropped = std::thread::spawn(move || {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .ok()?;
                    runtime.block_on(async {
                        let mut admin = sqlx::PgConnection::connect(&admin_url).await.ok()?;
                        sqlx::query(&drop_sql).execute(&mut admin).await.ok()
                    })
                })
                .join();
                if !matches!(dropped, Ok(Some(_))) {
                    eprintln!("could not drop test database {name}");
                }
            }
        }
    }
}
