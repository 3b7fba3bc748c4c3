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
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::json;

use super::oauth::{exchange, no_store, public_url};
use crate::app::AppState;
use crate::auth::workspace::requested_name;
use crate::auth::PathWorkspace;
use crate::error::Result;
use crate::reach::{self, init_script, TRACKING_TOKEN_ENV, TRACKING_URI_ENV};

pub async fn tracking_uri(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    path_workspace: Option<Extension<PathWorkspace>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let issued = match exchange(&state, peer, path_workspace, &headers, &body).await {
        Ok(issued) => issued,
        Err(refused) => return refused,
    };
    let server = public_url(&state, &headers);
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

pub async fn init_script(State(state): State<AppState>, parts: Parts) -> Result<Response> {
    let workspace = match &state.workspaces {
        Some(_) => Some(requested_name(&parts)?),
        None => None,
    };
    let script = init_script::render(&public_url(&state, &parts.headers), workspace);
    let mut response = script.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/x-shellscript; charset=utf-8"),
    );
    Ok(response)
}
