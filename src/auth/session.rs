//! Browser sessions: MLflow's web UI cannot send a Bearer token, so with
//! `--auth token` a person signs in with an API key (`api::session`) and the
//! token rides in an `HttpOnly`, `SameSite=Strict` cookie. A token from the
//! cookie is renewed while the tab is in use (up to
//! `tokens::SESSION_MAX_AGE`), and a request that changes something must
//! come from this server's own pages (`Origin`), so another site cannot act
//! with the cookie.

use axum::http::{header, HeaderMap, HeaderValue, Method};

use crate::api::wire::first_header;

/// The session cookie's name.
pub const COOKIE: &str = "ferroflow_session";

/// The session token a request's `Cookie` headers carry. Parsed by hand:
/// one name, `name=value` pairs split by `;` (RFC 6265 §5.4).
pub fn token(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .find_map(|pair| pair.trim().strip_prefix(COOKIE)?.strip_prefix('='))
        .filter(|token| !token.is_empty())
}

/// `Set-Cookie` for a session holding `token` for `max_age` seconds (0
/// clears it). `Secure` when the browser reached the server over TLS.
pub fn set_cookie(headers: &HeaderMap, token: &str, max_age: u64) -> HeaderValue {
    let secure = if over_tls(headers) { "; Secure" } else { "" };
    let cookie =
        format!("{COOKIE}={token}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Strict{secure}");
    // A JWT and the attributes are all visible ASCII.
    HeaderValue::from_str(&cookie).unwrap_or_else(|_| HeaderValue::from_static(""))
}

fn over_tls(headers: &HeaderMap) -> bool {
    first_header(headers, "x-forwarded-proto") == Some("https")
}

/// Whether a request made with the session cookie may change something: a
/// safe method, or one sent by a page of this very server (its `Origin`, or
/// a browser's `Sec-Fetch-Site: same-origin`, names it).
pub fn may_act(method: &Method, headers: &HeaderMap) -> bool {
    if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return true;
    }
    let host = first_header(headers, "x-forwarded-host")
        .or_else(|| first_header(headers, header::HOST.as_str()));
    match (first_header(headers, header::ORIGIN.as_str()), host) {
        (Some(origin), Some(host)) => origin_host(origin) == Some(host),
        (None, _) => first_header(headers, "sec-fetch-site") == Some("same-origin"),
        _ => false,
    }
}

/// `host[:port]` of an `Origin` (`scheme://host[:port]`).
fn origin_host(origin: &str) -> Option<&str> {
    origin.split_once("://").map(|(_, host)| host)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn the_session_token_is_found_among_other_cookies() {
        let map = headers(&[("cookie", "a=1; ferroflow_session=t.o.k; b=2")]);
        assert_eq!(token(&map), Some("t.o.k"));
        assert_eq!(token(&headers(&[("cookie", "ferroflow_sessionx=1")])), None);
        assert_eq!(token(&headers(&[("cookie", "ferroflow_session=")])), None);
        let cookie = set_cookie(&headers(&[("x-forwarded-proto", "https")]), "t", 60);
        assert_eq!(
            cookie,
            "ferroflow_session=t; Path=/; Max-Age=60; HttpOnly; SameSite=Strict; Secure"
        );
    }

    #[test]
    fn only_this_servers_pages_may_act_with_the_cookie() {
        let post = Method::POST;
        let same = headers(&[("host", "ml:5000"), ("origin", "http://ml:5000")]);
        assert!(may_act(&post, &same));
        let other = headers(&[("host", "ml:5000"), ("origin", "https://evil.example")]);
        assert!(!may_act(&post, &other));
        assert!(may_act(&Method::GET, &other));
        assert!(!may_act(&post, &headers(&[("host", "ml:5000")])));
        let fetch = headers(&[("host", "ml:5000"), ("sec-fetch-site", "same-origin")]);
        assert!(may_act(&post, &fetch));
        let proxied = headers(&[
            ("host", "10.0.0.5:5000"),
            ("x-forwarded-host", "ml.example.com"),
            ("origin", "https://ml.example.com"),
        ]);
        assert!(may_act(&post, &proxied));
    }
}
