//! Who may do what, where: the workspace a request acts in (header or path
//! prefix), API keys, one-hour tokens, roles and the permission every route
//! needs. No SQL here: principals, keys and the workspace catalog are the
//! store's (`store::access`, `store::workspaces`).

pub mod audit;
pub mod keys;
pub mod limit;
pub mod middleware;
pub mod permissions;
pub mod session;
pub mod tokens;
pub mod workspace;

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

pub use workspace::{strip_path_prefix, PathWorkspace, Workspaces, WORKSPACE_HEADER};

use crate::store::access::{AccessStore, StoredSigningKey};
use tokens::{SigningKey, Tokens};

/// How often a replica re-reads revoked keys and signing keys: a revoked
/// key's tokens stop passing on every replica within this.
const REFRESH_EVERY: Duration = Duration::from_secs(15);

/// Token requests per API key id, and per client address, per minute.
const EXCHANGES_PER_KEY: u32 = 30;
const EXCHANGES_PER_ADDRESS: u32 = 120;
const EXCHANGE_WINDOW: Duration = Duration::from_secs(60);

/// What `--auth token` adds to a server.
pub struct Access {
    pub tokens: Tokens,
    /// Limits on `POST /oauth/token`.
    pub per_key: limit::RateLimiter,
    pub per_address: limit::RateLimiter,
    /// Writes and refusals, recorded in the background.
    pub audit: audit::AuditLog,
    /// Keys come from the configured file rather than the database.
    key_from_file: bool,
}

impl Access {
    /// The token service: signing key from `key_file` (the production way),
    /// else the database's, created at first start and shared by replicas.
    pub async fn open(
        store: Arc<dyn AccessStore>,
        key_file: Option<&Path>,
        ttl: Duration,
    ) -> anyhow::Result<Self> {
        let keys = match key_file {
            Some(path) => {
                let pem = std::fs::read_to_string(path)
                    .map_err(|err| anyhow::anyhow!("signing key file {}: {err}", path.display()))?;
                vec![SigningKey::from_pem(&pem)?]
            }
            None => database_keys(store.as_ref()).await?,
        };
        let access = Self {
            tokens: Tokens::new(keys, ttl),
            per_key: limit::RateLimiter::new(EXCHANGES_PER_KEY, EXCHANGE_WINDOW),
            per_address: limit::RateLimiter::new(EXCHANGES_PER_ADDRESS, EXCHANGE_WINDOW),
            audit: audit::AuditLog::spawn(store.clone()),
            key_from_file: key_file.is_some(),
        };
        access.refresh(store.as_ref()).await?;
        Ok(access)
    }

    /// Re-reads revoked keys (and the database's signing keys).
    pub async fn refresh(&self, store: &dyn AccessStore) -> anyhow::Result<()> {
        let keys = if self.key_from_file {
            Vec::new()
        } else {
            parse_keys(store.signing_keys().await?)?
        };
        let revoked: HashSet<String> = store.revoked_key_ids().await?.into_iter().collect();
        self.tokens.refresh(keys, revoked);
        Ok(())
    }

    /// Refreshes every [`REFRESH_EVERY`] until the server stops.
    pub fn spawn_refresher(self: &Arc<Self>, store: Arc<dyn AccessStore>) {
        let access = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(REFRESH_EVERY);
            loop {
                ticks.tick().await;
                let Some(access) = access.upgrade() else {
                    return;
                };
                if let Err(err) = access.refresh(store.as_ref()).await {
                    tracing::warn!(%err, "could not refresh revoked keys");
                }
            }
        });
    }
}

/// The database's signing keys, making the first one if there is none.
/// Replicas starting together on a fresh database add one between them
/// (the store serializes the check), so all sign with the same key.
async fn database_keys(store: &dyn AccessStore) -> anyhow::Result<Vec<SigningKey>> {
    let stored = store.signing_keys().await?;
    if !stored.is_empty() {
        return parse_keys(stored);
    }
    let (key, pem) = SigningKey::generate()?;
    let first = StoredSigningKey {
        kid: key.kid.clone(),
        private_key_pem: pem,
    };
    if store.add_first_signing_key(&first).await? {
        tracing::info!(kid = %key.kid, "created a token signing key in the database");
    }
    parse_keys(store.signing_keys().await?)
}

fn parse_keys(stored: Vec<StoredSigningKey>) -> anyhow::Result<Vec<SigningKey>> {
    stored
        .iter()
        .map(|key| SigningKey::from_pem(&key.private_key_pem))
        .collect()
}
