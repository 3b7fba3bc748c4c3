//! Subcommands that work on the database directly, for operators (no server
//! needed): `ferroflow workspace ...`. Each prints MLflow's JSON for what it
//! did, so scripts read the same shapes as from the REST API.

use clap::Subcommand;
use serde_json::json;

use crate::config::{Config, ServerArgs};
use crate::model::WorkspaceInfo;
use crate::store::workspaces::{
    check_new_workspace, check_workspace_deletion, check_workspace_update, validate_workspace_name,
};
use crate::store::{self, DeletionMode, WorkspaceStore, WorkspaceUpdate};

#[derive(Debug, Subcommand)]
pub enum WorkspaceCommand {
    /// List every workspace
    List {
        #[command(flatten)]
        store: ServerArgs,
    },
    /// Show one workspace
    Get {
        name: String,
        #[command(flatten)]
        store: ServerArgs,
    },
    /// Create a workspace
    Create {
        name: String,
        #[arg(long)]
        description: Option<String>,
        /// Where its new experiments put their artifacts (a URI or an absolute path)
        #[arg(long = "workspace-artifact-root")]
        artifact_root: Option<String>,
        #[command(flatten)]
        store: ServerArgs,
    },
    /// Change a workspace's description or artifact root ("" clears)
    Update {
        name: String,
        #[arg(long)]
        description: Option<String>,
        #[arg(long = "workspace-artifact-root")]
        artifact_root: Option<String>,
        #[command(flatten)]
        store: ServerArgs,
    },
    /// Delete a workspace
    Delete {
        name: String,
        /// RESTRICT (refuse while it holds anything), CASCADE (delete its
        /// resources too) or SET_DEFAULT (move them to `default`)
        #[arg(long, default_value = "RESTRICT")]
        mode: String,
        #[command(flatten)]
        store: ServerArgs,
    },
}

impl WorkspaceCommand {
    fn store_args(&self) -> &ServerArgs {
        match self {
            Self::List { store }
            | Self::Get { store, .. }
            | Self::Create { store, .. }
            | Self::Update { store, .. }
            | Self::Delete { store, .. } => store,
        }
    }

    /// Runs the command against the configured backend store; the output is
    /// the JSON line MLflow's REST API would answer.
    pub async fn run(self) -> anyhow::Result<String> {
        let config = Config::load(self.store_args())?;
        let db = store::open(&config.backend_store_uri, &config.artifact_root()).await?;
        let output = match self {
            Self::List { .. } => json!({ "workspaces": db.list_workspaces().await? }),
            Self::Get { name, .. } => {
                validate_workspace_name(&name)?;
                json!({ "workspace": db.get_workspace(&name).await? })
            }
            Self::Create {
                name,
                description,
                artifact_root,
                ..
            } => {
                let workspace = WorkspaceInfo {
                    name,
                    description,
                    default_artifact_root: artifact_root.filter(|root| !root.is_empty()),
                };
                check_new_workspace(&workspace)?;
                json!({ "workspace": db.create_workspace(&workspace).await? })
            }
            Self::Update {
                name,
                description,
                artifact_root,
                ..
            } => {
                let update = WorkspaceUpdate {
                    description,
                    default_artifact_root: artifact_root,
                };
                check_workspace_update(&name, &update)?;
                json!({ "workspace": db.update_workspace(&name, &update).await? })
            }
            Self::Delete { name, mode, .. } => {
                check_workspace_deletion(&name)?;
                db.delete_workspace(&name, DeletionMode::parse(&mode)?)
                    .await?;
                json!({})
            }
        };
        Ok(output.to_string())
    }
}
