//! What operating the server reads from its database: readiness, the
//! connection pool, and the per-workspace counts behind `/metrics`.

use async_trait::async_trait;

use crate::error::Result;

/// The PostgreSQL pool right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolStats {
    pub in_use: i64,
    pub idle: i64,
    /// Requests waiting for a connection.
    pub waiting: i64,
}

/// Active resources of one workspace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkspaceCounts {
    pub workspace: String,
    pub experiments: i64,
    pub runs: i64,
    pub registered_models: i64,
}

#[async_trait]
pub trait OperationsStore: Send + Sync {
    /// One round trip to the database.
    async fn ping(&self) -> Result<()>;
    /// `None` on SQLite, which has no pool to watch.
    fn pool_stats(&self) -> Option<PoolStats>;
    /// Every workspace holding anything, sorted by name.
    async fn workspace_counts(&self) -> Result<Vec<WorkspaceCounts>>;
}
