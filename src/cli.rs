//! Subcommands that work on the database directly, for operators (no server
//! needed): `ferroflow workspace ...` prints MLflow's JSON for what it did,
//! so scripts read the same shapes as from the REST API; `ferroflow key ...`
//! makes and revokes API keys (a new key is printed once, alone on stdout).

use clap::Subcommand;
use serde_json::json;

use crate::auth::keys;
use crate::auth::permissions::Role;
use crate::config::{Config, ServerArgs};
use crate::model::{now_millis, WorkspaceInfo};
use crate::store::workspaces::{
    check_new_workspace, check_workspace_deletion, check_workspace_update, validate_workspace_name,
};
use crate::store::{self, AccessStore, DeletionMode, WorkspaceStore, WorkspaceUpdate};

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

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Create an API key (and its principal if new); prints only the key
    Create {
        /// The user or service principal the key belongs to
        #[arg(long)]
        principal: String,
        /// A server admin: every workspace, the workspace catalog
        #[arg(long, conflicts_with_all = ["workspace", "role"])]
        admin: bool,
        /// The workspace the principal gets a role in
        #[arg(long, requires = "role")]
        workspace: Option<String>,
        /// READ, EDIT or MANAGE
        #[arg(long, requires = "workspace")]
        role: Option<String>,
        /// Days until the key stops working [default: never]
        #[arg(long)]
        expires_in_days: Option<u32>,
        #[command(flatten)]
        store: ServerArgs,
    },
    /// Revoke an API key (given whole, or by its id); its tokens stop
    /// working within a minute on every replica
    Revoke {
        key: String,
        #[command(flatten)]
        store: ServerArgs,
    },
}

impl KeyCommand {
    pub async fn run(self) -> anyhow::Result<String> {
        match self {
            Self::Create {
                principal,
                admin,
                workspace,
                role,
                expires_in_days,
                store,
            } => {
                let config = Config::load(&store)?;
                let db = store::open(&config.backend_store_uri, &config.artifact_root()).await?;
                anyhow::ensure!(
                    admin || workspace.is_some(),
                    "give --admin, or --workspace and --role"
                );
                anyhow::ensure!(!principal.trim().is_empty(), "--principal is empty");
                db.ensure_principal(&principal, admin).await?;
                if let (Some(workspace), Some(role)) = (workspace, role) {
                    let role = Role::parse(&role)
                        .ok_or_else(|| anyhow::anyhow!("--role must be READ, EDIT or MANAGE"))?;
                    validate_workspace_name(&workspace)?;
                    db.get_workspace(&workspace).await?;
                    db.bind_role(&principal, &workspace, role).await?;
                }
                let key = keys::generate();
                let expires_at =
                    expires_in_days.map(|days| now_millis() + i64::from(days) * 86_400_000);
                db.create_key(&key.key_id, &principal, &key.secret_sha256, expires_at)
                    .await?;
                Ok(key.plaintext)
            }
            Self::Revoke { key, store } => {
                let config = Config::load(&store)?;
                let db = store::open(&config.backend_store_uri, &config.artifact_root()).await?;
                let key_id = keys::parse(&key).map_or(key.as_str(), |(id, _)| id);
                anyhow::ensure!(
                    db.revoke_key(key_id).await?,
                    "no API key with id '{key_id}'"
                );
                Ok(format!("revoked {key_id}"))
            }
        }
    }
}
