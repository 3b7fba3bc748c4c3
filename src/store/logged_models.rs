//! MLflow 3 logged models: what `log_model` creates before it uploads a
//! model's files, and what `models:/m-...` URIs resolve through. The trait
//! and MLflow's rules for its arguments (names, keys, field sizes); no SQL.

use std::collections::HashMap;

use async_trait::async_trait;

use crate::error::{MlflowError, Result};
use crate::model::{LoggedModel, LoggedModelStatus, Page, Param, Tag, Workspace};
use crate::search::logged_models::{DatasetFilter, LoggedModelOrder};

/// Arguments of `POST /logged-models`.
#[derive(Debug, Clone, Default)]
pub struct NewLoggedModel {
    pub experiment_id: String,
    /// Generated (like a run name) when absent.
    pub name: Option<String>,
    pub model_type: Option<String>,
    pub source_run_id: Option<String>,
    pub params: Vec<Param>,
    pub tags: Vec<Tag>,
}

/// Arguments of `POST /logged-models/search`.
#[derive(Debug, Clone, Default)]
pub struct LoggedModelQuery {
    pub experiment_ids: Vec<String>,
    pub filter: Option<String>,
    pub datasets: Vec<DatasetFilter>,
    pub max_results: Option<i64>,
    pub order_by: Option<Vec<LoggedModelOrder>>,
    pub page_token: Option<String>,
}

#[async_trait]
pub trait LoggedModelStore: Send + Sync {
    async fn create_logged_model(
        &self,
        ws: &Workspace,
        model: NewLoggedModel,
    ) -> Result<LoggedModel>;
    /// Deleted models are found only with `allow_deleted`.
    async fn get_logged_model(
        &self,
        ws: &Workspace,
        model_id: &str,
        allow_deleted: bool,
    ) -> Result<LoggedModel>;
    /// Sets the status once the model's files are uploaded (or failed to).
    async fn finalize_logged_model(
        &self,
        ws: &Workspace,
        model_id: &str,
        status: LoggedModelStatus,
    ) -> Result<LoggedModel>;
    /// Soft delete.
    async fn delete_logged_model(&self, ws: &Workspace, model_id: &str) -> Result<()>;
    /// Upserts: a key given twice keeps its last value.
    async fn set_logged_model_tags(
        &self,
        ws: &Workspace,
        model_id: &str,
        tags: &[Tag],
    ) -> Result<()>;
    async fn delete_logged_model_tag(
        &self,
        ws: &Workspace,
        model_id: &str,
        key: &str,
    ) -> Result<()>;
    async fn log_logged_model_params(
        &self,
        ws: &Workspace,
        model_id: &str,
        params: &[Param],
    ) -> Result<()>;
    async fn search_logged_models(
        &self,
        ws: &Workspace,
        query: &LoggedModelQuery,
    ) -> Result<Page<LoggedModel>>;
}

// ---------------------------------------------------------------------------
// Names, keys and field sizes of logged-model arguments
// ---------------------------------------------------------------------------

/// Characters MLflow refuses in a logged model's name.
const NAME_FORBIDDEN: [char; 6] = ['/', ':', '.', '%', '"', '\''];
/// `logged_model_params.param_key` / `logged_model_tags.tag_key` are VARCHAR(255).
const MAX_KEY_LENGTH: usize = 255;
const MAX_NAME_LENGTH: usize = 500;
/// `logged_models.model_type` and `.source_run_id` column sizes.
const MAX_MODEL_TYPE_LENGTH: usize = 500;
const MAX_RUN_ID_LENGTH: usize = 32;

/// MLflow's checks of `logged-models/create` arguments: the name's
/// characters and length, and values that must fit their columns.
pub(crate) fn validate_new_logged_model(model: &NewLoggedModel) -> Result<()> {
    if let Some(name) = &model.name {
        validate_name(name)?;
    }
    for (field, value, max) in [
        ("model_type", &model.model_type, MAX_MODEL_TYPE_LENGTH),
        ("source_run_id", &model.source_run_id, MAX_RUN_ID_LENGTH),
    ] {
        if value.as_deref().is_some_and(|v| v.chars().count() > max) {
            return Err(MlflowError::invalid_parameter(format!(
                "Invalid value for '{field}': it exceeds the maximum length of {max}"
            )));
        }
    }
    Ok(())
}

fn validate_name(name: &str) -> Result<()> {
    if name.is_empty() || name.contains(NAME_FORBIDDEN) || name.chars().count() > MAX_NAME_LENGTH {
        return Err(MlflowError::invalid_parameter(format!(
            "Invalid model name ('{name}') provided. Model name must be a non-empty string of at \
             most {MAX_NAME_LENGTH} characters and cannot contain the following characters: \
             ('/', ':', '.', '%', '\"', \"'\")"
        )));
    }
    Ok(())
}

/// Keys must fit their column; a key given twice keeps its last value.
pub(crate) fn dedup_keys<'a>(items: &'a [Tag], what: &str) -> Result<Vec<&'a Tag>> {
    let mut last: HashMap<&str, usize> = HashMap::new();
    for (i, item) in items.iter().enumerate() {
        if item.key.is_empty() || item.key.chars().count() > MAX_KEY_LENGTH {
            return Err(MlflowError::invalid_parameter(format!(
                "Invalid {what} key '{}': it must be 1 to {MAX_KEY_LENGTH} characters long",
                item.key.chars().take(32).collect::<String>()
            )));
        }
        last.insert(&item.key, i);
    }
    let mut kept: Vec<&Tag> = last.into_values().map(|i| &items[i]).collect();
    // A fixed order keeps concurrent upserts from deadlocking on PostgreSQL.
    kept.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(kept)
}
