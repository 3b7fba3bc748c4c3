//! Which `artifact_location`s a client may give a new experiment.
//!
//! `mlflow server` stores any location a client names, and every client
//! logging to that experiment then writes there: a shared experiment could
//! be pointed at `file:///etc`, a cloud metadata address, a loopback
//! service or someone else's bucket. Here a location must lie under one of
//! the configured prefixes (by default the server's own roots).

use percent_encoding::percent_decode_str;

use crate::error::{MlflowError, Result};

/// The prefixes locations must lie under; `*` among them allows any (MLflow's
/// behaviour).
#[derive(Debug, Clone)]
pub struct LocationPolicy {
    prefixes: Vec<String>,
}

impl LocationPolicy {
    pub fn new(prefixes: impl IntoIterator<Item = impl Into<String>>) -> Self {
        Self {
            prefixes: prefixes.into_iter().map(Into::into).collect(),
        }
    }

    /// Any location, as `mlflow server` allows.
    pub fn any() -> Self {
        Self::new(["*"])
    }

    pub fn check(&self, location: &str) -> Result<()> {
        if self
            .prefixes
            .iter()
            .any(|prefix| prefix == "*" || within(location, prefix))
        {
            return Ok(());
        }
        // The location itself is not repeated: it may carry credentials.
        Err(MlflowError::invalid_parameter(format!(
            "This artifact_location is not allowed: experiments may keep artifacts only under {}. \
             An operator can allow more with --allowed-artifact-locations.",
            self.prefixes.join(", ")
        )))
    }
}

/// Whether `location` is `prefix` or a path below it, without `.`, `..` or
/// empty segments (`mlflow-artifacts://evil.host/x` is not under
/// `mlflow-artifacts:/`, nor `s3://bucket-2` under `s3://bucket`).
fn within(location: &str, prefix: &str) -> bool {
    let prefix = prefix.trim_end_matches('/');
    let Some(rest) = location.strip_prefix(prefix) else {
        return false;
    };
    if rest.is_empty() || rest == "/" {
        return true;
    }
    let Some(rest) = rest.strip_prefix('/') else {
        return false;
    };
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    rest.split('/').all(|segment| {
        let decoded = percent_decode_str(segment).decode_utf8_lossy();
        !decoded.is_empty() && decoded != "." && decoded != ".." && !decoded.contains(['/', '\\'])
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_under_an_allowed_prefix_pass() {
        let policy = LocationPolicy::new(["mlflow-artifacts:/", "s3://team/mlflow/"]);
        for ok in [
            "mlflow-artifacts:/",
            "mlflow-artifacts:/custom",
            "mlflow-artifacts:/a/b/",
            "s3://team/mlflow",
            "s3://team/mlflow/exp-1",
        ] {
            assert!(policy.check(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn escapes_and_lookalike_prefixes_are_refused() {
        let policy = LocationPolicy::new(["mlflow-artifacts:/", "s3://team/mlflow"]);
        for bad in [
            "file:///etc",
            "/etc",
            "http://169.254.169.254/latest",
            "http://127.0.0.1:6379/",
            "s3://someone-else/x",
            "s3://team/mlflow-evil",
            "s3://team/mlflowx/y",
            "s3://team/mlflow/../other",
            "s3://team/mlflow/%2e%2e/other",
            "s3://team/mlflow/a%2Fb",
            "s3://team/mlflow//x",
            "mlflow-artifacts://evil.example.com/x",
            "mlflow-artifacts:/./x",
        ] {
            let err = policy.check(bad).unwrap_err();
            assert!(!err.message.contains(bad), "not echoed: {}", err.message);
        }
    }

    #[test]
    fn a_star_allows_anything() {
        assert!(LocationPolicy::any().check("file:///etc").is_ok());
    }
}
