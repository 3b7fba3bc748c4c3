//! Readiness, pool and count queries (see `store::operations`).

use std::collections::BTreeMap;

use async_trait::async_trait;

use super::{SqlStore, ACTIVE};
use crate::error::Result;
use crate::store::db::{self, Db};
use crate::store::operations::{OperationsStore, PoolStats, WorkspaceCounts};

#[async_trait]
impl OperationsStore for SqlStore {
    async fn ping(&self) -> Result<()> {
        db::query("SELECT 1").fetch_one(&self.db).await?;
        Ok(())
    }

    fn pool_stats(&self) -> Option<PoolStats> {
        match &self.db {
            Db::Postgres(pool) => {
                let idle = pool.num_idle() as i64;
                Some(PoolStats {
                    in_use: i64::from(pool.size()) - idle,
                    idle,
                    waiting: db::waiting_for_connection(),
                })
            }
            Db::Sqlite(_) => None,
        }
    }

    async fn workspace_counts(&self) -> Result<Vec<WorkspaceCounts>> {
        // One statement, three grouped counts; each uses an index on the
        // workspace or experiment column.
        let rows = db::query(
            "SELECT workspace, 'e' AS kind, COUNT(*) AS n FROM experiments \
             WHERE lifecycle_stage = $1 GROUP BY workspace \
             UNION ALL \
             SELECT e.workspace, 'r', COUNT(*) FROM runs r \
             JOIN experiments e ON e.experiment_id = r.experiment_id \
             WHERE r.lifecycle_stage = $1 GROUP BY e.workspace \
             UNION ALL \
             SELECT workspace, 'm', COUNT(*) FROM registered_models GROUP BY workspace",
        )
        .bind(ACTIVE)
        .fetch_all(&self.db)
        .await?;
        let mut counts = BTreeMap::<String, WorkspaceCounts>::new();
        for row in rows {
            let workspace: String = row.try_get("workspace")?;
            let kind: String = row.try_get("kind")?;
            let n: i64 = row.try_get("n")?;
            let entry = counts
                .entry(workspace.clone())
                .or_insert_with(|| WorkspaceCounts {
                    workspace,
                    experiments: 0,
                    runs: 0,
                    registered_models: 0,
                });
            match kind.as_str() {
                "e" => entry.experiments = n,
                "r" => entry.runs = n,
                _ => entry.registered_models = n,
            }
        }
        Ok(counts.into_values().collect())
    }
}
