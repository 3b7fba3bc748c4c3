//! `POST /oauth/token`: an API key exchanged for a one-hour token, OAuth 2.0
//! client-credentials style (RFC 6749 §4.4: `grant_type=client_credentials`,
//! the key as `client_secret`, the workspace as `scope`), form-encoded or
//! JSON; and `GET /.well-known/jwks.json`, the keys that verify tokens.

use axum::body::Bytes;
use std::net::SocketAddr;

use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::app::AppState;
use crate::auth::permissions::Role;
use crate::auth::{keys, Access, PathWorkspace};
use crate::error::{ErrorCode, MlflowError, Result};
use crate::model::{now_millis, Workspace};
use crate::reach;
use crate::store::workspaces::validate_workspace_name;

#[derive(Deserialize, Default)]
struct TokenRequest {
    grant_type: Option<String>,
    client_secret: Option<String>,
    scope: Option<String>,
}

/// One message for every key that does not open the door, so the answer
/// tells nothing about which keys exist.
fn invalid_key() -> MlflowError {
    MlflowError::new(ErrorCode::Unauthenticated, "Invalid API key")
}

fn tokens_off() -> MlflowError {
    MlflowError::new(
        ErrorCode::NotImplemented,
        "Token exchange needs the server to run with `--auth token`",
    )
}

pub async fn token(
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
    let workspace = state
        .workspaces
        .is_some()
        .then_some(issued.workspace.as_str());
    no_store(Json(json!({
        "access_token": issued.token,
        "token_type": "Bearer",
        "expires_in": issued.expires_in,
        "scope": issued.workspace,
        "tracking_uri": tracking_uri(&state, &headers, workspace),
    })))
}

/// A token made for a key, and the workspace it is for.
pub(super) struct Issued {
    pub token: String,
    pub expires_in: u64,
    pub workspace: String,
}

/// Checks the request's key and issues a token for the workspace it names
/// as `scope` (else the one of its `/w/<name>` prefix, else `default`); a
/// refusal is the response to send.
pub(super) async fn exchange(
    state: &AppState,
    peer: SocketAddr,
    path_workspace: Option<Extension<PathWorkspace>>,
    headers: &HeaderMap,
    body: &[u8],
) -> std::result::Result<Issued, Response> {
    state
        .access
        .as_ref()
        .ok_or_else(|| tokens_off().into_response())?;
    let request = parse(headers, body).map_err(IntoResponse::into_response)?;
    if request.grant_type.as_deref() != Some("client_credentials") {
        return Err(MlflowError::invalid_parameter(
            "Unsupported grant_type: use grant_type=client_credentials",
        )
        .into_response());
    }
    let workspace = request
        .scope
        .filter(|s| !s.trim().is_empty())
        .or(path_workspace.map(|Extension(PathWorkspace(name))| name))
        .unwrap_or_else(|| Workspace::DEFAULT.into());
    // RFC 6749 §5.2: no client credentials is invalid_client, a 401.
    let key = request.client_secret.unwrap_or_default();
    exchange_key(state, peer, &key, workspace).await
}

/// A token of `workspace` for `key`, after the rate limits (per client
/// address, then per key); a refusal is the response to send.
pub(super) async fn exchange_key(
    state: &AppState,
    peer: SocketAddr,
    key: &str,
    workspace: String,
) -> std::result::Result<Issued, Response> {
    let access = state
        .access
        .as_ref()
        .ok_or_else(|| tokens_off().into_response())?;
    if let Err(retry_after) = access.per_address.check(&peer.ip().to_string()) {
        return Err(too_many_requests(retry_after));
    }
    let (key_id, secret) = keys::parse(key).ok_or_else(|| invalid_key().into_response())?;
    if let Err(retry_after) = access.per_key.check(key_id) {
        return Err(too_many_requests(retry_after));
    }
    issue(state, access, key_id, secret, workspace)
        .await
        .map_err(IntoResponse::into_response)
}

async fn issue(
    state: &AppState,
    access: &Access,
    key_id: &str,
    secret: &str,
    workspace: String,
) -> Result<Issued> {
    let key = state
        .store
        .find_key(key_id)
        .await?
        .ok_or_else(invalid_key)?;
    if !keys::secret_matches(secret, &key.secret_sha256) || key.principal_deleted {
        return Err(invalid_key());
    }
    if key.revoked_at.is_some() {
        return Err(MlflowError::new(
            ErrorCode::Unauthenticated,
            "The API key was revoked",
        ));
    }
    if key.expires_at.is_some_and(|at| at <= now_millis()) {
        return Err(MlflowError::new(
            ErrorCode::Unauthenticated,
            "The API key expired",
        ));
    }
    validate_workspace_name(&workspace)?;
    match &state.workspaces {
        Some(_) => drop(state.store.get_workspace(&workspace).await?),
        None if workspace != Workspace::DEFAULT => {
            return Err(MlflowError::invalid_parameter(format!(
                "Workspace '{workspace}' cannot be used: the server runs without workspaces"
            )))
        }
        None => {}
    }
    let role = match key.is_admin {
        true => Role::Manage,
        false => state
            .store
            .role_of(&key.principal, &workspace)
            .await?
            .ok_or_else(|| {
                MlflowError::new(
                    ErrorCode::PermissionDenied,
                    format!("The key's principal has no role in workspace '{workspace}'"),
                )
            })?,
    };
    let (token, claims) = access
        .tokens
        .issue(&key.principal, &key.key_id, &workspace, role, key.is_admin)
        .map_err(MlflowError::internal)?;
    Ok(Issued {
        token,
        expires_in: claims.exp - claims.iat,
        workspace,
    })
}

/// RFC 6749 §5.1: answers holding a token are never cached.
pub(super) fn no_store(body: impl IntoResponse) -> Response {
    let mut response = body.into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// 429 with `Retry-After` (whole seconds, at least one).
fn too_many_requests(retry_after: std::time::Duration) -> Response {
    let seconds = retry_after.as_secs().max(1);
    let mut response = MlflowError::new(
        ErrorCode::RequestLimitExceeded,
        format!("Too many token requests; retry in {seconds} s"),
    )
    .into_response();
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    response
}

pub async fn jwks(State(state): State<AppState>) -> Result<Json<Value>> {
    let access = state.access.as_ref().ok_or_else(tokens_off)?;
    Ok(Json(access.tokens.jwks()))
}

/// The request as a form or as JSON, by its Content-Type.
fn parse(headers: &HeaderMap, body: &[u8]) -> Result<TokenRequest> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if content_type.starts_with("application/json") {
        return super::wire::parse_message(body);
    }
    let mut request = TokenRequest::default();
    for (key, value) in url::form_urlencoded::parse(body) {
        let slot = match key.as_ref() {
            "grant_type" => &mut request.grant_type,
            "client_secret" => &mut request.client_secret,
            "scope" => &mut request.scope,
            _ => continue,
        };
        slot.get_or_insert_with(|| value.into_owned());
    }
    Ok(request)
}

/// The tracking URI a client of this workspace sets, when the server's
/// public address can be told (see [`super::reach::public_url`]).
fn tracking_uri(state: &AppState, headers: &HeaderMap, workspace: Option<&str>) -> Option<String> {
    let server = super::reach::public_url(state, headers).ok()?;
    Some(reach::workspace_uri(&server, workspace))
}
