//! `mlflow server`'s security options carried over: `--allowed-hosts`
//! (refuse unexpected `Host` headers, which is what a DNS-rebinding page
//! sends) and `--cors-allowed-origins` (which other sites' pages may call the
//! API from a browser, and with credentials).

use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::Request;
use axum::http::{header, HeaderValue, Method};
use tower_http::cors::{AllowHeaders, AllowOrigin, CorsLayer};

use crate::error::MlflowError;

/// Paths every `Host` may reach: probes address the pod or container by IP
/// or internal name.
const PROBES: [&str; 3] = ["/health", "/version", "/ready"];

/// Which `Host` headers and browser origins the server answers.
#[derive(Debug, Clone)]
pub struct WebPolicy {
    /// Patterns (`*` matches any run of characters); `None`: MLflow's
    /// default, loopback and private-network addresses (checked as
    /// addresses, so `10.attacker.example` is not "10.*").
    hosts: Option<Vec<String>>,
    /// The public URL's host (with its port, if any), always served.
    public_host: Option<String>,
    /// Origins besides `http://localhost`, `127.0.0.1` and `[::1]` (any
    /// port), which are always allowed.
    origins: Vec<String>,
}

impl WebPolicy {
    /// From the comma-separated `allowed_hosts` and `cors_allowed_origins`;
    /// `public_host` (the public URL's `host[:port]`) is allowed too.
    pub fn new(hosts: Option<&str>, origins: Option<&str>, public_host: Option<&str>) -> Self {
        let split = |list: &str| -> Vec<String> {
            list.split(',')
                .map(str::trim)
                .filter(|item| !item.is_empty())
                .map(str::to_owned)
                .collect()
        };
        Self {
            hosts: hosts.map(split).filter(|hosts| !hosts.is_empty()),
            public_host: public_host.map(str::to_owned),
            origins: origins.map(split).unwrap_or_default(),
        }
    }

    /// Every host and origin, for tests and servers behind their own checks.
    pub fn any() -> Self {
        Self::new(Some("*"), Some("*"), None)
    }

    fn allows_host(&self, host: &str) -> bool {
        if self.public_host.as_deref() == Some(host) {
            return true;
        }
        match &self.hosts {
            Some(patterns) => patterns.iter().any(|pattern| glob(pattern, host)),
            None => is_local_or_private(host),
        }
    }

    fn any_origin(&self) -> bool {
        self.origins.iter().any(|origin| origin == "*")
    }

    fn allows_origin(&self, origin: &str) -> bool {
        is_localhost_origin(origin)
            || self
                .origins
                .iter()
                .any(|pattern| pattern == "*" || glob(pattern, origin))
    }

    /// CORS headers and preflight answers for the allowed origins; with `*`,
    /// any origin but without credentials (the browser then sends none).
    pub fn cors_layer(self: &Arc<Self>) -> CorsLayer {
        let cors = CorsLayer::new()
            .allow_methods([
                Method::GET,
                Method::POST,
                Method::PUT,
                Method::DELETE,
                Method::PATCH,
                Method::OPTIONS,
            ])
            .allow_headers(AllowHeaders::mirror_request());
        if self.any_origin() {
            return cors.allow_origin(tower_http::cors::Any);
        }
        let policy = self.clone();
        cors.allow_credentials(true)
            .allow_origin(AllowOrigin::predicate(move |origin, _| {
                origin.to_str().is_ok_and(|o| policy.allows_origin(o))
            }))
    }
}

/// The refusal of a request whose `Host` is not allowed, or of a
/// state-changing API call from a page of another origin (a browser sends a
/// plain form POST without asking first).
pub fn refusal(policy: &WebPolicy, req: &Request) -> Option<MlflowError> {
    let path = req.uri().path();
    // HTTP/2 carries the host in the URI's authority instead.
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(text)
        .or_else(|| req.uri().authority().map(|a| a.as_str()));
    if !PROBES.contains(&path) && !host.is_some_and(|host| policy.allows_host(host)) {
        tracing::warn!(
            host = host.unwrap_or(""),
            "refused an unexpected Host header"
        );
        return Some(MlflowError::new(
            crate::error::ErrorCode::PermissionDenied,
            "Invalid Host header - possible DNS rebinding attack detected",
        ));
    }
    let changes_state = matches!(
        *req.method(),
        Method::POST | Method::PUT | Method::DELETE | Method::PATCH
    );
    if changes_state && !policy.any_origin() && is_api(path) {
        if let Some(origin) = req.headers().get(header::ORIGIN).and_then(text) {
            let forwarded = req.headers().get("x-forwarded-host").and_then(text);
            let own = [host, forwarded]
                .into_iter()
                .flatten()
                .any(|host| same_origin(origin, host));
            if !own && !policy.allows_origin(origin) {
                tracing::warn!(origin, "refused a cross-origin request");
                return Some(MlflowError::new(
                    crate::error::ErrorCode::PermissionDenied,
                    "Cross-origin request blocked",
                ));
            }
        }
    }
    None
}

/// Whether `origin` is this server as the browser reached it: the web UI's
/// own calls (browsers send `Origin` on every POST, same-origin ones too).
fn same_origin(origin: &str, host: &str) -> bool {
    origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"))
        .is_some_and(|authority| authority.eq_ignore_ascii_case(host))
}

fn text(value: &HeaderValue) -> Option<&str> {
    value.to_str().ok()
}

fn is_api(path: &str) -> bool {
    path.starts_with("/api/") || path.starts_with("/ajax-api/") || path.contains("/api/")
}

/// `localhost`, a loopback or private (RFC 1918, RFC 4193) address, with or
/// without a port.
fn is_local_or_private(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(name, port)| {
            if port.bytes().all(|b| b.is_ascii_digit()) {
                name
            } else {
                host
            }
        }),
    };
    if name == "localhost" {
        return true;
    }
    match name.parse::<IpAddr>() {
        Ok(IpAddr::V4(ip)) => ip.is_loopback() || ip.is_private() || ip.is_unspecified(),
        Ok(IpAddr::V6(ip)) => ip.is_loopback() || (ip.segments()[0] & 0xfe00) == 0xfc00,
        Err(_) => false,
    }
}

/// `http://localhost`, `http://127.0.0.1` or `http://[::1]`, any port: the
/// UI served by a local dev server.
fn is_localhost_origin(origin: &str) -> bool {
    let Some(rest) = origin.strip_prefix("http://") else {
        return false;
    };
    let host = match rest.strip_prefix("[::1]") {
        Some(port) => return port.is_empty() || is_port(port),
        None => rest,
    };
    let (name, port) = host.split_once(':').unwrap_or((host, ""));
    (name == "localhost" || name == "127.0.0.1")
        && (port.is_empty() || is_port(&format!(":{port}")))
}

fn is_port(text: &str) -> bool {
    text.strip_prefix(':')
        .is_some_and(|digits| !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
}

/// Shell-style match where only `*` is special (any run of characters).
fn glob(pattern: &str, text: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or("");
    let Some(mut rest) = text.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        return rest.is_empty();
    };
    for part in middle {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_allows_local_and_private_addresses_only() {
        let policy = WebPolicy::new(None, None, None);
        for ok in [
            "localhost",
            "localhost:5000",
            "127.0.0.1:8080",
            "[::1]:5000",
            "10.1.2.3:5000",
            "192.168.0.7",
            "172.20.0.2:5000",
            "[fd00::1]:80",
        ] {
            assert!(policy.allows_host(ok), "{ok}");
        }
        for refused in [
            "evil.example.com",
            "10.attacker.example",
            "172.32.0.1",
            "8.8.8.8:80",
            "localhost.evil.com",
            "",
        ] {
            assert!(!policy.allows_host(refused), "{refused}");
        }
    }

    #[test]
    fn configured_hosts_are_patterns_and_the_public_url_joins_them() {
        let policy = WebPolicy::new(
            Some("mlflow.example.com, *.corp.example"),
            None,
            Some("ff.example.org"),
        );
        assert!(policy.allows_host("mlflow.example.com"));
        assert!(policy.allows_host("a.corp.example"));
        assert!(policy.allows_host("ff.example.org"));
        assert!(!policy.allows_host("localhost:5000"));
        let default_and_public = WebPolicy::new(None, None, Some("ml.example.com:8443"));
        assert!(default_and_public.allows_host("ml.example.com:8443"));
        assert!(default_and_public.allows_host("localhost:5000"));
        assert!(!default_and_public.allows_host("ml.example.com:9999"));
        assert!(!policy.allows_host("corp.example.evil"));
        assert!(WebPolicy::any().allows_host("whatever"));
    }

    #[test]
    fn localhost_origins_and_configured_ones_are_allowed() {
        let policy = WebPolicy::new(None, Some("https://app.example.com"), None);
        assert!(policy.allows_origin("http://localhost:3000"));
        assert!(policy.allows_origin("http://127.0.0.1"));
        assert!(policy.allows_origin("http://[::1]:5000"));
        assert!(policy.allows_origin("https://app.example.com"));
        assert!(!policy.allows_origin("https://evil.example.com"));
        assert!(!policy.allows_origin("http://localhost.evil.com"));
        assert!(!policy.allows_origin("http://localhost:3000@evil.com"));
    }

    #[test]
    fn the_servers_own_pages_are_not_cross_origin() {
        assert!(same_origin(
            "https://mlflow.example.com",
            "mlflow.example.com"
        ));
        assert!(same_origin("http://10.0.0.5:5000", "10.0.0.5:5000"));
        assert!(!same_origin(
            "https://mlflow.example.com.evil",
            "mlflow.example.com"
        ));
        assert!(!same_origin("https://evil.example", "mlflow.example.com"));
        assert!(!same_origin("null", "mlflow.example.com"));
    }

    #[test]
    fn glob_matches_stars_only() {
        assert!(glob("*", "x"));
        assert!(glob("a*c", "abbbc"));
        assert!(glob("*.example.com", "a.example.com"));
        assert!(!glob("*.example.com", "example.com"));
        assert!(!glob("abc", "abcd"));
        assert!(glob("a*b*c", "aXbYc"));
        assert!(!glob("a*b*c", "aXcYb"));
    }
}
