//! The request id: taken from a proxy's `X-Request-Id` when it is a sane
//! token, made up otherwise; echoed in the response, recorded in the audit
//! log, and a field of the span every log line of the request is written in
//! (`app::admit` runs the request in it).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use axum::extract::Request;
use axum::http::HeaderValue;
use axum::response::Response;
use tracing::Span;

const HEADER: &str = "x-request-id";

/// The longest id kept from a client (the audit log's column is 36 wide: a
/// UUID); longer or odd ones are replaced rather than trusted into logs.
const MAX_LEN: usize = 36;

/// This request's id, in the request's extensions.
#[derive(Clone, Debug)]
pub struct RequestId(pub Arc<str>);

/// Gives the request its id (in its extensions) and returns the `request`
/// span, carrying the id, to run the request in.
pub fn assign(req: &mut Request) -> (Arc<str>, Span) {
    let id: Arc<str> = req
        .headers()
        .get(HEADER)
        .and_then(|value| value.to_str().ok())
        .filter(|id| is_sane(id))
        .map_or_else(new_id, Arc::from);
    req.extensions_mut().insert(RequestId(id.clone()));
    let span = tracing::info_span!("request", id = %id);
    (id, span)
}

/// Echoes the request's id in the response.
pub fn echo(id: &str, response: &mut Response) {
    if let Ok(value) = HeaderValue::from_str(id) {
        response.headers_mut().insert(HEADER, value);
    }
}

/// Letters, digits, `-`, `_` and `.`, at most [`MAX_LEN`]: what proxies
/// generate, and nothing that could forge a log line.
fn is_sane(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// An id unique across replicas and restarts: a random prefix drawn once
/// per process and a counter (no system call per request).
fn new_id() -> Arc<str> {
    static PREFIX: OnceLock<String> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let prefix = PREFIX.get_or_init(|| uuid::Uuid::new_v4().simple().to_string()[..12].to_string());
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    Arc::from(format!("{prefix}-{n:x}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_short_plain_ids_are_kept() {
        assert!(is_sane("0f8c1d2e-aaaa-bbbb-cccc-1234567890ab"));
        assert!(is_sane("req_42.a"));
        assert!(!is_sane(""));
        assert!(!is_sane(&"a".repeat(37)));
        assert!(!is_sane("a b"));
        assert!(!is_sane("id\nforged log line"));
    }

    #[test]
    fn made_up_ids_differ() {
        assert_ne!(new_id(), new_id());
        assert!(is_sane(&new_id()));
    }
}
