//! The artifact proxy (`/api/2.0/mlflow-artifacts/...`): uploads, downloads,
//! listings and deletes here; multipart uploads in `multipart`; the routes
//! that serve a run's, a model version's or a logged model's files from
//! their artifact root in `served`; download headers and ranges in `serve`.
//! HTTP only: storage and path safety are in `crate::artifacts`.

mod multipart;
mod serve;
mod served;

use std::ops::Range;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{FromRequestParts, OriginalUri, Path, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::wire::{self, Query, QueryFields};
use crate::app::AppState;
use crate::artifacts::{from_proxied_uri, ArtifactPath, ArtifactStore, FileInfo, UploadPart};
use crate::auth::{Access, PathWorkspace};
use crate::error::{ErrorCode, MlflowError, Result};
use crate::model::Workspace;

pub use multipart::*;
use serve::*;
pub use served::*;

/// The artifact store, or MLflow's plain-text 503 when the server runs with
/// `--no-serve-artifacts`.
pub struct Artifacts(Arc<ArtifactStore>);

impl FromRequestParts<AppState> for Artifacts {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        match &state.artifacts {
            Some(store) => Ok(Self(store.clone())),
            None => Err((
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "Endpoint: {} disabled due to the mlflow server running with \
                     `--no-serve-artifacts`. To enable artifacts server functionality, run \
                     `mlflow server` with `--serve-artifacts`",
                    parts.uri.path()
                ),
            )
                .into_response()),
        }
    }
}

/// The `<path>` of `/artifacts/<path>`, already percent-decoded once by axum
/// and validated.
pub(super) fn artifact_path(
    path: std::result::Result<Path<String>, PathRejection>,
) -> Result<ArtifactPath> {
    let Path(raw) =
        path.map_err(|e| MlflowError::invalid_parameter(format!("Invalid path: {e}")))?;
    ArtifactPath::parse(&raw)
}

/// The part of the destination a proxied request may reach: with workspaces
/// on, its workspace's `workspaces/<name>/` (see `ArtifactPath::in_workspace`).
pub struct ProxyScope {
    workspace: Option<Workspace>,
    /// The workspace came from the header, not from a `/w/<name>` prefix.
    by_header: bool,
    /// With `--auth token`: what signs and checks multipart part URLs.
    access: Option<Arc<Access>>,
}

impl FromRequestParts<AppState> for ProxyScope {
    type Rejection = MlflowError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self> {
        let access = state.access.clone();
        if state.workspaces.is_none() {
            return Ok(Self {
                workspace: None,
                by_header: false,
                access,
            });
        }
        let workspace = Workspace::from_request_parts(parts, state).await?;
        Ok(Self {
            workspace: Some(workspace),
            by_header: parts.extensions.get::<PathWorkspace>().is_none(),
            access,
        })
    }
}

impl ProxyScope {
    /// `path` as this request may reach it.
    pub(super) fn path(&self, path: ArtifactPath) -> Result<ArtifactPath> {
        match &self.workspace {
            Some(workspace) => path.in_workspace(workspace.name()),
            None => Ok(path),
        }
    }

    /// The client PUTs multipart parts with no workspace header, so a
    /// workspace chosen by header travels in the part URLs' path instead.
    pub(super) fn part_url_prefix(&self) -> Option<String> {
        let workspace = self.workspace.as_ref().filter(|_| self.by_header)?;
        Some(format!("/w/{}", workspace.name()))
    }
}

/// `PUT /mlflow-artifacts/artifacts/<path>`: the raw body, any Content-Type,
/// streamed into the store.
pub async fn upload(
    Artifacts(store): Artifacts,
    scope: ProxyScope,
    path: std::result::Result<Path<String>, PathRejection>,
    body: Body,
) -> Result<Json<Value>> {
    let path = scope.path(artifact_path(path)?)?;
    store.put(&path, body.into_data_stream()).await?;
    Ok(Json(json!({})))
}

/// `GET /mlflow-artifacts/artifacts/<path>`.
pub async fn download(
    Artifacts(store): Artifacts,
    scope: ProxyScope,
    path: std::result::Result<Path<String>, PathRejection>,
    headers: HeaderMap,
) -> Result<Response> {
    let path = scope.path(artifact_path(path)?)?;
    serve_file(&store, &path, &headers).await
}

/// `DELETE /mlflow-artifacts/artifacts/<path>`, recursive.
pub async fn delete(
    Artifacts(store): Artifacts,
    scope: ProxyScope,
    path: std::result::Result<Path<String>, PathRejection>,
) -> Result<Json<Value>> {
    let path = scope.path(artifact_path(path)?)?;
    store.delete(&path).await?;
    Ok(Json(json!({})))
}

#[derive(Deserialize)]
pub struct ListArtifacts {
    path: Option<String>,
}
impl QueryFields for ListArtifacts {}

#[derive(Serialize)]
pub struct ListArtifactsResponse {
    #[serde(skip_serializing_if = "Option::is_none")]
    root_uri: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    files: Vec<FileInfo>,
}

/// `GET /mlflow-artifacts/artifacts?path=<dir>`: basenames; `{}` for a file
/// or a missing path.
pub async fn list(
    Artifacts(store): Artifacts,
    scope: ProxyScope,
    Query(req): Query<ListArtifacts>,
) -> Result<Json<ListArtifactsResponse>> {
    let dir = ArtifactPath::parse(req.path.as_deref().unwrap_or("").trim_end_matches('/'))?;
    let dir = scope.path(dir)?;
    let files = store.list(&dir).await?;
    Ok(Json(ListArtifactsResponse {
        root_uri: None,
        files,
    }))
}
