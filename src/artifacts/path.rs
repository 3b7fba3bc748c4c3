//! Artifact path safety: the only way to name an artifact is an
//! [`ArtifactPath`], which cannot reach outside the artifact root.
//!
//! Mirrors `mlflow.server.handlers.validate_path_is_safe` (reject `..`,
//! absolute paths, Windows drives, after percent-decoding until stable) and is
//! stricter where MLflow leans on the filesystem: backslashes, NUL and other
//! control characters, `.` and empty segments are refused too.

use std::borrow::Cow;

use percent_encoding::percent_decode_str;

use crate::error::{MlflowError, Result};

/// A path relative to the artifact root: `/`-separated, non-empty segments,
/// none of them `.` or `..`. The empty path is the root itself.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ArtifactPath(String);

/// Rounds of percent-decoding before a path that keeps changing is refused;
/// `%252e%252e` needs two.
const MAX_DECODE_ROUNDS: usize = 4;

impl ArtifactPath {
    /// The root of the artifact destination.
    pub fn root() -> Self {
        Self::default()
    }

    /// Validates a path as received (axum has already percent-decoded the URL
    /// once). The path is checked in that form and in its fully decoded form,
    /// so `%2e%2e` is refused like `..`; the form received is what is stored,
    /// as MLflow does, so a file named `a%20b.txt` keeps its name.
    pub fn parse(raw: &str) -> Result<Self> {
        // MLflow's exact answer, which scripts match; the reason goes to
        // the debug log.
        let invalid = |why: &str| {
            tracing::debug!(path = raw, why, "artifact path refused");
            MlflowError::invalid_parameter("Invalid path")
        };
        let decoded = fully_decode(raw).ok_or_else(|| invalid("bad percent-encoding"))?;
        for form in [raw, decoded.as_ref()] {
            check(form).map_err(invalid)?;
        }
        Ok(Self(raw.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    pub fn segments(&self) -> impl Iterator<Item = &str> {
        self.0.split('/').filter(|s| !s.is_empty())
    }

    /// The last segment, `None` for the root.
    pub fn file_name(&self) -> Option<&str> {
        self.segments().last()
    }

    /// `self/other`; both are already safe, so the result is too.
    pub fn join(&self, other: &ArtifactPath) -> ArtifactPath {
        match (self.is_root(), other.is_root()) {
            (_, true) => self.clone(),
            (true, false) => other.clone(),
            (false, false) => Self(format!("{}/{}", self.0, other.0)),
        }
    }
}

/// Where a workspace's proxied artifacts live under the destination root.
const WORKSPACES_DIR: &str = "workspaces";

impl ArtifactPath {
    /// The path as workspace `workspace` may reach it through the proxy, as
    /// MLflow's server confines it (`_get_workspace_scoped_repo_path_if_enabled`):
    /// `workspaces/<workspace>/...` is kept, another workspace's prefix is
    /// refused, and anything else is put under the workspace's prefix —
    /// except in `default`, whose artifacts predate workspaces and stay at
    /// the root.
    pub fn in_workspace(&self, workspace: &str) -> Result<Self> {
        let is_default = workspace == crate::model::Workspace::DEFAULT;
        let mut segments = self.segments();
        let (first, second) = (segments.next(), segments.next());
        if first == Some(WORKSPACES_DIR) {
            return match second {
                None => Err(MlflowError::invalid_parameter(
                    "Artifact paths prefixed with 'workspaces/' must include a workspace name.",
                )),
                Some(named) if named != workspace => Err(MlflowError::invalid_parameter(format!(
                    "Artifact path targets workspace '{named}' but the workspace specified in \
                     the request is '{workspace}'."
                ))),
                Some(_) => Ok(self.clone()),
            };
        }
        if is_default {
            return Ok(self.clone());
        }
        Ok(Self(format!("{WORKSPACES_DIR}/{workspace}")).join(self))
    }
}

/// The route anchor of proxied `http(s)` artifact roots
/// (`--default-artifact-root http://host/api/2.0/mlflow-artifacts/artifacts/x`).
const PROXY_ANCHOR: &str = "/api/2.0/mlflow-artifacts/artifacts/";

/// The destination-relative path a proxied artifact root names, mapped as
/// MLflow's server does (`_get_proxied_run_artifact_destination_path`): an
/// `mlflow-artifacts:` URI's path (any `//netloc` ignored), or what follows
/// the proxy route in an `http(s)` URL. `None` for anything else: the server
/// reads nothing outside its destination.
pub fn from_proxied_uri(uri: &str) -> Option<Result<ArtifactPath>> {
    if uri.starts_with("http://") || uri.starts_with("https://") {
        let url = url::Url::parse(uri).ok()?;
        let (_, rest) = url.path().split_once(PROXY_ANCHOR)?;
        // The URL path is percent-encoded; ArtifactPath takes it decoded once.
        let rest = percent_decode_str(rest).decode_utf8().ok()?;
        return Some(ArtifactPath::parse(rest.trim_matches('/')));
    }
    let rest = uri.strip_prefix("mlflow-artifacts:")?;
    let rest = match rest.strip_prefix("//") {
        Some(netloc_and_path) => netloc_and_path
            .find('/')
            .map_or("", |i| &netloc_and_path[i..]),
        None => rest,
    };
    Some(ArtifactPath::parse(rest.trim_matches('/')))
}

/// An artifact location as MLflow stores it (`resolve_uri_if_local`): a
/// relative local path, bare or `file:`, is made absolute against the
/// server's working directory; anything else is kept as given.
pub fn resolve_if_local(location: &str) -> String {
    let (file_scheme, path) = match location.strip_prefix("file:") {
        Some(rest) if !rest.starts_with('/') => (true, rest),
        Some(_) => return location.to_string(),
        None if has_scheme(location) || location.starts_with('/') => return location.to_string(),
        None => (false, location),
    };
    let Ok(cwd) = std::env::current_dir() else {
        return location.to_string();
    };
    let absolute = cwd.join(path).display().to_string();
    match file_scheme {
        true => format!("file://{absolute}"),
        false => absolute,
    }
}

/// Whether a location starts with a URI scheme (`s3:`, `mlflow-artifacts:`).
fn has_scheme(location: &str) -> bool {
    location.split_once(':').is_some_and(|(scheme, _)| {
        let mut chars = scheme.chars();
        chars.next().is_some_and(|c| c.is_ascii_alphabetic())
            && chars.all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
    })
}

/// Percent-decodes until the text stops changing; `None` if it is not UTF-8
/// or is still changing after [`MAX_DECODE_ROUNDS`].
fn fully_decode(raw: &str) -> Option<Cow<'_, str>> {
    let mut current = Cow::Borrowed(raw);
    for _ in 0..MAX_DECODE_ROUNDS {
        let next = percent_decode_str(&current).decode_utf8().ok()?;
        if next == current {
            return Some(current);
        }
        current = Cow::Owned(next.into_owned());
    }
    None
}

/// Characters that Unicode normalization (NFKC) turns into `.`, `..`, `/`
/// or `\`, or that render as a slash: a store or a tool downstream that
/// normalizes names would read `\u{FF0E}\u{FF0E}/x` as `../x`.
const LOOKALIKES: [char; 9] = [
    '\u{2024}', // one dot leader
    '\u{2025}', // two dot leader
    '\u{FE52}', // small full stop
    '\u{FF0E}', // fullwidth full stop
    '\u{FF0F}', // fullwidth solidus
    '\u{2215}', // division slash
    '\u{2044}', // fraction slash
    '\u{FF3C}', // fullwidth reverse solidus
    '\u{FE68}', // small reverse solidus
];

fn check(path: &str) -> std::result::Result<(), &'static str> {
    if path.is_empty() {
        return Ok(());
    }
    if path.chars().any(|c| c.is_control()) {
        return Err("control characters are not allowed");
    }
    if path.contains('\\') {
        return Err("backslashes are not allowed");
    }
    if path.chars().any(|c| LOOKALIKES.contains(&c)) {
        return Err("characters that read as '.', '/' or '\\' are not allowed");
    }
    if path.starts_with('/') {
        return Err("absolute paths are not allowed");
    }
    // `C:` or `C:\...`: an absolute path on Windows, as MLflow also refuses.
    let bytes = path.as_bytes();
    if bytes.len() >= 2 && bytes[0].is_ascii_alphabetic() && bytes[1] == b':' {
        return Err("absolute paths are not allowed");
    }
    for segment in path.split('/') {
        match segment {
            "" => return Err("empty path segments are not allowed"),
            "." | ".." => return Err("'.' and '..' are not allowed"),
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxied_paths_stay_in_their_workspace() {
        let scoped = |raw: &str, ws: &str| ArtifactPath::parse(raw).unwrap().in_workspace(ws);
        let ok = |raw: &str, ws: &str| scoped(raw, ws).unwrap().as_str().to_string();
        assert_eq!(
            ok("1/r/artifacts/a", "team-a"),
            "workspaces/team-a/1/r/artifacts/a"
        );
        assert_eq!(
            ok("workspaces/team-a/1/x", "team-a"),
            "workspaces/team-a/1/x"
        );
        assert_eq!(ok("", "team-a"), "workspaces/team-a");
        assert_eq!(ok("0/r/artifacts/a", "default"), "0/r/artifacts/a");
        assert_eq!(ok("", "default"), "");
        assert_eq!(
            ok("workspaces/default/3", "default"),
            "workspaces/default/3"
        );
        for (raw, ws) in [
            ("workspaces/team-b/1/x", "team-a"),
            ("workspaces/team-b", "default"),
            ("workspaces", "team-a"),
        ] {
            let err = scoped(raw, ws).unwrap_err();
            assert_eq!(
                err.code,
                crate::error::ErrorCode::InvalidParameterValue,
                "{raw}"
            );
        }
    }

    #[test]
    fn hostile_paths_are_refused() {
        let hostile = [
            "..",
            "../etc/passwd",
            "1/../../etc/passwd",
            "1/run/artifacts/..",
            "%2e%2e/etc/passwd",
            "1/%2E%2E/%2e%2e/x",
            "%252e%252e/x",
            "%25252525252e%25252525252e/x",
            "/etc/passwd",
            "//etc/passwd",
            "%2fetc/passwd",
            "a\\..\\b",
            "a%5c..%5cb",
            "C:/Windows/win.ini",
            "c:evil",
            "a\0b",
            "a%00b",
            "a\nb",
            "a//b",
            "a/",
            "./a",
            "a/./b",
            "a/%2e/b",
            "%ff",
            "\u{FF0E}\u{FF0E}/etc/passwd",
            "%EF%BC%8E%EF%BC%8E/x",
            "\u{2024}\u{2024}/x",
            "\u{2025}/x",
            "..\u{FF0F}x",
            "a\u{2215}b",
            "a\u{FF3C}..",
        ];
        for raw in hostile {
            let err = ArtifactPath::parse(raw).expect_err(raw);
            assert_eq!(
                err.code,
                crate::error::ErrorCode::InvalidParameterValue,
                "{raw}"
            );
        }
    }

    #[test]
    fn ordinary_paths_are_kept_as_received() {
        for raw in [
            "",
            "a.txt",
            "1/0123abcd/artifacts/dir/a.txt",
            "a%20b.txt",
            "weird..name",
            "..hidden",
            "ünïcode/файл.txt",
        ] {
            let path = ArtifactPath::parse(raw).expect(raw);
            assert_eq!(path.as_str(), raw);
        }
    }

    #[test]
    fn proxied_uris_map_to_destination_paths() {
        let path = |uri| from_proxied_uri(uri).map(|p| p.unwrap().as_str().to_string());
        assert_eq!(
            path("mlflow-artifacts:/1/r/artifacts").as_deref(),
            Some("1/r/artifacts")
        );
        assert_eq!(
            path("mlflow-artifacts://host:5000/1/r/artifacts/").as_deref(),
            Some("1/r/artifacts")
        );
        assert_eq!(path("mlflow-artifacts:/").as_deref(), Some(""));
        assert_eq!(
            path("https://h/pre/api/2.0/mlflow-artifacts/artifacts/x/1/r/artifacts").as_deref(),
            Some("x/1/r/artifacts")
        );
        assert_eq!(path("http://169.254.169.254/latest/meta-data"), None);
        for escape in [
            "http://h/api/2.0/mlflow-artifacts/artifacts/x/%2e%2e/%2e%2e/etc",
            "http://h/api/2.0/mlflow-artifacts/artifacts/x/%252e%252e/%252e%252e/etc",
            "http://h/api/2.0/mlflow-artifacts/artifacts/../../../etc",
        ] {
            assert!(
                !matches!(from_proxied_uri(escape), Some(Ok(_))),
                "{escape} is refused or not served"
            );
        }
        assert_eq!(path("s3://bucket/1/r/artifacts"), None);
        assert_eq!(path("/tmp/mlruns/1/r/artifacts"), None);
        assert!(from_proxied_uri("mlflow-artifacts:/1/../../etc")
            .unwrap()
            .is_err());
    }

    #[test]
    fn join_and_file_name() {
        let root = ArtifactPath::root();
        let run = ArtifactPath::parse("1/r/artifacts").unwrap();
        let file = ArtifactPath::parse("d/a.txt").unwrap();
        assert_eq!(root.join(&run), run);
        assert_eq!(run.join(&root), run);
        assert_eq!(run.join(&file).as_str(), "1/r/artifacts/d/a.txt");
        assert_eq!(file.file_name(), Some("a.txt"));
        assert_eq!(root.file_name(), None);
    }

    #[test]
    fn relative_local_locations_are_made_absolute_as_mlflow_does() {
        let cwd = std::env::current_dir().unwrap().display().to_string();
        assert_eq!(resolve_if_local("rel/dir"), format!("{cwd}/rel/dir"));
        assert_eq!(resolve_if_local("file:rel"), format!("file://{cwd}/rel"));
        for kept in [
            "/abs/dir",
            "file:///abs",
            "s3://b/k",
            "mlflow-artifacts:/x",
            "wasbs://c@a/p",
        ] {
            assert_eq!(resolve_if_local(kept), kept);
        }
    }
}
