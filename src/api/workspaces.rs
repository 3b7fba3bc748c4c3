//! `/api/3.0/mlflow/workspaces`: MLflow's workspace catalog API (list,
//! create, get, update, delete), with its statuses (201 on create, 204 on
//! delete, which the stock client insists on). HTTP only, no SQL.

use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};

use super::wire::{required, Body, Query, QueryFields};
use crate::app::AppState;
use crate::error::{MlflowError, Result};
use crate::model::{Workspace, WorkspaceInfo};
use crate::store::workspaces::{
    validate_workspace_artifact_root, validate_workspace_name, DeletionMode, WorkspaceUpdate,
};

/// Workspaces off: 503 in plain text, as `mlflow server` answers without
/// `--enable-workspaces`.
pub async fn require_workspaces(
    State(state): State<AppState>,
    req: Request,
    next: Next,
) -> Response {
    if state.workspaces.is_none() {
        let message = format!(
            "Endpoint: {} disabled because the server is running without workspaces support. \
             To enable workspace, run `ferroflow server` with `--enable-workspaces`",
            req.uri().path()
        );
        return (StatusCode::SERVICE_UNAVAILABLE, message).into_response();
    }
    next.run(req).await
}

#[derive(Serialize)]
pub struct WorkspaceResponse {
    workspace: WorkspaceInfo,
}

#[derive(Serialize)]
pub struct ListWorkspacesResponse {
    workspaces: Vec<WorkspaceInfo>,
}

pub async fn list(State(state): State<AppState>) -> Result<Json<ListWorkspacesResponse>> {
    let workspaces = state.store.list_workspaces().await?;
    Ok(Json(ListWorkspacesResponse { workspaces }))
}

#[derive(Deserialize)]
pub struct CreateWorkspace {
    name: Option<String>,
    description: Option<String>,
    default_artifact_root: Option<String>,
}

pub async fn create(
    State(state): State<AppState>,
    Body(req): Body<CreateWorkspace>,
) -> Result<(StatusCode, Json<WorkspaceResponse>)> {
    let name = required(req.name, "name")?;
    if name == Workspace::DEFAULT {
        return Err(MlflowError::invalid_parameter(
            "The 'default' workspace is reserved and cannot be created",
        ));
    }
    validate_workspace_name(&name)?;
    if let Some(root) = &req.default_artifact_root {
        validate_workspace_artifact_root(root)?;
    }
    let workspace = WorkspaceInfo {
        name,
        description: req.description,
        default_artifact_root: req.default_artifact_root.filter(|r| !r.is_empty()),
    };
    let workspace = state.store.create_workspace(&workspace).await?;
    Ok((StatusCode::CREATED, Json(WorkspaceResponse { workspace })))
}

pub async fn get(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<WorkspaceResponse>> {
    validate_workspace_name(&name)?;
    let workspace = state.store.get_workspace(&name).await?;
    Ok(Json(WorkspaceResponse { workspace }))
}

#[derive(Deserialize)]
pub struct UpdateWorkspace {
    description: Option<String>,
    default_artifact_root: Option<String>,
}

pub async fn update(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Body(req): Body<UpdateWorkspace>,
) -> Result<Json<WorkspaceResponse>> {
    validate_workspace_name(&name)?;
    if req.description.is_none() && req.default_artifact_root.is_none() {
        return Err(MlflowError::invalid_parameter(
            "Workspace update must have at least one key",
        ));
    }
    if let Some(root) = &req.default_artifact_root {
        validate_workspace_artifact_root(root)?;
    }
    let update = WorkspaceUpdate {
        description: req.description,
        default_artifact_root: req.default_artifact_root,
    };
    let workspace = state.store.update_workspace(&name, &update).await?;
    forget(&state, &name);
    Ok(Json(WorkspaceResponse { workspace }))
}

#[derive(Deserialize)]
pub struct DeleteWorkspace {
    mode: Option<String>,
}
impl QueryFields for DeleteWorkspace {}

pub async fn delete(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(req): Query<DeleteWorkspace>,
) -> Result<StatusCode> {
    if name == Workspace::DEFAULT {
        return Err(MlflowError::invalid_parameter(
            "The 'default' workspace is reserved and cannot be deleted",
        ));
    }
    validate_workspace_name(&name)?;
    let mode = match req.mode.as_deref() {
        None => DeletionMode::default(),
        Some(mode) => DeletionMode::parse(mode)?,
    };
    state.store.delete_workspace(&name, mode).await?;
    forget(&state, &name);
    Ok(StatusCode::NO_CONTENT)
}

fn forget(state: &AppState, name: &str) {
    if let Some(workspaces) = &state.workspaces {
        workspaces.forget(name);
    }
}
