//! The workspace store: MLflow's workspace catalog (the `workspaces` table)
//! behind one trait, and MLflow's rules for workspace names and roots.
//!
//! Rules mirror MLflow 3.17.2's `WorkspaceNameValidator`
//! (mlflow/store/workspace/abstract_store.py) and its server's checks of a
//! workspace's `default_artifact_root` (mlflow/server/handlers.py).

use async_trait::async_trait;

use crate::error::{MlflowError, Result};
use crate::model::{Workspace, WorkspaceInfo};

/// Names that would collide with the server's own path segments.
const RESERVED_NAMES: [&str; 4] = ["workspaces", "api", "ajax-api", "static-files"];
const MIN_NAME_LENGTH: usize = 2;
const MAX_NAME_LENGTH: usize = 63;
const NAME_PATTERN: &str = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$";

/// What a workspace's resources become when it is deleted (`?mode=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeletionMode {
    /// Refuse while the workspace holds any resource (MLflow's default).
    #[default]
    Restrict,
    /// Delete the resources with the workspace.
    Cascade,
    /// Move the resources to `default`; refused if names would collide.
    SetDefault,
}

impl DeletionMode {
    pub fn parse(mode: &str) -> Result<Self> {
        match mode {
            "RESTRICT" => Ok(Self::Restrict),
            "CASCADE" => Ok(Self::Cascade),
            "SET_DEFAULT" => Ok(Self::SetDefault),
            other => Err(MlflowError::invalid_parameter(format!(
                "Invalid deletion mode '{other}'. Must be one of: RESTRICT, CASCADE, SET_DEFAULT"
            ))),
        }
    }
}

/// A change to a workspace: `None` leaves a field as it is, `Some("")`
/// clears it (MLflow's PATCH semantics).
#[derive(Debug, Clone, Default)]
pub struct WorkspaceUpdate {
    pub description: Option<String>,
    pub default_artifact_root: Option<String>,
}

/// MLflow's workspace catalog operations, one method per REST call, plus the
/// lookups every scoped request needs.
#[async_trait]
pub trait WorkspaceStore: Send + Sync {
    /// All workspaces, `default` included, sorted by name.
    async fn list_workspaces(&self) -> Result<Vec<WorkspaceInfo>>;
    async fn get_workspace(&self, name: &str) -> Result<WorkspaceInfo>;
    /// Creates a workspace; a taken name is `RESOURCE_ALREADY_EXISTS`.
    async fn create_workspace(&self, workspace: &WorkspaceInfo) -> Result<WorkspaceInfo>;
    async fn update_workspace(&self, name: &str, update: &WorkspaceUpdate)
        -> Result<WorkspaceInfo>;
    async fn delete_workspace(&self, name: &str, mode: DeletionMode) -> Result<()>;
}

/// Checks a workspace name as MLflow does; `default` is exempt.
pub fn validate_workspace_name(name: &str) -> Result<()> {
    if name == Workspace::DEFAULT {
        return Ok(());
    }
    let length = name.chars().count();
    if !(MIN_NAME_LENGTH..=MAX_NAME_LENGTH).contains(&length) {
        return Err(MlflowError::invalid_parameter(format!(
            "Workspace name '{name}' must be between {MIN_NAME_LENGTH} and {MAX_NAME_LENGTH} \
             characters."
        )));
    }
    let bytes = name.as_bytes();
    let inner_ok = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-';
    let edge_ok = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let matches = bytes.iter().all(inner_ok)
        && bytes.first().is_some_and(edge_ok)
        && bytes.last().is_some_and(edge_ok);
    if !matches {
        return Err(MlflowError::invalid_parameter(format!(
            "Workspace name '{name}' must match the pattern {NAME_PATTERN} (lowercase \
             alphanumeric with optional internal hyphens)."
        )));
    }
    if RESERVED_NAMES.contains(&name) {
        return Err(MlflowError::invalid_parameter(format!(
            "Workspace name '{name}' is reserved and cannot be used."
        )));
    }
    Ok(())
}

/// A workspace's own artifact root must be a URI or an absolute path: a
/// relative one would be resolved by each client against its own working
/// directory. `""` (clear) passes.
pub fn validate_workspace_artifact_root(root: &str) -> Result<()> {
    let has_scheme = url::Url::parse(root).is_ok_and(|url| url.scheme().len() > 1);
    if root.is_empty() || has_scheme || root.starts_with('/') {
        return Ok(());
    }
    Err(MlflowError::invalid_parameter(format!(
        "Invalid value for 'default_artifact_root'. Expected a URI (for example \
         's3://bucket/prefix' or 'mlflow-artifacts:/prefix') or an absolute path, got '{root}'."
    )))
}

/// Checks a workspace about to be created: MLflow's name rules, `default`
/// reserved, a usable artifact root.
pub fn check_new_workspace(workspace: &WorkspaceInfo) -> Result<()> {
    if workspace.name == Workspace::DEFAULT {
        return Err(MlflowError::invalid_parameter(
            "The 'default' workspace is reserved and cannot be created",
        ));
    }
    validate_workspace_name(&workspace.name)?;
    validate_workspace_artifact_root(workspace.default_artifact_root.as_deref().unwrap_or(""))
}

/// Checks an update: at least one field, a usable artifact root.
pub fn check_workspace_update(name: &str, update: &WorkspaceUpdate) -> Result<()> {
    validate_workspace_name(name)?;
    if update.description.is_none() && update.default_artifact_root.is_none() {
        return Err(MlflowError::invalid_parameter(
            "Workspace update must have at least one key",
        ));
    }
    validate_workspace_artifact_root(update.default_artifact_root.as_deref().unwrap_or(""))
}

/// Checks a workspace about to be deleted: `default` never is.
pub fn check_workspace_deletion(name: &str) -> Result<()> {
    if name == Workspace::DEFAULT {
        return Err(MlflowError::invalid_parameter(
            "The 'default' workspace is reserved and cannot be deleted",
        ));
    }
    validate_workspace_name(name)
}

/// The error for a workspace that does not exist, as MLflow words it.
pub fn workspace_not_found(name: &str) -> MlflowError {
    MlflowError::not_found(format!("Workspace '{name}' not found"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_mlflow_rules() {
        for good in ["ab", "team-a", "a1", "0x", &"a".repeat(63), "default"] {
            validate_workspace_name(good).unwrap_or_else(|e| panic!("{good}: {e}"));
        }
        for bad in [
            "",
            "a",
            "A1",
            "Team",
            "-ab",
            "ab-",
            "a_b",
            "a.b",
            "..",
            "%2e%2e",
            "a/b",
            "é1",
            "api",
            "workspaces",
            "ajax-api",
            "static-files",
            &"a".repeat(64),
            "a b",
        ] {
            let err = validate_workspace_name(bad).expect_err(bad);
            assert_eq!(err.code, crate::error::ErrorCode::InvalidParameterValue);
        }
    }

    #[test]
    fn artifact_roots_are_uris_or_absolute_paths() {
        for good in [
            "",
            "s3://b/p",
            "mlflow-artifacts:/x",
            "/srv/a",
            "file:///srv/a",
        ] {
            validate_workspace_artifact_root(good).unwrap_or_else(|e| panic!("{good}: {e}"));
        }
        for bad in ["relative/dir", "C:team-a", "./x"] {
            validate_workspace_artifact_root(bad).expect_err(bad);
        }
    }

    #[test]
    fn deletion_modes_parse_by_mlflow_name() {
        assert_eq!(
            DeletionMode::parse("CASCADE").unwrap(),
            DeletionMode::Cascade
        );
        assert!(DeletionMode::parse("cascade").is_err());
    }
}
