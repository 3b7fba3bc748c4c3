//! Subcommands for operators and users. Most work on the database directly
//! (no server needed): `ferroflow workspace ...` prints MLflow's JSON for
//! what it did, so scripts read the same shapes as from the REST API;
//! `ferroflow key ...` makes and revokes API keys (a new key is printed once,
//! alone on stdout). `workspace tracking-uri`, `workspace init-script` and
//! `exec` reach a running server instead (`crate::reach`).

use std::ffi::OsString;

use clap::{Args, Subcommand};
use serde_json::json;

use crate::auth::keys;
use crate::auth::permissions::Role;
use crate::config::{Config, ServerArgs};
use crate::model::{now_millis, WorkspaceInfo};
use crate::reach::{self, exchange::exchange_key, init_script, parse_server_url, API_KEY_ENV};
use crate::store::workspaces::{
    check_new_workspace, check_workspace_deletion, check_workspace_update, validate_workspace_name,
};
use crate::store::{self, AccessStore, DeletionMode, WorkspaceStore, WorkspaceUpdate};
use crate::ui;

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
    /// Print a tracking URI for the workspace with a fresh token in it (the
    /// URI alone on the first line), then the same as shell variables
    TrackingUri {
        name: String,
        #[command(flatten)]
        server: ServerUrl,
        #[command(flatten)]
        key: ApiKey,
    },
    /// Print a cluster init script that points a Databricks-style cluster at
    /// the workspace (the API key comes from the cluster's secret, never the
    /// script)
    InitScript {
        name: String,
        #[command(flatten)]
        server: ServerUrl,
    },
}

impl WorkspaceCommand {
    fn store_args(&self) -> Option<&ServerArgs> {
        match self {
            Self::List { store }
            | Self::Get { store, .. }
            | Self::Create { store, .. }
            | Self::Update { store, .. }
            | Self::Delete { store, .. } => Some(store),
            Self::TrackingUri { .. } | Self::InitScript { .. } => None,
        }
    }

    /// Runs the command: against a running server for `tracking-uri` and
    /// `init-script`, else against the configured backend store, printing
    /// the JSON line MLflow's REST API would answer.
    pub async fn run(self) -> anyhow::Result<String> {
        let Some(store_args) = self.store_args() else {
            return self.reach().await;
        };
        let config = Config::load(store_args)?;
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
            Self::TrackingUri { .. } | Self::InitScript { .. } => unreachable!("no store"),
        };
        Ok(output.to_string())
    }

    /// The commands that print how to reach a workspace of a running server.
    async fn reach(self) -> anyhow::Result<String> {
        match self {
            Self::TrackingUri {
                name,
                server: ServerUrl { url },
                key,
            } => {
                validate_workspace_name(&name)?;
                let server = parse_server_url(&url)?;
                let grant = exchange_key(&server, &name, &key.key()?).await?;
                Ok(reach::tracking_uri_lines(
                    &server,
                    &name,
                    &grant.access_token,
                ))
            }
            Self::InitScript {
                name,
                server: ServerUrl { url },
            } => {
                validate_workspace_name(&name)?;
                let script = init_script::render(&parse_server_url(&url)?, Some(&name))?;
                Ok(script.trim_end().to_string())
            }
            _ => unreachable!("store commands run against the store"),
        }
    }
}

/// The server a command reaches.
#[derive(Debug, Args)]
pub struct ServerUrl {
    /// The server's public URL, as clients reach it (http(s)://host[:port][/prefix])
    #[arg(long, env = "FERROFLOW_URL")]
    pub url: String,
}

/// The API key a command exchanges for tokens.
#[derive(Debug, Args)]
pub struct ApiKey {
    /// An API key (`ferroflow key create`); prefer the environment variable,
    /// which stays out of the shell history and the process list
    #[arg(long = "key")]
    key: Option<String>,
}

impl ApiKey {
    /// `--key`, else `FERROFLOW_API_KEY`.
    pub fn key(&self) -> anyhow::Result<String> {
        self.key
            .clone()
            .or_else(|| std::env::var(API_KEY_ENV).ok())
            .filter(|key| !key.trim().is_empty())
            .ok_or_else(|| anyhow::anyhow!("give an API key with --key or {API_KEY_ENV}"))
    }
}

/// `ferroflow exec`: a command run with a workspace's tracking URI and
/// credentials in its environment.
#[derive(Debug, Args)]
pub struct ExecArgs {
    /// The workspace the command logs to
    #[arg(long)]
    pub workspace: String,
    #[command(flatten)]
    pub server: ServerUrl,
    #[command(flatten)]
    pub key: ApiKey,
    /// The command and its arguments, after `--`
    #[arg(last = true, required = true)]
    pub command: Vec<OsString>,
}

impl ExecArgs {
    /// Replaces this process with the command; returns only on failure.
    pub async fn run(self) -> anyhow::Result<std::convert::Infallible> {
        validate_workspace_name(&self.workspace)?;
        let server = parse_server_url(&self.server.url)?;
        reach::exec::exec(&server, &self.workspace, &self.key.key()?, &self.command).await
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
    /// working within 15 s on every replica
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

#[derive(Debug, Subcommand)]
pub enum UiCommand {
    /// Fetch the pinned mlflow wheel from the Python package index, check its
    /// SHA-256 and unpack only MLflow's web UI, where `ferroflow server`
    /// finds it
    Install {
        /// Where to unpack it [default: ~/.local/share/ferroflow/ui/mlflow-<version>]
        #[arg(long)]
        dir: Option<std::path::PathBuf>,
        /// A wheel already downloaded (checked all the same) instead of the index
        #[arg(long)]
        wheel: Option<std::path::PathBuf>,
        /// The package index (PEP 691 JSON simple API)
        #[arg(long, env = "PIP_INDEX_URL", default_value = ui::install::DEFAULT_INDEX)]
        index_url: String,
    },
}

impl UiCommand {
    pub async fn run(self) -> anyhow::Result<String> {
        match self {
            Self::Install {
                dir,
                wheel,
                index_url,
            } => {
                let dir = dir.or_else(ui::install::default_dir).ok_or_else(|| {
                    anyhow::anyhow!("no home directory to install into: give --dir")
                })?;
                ui::install::install(&dir, wheel.as_deref(), &index_url).await?;
                // What `--ui-dir` takes, for scripts.
                Ok(dir.display().to_string())
            }
        }
    }
}

/// `ferroflow gc`: permanently removes what was soft-deleted long enough ago,
/// with its artifacts in the configured destination (`crate::gc`).
#[derive(Debug, Args)]
pub struct GcArgs {
    /// Only what was deleted at least this long ago: 30d, 1d12h, 90m, 0s
    #[arg(long, default_value = "0s")]
    older_than: String,
    /// List what would be removed; remove nothing
    #[arg(long)]
    dry_run: bool,
    /// Entities per batch
    #[arg(long, default_value_t = crate::gc::DEFAULT_BATCH)]
    batch_size: i64,
    #[command(flatten)]
    store: ServerArgs,
}

impl GcArgs {
    /// Prints the report as JSON.
    pub async fn run(self) -> anyhow::Result<String> {
        anyhow::ensure!(self.batch_size > 0, "--batch-size must be positive");
        let options = crate::gc::GcOptions {
            older_than: crate::gc::parse_age(&self.older_than)?,
            dry_run: self.dry_run,
            batch: self.batch_size,
        };
        let config = Config::load(&self.store)?;
        let db = store::open(&config.backend_store_uri, &config.artifact_root()).await?;
        let artifacts = if config.serve_artifacts || config.artifacts_only {
            Some(crate::artifacts::ArtifactStore::open(
                &config.artifacts_destination,
            )?)
        } else {
            None
        };
        let report = crate::gc::collect(&db, artifacts.as_ref(), &options).await?;
        Ok(serde_json::to_string_pretty(&report)?)
    }
}
