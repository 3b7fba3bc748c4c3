//! Reaching a workspace from outside: the one-line tracking URI, the
//! environment a job or a cluster runs with, and the key exchange a command
//! line tool makes with a running server (issue "reaching a workspace").
//!
//! A workspace's tracking URI is the server's public URL with `/w/<name>`
//! appended: the server routes that prefix to the workspace, so the stock
//! client needs nothing but the URI (and credentials).

pub mod exchange;
pub mod exec;
pub mod init_script;

use url::Url;

/// The variables the stock client reads, in the order scripts print them.
pub const TRACKING_URI_ENV: &str = "MLFLOW_TRACKING_URI";
pub const REGISTRY_URI_ENV: &str = "MLFLOW_REGISTRY_URI";
pub const TRACKING_TOKEN_ENV: &str = "MLFLOW_TRACKING_TOKEN";
pub const TRACKING_AUTH_ENV: &str = "MLFLOW_TRACKING_AUTH";
/// The key the auth plugin (`clients/python`) exchanges for tokens.
pub const API_KEY_ENV: &str = "FERROFLOW_API_KEY";
/// The name the auth plugin registers under `mlflow.request_auth_provider`.
pub const AUTH_PLUGIN: &str = "ferroflow";

/// A server's public URL: `http(s)://host[:port][/prefix]`, without
/// credentials, query or fragment (they would end up in every URI made from
/// it).
pub fn parse_server_url(url: &str) -> anyhow::Result<Url> {
    let parsed = Url::parse(url.trim())
        .map_err(|err| anyhow::anyhow!("the server URL '{url}' is not a URL: {err}"))?;
    anyhow::ensure!(
        matches!(parsed.scheme(), "http" | "https") && parsed.host_str().is_some(),
        "the server URL must be http(s)://host[:port][/prefix], not '{url}'"
    );
    anyhow::ensure!(
        parsed.username().is_empty() && parsed.password().is_none(),
        "the server URL must not carry credentials"
    );
    anyhow::ensure!(
        parsed.query().is_none() && parsed.fragment().is_none(),
        "the server URL must not have a query or a fragment"
    );
    // The URL ends up quoted in shell scripts and environment files.
    anyhow::ensure!(
        parsed.as_str().chars().all(is_url_safe),
        "the server URL may hold only letters, digits and -._~:/%[]"
    );
    Ok(parsed)
}

/// A character that needs no quoting in a URL, a shell word or an
/// environment file.
pub fn is_url_safe(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-._~:/%[]".contains(c)
}

/// `<server>/w/<workspace>`: the tracking URI of one workspace (the server
/// itself when it runs without workspaces).
pub fn workspace_uri(server: &Url, workspace: Option<&str>) -> String {
    let server = server.as_str().trim_end_matches('/');
    match workspace {
        Some(workspace) => format!("{server}/w/{workspace}"),
        None => server.to_string(),
    }
}

/// The tracking URI with the token as the password of its userinfo, which
/// the stock client sends as HTTP Basic (the server takes the token as the
/// password). A JWT's characters need no escaping there.
pub fn uri_with_token(server: &Url, workspace: Option<&str>, token: &str) -> String {
    let mut with_token = server.clone();
    // Setting userinfo cannot fail on an http(s) URL with a host.
    let _ = with_token.set_username("token");
    let _ = with_token.set_password(Some(token));
    workspace_uri(&with_token, workspace)
}

/// What `ferroflow workspace tracking-uri` prints: the URI alone on the
/// first line (to paste into `mlflow.set_tracking_uri`), then the same as
/// shell lines, the token apart from the URI.
pub fn tracking_uri_lines(server: &Url, workspace: &str, token: &str) -> String {
    format!(
        "{}\nexport {TRACKING_URI_ENV}={}\nexport {TRACKING_TOKEN_ENV}={}",
        uri_with_token(server, Some(workspace), token),
        shell_quote(&workspace_uri(server, Some(workspace))),
        shell_quote(token),
    )
}

/// A single-quoted shell word.
pub fn shell_quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_keep_the_prefix_and_put_the_token_in_userinfo() {
        let server = parse_server_url("https://mlflow.example.com/tracking/").unwrap();
        assert_eq!(
            workspace_uri(&server, Some("team-a")),
            "https://mlflow.example.com/tracking/w/team-a"
        );
        assert_eq!(
            uri_with_token(&server, Some("team-a"), "aa.bb.cc"),
            "https://token:aa.bb.cc@mlflow.example.com/tracking/w/team-a"
        );
        let server = parse_server_url("http://127.0.0.1:5000").unwrap();
        let lines = tracking_uri_lines(&server, "ws", "t.o.k");
        let mut lines = lines.lines();
        assert_eq!(lines.next(), Some("http://token:t.o.k@127.0.0.1:5000/w/ws"));
        assert_eq!(
            lines.next(),
            Some("export MLFLOW_TRACKING_URI='http://127.0.0.1:5000/w/ws'")
        );
        assert_eq!(lines.next(), Some("export MLFLOW_TRACKING_TOKEN='t.o.k'"));
    }

    #[test]
    fn server_urls_without_a_host_or_with_credentials_are_refused() {
        for url in [
            "ftp://host",
            "host:5000",
            "http://user:pw@host",
            "http://host/?a=1",
            "http://host/it's",
            "",
        ] {
            assert!(parse_server_url(url).is_err(), "{url}");
        }
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
    }
}
