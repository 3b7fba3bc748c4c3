//! The tracking store: MLflow operations, never SQL, behind one trait.
//!
//! Handlers hold an `Arc<dyn TrackingStore>`; the backend is picked once at
//! startup from the backend-store URI ([`open`]). Every operation takes the
//! [`Workspace`] it acts in, so tenants are a selection, not a rewrite.
//! Validation that MLflow performs in its store (name rules, value limits,
//! state checks) happens behind this trait so every backend enforces it alike.

pub mod access;
pub(crate) mod db;
pub mod gc;
pub mod logged_models;
mod names;
pub mod operations;
mod postgres;
pub mod registry;
pub mod span_facts;
mod sql;
mod sqlite;
#[doc(hidden)]
pub mod testing;
pub mod trace_metrics;
pub mod traces;
pub mod validation;
pub mod workspaces;

use async_trait::async_trait;

use crate::error::{MlflowError, Result};
use crate::model::{
    Dataset, DatasetSummary, Experiment, Metric, ModelInput, ModelOutput, Page, Param, Run,
    RunInfo, RunStatus, Tag, Workspace,
};
use crate::search::ViewType;
use db::Db;

pub use access::AccessStore;
pub use gc::GcStore;
pub use logged_models::{LoggedModelQuery, LoggedModelStore, NewLoggedModel};
pub use operations::OperationsStore;
pub use registry::{NewModelVersion, RegistryQuery, RegistryStore};
pub use sql::SqlStore;
pub use traces::TraceStore;
pub use workspaces::{DeletionMode, WorkspaceStore, WorkspaceUpdate};

/// Everything the HTTP layer stores: one object, one trait per MLflow service.
pub trait Store:
    TrackingStore
    + LoggedModelStore
    + RegistryStore
    + WorkspaceStore
    + AccessStore
    + OperationsStore
    + GcStore
    + TraceStore
{
}

impl<T> Store for T where
    T: TrackingStore
        + LoggedModelStore
        + RegistryStore
        + WorkspaceStore
        + AccessStore
        + OperationsStore
        + GcStore
        + TraceStore
{
}

/// Arguments of `experiments/search`.
#[derive(Debug, Clone, Default)]
pub struct ExperimentQuery {
    pub view: ViewType,
    pub filter: String,
    pub max_results: i64,
    pub order_by: Vec<String>,
    pub page_token: Option<String>,
}

/// Arguments of `runs/create`.
#[derive(Debug, Clone, Default)]
pub struct NewRun {
    pub experiment_id: String,
    pub user_id: Option<String>,
    pub run_name: Option<String>,
    pub start_time: Option<i64>,
    pub tags: Vec<Tag>,
}

/// Arguments of `runs/update`; `None` leaves a field unchanged.
#[derive(Debug, Clone, Default)]
pub struct RunUpdate {
    pub status: Option<RunStatus>,
    pub end_time: Option<i64>,
    pub run_name: Option<String>,
}

/// Arguments of `runs/search`.
#[derive(Debug, Clone, Default)]
pub struct RunQuery {
    pub experiment_ids: Vec<String>,
    pub filter: String,
    pub view: ViewType,
    pub max_results: i64,
    pub order_by: Vec<String>,
    pub page_token: Option<String>,
}

/// What `runs/log-batch` (and the single-item log calls) write.
#[derive(Debug, Clone, Default)]
pub struct Batch {
    pub metrics: Vec<Metric>,
    pub params: Vec<Param>,
    pub tags: Vec<Tag>,
}

/// One dataset input of `runs/log-inputs`.
#[derive(Debug, Clone)]
pub struct NewDatasetInput {
    pub dataset: Dataset,
    pub tags: Vec<Tag>,
}

/// Arguments of `metrics/get-history-bulk-interval`.
#[derive(Debug, Clone)]
pub struct HistoryInterval {
    pub run_ids: Vec<String>,
    pub metric_key: String,
    pub steps: Option<(i64, i64)>,
    pub max_results: i64,
}

/// The MLflow tracking operations, one method per REST call (or a shared
/// core of several, like `log_batch`).
#[async_trait]
pub trait TrackingStore: Send + Sync {
    async fn create_experiment(
        &self,
        ws: &Workspace,
        name: &str,
        artifact_location: Option<&str>,
        tags: &[Tag],
    ) -> Result<String>;
    async fn get_experiment(&self, ws: &Workspace, experiment_id: &str) -> Result<Experiment>;
    async fn get_experiment_by_name(&self, ws: &Workspace, name: &str) -> Result<Experiment>;
    async fn search_experiments(
        &self,
        ws: &Workspace,
        query: &ExperimentQuery,
    ) -> Result<Page<Experiment>>;
    async fn rename_experiment(
        &self,
        ws: &Workspace,
        experiment_id: &str,
        new_name: &str,
    ) -> Result<()>;
    /// Soft delete (`deleted = true`) or restore (`false`).
    async fn set_experiment_deleted(
        &self,
        ws: &Workspace,
        experiment_id: &str,
        deleted: bool,
    ) -> Result<()>;
    async fn set_experiment_tag(
        &self,
        ws: &Workspace,
        experiment_id: &str,
        tag: &Tag,
    ) -> Result<()>;
    async fn delete_experiment_tag(
        &self,
        ws: &Workspace,
        experiment_id: &str,
        key: &str,
    ) -> Result<()>;

    async fn create_run(&self, ws: &Workspace, run: NewRun) -> Result<Run>;
    async fn get_run(&self, ws: &Workspace, run_id: &str) -> Result<Run>;
    async fn update_run(&self, ws: &Workspace, run_id: &str, update: RunUpdate) -> Result<RunInfo>;
    /// Soft delete (`deleted = true`) or restore (`false`).
    async fn set_run_deleted(&self, ws: &Workspace, run_id: &str, deleted: bool) -> Result<()>;
    async fn search_runs(&self, ws: &Workspace, query: &RunQuery) -> Result<Page<Run>>;
    /// Writes metrics, params and tags in one transaction; resending the same
    /// batch is a no-op, so client retries are safe.
    async fn log_batch(&self, ws: &Workspace, run_id: &str, batch: Batch) -> Result<()>;
    async fn delete_tag(&self, ws: &Workspace, run_id: &str, key: &str) -> Result<()>;
    /// Links datasets and logged models the run consumed.
    async fn log_inputs(
        &self,
        ws: &Workspace,
        run_id: &str,
        inputs: Vec<NewDatasetInput>,
        models: Vec<ModelInput>,
    ) -> Result<()>;
    /// Links logged models the run produced (`runs/outputs`).
    async fn log_outputs(&self, ws: &Workspace, run_id: &str, models: &[ModelOutput])
        -> Result<()>;
    /// Appends to the `mlflow.log-model.history` tag (pre-MLflow-3 clients).
    async fn log_model(&self, ws: &Workspace, run_id: &str, model_json: &str) -> Result<()>;

    /// A metric's full series in (timestamp, step) order, paged when
    /// `max_results` is given.
    async fn get_metric_history(
        &self,
        ws: &Workspace,
        run_id: &str,
        key: &str,
        max_results: Option<i64>,
        page_token: Option<&str>,
    ) -> Result<Page<Metric>>;
    async fn get_metric_history_bulk_interval(
        &self,
        ws: &Workspace,
        query: &HistoryInterval,
    ) -> Result<Vec<Metric>>;
    /// The datasets the runs of these experiments (of this workspace) used,
    /// each with its context; at most 1,000 (MLflow's cap).
    async fn search_datasets(
        &self,
        ws: &Workspace,
        experiment_ids: &[String],
    ) -> Result<Vec<DatasetSummary>>;
}

/// Opens the backend named by an MLflow-style store URI
/// (`sqlite:///relative.db`, `sqlite:////abs/path.db`, `postgresql://...`),
/// applies migrations and makes sure experiment 0 exists.
pub async fn open(uri: &str, default_artifact_root: &str) -> anyhow::Result<SqlStore> {
    let store = SqlStore::new(open_db(uri).await?, default_artifact_root);
    store.ensure_default_experiment().await?;
    Ok(store)
}

/// Applies migrations only (`ferroflow db upgrade`), like `mlflow db upgrade`.
pub async fn upgrade(uri: &str) -> anyhow::Result<()> {
    open_db(uri).await.map(drop)
}

/// Connects to the database the URI names and applies its migrations.
pub(crate) async fn open_db(uri: &str) -> anyhow::Result<Db> {
    let scheme = uri.split("://").next().unwrap_or_default();
    // SQLAlchemy URIs may name a driver (`postgresql+psycopg2://`).
    match scheme.split('+').next().unwrap_or_default() {
        "sqlite" => sqlite::open(uri).await,
        "postgresql" | "postgres" => postgres::open(uri).await,
        _ => anyhow::bail!(
            "unsupported backend store URI scheme '{scheme}': use sqlite:///<path> or postgresql://..."
        ),
    }
}

/// The error for a run or experiment id that names nothing in this workspace.
fn run_not_found(run_id: &str) -> MlflowError {
    MlflowError::not_found(format!("Run with id={run_id} not found"))
}
