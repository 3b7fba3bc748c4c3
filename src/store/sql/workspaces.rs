//! The workspace catalog in MLflow's `workspaces` table, and what deleting a
//! workspace does to the rows that carry its name
//! (mlflow/store/workspace/sqlalchemy_store.py).

use async_trait::async_trait;

use super::SqlStore;
use crate::error::{ErrorCode, MlflowError, Result};
use crate::model::{Workspace, WorkspaceInfo};
use crate::store::db::{self, Row, Tx, UniqueViolation};
use crate::store::workspaces::{
    workspace_not_found, DeletionMode, WorkspaceStore, WorkspaceUpdate,
};

const COLUMNS: &str = "name, description, default_artifact_root";

/// The tables whose rows belong to a workspace directly, in the order MLflow
/// checks them before a RESTRICT delete. (Runs, metrics, logged models and
/// traces belong to it through their experiment.)
const ROOT_TABLES: [&str; 11] = [
    "registered_models",
    "experiments",
    "evaluation_datasets",
    "webhooks",
    "secrets",
    "endpoints",
    "model_definitions",
    "budget_policies",
    "guardrails",
    "jobs",
    "mcp_servers",
];

/// The experiments of workspace `$1`.
const WORKSPACE_EXPERIMENTS: &str = "SELECT experiment_id FROM experiments WHERE workspace = $1";

/// What a CASCADE delete removes, children first. Runs and their data hang
/// off experiments without `ON DELETE CASCADE` in MLflow's schema, so they
/// go by hand; logged models, datasets and traces cascade from experiments.
const CASCADE: &[&str] = &[
    "DELETE FROM input_tags WHERE input_uuid IN (SELECT input_uuid FROM inputs WHERE \
     destination_id IN (SELECT run_uuid FROM runs WHERE experiment_id IN (WORKSPACE_EXPERIMENTS)) \
     OR source_id IN (SELECT run_uuid FROM runs WHERE experiment_id IN (WORKSPACE_EXPERIMENTS)))",
    "DELETE FROM inputs WHERE \
     destination_id IN (SELECT run_uuid FROM runs WHERE experiment_id IN (WORKSPACE_EXPERIMENTS)) \
     OR source_id IN (SELECT run_uuid FROM runs WHERE experiment_id IN (WORKSPACE_EXPERIMENTS))",
    "DELETE FROM metrics WHERE run_uuid IN \
     (SELECT run_uuid FROM runs WHERE experiment_id IN (WORKSPACE_EXPERIMENTS))",
    "DELETE FROM latest_metrics WHERE run_uuid IN \
     (SELECT run_uuid FROM runs WHERE experiment_id IN (WORKSPACE_EXPERIMENTS))",
    "DELETE FROM params WHERE run_uuid IN \
     (SELECT run_uuid FROM runs WHERE experiment_id IN (WORKSPACE_EXPERIMENTS))",
    "DELETE FROM tags WHERE run_uuid IN \
     (SELECT run_uuid FROM runs WHERE experiment_id IN (WORKSPACE_EXPERIMENTS))",
    "DELETE FROM runs WHERE experiment_id IN (WORKSPACE_EXPERIMENTS)",
    "DELETE FROM experiment_tags WHERE experiment_id IN (WORKSPACE_EXPERIMENTS)",
    "DELETE FROM experiments WHERE workspace = $1",
    "DELETE FROM model_version_tags WHERE workspace = $1",
    "DELETE FROM model_versions WHERE workspace = $1",
    "DELETE FROM registered_model_tags WHERE workspace = $1",
    "DELETE FROM registered_model_aliases WHERE workspace = $1",
    "DELETE FROM registered_models WHERE workspace = $1",
    "DELETE FROM evaluation_datasets WHERE workspace = $1",
    "DELETE FROM webhooks WHERE workspace = $1",
    "DELETE FROM jobs WHERE workspace = $1",
    "DELETE FROM mcp_servers WHERE workspace = $1",
    "DELETE FROM guardrails WHERE workspace = $1",
    "DELETE FROM budget_policies WHERE workspace = $1",
    "DELETE FROM endpoints WHERE workspace = $1",
    "DELETE FROM model_definitions WHERE workspace = $1",
    "DELETE FROM secrets WHERE workspace = $1",
];

/// The named resources that must not collide when a workspace's rows move to
/// `default` (names are unique per workspace).
const NAMED_TABLES: [&str; 2] = ["experiments", "registered_models"];

fn workspace_from_row(row: &Row) -> Result<WorkspaceInfo> {
    Ok(WorkspaceInfo {
        name: row.try_get("name")?,
        description: row.try_get("description")?,
        default_artifact_root: row.try_get("default_artifact_root")?,
    })
}

/// MLflow's INVALID_STATE for a delete that cannot go ahead. MLflow answers
/// it with 500, which the client retries; it is the caller's to resolve, so
/// ferroflow answers 400 with MLflow's code and wording.
fn invalid_state(message: String) -> MlflowError {
    MlflowError::new(ErrorCode::InvalidState, message)
}

impl SqlStore {
    async fn restrict(&self, tx: &mut Tx, name: &str) -> Result<()> {
        for table in ROOT_TABLES {
            let sql = format!("SELECT COUNT(*) AS n FROM {table} WHERE workspace = $1");
            let count: i64 = db::query(&sql)
                .bind(name)
                .fetch_one(&mut *tx)
                .await?
                .try_get("n")?;
            if count > 0 {
                return Err(invalid_state(format!(
                    "Cannot delete workspace '{name}': table '{table}' still contains {count} \
                     resource(s). Remove or reassign them before deleting the workspace."
                )));
            }
        }
        Ok(())
    }

    async fn cascade(&self, tx: &mut Tx, name: &str) -> Result<()> {
        for statement in CASCADE {
            let sql = statement.replace("WORKSPACE_EXPERIMENTS", WORKSPACE_EXPERIMENTS);
            db::query(&sql).bind(name).execute(&mut *tx).await?;
        }
        Ok(())
    }

    async fn set_default(&self, tx: &mut Tx, name: &str) -> Result<()> {
        let mut conflicts = Vec::new();
        for table in NAMED_TABLES {
            let sql = format!(
                "SELECT name FROM {table} WHERE workspace = $1 AND name IN \
                 (SELECT name FROM {table} WHERE workspace = $2) ORDER BY name"
            );
            let rows = db::query(&sql)
                .bind(name)
                .bind(Workspace::DEFAULT)
                .fetch_all(&mut *tx)
                .await?;
            for row in rows {
                let taken: String = row.try_get("name")?;
                conflicts.push(format!("  - {table}: '{taken}'"));
            }
        }
        if !conflicts.is_empty() {
            return Err(invalid_state(format!(
                "Cannot reassign resources from workspace '{name}' to 'default': the following \
                 names already exist in the default workspace and would cause conflicts:\n{}\n\
                 Rename or remove the conflicting resources before retrying.",
                conflicts.join("\n")
            )));
        }
        // Registry children follow their model through `ON UPDATE CASCADE`.
        for table in ROOT_TABLES {
            let sql = format!("UPDATE {table} SET workspace = $2 WHERE workspace = $1");
            db::query(&sql)
                .bind(name)
                .bind(Workspace::DEFAULT)
                .execute(&mut *tx)
                .await
                .or_conflict(|| {
                    invalid_state(format!(
                        "Cannot delete workspace '{name}': resources in this workspace conflict \
                         with existing resources in the 'default' workspace. Resolve naming \
                         conflicts before deleting."
                    ))
                })?;
        }
        Ok(())
    }
}

#[async_trait]
impl WorkspaceStore for SqlStore {
    async fn list_workspaces(&self) -> Result<Vec<WorkspaceInfo>> {
        let sql = format!("SELECT {COLUMNS} FROM workspaces ORDER BY name");
        db::query(&sql)
            .fetch_all(&self.db)
            .await?
            .iter()
            .map(workspace_from_row)
            .collect()
    }

    async fn get_workspace(&self, name: &str) -> Result<WorkspaceInfo> {
        let sql = format!("SELECT {COLUMNS} FROM workspaces WHERE name = $1");
        match db::query(&sql).bind(name).fetch_optional(&self.db).await? {
            Some(row) => workspace_from_row(&row),
            None => Err(workspace_not_found(name)),
        }
    }

    async fn create_workspace(&self, workspace: &WorkspaceInfo) -> Result<WorkspaceInfo> {
        let sql =
            format!("INSERT INTO workspaces ({COLUMNS}) VALUES ($1, $2, $3) RETURNING {COLUMNS}");
        let row = db::query(&sql)
            .bind(&workspace.name)
            .bind(workspace.description.as_deref())
            .bind(workspace.default_artifact_root.as_deref())
            .fetch_one(&self.db)
            .await
            .or_conflict(|| {
                MlflowError::already_exists(format!(
                    "Workspace '{}' already exists.",
                    workspace.name
                ))
            })?;
        workspace_from_row(&row)
    }

    async fn update_workspace(
        &self,
        name: &str,
        update: &WorkspaceUpdate,
    ) -> Result<WorkspaceInfo> {
        // `None` keeps a field; `""` clears it.
        let sql = format!(
            "UPDATE workspaces SET \
             description = CASE WHEN $2 IS NULL THEN description ELSE NULLIF($2, '') END, \
             default_artifact_root = CASE WHEN $3 IS NULL THEN default_artifact_root \
             ELSE NULLIF($3, '') END \
             WHERE name = $1 RETURNING {COLUMNS}"
        );
        let row = db::query(&sql)
            .bind(name)
            .bind(update.description.as_deref())
            .bind(update.default_artifact_root.as_deref())
            .fetch_optional(&self.db)
            .await?;
        match row {
            Some(row) => workspace_from_row(&row),
            None => Err(workspace_not_found(name)),
        }
    }

    async fn delete_workspace(&self, name: &str, mode: DeletionMode) -> Result<()> {
        let mut tx = self.db.begin().await?;
        let deleted = db::query("DELETE FROM workspaces WHERE name = $1")
            .bind(name)
            .execute(&mut tx)
            .await?;
        if deleted == 0 {
            return Err(workspace_not_found(name));
        }
        match mode {
            DeletionMode::Restrict => self.restrict(&mut tx, name).await?,
            DeletionMode::Cascade => self.cascade(&mut tx, name).await?,
            DeletionMode::SetDefault => self.set_default(&mut tx, name).await?,
        }
        tx.commit().await?;
        Ok(())
    }
}
