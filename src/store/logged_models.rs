//! MLflow 3 logged models: what `log_model` creates before it uploads a
//! model's files, and what `models:/m-...` URIs resolve through.

use async_trait::async_trait;

use crate::error::Result;
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
