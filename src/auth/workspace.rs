//! The request's workspace, as MLflow's server resolves it, plus the path
//! prefix ferroflow adds so a tracking URI alone can select one.
//!
//! - `X-MLFLOW-WORKSPACE` (what MLflow 3.10+ clients send after
//!   `mlflow.set_workspace`): blank means `default`, an invalid name is 400,
//!   an unknown one 404 (mlflow/server/workspace_helpers.py).
//! - `/w/<name>/...`: any client, 2.x included, pointed at
//!   `http://host/w/<name>` sends every call, artifacts too, under it. The
//!   prefix is stripped before routing; naming another workspace in the
//!   header as well is 400.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use axum::extract::Request;
use axum::http::request::Parts;
use axum::http::{Method, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};

use crate::error::{MlflowError, Result};
use crate::model::Workspace;
use crate::store::workspaces::validate_workspace_name;
use crate::store::WorkspaceStore;

/// The header MLflow's client sends on every call once a workspace is set.
pub const WORKSPACE_HEADER: &str = "x-mlflow-workspace";

/// The path prefix that selects a workspace: `/w/<name>/...`.
const PATH_PREFIX: &str = "/w/";

/// How long a workspace seen to exist is taken to exist without asking the
/// database again. A workspace deleted through another replica is refused
/// here at most this much later; through this one, at once.
const KNOWN_FOR: Duration = Duration::from_secs(10);

/// The workspace a request's path prefix named (set by [`strip_path_prefix`]).
#[derive(Debug, Clone)]
pub struct PathWorkspace(pub String);

/// Serves `/w/<name>/rest` as `/rest` in workspace `<name>`. Wraps the whole
/// router, so routing sees the path without the prefix; `server-info`,
/// `/version`, `/health` and the artifact proxy all work under it.
pub async fn strip_path_prefix(mut req: Request, next: Next) -> Response {
    // `/w/<name>` is the workspace's web UI: with the slash, the page's
    // relative links resolve under the prefix.
    let path = req.uri().path();
    if let Some(name) = path
        .strip_prefix(PATH_PREFIX)
        .filter(|name| !name.contains('/'))
    {
        if req.method() == Method::GET {
            return Redirect::permanent(&format!("{PATH_PREFIX}{name}/")).into_response();
        }
    }
    if let Some((workspace, rest)) = split_prefix(req.uri()) {
        req.extensions_mut().insert(PathWorkspace(workspace));
        *req.uri_mut() = rest;
    }
    next.run(req).await
}

/// `/w/team-a/api/2.0/...?q` → (`team-a`, `/api/2.0/...?q`).
fn split_prefix(uri: &Uri) -> Option<(String, Uri)> {
    let rest = uri.path().strip_prefix(PATH_PREFIX)?;
    let (workspace, path) = match rest.find('/') {
        Some(slash) => (&rest[..slash], &rest[slash..]),
        None => (rest, "/"),
    };
    let path_and_query = match uri.query() {
        Some(query) => format!("{path}?{query}"),
        None => path.to_string(),
    };
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = Some(path_and_query.parse().ok()?);
    Some((workspace.to_string(), Uri::from_parts(parts).ok()?))
}

/// The workspace a request names by header or path prefix (`default` when
/// neither), unchecked; naming two different ones is an error.
pub fn requested_name(parts: &Parts) -> Result<&str> {
    let header = match parts.headers.get(WORKSPACE_HEADER) {
        Some(value) => Some(value.to_str().map_err(|_| {
            MlflowError::invalid_parameter("The X-MLFLOW-WORKSPACE header is not valid text")
        })?),
        None => None,
    }
    .map(str::trim)
    .filter(|name| !name.is_empty());
    let path = parts
        .extensions
        .get::<PathWorkspace>()
        .map(|p| p.0.as_str());
    match (header, path) {
        (Some(header), Some(path)) if header != path => {
            Err(MlflowError::invalid_parameter(format!(
                "The X-MLFLOW-WORKSPACE header names workspace '{header}' but the request path \
                 names '{path}'"
            )))
        }
        (header, path) => Ok(header.or(path).unwrap_or(Workspace::DEFAULT)),
    }
}

/// The workspace catalog as scoped requests see it: names checked, and
/// existence cached so a request costs no extra query.
pub struct Workspaces {
    store: Arc<dyn WorkspaceStore>,
    known: RwLock<HashMap<String, Instant>>,
}

impl Workspaces {
    pub fn new(store: Arc<dyn WorkspaceStore>) -> Self {
        Self {
            store,
            known: RwLock::new(HashMap::new()),
        }
    }

    /// The workspace of a request from its header and path prefix.
    pub async fn resolve(&self, parts: &Parts) -> Result<Workspace> {
        let name = requested_name(parts)?;
        validate_workspace_name(name)?;
        self.ensure_exists(name).await?;
        Ok(Workspace::new(name))
    }

    async fn ensure_exists(&self, name: &str) -> Result<()> {
        let seen = self.read_known().get(name).copied();
        if seen.is_some_and(|at| at.elapsed() < KNOWN_FOR) {
            return Ok(());
        }
        match self.store.get_workspace(name).await {
            Ok(_) => {
                self.write_known().insert(name.to_string(), Instant::now());
                Ok(())
            }
            Err(err) => {
                self.forget(name);
                Err(err)
            }
        }
    }

    /// Drops a workspace from the cache (it was just deleted or changed).
    pub fn forget(&self, name: &str) {
        self.write_known().remove(name);
    }

    fn read_known(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, Instant>> {
        self.known.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write_known(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, Instant>> {
        self.known.write().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_prefix_is_split_off_with_the_query_kept() {
        let uri: Uri = "/w/team-a/api/2.0/mlflow/runs/get?run_id=x"
            .parse()
            .unwrap();
        let (workspace, rest) = split_prefix(&uri).unwrap();
        assert_eq!(workspace, "team-a");
        assert_eq!(rest, "/api/2.0/mlflow/runs/get?run_id=x");
        let (workspace, rest) = split_prefix(&"/w/team-a".parse().unwrap()).unwrap();
        assert_eq!((workspace.as_str(), rest.path()), ("team-a", "/"));
        assert!(split_prefix(&"/api/2.0/mlflow/runs/get".parse().unwrap()).is_none());
        assert!(split_prefix(&"/wx/a".parse().unwrap()).is_none());
    }
}
