//! The model registry store: MLflow's registry operations, never SQL, behind
//! one trait, plus the registry's pure rules (names, aliases, stages, version
//! numbers, tags, prompts; model-version sources in `registry/sources.rs`) that every
//! backend enforces alike.

mod sources;

use async_trait::async_trait;

use crate::error::{MlflowError, Result};
use crate::model::{ModelVersion, Page, RegisteredModel, Tag, Workspace};

pub use sources::{
    invalid_local_source, invalid_source, is_local_uri, is_mlflow_artifacts_source,
    local_source_within, parse_models_uri, parse_runs_uri, split_uri, uri_within_root,
    validate_no_relative_paths, validate_source_model, validate_source_run, validate_source_scheme,
    ModelUri, UriParts,
};

/// The tag that marks a registered model as a prompt (prompts share the table).
pub const IS_PROMPT_TAG: &str = "mlflow.prompt.is_prompt";
/// The logged-model tag listing the versions registered from it.
pub const MODEL_VERSIONS_TAG: &str = "mlflow.modelVersions";
pub const MAX_REGISTRY_TAG_VALUE_LENGTH: usize = 100_000;
pub const MAX_ALIAS_LENGTH: usize = 255;
/// `registered-models/search`: default and largest `max_results`.
pub const SEARCH_REGISTERED_MODELS_DEFAULT: i64 = 100;
pub const SEARCH_REGISTERED_MODELS_MAX: i64 = 1000;
/// `model-versions/search`: default and largest `max_results`.
pub const SEARCH_MODEL_VERSIONS_DEFAULT: i64 = 200_000;
pub const SEARCH_MODEL_VERSIONS_MAX: i64 = 200_000;

/// The stage MLflow gives a deleted version: the row stays (so its number is
/// never reused) but every read skips it.
pub const STAGE_DELETED_INTERNAL: &str = "Deleted_Internal";
pub const ALL_STAGES: [&str; 4] = ["None", "Staging", "Production", "Archived"];
/// Stages `archive_existing_versions` may be used with.
pub const ACTIVE_STAGES: [&str; 2] = ["Staging", "Production"];

/// Arguments of `registered-models/search` and `model-versions/search`.
#[derive(Debug, Clone, Default)]
pub struct RegistryQuery {
    pub filter: String,
    pub max_results: i64,
    pub order_by: Vec<String>,
    pub page_token: Option<String>,
}

/// Arguments of `model-versions/create`. `run_id` and `model_id` keep the
/// difference between absent (`None`) and sent empty (`Some("")`), which
/// MLflow's lineage check for `models:/name/version` sources looks at.
#[derive(Debug, Clone, Default)]
pub struct NewModelVersion {
    pub name: String,
    pub source: String,
    pub run_id: Option<String>,
    pub model_id: Option<String>,
    pub tags: Vec<Tag>,
    pub run_link: Option<String>,
    pub description: Option<String>,
}

/// The MLflow model registry operations, one method per REST call.
#[async_trait]
pub trait RegistryStore: Send + Sync {
    async fn create_registered_model(
        &self,
        ws: &Workspace,
        name: &str,
        tags: &[Tag],
        description: Option<&str>,
    ) -> Result<RegisteredModel>;
    async fn get_registered_model(&self, ws: &Workspace, name: &str) -> Result<RegisteredModel>;
    /// Renames the model and moves its versions, tags and aliases along.
    async fn rename_registered_model(
        &self,
        ws: &Workspace,
        name: &str,
        new_name: &str,
    ) -> Result<RegisteredModel>;
    async fn update_registered_model(
        &self,
        ws: &Workspace,
        name: &str,
        description: Option<&str>,
    ) -> Result<RegisteredModel>;
    /// Deletes the model with all its versions, tags and aliases.
    async fn delete_registered_model(&self, ws: &Workspace, name: &str) -> Result<()>;
    async fn search_registered_models(
        &self,
        ws: &Workspace,
        query: &RegistryQuery,
    ) -> Result<Page<RegisteredModel>>;
    /// The newest version of each requested stage (every stage when empty).
    async fn get_latest_versions(
        &self,
        ws: &Workspace,
        name: &str,
        stages: &[String],
    ) -> Result<Vec<ModelVersion>>;
    async fn set_registered_model_tag(&self, ws: &Workspace, name: &str, tag: &Tag) -> Result<()>;
    async fn delete_registered_model_tag(
        &self,
        ws: &Workspace,
        name: &str,
        key: &str,
    ) -> Result<()>;

    /// Validates the source, numbers the version max+1 and, for a version of a
    /// logged model, records it in the model's `mlflow.modelVersions` tag.
    async fn create_model_version(
        &self,
        ws: &Workspace,
        version: NewModelVersion,
    ) -> Result<ModelVersion>;
    async fn get_model_version(
        &self,
        ws: &Workspace,
        name: &str,
        version: &str,
    ) -> Result<ModelVersion>;
    /// Sets the description; `None` clears it, as MLflow's store does.
    async fn update_model_version(
        &self,
        ws: &Workspace,
        name: &str,
        version: &str,
        description: Option<&str>,
    ) -> Result<ModelVersion>;
    async fn transition_model_version_stage(
        &self,
        ws: &Workspace,
        name: &str,
        version: &str,
        stage: &str,
        archive_existing_versions: bool,
    ) -> Result<ModelVersion>;
    async fn delete_model_version(&self, ws: &Workspace, name: &str, version: &str) -> Result<()>;
    /// The version's storage location, resolved when it was created.
    async fn get_model_version_download_uri(
        &self,
        ws: &Workspace,
        name: &str,
        version: &str,
    ) -> Result<String>;
    async fn search_model_versions(
        &self,
        ws: &Workspace,
        query: &RegistryQuery,
    ) -> Result<Page<ModelVersion>>;
    async fn set_model_version_tag(
        &self,
        ws: &Workspace,
        name: &str,
        version: &str,
        tag: &Tag,
    ) -> Result<()>;
    async fn delete_model_version_tag(
        &self,
        ws: &Workspace,
        name: &str,
        version: &str,
        key: &str,
    ) -> Result<()>;
    async fn set_registered_model_alias(
        &self,
        ws: &Workspace,
        name: &str,
        alias: &str,
        version: &str,
    ) -> Result<()>;
    async fn delete_registered_model_alias(
        &self,
        ws: &Workspace,
        name: &str,
        alias: &str,
    ) -> Result<()>;
    async fn get_model_version_by_alias(
        &self,
        ws: &Workspace,
        name: &str,
        alias: &str,
    ) -> Result<ModelVersion>;
}

// ---------------------------------------------------------------------------
// Names, versions, aliases, stages, tags (mlflow/utils/validation.py)
// ---------------------------------------------------------------------------

/// `_validate_model_name`: not blank, no `/` or `:`, not path-like.
pub fn validate_model_name(name: &str) -> Result<()> {
    if name.trim().is_empty() {
        return Err(MlflowError::missing_parameter("name"));
    }
    if name.contains('/') || name.contains(':') {
        return Err(MlflowError::invalid_parameter(format!(
            "Invalid model name '{name}'. Names cannot contain '/' or ':'."
        )));
    }
    if name == "." || name.starts_with("..") {
        return Err(MlflowError::invalid_parameter(format!(
            "Invalid value \"{name}\" for parameter 'name' supplied: Names may be treated as \
             files in certain cases, and must not resolve to other names when treated as such."
        )));
    }
    Ok(())
}

/// `_validate_model_version`: the version must parse as an integer.
pub fn parse_version(version: &str) -> Result<i64> {
    version.trim().parse::<i64>().map_err(|_| {
        MlflowError::invalid_parameter(format!(
            "Parameter 'version' must be an integer, got '{version}'."
        ))
    })
}

/// `_validate_model_alias_name`: `^[\w-]*$`, non-empty, at most 255 characters.
pub fn validate_alias(alias: &str) -> Result<()> {
    if alias.is_empty() {
        return Err(MlflowError::invalid_parameter(
            "Registered model alias name cannot be empty.",
        ));
    }
    if !alias
        .chars()
        .all(|c| c.is_alphanumeric() || c == '_' || c == '-')
    {
        return Err(MlflowError::invalid_parameter(format!(
            "Invalid alias name: '{alias}'. Names may only contain alphanumerics, underscores \
             (_), and dashes (-)."
        )));
    }
    if alias.chars().count() > MAX_ALIAS_LENGTH {
        return Err(MlflowError::invalid_parameter(format!(
            "'Registered model alias name' exceeds the maximum length of {MAX_ALIAS_LENGTH} \
             characters"
        )));
    }
    Ok(())
}

/// `_validate_model_alias_name_reserved`: `latest` (any case) and `v<digits>`
/// name versions in model URIs, so they cannot be aliases.
pub fn validate_alias_not_reserved(alias: &str) -> Result<()> {
    if alias.eq_ignore_ascii_case("latest") {
        return Err(MlflowError::invalid_parameter(
            "'latest' alias name (case insensitive) is reserved.",
        ));
    }
    let mut chars = alias.chars();
    if matches!(chars.next(), Some('v' | 'V'))
        && alias.len() > 1
        && chars.all(|c| c.is_ascii_digit())
    {
        return Err(MlflowError::invalid_parameter(format!(
            "Version alias name '{alias}' is reserved."
        )));
    }
    Ok(())
}

/// `get_canonical_stage`: stage names are case-insensitive.
pub fn canonical_stage(stage: &str) -> Result<&'static str> {
    ALL_STAGES
        .into_iter()
        .find(|s| s.eq_ignore_ascii_case(stage))
        .ok_or_else(|| {
            MlflowError::invalid_parameter(format!(
                "Invalid Model Version stage: {stage}. Value must be one of {}.",
                ALL_STAGES.join(", ")
            ))
        })
}

/// Registered-model and model-version tags: MLflow's key rule, key ≤ 250,
/// value ≤ 100,000 (rejected, not truncated).
pub fn validate_registry_tag(tag: &Tag) -> Result<()> {
    super::validation::validate_key(super::validation::KeyKind::Tag, &tag.key)?;
    if tag.value.chars().count() > MAX_REGISTRY_TAG_VALUE_LENGTH {
        return Err(MlflowError::invalid_parameter(format!(
            "'value' exceeds the maximum length of {MAX_REGISTRY_TAG_VALUE_LENGTH} characters"
        )));
    }
    Ok(())
}

/// The last value of each key wins, as MLflow builds its tag dict.
pub(crate) fn dedup_tags(tags: &[Tag]) -> Vec<Tag> {
    let mut latest: Vec<Tag> = Vec::with_capacity(tags.len());
    for tag in tags {
        match latest.iter_mut().find(|t| t.key == tag.key) {
            Some(existing) => existing.value = tag.value.clone(),
            None => latest.push(tag.clone()),
        }
    }
    latest
}

/// Whether tags mark a registered model as a prompt (the last
/// [`IS_PROMPT_TAG`] counts, `true` in any case).
pub(crate) fn is_prompt(tags: &[Tag]) -> bool {
    tags.iter()
        .rev()
        .find(|t| t.key == IS_PROMPT_TAG)
        .is_some_and(|t| t.value.eq_ignore_ascii_case("true"))
}

/// A `models:/` source must not name a prompt's version.
pub(crate) fn check_not_prompt(model: &RegisteredModel, source: &str) -> Result<()> {
    if is_prompt(&model.tags) {
        return Err(MlflowError::invalid_parameter(format!(
            "Invalid model version source: '{source}'. Prompt versions cannot be used as model \
             version sources."
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aliases_and_stages() {
        assert!(validate_alias("champ-1_x").is_ok());
        assert!(validate_alias("bad alias").is_err());
        assert!(validate_alias_not_reserved("LATEST").is_err());
        assert!(validate_alias_not_reserved("v12").is_err());
        assert!(validate_alias_not_reserved("v").is_ok());
        assert!(validate_alias_not_reserved("v1a").is_ok());
        assert_eq!(canonical_stage("production").unwrap(), "Production");
        assert!(canonical_stage("prod").is_err());
    }

    #[test]
    fn repeated_tag_keys_keep_the_last_value() {
        let tag = |k: &str, v: &str| Tag {
            key: k.into(),
            value: v.into(),
        };
        let tags = dedup_tags(&[tag("a", "1"), tag("b", "2"), tag("a", "3")]);
        assert_eq!(tags, vec![tag("a", "3"), tag("b", "2")]);
    }
}
