//! The sign-in page MLflow's web UI lacks: with `--auth token`, a person
//! trades an API key for a browser session (`auth::session`), then uses the
//! stock UI. Served at the root and under `/w/<workspace>/`, where the
//! session is for that workspace; the links are relative, so
//! `--static-prefix` needs nothing more.
//!
//! - `GET signin`: the form (`api_key`);
//! - `POST signin`: the key checked as `/oauth/token` checks it (same rate
//!   limits), then a cookie and a redirect to the UI (`./`);
//! - `POST signout`: the cookie cleared, back to the form.

use std::net::SocketAddr;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::Extension;

use super::oauth::exchange_key;
use crate::app::AppState;
use crate::auth::{session, PathWorkspace};
use crate::model::Workspace;

pub async fn page(State(state): State<AppState>) -> Response {
    if state.access.is_none() {
        return see_other("./", None);
    }
    Html(render(None)).into_response()
}

pub async fn sign_in(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    path_workspace: Option<Extension<PathWorkspace>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if state.access.is_none() {
        return see_other("./", None);
    }
    // A sign-in posted by another site would log this browser into the
    // other site's account.
    if !session::may_act(&Method::POST, &headers) {
        return refused(
            StatusCode::FORBIDDEN,
            "The sign-in form was sent from another site.",
        );
    }
    let field = |name: &str| {
        url::form_urlencoded::parse(&body)
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.trim().to_string())
            .filter(|value| !value.is_empty())
    };
    let workspace = path_workspace
        .map(|Extension(PathWorkspace(name))| name)
        .or_else(|| field("workspace"))
        .unwrap_or_else(|| Workspace::DEFAULT.into());
    let key = field("api_key").unwrap_or_default();
    match exchange_key(&state, peer, &key, workspace).await {
        Ok(issued) => {
            let cookie = session::set_cookie(&headers, &issued.token, issued.expires_in);
            see_other("./", Some(cookie))
        }
        Err(refusal) => {
            let status = refusal.status();
            let message = error_message(refusal).await;
            refused(status, &format!("The key was not accepted: {message}"))
        }
    }
}

pub async fn sign_out(headers: HeaderMap) -> Response {
    see_other("signin", Some(session::set_cookie(&headers, "", 0)))
}

/// The MLflow-shaped error's message inside a refusal.
async fn error_message(refusal: Response) -> String {
    let body = axum::body::to_bytes(refusal.into_body(), 64 * 1024)
        .await
        .unwrap_or_default();
    serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|error| error["message"].as_str().map(str::to_string))
        .unwrap_or_else(|| "refused".into())
}

fn refused(status: StatusCode, message: &str) -> Response {
    (status, Html(render(Some(message)))).into_response()
}

/// 303 to a relative location (so prefixes need no knowing), with a cookie.
fn see_other(location: &'static str, cookie: Option<header::HeaderValue>) -> Response {
    let mut response = (StatusCode::SEE_OTHER, [(header::LOCATION, location)]).into_response();
    if let Some(cookie) = cookie {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    response
}

fn render(error: Option<&str>) -> String {
    let error = error
        .map(|message| format!(r#"<p class="error" role="alert">{}</p>"#, escape(message)))
        .unwrap_or_default();
    PAGE.replace("@ERROR@", &error)
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

const PAGE: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Sign in - ferroflow</title>
<meta name="viewport" content="width=device-width,initial-scale=1">
<style>
body { font-family: system-ui, sans-serif; background: #f5f6f7; margin: 0; }
main { max-width: 26em; margin: 12vh auto; background: #fff; padding: 2em 2.2em;
       border-radius: 8px; box-shadow: 0 1px 4px rgba(0,0,0,.12); }
h1 { font-size: 1.3em; margin-top: 0; }
label { display: block; margin: 1em 0 .3em; font-weight: 600; }
input { width: 100%; box-sizing: border-box; padding: .55em; font-size: 1em; }
button { margin-top: 1.2em; padding: .6em 1.4em; font-size: 1em; background: #2272b4;
         color: #fff; border: 0; border-radius: 4px; cursor: pointer; }
.error { color: #b00020; }
p.hint { color: #555; font-size: .9em; }
</style></head>
<body><main>
<h1>Sign in to ferroflow</h1>
@ERROR@
<form method="post" action="signin">
<label for="api_key">API key</label>
<input type="password" name="api_key" id="api_key" autocomplete="off" autofocus required
       placeholder="ffk_...">
<button type="submit" id="signin">Sign in</button>
</form>
<p class="hint">Ask a manager of your workspace for a key, or create one with
<code>ferroflow key create</code>. The session lasts as long as you use it, up to 12 hours.</p>
</main></body></html>
"#;
