//! `/api/3.0/mlflow/workspaces`: MLflow's workspace catalog API (list,
//! create, get, update, delete), with its statuses (201 on create, 204 on
//! delete, which the stock client insists on). HTTP only, no SQL.

use std::sync::Arc;

use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};

use super::wire::{required, Body, Query, QueryFields};
use crate::app::AppState;
use crate::auth::tokens::Claims;
use crate::error::{ErrorCode, MlflowError, Result};
use crate::model::WorkspaceInfo;
use crate::store::workspaces::{
    check_new_workspace, check_workspace_deletion, check_workspace_update, validate_workspace_name,
    DeletionMode, WorkspaceUpdate,
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

/// With tokens on, a member sees only its token's workspace (as MLflow's
/// basic-auth lists only the workspaces a user can access); an admin all.
fn member_of(caller: &Option<Extension<Arc<Claims>>>) -> Option<&str> {
    caller
        .as_ref()
        .filter(|Extension(claims)| !claims.admin)
        .map(|Extension(claims)| claims.workspace.as_str())
}

pub async fn list(
    State(state): State<AppState>,
    caller: Option<Extension<Arc<Claims>>>,
) -> Result<Json<ListWorkspacesResponse>> {
    let mut workspaces = state.store.list_workspaces().await?;
    if let Some(own) = member_of(&caller) {
        workspaces.retain(|workspace| workspace.name == own);
    }
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
    let workspace = WorkspaceInfo {
        name: required(req.name, "name")?,
        description: req.description,
        default_artifact_root: req.default_artifact_root.filter(|r| !r.is_empty()),
    };
    check_new_workspace(&workspace)?;
    let workspace = state.store.create_workspace(&workspace).await?;
    Ok((StatusCode::CREATED, Json(WorkspaceResponse { workspace })))
}

pub async fn get(
    State(state): State<AppState>,
    caller: Option<Extension<Arc<Claims>>>,
    Path(name): Path<String>,
) -> Result<Json<WorkspaceResponse>> {
    validate_workspace_name(&name)?;
    if member_of(&caller).is_some_and(|own| own != name) {
        return Err(MlflowError::new(
            ErrorCode::PermissionDenied,
            format!("Permission denied: the token is not for workspace '{name}'"),
        ));
    }
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
    let update = WorkspaceUpdate {
        description: req.description,
        default_artifact_root: req.default_artifact_root,
    };
    check_workspace_update(&name, &update)?;
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
    check_workspace_deletion(&name)?;
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
