//! MLflow's validation rules (mlflow/utils/validation.py), enforced before any
//! write so a rejected request leaves nothing behind.

use crate::error::{MlflowError, Result};
use crate::model::{Metric, Tag};
use crate::store::{Batch, NewDatasetInput};

pub const MAX_KEY_LENGTH: usize = 250;
pub const MAX_PARAM_VALUE_LENGTH: usize = 6000;
pub const MAX_TAG_VALUE_LENGTH: usize = 8000;
pub const MAX_EXPERIMENT_TAG_VALUE_LENGTH: usize = 20000;
pub const MAX_EXPERIMENT_NAME_LENGTH: usize = 500;
pub const MAX_METRICS_PER_BATCH: usize = 1000;
pub const MAX_PARAMS_TAGS_PER_BATCH: usize = 100;
pub const MAX_ENTITIES_PER_BATCH: usize = 1000;
pub const MAX_RESULTS_SEARCH: i64 = 50000;

/// What a key names, for error messages ("Invalid metric name: ...").
#[derive(Debug, Clone, Copy)]
pub enum KeyKind {
    Metric,
    Param,
    Tag,
}

impl KeyKind {
    fn noun(self) -> &'static str {
        match self {
            Self::Metric => "metric",
            Self::Param => "parameter",
            Self::Tag => "tag",
        }
    }
}

/// MLflow's key rule: `^[/\w.\- :]*$` and not path-like, i.e. unchanged by
/// `posixpath.normpath`, not `.`, not starting with `..` or `/`.
pub fn validate_key(kind: KeyKind, key: &str) -> Result<()> {
    let noun = kind.noun();
    if key.chars().count() > MAX_KEY_LENGTH {
        return Err(MlflowError::invalid_parameter(format!(
            "Invalid value for {noun} key: '{}...' exceeds the maximum length of {MAX_KEY_LENGTH}",
            key.chars().take(32).collect::<String>()
        )));
    }
    let allowed = |c: char| c.is_alphanumeric() || matches!(c, '_' | '/' | '.' | '-' | ' ' | ':');
    if !key.chars().all(allowed) {
        return Err(MlflowError::invalid_parameter(format!(
            "Invalid {noun} name: '{key}'. Names may only contain alphanumerics, underscores (_), \
             dashes (-), periods (.), spaces ( ), colon(:) and slashes (/)."
        )));
    }
    if is_path_like(key) {
        return Err(MlflowError::invalid_parameter(format!(
            "Invalid {noun} name: '{key}'. Names cannot be a path that resolves to another name \
             (e.g. '.', '..', leading '/', '//' or trailing '/')."
        )));
    }
    Ok(())
}

/// True when `posixpath.normpath(key)` would differ from `key`, or the key is
/// `.`, starts with `..` or with `/`.
fn is_path_like(key: &str) -> bool {
    key.is_empty()
        || key.starts_with('/')
        || key.starts_with("..")
        || key.ends_with('/')
        || key
            .split('/')
            .any(|seg| seg.is_empty() || seg == "." || seg == "..")
}

/// Truncates to `max` characters, as MLflow does for param and tag values
/// (MLFLOW_TRUNCATE_LONG_VALUES defaults to true).
pub fn truncate(value: &mut String, max: usize) {
    if let Some((cut, _)) = value.char_indices().nth(max) {
        tracing::warn!(max, "truncating a value longer than MLflow's limit");
        value.truncate(cut);
    }
}

pub fn validate_experiment_name(name: &str) -> Result<()> {
    if name.trim().is_empty() {
        return Err(MlflowError::invalid_parameter(
            "Invalid experiment name: ''. Experiment name must not be empty.",
        ));
    }
    if name.chars().count() > MAX_EXPERIMENT_NAME_LENGTH {
        return Err(MlflowError::invalid_parameter(format!(
            "Experiment name exceeds the maximum length of {MAX_EXPERIMENT_NAME_LENGTH} characters"
        )));
    }
    Ok(())
}

pub fn validate_experiment_tag(tag: &Tag) -> Result<()> {
    validate_key(KeyKind::Tag, &tag.key)?;
    if tag.value.chars().count() > MAX_EXPERIMENT_TAG_VALUE_LENGTH {
        return Err(MlflowError::invalid_parameter(format!(
            "Experiment tag '{}' value exceeds the maximum length of {MAX_EXPERIMENT_TAG_VALUE_LENGTH}",
            tag.key
        )));
    }
    Ok(())
}

/// Run tags: key rules, value truncated to 8000 characters.
pub fn normalize_run_tag(tag: &mut Tag) -> Result<()> {
    validate_key(KeyKind::Tag, &tag.key)?;
    truncate(&mut tag.value, MAX_TAG_VALUE_LENGTH);
    Ok(())
}

/// MLflow keeps NaN as `is_nan` with value 0 and clamps ±Infinity to the
/// largest finite double.
fn normalize_metric(metric: &mut Metric) -> Result<()> {
    validate_key(KeyKind::Metric, &metric.key)?;
    if metric.timestamp < 0 {
        return Err(MlflowError::invalid_parameter(format!(
            "Invalid timestamp for metric '{}': Timestamp must be a nonnegative long (64-bit integer)",
            metric.key
        )));
    }
    if metric.value.is_infinite() {
        metric.value = f64::MAX.copysign(metric.value);
    }
    // The columns of `logged_model_metrics` these are recorded in.
    for (field, value, max) in [
        ("model_id", &metric.model_id, 36),
        ("dataset_name", &metric.dataset_name, 500),
        ("dataset_digest", &metric.dataset_digest, 36),
    ] {
        if let Some(value) = value.as_deref().filter(|v| v.chars().count() > max) {
            return Err(MlflowError::invalid_parameter(format!(
                "Invalid {field} for metric '{}': '{}...' exceeds the maximum length of {max}",
                metric.key,
                value.chars().take(32).collect::<String>()
            )));
        }
    }
    Ok(())
}

/// Checks a whole batch (limits, keys, duplicate params) and normalizes its
/// values; nothing is written when this fails.
pub fn normalize_batch(batch: &mut Batch) -> Result<()> {
    let (metrics, params, tags) = (batch.metrics.len(), batch.params.len(), batch.tags.len());
    if metrics > MAX_METRICS_PER_BATCH {
        return Err(MlflowError::invalid_parameter(format!(
            "A batch logging request can contain at most {MAX_METRICS_PER_BATCH} metrics. \
             Got {metrics} metrics."
        )));
    }
    if params > MAX_PARAMS_TAGS_PER_BATCH {
        return Err(MlflowError::invalid_parameter(format!(
            "A batch logging request can contain at most {MAX_PARAMS_TAGS_PER_BATCH} params. \
             Got {params} params."
        )));
    }
    if tags > MAX_PARAMS_TAGS_PER_BATCH {
        return Err(MlflowError::invalid_parameter(format!(
            "A batch logging request can contain at most {MAX_PARAMS_TAGS_PER_BATCH} tags. \
             Got {tags} tags."
        )));
    }
    if metrics + params + tags > MAX_ENTITIES_PER_BATCH {
        return Err(MlflowError::invalid_parameter(format!(
            "A batch logging request can contain at most {MAX_ENTITIES_PER_BATCH} total \
             metrics, params and tags. Got {} entities.",
            metrics + params + tags
        )));
    }
    for metric in &mut batch.metrics {
        normalize_metric(metric)?;
    }
    let mut seen = std::collections::HashSet::new();
    let mut duplicates: Vec<&str> = Vec::new();
    for param in &mut batch.params {
        validate_key(KeyKind::Param, &param.key)?;
        truncate(&mut param.value, MAX_PARAM_VALUE_LENGTH);
    }
    for param in &batch.params {
        if !seen.insert(param.key.as_str()) && !duplicates.contains(&param.key.as_str()) {
            duplicates.push(&param.key);
        }
    }
    if !duplicates.is_empty() {
        return Err(MlflowError::invalid_parameter(format!(
            "Duplicate parameter keys have been submitted: {duplicates:?}. Please ensure the \
             request contains only one param value per param key."
        )));
    }
    for tag in &mut batch.tags {
        normalize_run_tag(tag)?;
    }
    Ok(())
}

/// MLflow's size limits for a logged dataset and its input tags.
pub fn validate_dataset_input(input: &NewDatasetInput) -> Result<()> {
    let dataset = &input.dataset;
    let limits = [
        ("name", Some(&dataset.name), 500),
        ("digest", Some(&dataset.digest), 36),
        ("source", Some(&dataset.source), 65535),
        ("schema", dataset.schema.as_ref(), 1_048_575),
        ("profile", dataset.profile.as_ref(), 16_777_215),
    ];
    for (field, value, max) in limits {
        if value.is_some_and(|v| v.chars().count() > max) {
            return Err(MlflowError::invalid_parameter(format!(
                "Dataset {field} exceeds the maximum length of {max}"
            )));
        }
    }
    for tag in &input.tags {
        if tag.key.chars().count() > 255 || tag.value.chars().count() > 500 {
            return Err(MlflowError::invalid_parameter(format!(
                "Input tag '{}' exceeds the maximum length (key 255, value 500)",
                tag.key.chars().take(32).collect::<String>()
            )));
        }
    }
    Ok(())
}

/// `max_results` of the search endpoints: 1..=`limit`.
pub fn validate_max_results(max_results: i64, limit: i64) -> Result<()> {
    if max_results <= 0 {
        return Err(MlflowError::invalid_parameter(format!(
            "Invalid value {max_results} for parameter 'max_results' supplied. It must be a \
             positive integer"
        )));
    }
    if max_results > limit {
        return Err(MlflowError::invalid_parameter(format!(
            "Invalid value {max_results} for parameter 'max_results' supplied. It must be at \
             most {limit}"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_mlflow_rules() {
        for good in ["loss", "a/b", "a b", "m:1", "x.y-z_1", "ünïcode"] {
            assert!(validate_key(KeyKind::Metric, good).is_ok(), "{good}");
        }
        for bad in [
            "",
            ".",
            "..",
            "../x",
            "/abs",
            "a//b",
            "a/",
            "a/./b",
            "a/../b",
            "semi;colon",
            "q?",
        ] {
            assert!(validate_key(KeyKind::Metric, bad).is_err(), "{bad:?}");
        }
        assert!(validate_key(KeyKind::Param, &"k".repeat(251)).is_err());
        assert!(validate_key(KeyKind::Param, &"k".repeat(250)).is_ok());
    }

    #[test]
    fn truncation_counts_characters_not_bytes() {
        let mut value = "é".repeat(10);
        truncate(&mut value, 4);
        assert_eq!(value, "éééé");
    }

    #[test]
    fn batch_limits_and_duplicates_are_rejected() {
        let param = |key: &str| Tag {
            key: key.into(),
            value: "v".into(),
        };
        let mut dup = Batch {
            params: vec![param("a"), param("a")],
            ..Default::default()
        };
        let err = normalize_batch(&mut dup).unwrap_err();
        assert!(err.message.contains("Duplicate parameter keys"));

        let mut too_many = Batch {
            params: (0..101).map(|i| param(&format!("p{i}"))).collect(),
            ..Default::default()
        };
        assert!(normalize_batch(&mut too_many).is_err());
    }

    #[test]
    fn infinities_are_clamped_and_negative_timestamps_rejected() {
        let mut batch = Batch {
            metrics: vec![Metric {
                key: "m".into(),
                value: f64::NEG_INFINITY,
                timestamp: 0,
                step: -1,
                ..Metric::default()
            }],
            ..Default::default()
        };
        normalize_batch(&mut batch).unwrap();
        assert_eq!(batch.metrics[0].value, -f64::MAX);
        batch.metrics[0].timestamp = -1;
        assert!(normalize_batch(&mut batch).is_err());
    }
}
