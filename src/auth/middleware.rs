//! The door: with `--auth token`, every request but the public ones carries
//! a token (`Authorization: Bearer`, or as the password of HTTP Basic, which
//! is what `MLFLOW_TRACKING_USERNAME/PASSWORD` and `https://user:token@host`
//! make the stock client send), for the request's workspace, with a role
//! the route's permission allows. Refusals are MLflow-shaped JSON.

use std::borrow::Cow;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;

use super::permissions::{self, Permission, READ};
use super::session;
use super::tokens::{Claims, TokenError};
use super::workspace::requested_name;
use super::Access;
use crate::app::AppState;
use crate::error::{ErrorCode, MlflowError};
use crate::model::{now_millis, Workspace};
use crate::observe::metrics::metrics;
use crate::observe::request_id::RequestId;
use crate::store::access::AuditEvent;

/// Where a token comes from, said in every 401.
const HOW_TO_GET_A_TOKEN: &str = "get one with POST /oauth/token \
     (grant_type=client_credentials, client_secret=<API key>, scope=<workspace>)";
const HOW_TO_GET_A_NEW_TOKEN: &str = "get a new one with POST /oauth/token \
     (grant_type=client_credentials, client_secret=<API key>, scope=<workspace>)";

/// Checks the request's credentials against the route's permission, and
/// records every write and every refusal in the audit log.
pub async fn require_access(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let Some(access) = state.access.clone() else {
        return next.run(req).await;
    };
    // Unmatched requests fall through to the JSON 404.
    let Some(route) = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
    else {
        return next.run(req).await;
    };
    let method = req.method().clone();
    // The path as sent, when the route (in `action`) does not already say it
    // all: path parameters or a query.
    let target = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str())
        .filter(|target| *target != route)
        .map(str::to_owned);
    let request_id = req
        .extensions()
        .get::<RequestId>()
        .map_or_else(String::new, |id| id.0.to_string());
    let permission = permissions::required(&method, &route);
    let (response, principal, workspace) = guard(&access, permission, req, next).await;
    let outcome = response.status();
    let refused = matches!(outcome.as_u16(), 401 | 403 | 429);
    if refused {
        metrics().auth_refusal(outcome.as_u16());
    }
    if refused || is_write(&method, permission) {
        access
            .audit
            .record(AuditEvent {
                time: now_millis(),
                principal,
                workspace,
                action: format!("{method} {route}"),
                target,
                request_id,
                outcome: outcome.as_u16(),
            })
            .await;
    }
    response
}

/// Whether the audit log records the request whatever its outcome: every
/// method that changes something, but not the searches MLflow sends as POST
/// (their route needs only READ).
fn is_write(method: &Method, permission: Option<Permission>) -> bool {
    method != Method::GET && method != Method::HEAD && permission != Some(READ)
}

/// The response, the principal a token named and the workspace acted in.
async fn guard(
    access: &Access,
    permission: Option<Permission>,
    req: Request,
    next: Next,
) -> (Response, Option<String>, String) {
    let (mut parts, body) = req.into_parts();
    let workspace = match requested_name(&parts) {
        Ok(workspace) => workspace.to_owned(),
        Err(err) => return (err.into_response(), None, Workspace::DEFAULT.into()),
    };
    let permission = match permission {
        Some(Permission::Public) => {
            let response = next.run(Request::from_parts(parts, body)).await;
            return (response, None, workspace);
        }
        Some(permission) => permission,
        None => {
            // Fail closed: a route nobody gave a permission is nobody's.
            tracing::error!(route = ?parts.extensions.get::<MatchedPath>().map(MatchedPath::as_str),
                method = %parts.method, "route has no permission mapping");
            let refused = MlflowError::new(ErrorCode::PermissionDenied, "Permission denied");
            return (refused.into_response(), None, workspace);
        }
    };
    // A browser's session cookie stands in when no Authorization is sent.
    let (presented, from_cookie) = match bearer_or_basic(&parts.headers) {
        Some(token) => (Some(token), false),
        None => (session::token(&parts.headers).map(Cow::Borrowed), true),
    };
    let claims = match presented.map(|token| access.tokens.verify(&token)) {
        None => {
            let message = "Authentication required: send an access token as \
                 'Authorization: Bearer <token>'";
            return (unauthenticated(message, false), None, workspace);
        }
        Some(Err(err)) => return (refused_token(err), None, workspace),
        Some(Ok(claims)) => claims,
    };
    let principal = Some(claims.sub.clone());
    if let Err(err) = authorize(&claims, &workspace, permission) {
        return (err.into_response(), principal, workspace);
    }
    if from_cookie && !session::may_act(&parts.method, &parts.headers) {
        let refused = MlflowError::new(
            ErrorCode::PermissionDenied,
            "Permission denied: a change made with the browser session must come from this \
             server's own pages (Origin)",
        );
        return (refused.into_response(), principal, workspace);
    }
    let renewed = from_cookie
        .then(|| renew_if_due(access, &claims, &parts.headers))
        .flatten();
    parts.extensions.insert(claims);
    let mut response = next.run(Request::from_parts(parts, body)).await;
    if let Some(cookie) = renewed {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    (response, principal, workspace)
}

/// A browser session's next cookie once half its token's life is gone.
fn renew_if_due(access: &Access, claims: &Claims, headers: &HeaderMap) -> Option<HeaderValue> {
    let ttl = access.tokens.ttl().as_secs();
    let left = claims.exp.saturating_sub(now_millis() as u64 / 1000);
    if left > ttl / 2 {
        return None;
    }
    let (token, renewed) = access.tokens.renew(claims)?;
    Some(session::set_cookie(
        headers,
        &token,
        renewed.exp - renewed.iat,
    ))
}

/// Whether the token's holder may do what `permission` needs in `workspace`.
fn authorize(claims: &Claims, workspace: &str, permission: Permission) -> Result<(), MlflowError> {
    if claims.admin {
        return Ok(());
    }
    let denied = |message: String| MlflowError::new(ErrorCode::PermissionDenied, message);
    match permission {
        Permission::Admin => {
            return Err(denied(
                "Permission denied: this needs a server admin".into(),
            ))
        }
        Permission::Authenticated => return Ok(()),
        _ => {}
    }
    if claims.workspace != workspace {
        return Err(denied(format!(
            "Permission denied: the token is for workspace '{}', not '{workspace}'",
            claims.workspace
        )));
    }
    if !claims.role.allows(permission) {
        let needed = match permission {
            Permission::Role(role) => role.as_str(),
            _ => "ADMIN",
        };
        return Err(denied(format!(
            "Permission denied: this needs {needed} in workspace '{workspace}'; the token grants {}",
            claims.role.as_str()
        )));
    }
    Ok(())
}

/// The token of `Authorization: Bearer <t>`, or the password of `Basic`
/// (any username).
fn bearer_or_basic(headers: &HeaderMap) -> Option<Cow<'_, str>> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, credentials) = value.split_once(' ')?;
    if scheme.eq_ignore_ascii_case("bearer") {
        return Some(Cow::Borrowed(credentials.trim()));
    }
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = String::from_utf8(STANDARD.decode(credentials.trim()).ok()?).ok()?;
        let (_, password) = decoded.split_once(':')?;
        return Some(Cow::Owned(password.to_string()));
    }
    None
}

fn refused_token(err: TokenError) -> Response {
    match err {
        TokenError::Expired { .. } => unauthenticated(
            &format!("The access token expired; {HOW_TO_GET_A_NEW_TOKEN}"),
            true,
        ),
        TokenError::Revoked => unauthenticated(
            "The access token's API key was revoked; ask for a new key",
            true,
        ),
        TokenError::Invalid(_) => unauthenticated("The access token is not valid", true),
    }
}

/// A 401 with RFC 6750's challenge (`invalid_token` once a token was sent).
fn unauthenticated(message: &str, token_sent: bool) -> Response {
    let message = if token_sent {
        message.to_string()
    } else {
        format!("{message}; {HOW_TO_GET_A_TOKEN}")
    };
    let mut response = MlflowError::new(ErrorCode::Unauthenticated, message).into_response();
    let challenge = if token_sent {
        "Bearer realm=\"ferroflow\", error=\"invalid_token\""
    } else {
        "Bearer realm=\"ferroflow\""
    };
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static(challenge),
    );
    response
}
