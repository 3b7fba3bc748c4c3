//! MLflow's web UI as `mlflow server` serves it: `index.html` at `/`, never
//! cached (it names the bundle's content-hashed files), and the bundle at
//! `/static-files/...`, cached for four weeks as MLflow's Flask app does,
//! compressed when the browser accepts it. The bundle's links are relative,
//! so the same files work under `--static-prefix` and `/w/<workspace>/`.

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::{Extension, Json};
use serde_json::{json, Value};
use tower_http::services::ServeDir;

use crate::app::AppState;
use crate::auth::{session, PathWorkspace};
use crate::store::workspaces::validate_workspace_name;
use crate::ui::{MLFLOW_VERSION, NO_BUNDLE_PAGE};

/// MLflow's `max_age` for the bundle's files, in seconds (28 days).
const STATIC_MAX_AGE: &str = "public, max-age=2419200";

pub async fn index(
    State(state): State<AppState>,
    path_workspace: Option<Extension<PathWorkspace>>,
    headers: HeaderMap,
) -> Response {
    // With tokens on, a browser without a live session signs in first.
    if let Some(access) = &state.access {
        let live =
            session::token(&headers).is_some_and(|token| access.tokens.verify(token).is_ok());
        if !live {
            return (StatusCode::SEE_OTHER, [(header::LOCATION, "signin")]).into_response();
        }
    }
    let Some(bundle) = &state.ui else {
        return Html(NO_BUNDLE_PAGE.replace("MLFLOW_VERSION", MLFLOW_VERSION)).into_response();
    };
    let html = match path_workspace {
        Some(Extension(PathWorkspace(name))) => opened_in_workspace(&bundle.index_html, &name),
        None => bundle.index_html.clone(),
    };
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        html,
    )
        .into_response()
}

/// The key under which MLflow's UI keeps the workspace it sends as
/// `X-MLFLOW-WORKSPACE` (when the route carries no `?workspace=`).
const UI_WORKSPACE_KEY: &str = "mlflow.activeWorkspace";

/// `index.html` for `/w/<name>/`: the UI opens in the workspace its path
/// names. The UI takes its workspace from localStorage, which the whole
/// origin shares, so a choice left there by another page (the root UI, another
/// workspace) would otherwise make every call name a workspace that is not
/// the path's, and be refused. An invalid name is left out (its calls fail
/// on their own).
fn opened_in_workspace(index_html: &[u8], name: &str) -> Vec<u8> {
    let Some(head_end) = index_html
        .windows(6)
        .position(|w| w.eq_ignore_ascii_case(b"<head>"))
        .map(|at| at + 6)
    else {
        return index_html.to_vec();
    };
    if validate_workspace_name(name).is_err() {
        return index_html.to_vec();
    }
    // A valid name is `[a-z0-9-]`: nothing in it can end the script.
    let script = format!(
        "<script>try{{localStorage.setItem(\"{UI_WORKSPACE_KEY}\",\"{name}\")}}catch(e){{}}</script>"
    );
    let mut html = Vec::with_capacity(index_html.len() + script.len());
    html.extend_from_slice(&index_html[..head_end]);
    html.extend_from_slice(script.as_bytes());
    html.extend_from_slice(&index_html[head_end..]);
    html
}

/// A file of the bundle. `ServeDir` keeps the path inside the bundle
/// (refusing `..`), sets the content type and answers conditional and
/// range requests.
pub async fn static_file(State(state): State<AppState>, mut req: Request) -> Response {
    let Some(bundle) = &state.ui else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let path = req
        .uri()
        .path()
        .strip_prefix("/static-files")
        .unwrap_or("/");
    let Ok(uri) = path.parse::<Uri>() else {
        return StatusCode::NOT_FOUND.into_response();
    };
    *req.uri_mut() = uri;
    let mut response = match ServeDir::new(&bundle.dir).try_call(req).await {
        Ok(response) => response.into_response(),
        Err(err) => {
            tracing::error!(%err, "could not read the UI bundle");
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        }
    };
    if response.status() == StatusCode::OK {
        response.headers_mut().insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static(STATIC_MAX_AGE),
        );
    }
    response
}

/// `--static-prefix /mlflow`: every route, the API included, is served under
/// the prefix, as `mlflow server` does; `/mlflow` itself redirects to
/// `/mlflow/` so the UI's relative links resolve.
pub async fn strip_static_prefix(
    State(prefix): State<std::sync::Arc<str>>,
    mut req: Request,
    next: Next,
) -> Response {
    let path = req.uri().path();
    if path == &*prefix {
        return Redirect::permanent(&format!("{prefix}/")).into_response();
    }
    let Some(rest) = path
        .strip_prefix(&*prefix)
        .filter(|rest| rest.starts_with('/'))
    else {
        return not_found(&req);
    };
    let rest = match req.uri().query() {
        Some(query) => format!("{rest}?{query}"),
        None => rest.to_string(),
    };
    match rest.parse::<Uri>() {
        Ok(uri) => *req.uri_mut() = uri,
        Err(_) => return not_found(&req),
    }
    next.run(req).await
}

fn not_found(req: &Request) -> Response {
    super::no_endpoint(req.method(), req.uri().path()).into_response()
}

/// `GET /ajax-api/3.0/mlflow/ui-telemetry`: the UI's telemetry worker asks
/// whether to send events; ferroflow collects none, so it answers what
/// MLflow answers with telemetry off.
pub async fn telemetry_config() -> Json<Value> {
    Json(json!({
        "disable_ui_telemetry": true,
        "disable_ui_events": [],
        "ui_rollout_percentage": 0,
    }))
}

/// `POST /ajax-api/3.0/mlflow/ui-telemetry`: events are not kept.
pub async fn telemetry_events() -> Json<Value> {
    Json(json!({"status": "disabled"}))
}

/// `GET /ajax-api/3.0/mlflow/assistant/config` and `.../providers`: every
/// page asks whether MLflow's AI assistant is set up; ferroflow has none.
pub async fn assistant_config() -> Json<Value> {
    Json(json!({"providers": {}, "projects": {}, "remote_access_allowed": false}))
}

pub async fn assistant_providers() -> Json<Value> {
    Json(json!({"providers": []}))
}

/// `POST /ajax-api/3.0/mlflow/datasets/search`: the Traces tab lists the
/// experiment's evaluation datasets; ferroflow stores none, so there are
/// none (MLflow's empty answer).
pub async fn no_evaluation_datasets(_ws: crate::model::Workspace) -> Json<Value> {
    Json(json!({}))
}

/// `GET /ajax-api/2.0/mlflow/gateway-proxy`: the runs page lists AI gateway
/// endpoints; ferroflow runs no gateway.
pub async fn no_gateway_endpoints() -> Json<Value> {
    Json(json!({"endpoints": []}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ui_under_a_workspace_path_opens_in_that_workspace() {
        let html =
            opened_in_workspace(b"<html><head><title>MLflow</title></head></html>", "team-a");
        assert_eq!(
            String::from_utf8(html).unwrap(),
            "<html><head><script>try{localStorage.setItem(\"mlflow.activeWorkspace\",\"team-a\")}\
             catch(e){}</script><title>MLflow</title></head></html>"
        );
    }

    #[test]
    fn a_name_that_is_no_workspace_name_is_not_written_into_the_page() {
        let page = b"<html><head></head></html>";
        for hostile in ["a\"</script><script>alert(1)//", "Team-A", "x"] {
            assert_eq!(opened_in_workspace(page, hostile), page);
        }
    }
}
