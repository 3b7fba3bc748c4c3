//! Model-version sources: where `model-versions/create` may point, as
//! MLflow's server checks it (`_validate_source_run`, `_validate_source_model`,
//! `_validate_non_local_source_contains_relative_paths` in
//! mlflow/server/handlers.py), and the URI parsing those checks need. No SQL:
//! the lookups a check needs (a run's or a logged model's artifact root) come
//! in as futures from the backend, awaited only when the source needs them.

use std::future::Future;

use crate::error::{MlflowError, Result};

/// A URI split like Python's `urllib.parse.urlsplit`: the scheme lower-cased,
/// the authority after `//`, the path up to `?` or `#`.
#[derive(Debug, PartialEq, Eq)]
pub struct UriParts<'a> {
    pub scheme: String,
    pub netloc: &'a str,
    pub path: &'a str,
}

pub fn split_uri(uri: &str) -> UriParts<'_> {
    let (scheme, rest) = match uri.find(':') {
        Some(i)
            if i > 0
                && uri.as_bytes()[0].is_ascii_alphabetic()
                && uri[..i]
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b)) =>
        {
            (uri[..i].to_ascii_lowercase(), &uri[i + 1..])
        }
        _ => (String::new(), uri),
    };
    let (netloc, rest) = match rest.strip_prefix("//") {
        Some(after) => {
            let end = after.find(['/', '?', '#']).unwrap_or(after.len());
            (&after[..end], &after[end..])
        }
        None => ("", rest),
    };
    let path = &rest[..rest.find(['?', '#']).unwrap_or(rest.len())];
    UriParts {
        scheme,
        netloc,
        path,
    }
}

/// Percent-decodes until nothing changes, like MLflow's iterative
/// `unquote`/`unquote_plus` (`plus` also turns `+` into a space).
fn unquote_fully(value: &str, plus: bool) -> String {
    let mut current = value.to_string();
    loop {
        let spaced = if plus {
            current.replace('+', " ")
        } else {
            current.clone()
        };
        let decoded = percent_encoding::percent_decode_str(&spaced)
            .decode_utf8_lossy()
            .into_owned();
        if decoded == current {
            return current;
        }
        current = decoded;
    }
}

/// The error for a source that the given run or model id does not contain.
pub fn invalid_source(source: &str, id_name: &str) -> MlflowError {
    MlflowError::invalid_parameter(format!(
        "Invalid model version source: '{source}'. The {id_name} request parameter must \
         identify the resource that contains the source."
    ))
}

/// Schemes that make a server connect to the host they name; MLflow refuses
/// them as sources unless they address its own artifact storage.
const HOST_ADDRESSED_SCHEMES: &[&str] = &[
    "ftp",
    "sftp",
    "hdfs",
    "viewfs",
    "http",
    "https",
    "mlflow-artifacts",
    "r2",
    "b2",
    "abfss",
];

/// `_validate_artifact_uri_scheme(source, "source")`. ferroflow trusts no
/// host: only `mlflow-artifacts:/path` (no host) resolves to itself.
pub fn validate_source_scheme(source: &str) -> Result<()> {
    let parts = split_uri(source);
    if !HOST_ADDRESSED_SCHEMES.contains(&parts.scheme.as_str())
        || (parts.scheme == "mlflow-artifacts" && parts.netloc.is_empty())
    {
        return Ok(());
    }
    Err(MlflowError::invalid_parameter(format!(
        "'source' cannot use the '{}' scheme: the '{}' scheme addresses a host other than the \
         tracking server's configured artifact storage, so the server would connect to the host \
         named in the URI.",
        parts.scheme, parts.scheme
    )))
}

/// `_validate_non_local_source_contains_relative_paths`: after full
/// unquoting, no `..` segment and no NUL, and the path must be absolute and
/// already normal (no `.` segments).
pub fn validate_no_relative_paths(source: &str) -> Result<()> {
    let invalid = || {
        MlflowError::invalid_parameter(format!(
            "Invalid model version source: '{source}'. If supplying a source as an http, https, \
             local file path, ftp, objectstore, or mlflow-artifacts uri, an absolute path must \
             be provided without relative path references present. Please provide an absolute \
             path."
        ))
    };
    let unquoted = unquote_fully(source, true);
    let raw_path = split_uri(&unquoted).path.trim_end_matches('/').to_string();
    let mut path = String::with_capacity(raw_path.len());
    for c in raw_path.chars() {
        if !(c == '/' && path.ends_with('/')) {
            path.push(c);
        }
    }
    if path.contains('\0') || unquoted.split('/').any(|p| p == "..") {
        return Err(invalid());
    }
    // `Path(path).resolve()` must give the path back: absolute, no `.` parts.
    if !path.starts_with('/') || path.split('/').skip(1).any(|p| p == "." || p.is_empty()) {
        return Err(invalid());
    }
    Ok(())
}

/// `is_local_uri`: a plain path or a `file:` URI on this host.
pub fn is_local_uri(uri: &str) -> Result<bool> {
    let parts = split_uri(uri);
    match parts.scheme.as_str() {
        "" => Ok(true),
        "file" => {
            let host = parts
                .netloc
                .rsplit('@')
                .next()
                .unwrap_or_default()
                .split(':')
                .next()
                .unwrap_or_default();
            if host.is_empty()
                || host == "."
                || host.starts_with("localhost")
                || host.starts_with("127.0.0.1")
            {
                Ok(true)
            } else {
                Err(MlflowError::invalid_parameter(format!(
                    "{uri} is not a valid remote uri. For remote access on windows, please \
                     consider using a different scheme such as SMB (e.g. smb://<hostname>/<path>)."
                )))
            }
        }
        _ => Ok(false),
    }
}

/// A local URI as an absolute, lexically normalized path.
fn local_path(uri: &str) -> std::path::PathBuf {
    let parts = split_uri(uri);
    let raw = if parts.scheme == "file" {
        unquote_fully(parts.path, false)
    } else {
        uri.to_string()
    };
    let mut path = std::path::PathBuf::from(raw);
    if path.is_relative() {
        if let Ok(cwd) = std::env::current_dir() {
            path = cwd.join(path);
        }
    }
    let mut normal = std::path::PathBuf::new();
    for part in path.components() {
        match part {
            std::path::Component::ParentDir => {
                normal.pop();
            }
            std::path::Component::CurDir => {}
            other => normal.push(other),
        }
    }
    normal
}

/// True when the local `source` lies in (or is) the local artifact root `root`.
pub fn local_source_within(source: &str, root: &str) -> Result<bool> {
    if !is_local_uri(root)? {
        return Ok(false);
    }
    Ok(local_path(source).starts_with(local_path(root)))
}

/// `_is_uri_within_root`: same scheme and authority, and the root's
/// (unquoted) path parts prefix the source's.
pub fn uri_within_root(source: &str, root: &str) -> bool {
    let normalized = |uri: &str| {
        let parts = split_uri(uri);
        let path: Vec<String> = parts
            .path
            .split('/')
            .filter(|p| !p.is_empty())
            .map(|p| unquote_fully(p, false))
            .collect();
        (parts.scheme, parts.netloc.to_ascii_lowercase(), path)
    };
    let (source_scheme, source_host, source_path) = normalized(source);
    let (root_scheme, root_host, root_path) = normalized(root);
    source_scheme == root_scheme
        && source_host == root_host
        && !root_path.is_empty()
        && source_path.starts_with(&root_path)
}

/// `_is_mlflow_artifact_source`: `mlflow-artifacts:` or an http(s) URL of the
/// artifact proxy.
pub fn is_mlflow_artifacts_source(source: &str) -> bool {
    let parts = split_uri(source);
    if parts.scheme == "mlflow-artifacts" {
        return true;
    }
    let route = ["api", "2.0", "mlflow-artifacts", "artifacts"];
    let path: Vec<String> = parts
        .path
        .split('/')
        .filter(|p| !p.is_empty())
        .map(|p| unquote_fully(p, false))
        .collect();
    (parts.scheme == "http" || parts.scheme == "https")
        && path.windows(route.len()).any(|w| w == route)
}

/// A `runs:/<run_id>/<path>` URI: the run id and the run-relative path.
pub fn parse_runs_uri(uri: &str) -> Result<(String, String)> {
    let parts = split_uri(uri);
    let improper = || {
        MlflowError::invalid_parameter(format!(
            "Not a proper runs:/ URI: {uri}. Runs URIs must be of the form \
             'runs:/<run_id>/run-relative/path/to/artifact'"
        ))
    };
    if parts.scheme != "runs" || !parts.path.starts_with('/') || parts.path.len() <= 1 {
        return Err(improper());
    }
    let (run_id, path) = parts.path[1..]
        .split_once('/')
        .unwrap_or((&parts.path[1..], ""));
    if run_id.is_empty() {
        return Err(improper());
    }
    Ok((run_id.to_string(), path.to_string()))
}

/// What a `models:/` URI names (`_parse_model_uri`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelUri {
    /// `models:/<model_id>`: a logged model.
    LoggedModel(String),
    /// `models:/<name>/<version>`.
    Version(String, String),
    /// `models:/<name>/<stage>`; `None` is `models:/<name>/latest`.
    Stage(String, Option<String>),
    /// `models:/<name>@<alias>`.
    Alias(String, String),
}

pub fn parse_models_uri(uri: &str) -> Result<ModelUri> {
    let improper = || {
        MlflowError::invalid_parameter(format!(
            "Not a proper models:/ URI: {uri}. Models URIs must be of the form \
             'models:/name/suffix' or 'models:/name@alias' where suffix is a version, stage, or \
             the string 'latest' and where alias is a registered model alias. Only one of suffix \
             or alias can be defined at a time."
        ))
    };
    let parts = split_uri(uri);
    let path = parts.path;
    if parts.scheme != "models" || !path.starts_with('/') || path.len() <= 1 {
        return Err(improper());
    }
    let pieces: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    if pieces.len() > 2 || pieces[0].trim().is_empty() {
        return Err(improper());
    }
    if let [name, suffix] = pieces[..] {
        if suffix.trim().is_empty() {
            return Err(improper());
        }
        return Ok(if suffix.chars().all(|c| c.is_ascii_digit()) {
            ModelUri::Version(name.into(), suffix.into())
        } else if suffix.eq_ignore_ascii_case("latest") {
            ModelUri::Stage(name.into(), None)
        } else {
            ModelUri::Stage(name.into(), Some(suffix.into()))
        });
    }
    if path.contains('@') {
        return match pieces[0].rsplit_once('@') {
            Some((name, alias)) if !alias.trim().is_empty() => {
                Ok(ModelUri::Alias(name.into(), alias.into()))
            }
            _ => Err(improper()),
        };
    }
    Ok(ModelUri::LoggedModel(pieces[0].into()))
}

/// The message MLflow gives a local source that is not inside the run's (or
/// logged model's) artifact directory.
pub fn invalid_local_source(source: &str, id_name: &str) -> MlflowError {
    // MLflow says "the run" for model ids too.
    MlflowError::invalid_parameter(format!(
        "Invalid model version source: '{source}'. To use a local path as a model version \
         source, the {id_name} request parameter has to be specified and the local path has to \
         be contained within the artifact directory of the run specified by the {id_name}."
    ))
}

/// `_validate_source_run`: where a source may point given its run.
/// `run_artifact_root` is the run's artifact URI (`None`: no such run); it is
/// awaited only for local and `mlflow-artifacts` sources.
pub async fn validate_source_run(
    source: &str,
    run_id: &str,
    run_artifact_root: impl Future<Output = Result<Option<String>>>,
) -> Result<()> {
    let root = |found: Option<String>| found.ok_or_else(|| invalid_source(source, "run_id"));
    if is_local_uri(source)? {
        if !run_id.is_empty() && local_source_within(source, &root(run_artifact_root.await?)?)? {
            return Ok(());
        }
        return Err(invalid_local_source(source, "run_id"));
    }
    validate_no_relative_paths(source)?;
    let parts = split_uri(source);
    if parts.scheme == "runs" {
        if !parts.netloc.is_empty() {
            return Err(invalid_source(source, "run_id"));
        }
        let (source_run, _) = parse_runs_uri(source)?;
        if !run_id.is_empty() && source_run == run_id {
            return Ok(());
        }
        return Err(invalid_source(source, "run_id"));
    }
    if parts.scheme == "models"
        && (!parts.netloc.is_empty()
            || !matches!(
                parse_models_uri(source),
                Ok(ModelUri::Version(..) | ModelUri::Alias(..) | ModelUri::Stage(..))
            ))
    {
        return Err(invalid_source(source, "model_id"));
    }
    if is_mlflow_artifacts_source(source) {
        if !run_id.is_empty() && uri_within_root(source, &root(run_artifact_root.await?)?) {
            return Ok(());
        }
        return Err(invalid_source(source, "run_id"));
    }
    Ok(())
}

/// `_validate_source_model`: where a source may point given its logged model.
/// `model_artifact_root` is the model's artifact location (`None`: no such
/// model); it is awaited only for local and `mlflow-artifacts` sources.
pub async fn validate_source_model(
    source: &str,
    model_id: &str,
    model_artifact_root: impl Future<Output = Result<Option<String>>>,
) -> Result<()> {
    let root = |found: Option<String>| found.ok_or_else(|| invalid_source(source, "model_id"));
    if is_local_uri(source)? {
        if local_source_within(source, &root(model_artifact_root.await?)?)? {
            return Ok(());
        }
        return Err(invalid_local_source(source, "model_id"));
    }
    validate_no_relative_paths(source)?;
    let parts = split_uri(source);
    if parts.scheme == "models" {
        if !parts.netloc.is_empty() {
            return Err(invalid_source(source, "model_id"));
        }
        match parse_models_uri(source) {
            Ok(ModelUri::LoggedModel(id)) if id == model_id => return Ok(()),
            Ok(ModelUri::LoggedModel(_)) | Err(_) => {
                return Err(invalid_source(source, "model_id"))
            }
            Ok(_) => {}
        }
    }
    if parts.scheme == "runs" {
        return Err(invalid_source(source, "model_id"));
    }
    if is_mlflow_artifacts_source(source) {
        if uri_within_root(source, &root(model_artifact_root.await?)?) {
            return Ok(());
        }
        return Err(invalid_source(source, "model_id"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_split_like_urllib() {
        let p = split_uri("mlflow-artifacts://host:5000/a/b?x#y");
        assert_eq!(
            (p.scheme.as_str(), p.netloc, p.path),
            ("mlflow-artifacts", "host:5000", "/a/b")
        );
        let p = split_uri("runs:/abc/model");
        assert_eq!(
            (p.scheme.as_str(), p.netloc, p.path),
            ("runs", "", "/abc/model")
        );
        let p = split_uri("/local/path");
        assert_eq!((p.scheme.as_str(), p.path), ("", "/local/path"));
    }

    #[test]
    fn relative_and_nul_sources_are_rejected_even_encoded() {
        for bad in [
            "mlflow-artifacts:/1/../2",
            "mlflow-artifacts:/1/..%2f..%2fx",
            "mlflow-artifacts:/1/%252e%252e/x",
            "s3://b/a%00b",
            "s3://b/./x",
            "s3://bucket",
            "runs:abc",
        ] {
            assert!(validate_no_relative_paths(bad).is_err(), "{bad}");
        }
        for good in [
            "s3://b/models/x",
            "runs:/abc/model",
            "mlflow-artifacts:/1/r/artifacts/m",
        ] {
            assert!(validate_no_relative_paths(good).is_ok(), "{good}");
        }
    }

    #[test]
    fn roots_contain_sources_by_whole_parts() {
        let root = "mlflow-artifacts:/1/abc/artifacts";
        assert!(uri_within_root(
            "mlflow-artifacts:/1/abc/artifacts/model",
            root
        ));
        assert!(!uri_within_root(
            "mlflow-artifacts:/1/abcd/artifacts/model",
            root
        ));
        assert!(!uri_within_root("mlflow-artifacts:/2/abc/artifacts", root));
        assert!(local_source_within("/tmp/a/b/model", "file:///tmp/a/b").unwrap());
        assert!(!local_source_within("/tmp/a/bc", "/tmp/a/b").unwrap());
        assert!(!local_source_within("/tmp/a/b/../../x", "/tmp/a/b").unwrap());
    }

    #[test]
    fn model_uris_parse_like_mlflow() {
        assert_eq!(
            parse_models_uri("models:/m-123").unwrap(),
            ModelUri::LoggedModel("m-123".into())
        );
        assert_eq!(
            parse_models_uri("models:/reg/3").unwrap(),
            ModelUri::Version("reg".into(), "3".into())
        );
        assert_eq!(
            parse_models_uri("models:/reg@champ").unwrap(),
            ModelUri::Alias("reg".into(), "champ".into())
        );
        assert_eq!(
            parse_models_uri("models:/reg/Latest").unwrap(),
            ModelUri::Stage("reg".into(), None)
        );
        assert!(parse_models_uri("models:/a/b/c").is_err());
        assert_eq!(
            parse_runs_uri("runs:/r1/path/to").unwrap(),
            ("r1".to_string(), "path/to".to_string())
        );
    }
}
