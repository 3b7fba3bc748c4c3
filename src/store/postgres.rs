//! PostgreSQL: the production backend. One pool shared by readers and
//! writers; several stateless ferroflow replicas can share the database.

use std::time::Duration;

use std::str::FromStr;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::Connection;

use super::db::Db;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/postgres");

const MAX_CONNECTIONS: u32 = 16;

/// How long a request waits for a connection. While the database is down the
/// pool keeps trying to connect until then, and the request is answered 503
/// (which the stock client retries) rather than held until its own timeout.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// No statement runs longer: a pathological search is cancelled (503) rather
/// than holding a connection and a core. gc deletes in chunks well under it.
const STATEMENT_TIMEOUT: &str = "60s";

/// SQLAlchemy URIs may name a driver (`postgresql+psycopg2://`); sqlx wants
/// the bare scheme.
fn sqlx_url(uri: &str) -> String {
    match uri.split_once("://") {
        Some((scheme, rest)) => {
            let dialect = scheme.split('+').next().unwrap_or(scheme);
            format!("{dialect}://{rest}")
        }
        None => uri.to_string(),
    }
}

/// Connects a pool to the database the URI names and migrates it.
pub(super) async fn open(uri: &str) -> anyhow::Result<Db> {
    // sqlx pings every connection it hands out by default: a network round
    // trip per transaction. Only a connection idle long enough to have been
    // dropped by the server or a proxy is checked.
    let pool = PgPoolOptions::new()
        .max_connections(MAX_CONNECTIONS)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for > Duration::from_secs(30) {
                    conn.ping().await?;
                }
                Ok(true)
            })
        })
        .connect_with(
            PgConnectOptions::from_str(&sqlx_url(uri))?
                .options([("statement_timeout", STATEMENT_TIMEOUT)]),
        )
        .await?;
    // The migrator takes an advisory lock, so replicas starting together
    // apply each migration once.
    MIGRATOR.run(&pool).await?;
    Ok(Db::Postgres(pool))
}

#[cfg(test)]
mod tests {
    #[test]
    fn sqlalchemy_driver_suffix_is_dropped() {
        assert_eq!(
            super::sqlx_url("postgresql+psycopg2://u@h:5432/db"),
            "postgresql://u@h:5432/db"
        );
        assert_eq!(
            super::sqlx_url("postgresql://u@h/db"),
            "postgresql://u@h/db"
        );
    }
}
