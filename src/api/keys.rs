//! `/api/3.0/ferroflow/keys`: a workspace's managers create, list and revoke
//! API keys of its members (server admins: also admin keys), and server
//! admins delete principals (`/api/3.0/ferroflow/principals/{name}`). A new
//! key is in the create response and nowhere else, ever.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::wire::{required, Body};
use crate::app::AppState;
use crate::auth::keys;
use crate::auth::permissions::Role;
use crate::auth::tokens::Claims;
use crate::error::{ErrorCode, MlflowError, Result};
use crate::model::{now_millis, Workspace};
use crate::store::access::KeyInfo;

#[derive(Deserialize)]
pub struct CreateKey {
    principal: Option<String>,
    role: Option<String>,
    #[serde(default, deserialize_with = "super::wire::opt_bool")]
    admin: Option<bool>,
    #[serde(default, deserialize_with = "super::wire::opt_i64")]
    expires_in_days: Option<i64>,
}

fn denied(message: &str) -> MlflowError {
    MlflowError::new(ErrorCode::PermissionDenied, message)
}

/// Whether the caller is a server admin; keys exist only with `--auth token`.
fn caller_is_admin(state: &AppState, caller: Option<Extension<Arc<Claims>>>) -> Result<bool> {
    if state.access.is_none() {
        return Err(MlflowError::new(
            ErrorCode::NotImplemented,
            "API keys are used when the server runs with `--auth token`",
        ));
    }
    Ok(caller.is_some_and(|Extension(claims)| claims.admin))
}

pub async fn create(
    State(state): State<AppState>,
    caller: Option<Extension<Arc<Claims>>>,
    ws: Workspace,
    Body(req): Body<CreateKey>,
) -> Result<(StatusCode, Json<Value>)> {
    let caller_admin = caller_is_admin(&state, caller)?;
    let principal = required(req.principal, "principal")?;
    let admin = req.admin.unwrap_or(false);
    if admin && !caller_admin {
        return Err(denied(
            "Permission denied: only server admins create admin keys",
        ));
    }
    let role = match (&req.role, admin) {
        (_, true) => None,
        (Some(role), false) => Some(Role::parse(role).ok_or_else(|| {
            MlflowError::invalid_parameter("'role' must be READ, EDIT or MANAGE")
        })?),
        (None, false) => return Err(MlflowError::missing_parameter("role")),
    };
    let expires_at = match req.expires_in_days {
        Some(days) if !(1..=3650).contains(&days) => {
            return Err(MlflowError::invalid_parameter(
                "'expires_in_days' must be between 1 and 3650",
            ))
        }
        Some(days) => Some(now_millis() + days * 86_400_000),
        None => None,
    };
    state.store.ensure_principal(&principal, admin).await?;
    if let Some(role) = role {
        state.store.bind_role(&principal, ws.name(), role).await?;
    }
    let key = keys::generate();
    state
        .store
        .create_key(&key.key_id, &principal, &key.secret_sha256, expires_at)
        .await?;
    let body = json!({
        "key": key.plaintext,
        "key_id": key.key_id,
        "principal": principal,
        "workspace": ws.name(),
        "role": role.map(Role::as_str),
        "admin": admin,
    });
    Ok((StatusCode::CREATED, Json(body)))
}

#[derive(Serialize)]
pub struct ListKeysResponse {
    keys: Vec<KeyInfo>,
}

pub async fn list(
    State(state): State<AppState>,
    caller: Option<Extension<Arc<Claims>>>,
    ws: Workspace,
) -> Result<Json<ListKeysResponse>> {
    caller_is_admin(&state, caller)?;
    let keys = state.store.list_keys(ws.name()).await?;
    Ok(Json(ListKeysResponse { keys }))
}

pub async fn revoke(
    State(state): State<AppState>,
    caller: Option<Extension<Arc<Claims>>>,
    ws: Workspace,
    Path(key_id): Path<String>,
) -> Result<StatusCode> {
    let caller_admin = caller_is_admin(&state, caller)?;
    // A manager revokes the keys of the workspace's members only.
    let listed = state.store.list_keys(ws.name()).await?;
    let visible = caller_admin || listed.iter().any(|key| key.key_id == key_id);
    if !visible || !state.store.revoke_key(&key_id).await? {
        return Err(MlflowError::not_found(format!(
            "API key '{key_id}' not found"
        )));
    }
    Ok(StatusCode::NO_CONTENT)
}

pub async fn delete_principal(
    State(state): State<AppState>,
    caller: Option<Extension<Arc<Claims>>>,
    Path(name): Path<String>,
) -> Result<StatusCode> {
    caller_is_admin(&state, caller)?;
    if !state.store.delete_principal(&name).await? {
        return Err(MlflowError::not_found(format!(
            "Principal '{name}' not found"
        )));
    }
    Ok(StatusCode::NO_CONTENT)
}
