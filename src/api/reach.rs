//! Reaching a workspace over REST, as `ferroflow workspace tracking-uri` and
//! `init-script` do on the command line.
//!
//! - `POST /api/3.0/ferroflow/tracking-uri`: an API key (the body of
//!   `POST /oauth/token`) exchanged for the workspace's tracking URI with a
//!   one-hour token in it, and the same as environment variables.
//! - `GET /api/3.0/ferroflow/init-script`: the cluster init script of the
//!   request's workspace (it holds no secret; a member may fetch it).
//!
//! The server's address is `public_url` from the config, else the request's
//! forwarded headers.

use std::net::SocketAddr;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::json;

use super::oauth::{exchange, no_store};
use super::wire::first_header;
use crate::app::AppState;
use crate::auth::PathWorkspace;
use crate::error::{MlflowError, Result};
use crate::model::Workspace;
use crate::reach::{self, init_script, TRACKING_TOKEN_ENV, TRACKING_URI_ENV};
use url::Url;

pub async fn tracking_uri(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    path_workspace: Option<Extension<PathWorkspace>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let server = match public_url(&state, &headers) {
        Ok(server) => server,
        Err(err) => return err.into_response(),
    };
    let issued = match exchange(&state, peer, path_workspace, &headers, &body).await {
        Ok(issued) => issued,
        Err(refused) => return refused,
    };
    let workspace = state
        .workspaces
        .is_some()
        .then_some(issued.workspace.as_str());
    no_store(Json(json!({
        "tracking_uri": reach::uri_with_token(&server, workspace, &issued.token),
        "expires_in": issued.expires_in,
        "environment": {
            TRACKING_URI_ENV: reach::workspace_uri(&server, workspace),
            TRACKING_TOKEN_ENV: issued.token,
        },
    })))
}

/// The script for the request's workspace, resolved like any scoped route
/// (an invalid name is 400, an unknown one 404).
pub async fn init_script(
    State(state): State<AppState>,
    ws: Workspace,
    headers: HeaderMap,
) -> Result<Response> {
    let workspace = state.workspaces.is_some().then(|| ws.name());
    let script = init_script::render(&public_url(&state, &headers)?, workspace)
        .map_err(MlflowError::internal)?;
    let mut response = script.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/x-shellscript; charset=utf-8"),
    );
    Ok(response)
}

/// The server's public URL: `public_url` from the config, else as the
/// request reached it: a proxy's `X-Forwarded-Proto`/`-Host`, else `Host`.
/// A header that is not a plain `host[:port]` is ignored; with no usable
/// one, the caller is told to configure the address.
pub(super) fn public_url(state: &AppState, headers: &HeaderMap) -> Result<Url> {
    if let Some(url) = &state.public_url {
        return Ok(url.clone());
    }
    let scheme = match first_header(headers, "x-forwarded-proto") {
        Some("https") => "https",
        _ => "http",
    };
    let as_url = |host: &str| {
        reach::parse_server_url(&format!("{scheme}://{host}"))
            .ok()
            .filter(|url| url.path() == "/")
    };
    first_header(headers, "x-forwarded-host")
        .and_then(as_url)
        .or_else(|| first_header(headers, header::HOST.as_str()).and_then(as_url))
        .ok_or_else(|| {
            MlflowError::invalid_parameter(
                "The server cannot tell its public address from this request's Host and \
                 X-Forwarded-Host headers; set public_url (--public-url) in its config",
            )
        })
}
