//! `/mlflow/runs/*`: HTTP only, no SQL. The single-item log calls are
//! one-element batches, so they share `log_batch`'s rules and idempotence.

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::wire::{self, key_values, required, Body, KeyValue, Query, QueryFields};
use crate::app::AppState;
use crate::error::{MlflowError, Result};
use crate::model::{
    Dataset, Metric, ModelInput, ModelOutput, Run, RunInfo, RunStatus, Tag, Workspace,
};
use crate::search::ViewType;
use crate::store::{Batch, NewDatasetInput, NewRun, RunQuery, RunUpdate};

/// MLflow's default page size for `runs/search`.
pub(super) const DEFAULT_SEARCH_MAX_RESULTS: i64 = 1000;

fn empty() -> Json<Value> {
    Json(json!({}))
}

#[derive(Serialize)]
pub struct RunResponse {
    run: Run,
}

#[derive(Deserialize)]
pub struct CreateRun {
    experiment_id: Option<String>,
    user_id: Option<String>,
    run_name: Option<String>,
    #[serde(default, deserialize_with = "wire::opt_i64")]
    start_time: Option<i64>,
    #[serde(default)]
    tags: Vec<KeyValue>,
}

pub async fn create(
    State(state): State<AppState>,
    ws: Workspace,
    Body(req): Body<CreateRun>,
) -> Result<Json<RunResponse>> {
    let run = NewRun {
        experiment_id: required(req.experiment_id, "experiment_id")?,
        user_id: req.user_id,
        run_name: req.run_name,
        start_time: req.start_time,
        tags: key_values(req.tags, "tags")?,
    };
    let run = state.store.create_run(&ws, run).await?;
    Ok(Json(RunResponse { run }))
}

#[derive(Deserialize)]
pub struct RunId {
    run_id: Option<String>,
    run_uuid: Option<String>,
}
impl QueryFields for RunId {}

pub async fn get(
    State(state): State<AppState>,
    ws: Workspace,
    Query(req): Query<RunId>,
) -> Result<Json<RunResponse>> {
    let run_id = wire::run_id(req.run_id, req.run_uuid)?;
    let run = state.store.get_run(&ws, &run_id).await?;
    Ok(Json(RunResponse { run }))
}

#[derive(Deserialize)]
pub struct UpdateRun {
    run_id: Option<String>,
    run_uuid: Option<String>,
    #[serde(default, deserialize_with = "wire::opt_enum")]
    status: Option<String>,
    #[serde(default, deserialize_with = "wire::opt_i64")]
    end_time: Option<i64>,
    run_name: Option<String>,
}

#[derive(Serialize)]
pub struct UpdateRunResponse {
    run_info: RunInfo,
}

pub async fn update(
    State(state): State<AppState>,
    ws: Workspace,
    Body(req): Body<UpdateRun>,
) -> Result<Json<UpdateRunResponse>> {
    let run_id = wire::run_id(req.run_id, req.run_uuid)?;
    let status = req
        .status
        .map(|s| {
            RunStatus::parse(&s)
                .ok_or_else(|| MlflowError::invalid_parameter(format!("Invalid run status '{s}'")))
        })
        .transpose()?;
    let update = RunUpdate {
        status,
        end_time: req.end_time,
        run_name: req.run_name,
    };
    let run_info = state.store.update_run(&ws, &run_id, update).await?;
    Ok(Json(UpdateRunResponse { run_info }))
}

pub async fn delete(
    State(state): State<AppState>,
    ws: Workspace,
    Body(req): Body<RunId>,
) -> Result<Json<Value>> {
    let run_id = wire::run_id(req.run_id, req.run_uuid)?;
    state.store.set_run_deleted(&ws, &run_id, true).await?;
    Ok(empty())
}

pub async fn restore(
    State(state): State<AppState>,
    ws: Workspace,
    Body(req): Body<RunId>,
) -> Result<Json<Value>> {
    let run_id = wire::run_id(req.run_id, req.run_uuid)?;
    state.store.set_run_deleted(&ws, &run_id, false).await?;
    Ok(empty())
}

#[derive(Deserialize)]
pub struct SearchRuns {
    #[serde(default)]
    experiment_ids: Vec<String>,
    filter: Option<String>,
    #[serde(default, deserialize_with = "wire::opt_enum")]
    run_view_type: Option<String>,
    #[serde(default, deserialize_with = "wire::opt_i64")]
    max_results: Option<i64>,
    #[serde(default)]
    order_by: Vec<String>,
    page_token: Option<String>,
}

#[derive(Serialize)]
pub struct SearchRunsResponse {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    runs: Vec<Run>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_page_token: Option<String>,
}

pub async fn search(
    State(state): State<AppState>,
    ws: Workspace,
    Body(req): Body<SearchRuns>,
) -> Result<Json<SearchRunsResponse>> {
    let query = RunQuery {
        experiment_ids: req.experiment_ids,
        filter: req.filter.unwrap_or_default(),
        view: ViewType::parse(req.run_view_type.as_deref())?,
        max_results: req.max_results.unwrap_or(DEFAULT_SEARCH_MAX_RESULTS),
        order_by: req.order_by,
        page_token: req.page_token.filter(|t| !t.is_empty()),
    };
    let page = state.store.search_runs(&ws, &query).await?;
    Ok(Json(SearchRunsResponse {
        runs: page.items,
        next_page_token: page.next_page_token,
    }))
}

/// A metric as sent in `log-metric` and `log-batch`.
#[derive(Deserialize)]
pub struct MetricInput {
    key: Option<String>,
    #[serde(default, deserialize_with = "wire::opt_f64")]
    value: Option<f64>,
    #[serde(default, deserialize_with = "wire::opt_i64")]
    timestamp: Option<i64>,
    #[serde(default, deserialize_with = "wire::opt_i64")]
    step: Option<i64>,
    model_id: Option<String>,
    dataset_name: Option<String>,
    dataset_digest: Option<String>,
}

impl MetricInput {
    /// `prefix` names the field in errors: `""` for log-metric, `metrics[3].`
    /// for a batch item.
    fn into_metric(self, prefix: &str) -> Result<Metric> {
        Ok(Metric {
            key: required(self.key, &format!("{prefix}key"))?,
            value: self
                .value
                .ok_or_else(|| MlflowError::missing_parameter(&format!("{prefix}value")))?,
            timestamp: self
                .timestamp
                .ok_or_else(|| MlflowError::missing_parameter(&format!("{prefix}timestamp")))?,
            step: self.step.unwrap_or(0),
            run_id: None,
            // Empty strings are proto's "unset".
            model_id: self.model_id.filter(|id| !id.is_empty()),
            dataset_name: self.dataset_name.filter(|name| !name.is_empty()),
            dataset_digest: self.dataset_digest.filter(|digest| !digest.is_empty()),
        })
    }
}

#[derive(Deserialize)]
pub struct LogMetric {
    run_id: Option<String>,
    run_uuid: Option<String>,
    #[serde(flatten)]
    metric: MetricInput,
}

pub async fn log_metric(
    State(state): State<AppState>,
    ws: Workspace,
    Body(req): Body<LogMetric>,
) -> Result<Json<Value>> {
    let run_id = wire::run_id(req.run_id, req.run_uuid)?;
    let batch = Batch {
        metrics: vec![req.metric.into_metric("")?],
        ..Batch::default()
    };
    state.store.log_batch(&ws, &run_id, batch).await?;
    Ok(empty())
}

#[derive(Deserialize)]
pub struct LogKeyValue {
    run_id: Option<String>,
    run_uuid: Option<String>,
    key: Option<String>,
    value: Option<String>,
}

impl LogKeyValue {
    fn into_parts(self) -> Result<(String, Tag)> {
        let run_id = wire::run_id(self.run_id, self.run_uuid)?;
        let tag = Tag {
            key: required(self.key, "key")?,
            value: self.value.unwrap_or_default(),
        };
        Ok((run_id, tag))
    }
}

pub async fn log_parameter(
    State(state): State<AppState>,
    ws: Workspace,
    Body(req): Body<LogKeyValue>,
) -> Result<Json<Value>> {
    let (run_id, param) = req.into_parts()?;
    let batch = Batch {
        params: vec![param],
        ..Batch::default()
    };
    state.store.log_batch(&ws, &run_id, batch).await?;
    Ok(empty())
}

pub async fn set_tag(
    State(state): State<AppState>,
    ws: Workspace,
    Body(req): Body<LogKeyValue>,
) -> Result<Json<Value>> {
    let (run_id, tag) = req.into_parts()?;
    let batch = Batch {
        tags: vec![tag],
        ..Batch::default()
    };
    state.store.log_batch(&ws, &run_id, batch).await?;
    Ok(empty())
}

pub async fn delete_tag(
    State(state): State<AppState>,
    ws: Workspace,
    Body(req): Body<LogKeyValue>,
) -> Result<Json<Value>> {
    let (run_id, tag) = req.into_parts()?;
    state.store.delete_tag(&ws, &run_id, &tag.key).await?;
    Ok(empty())
}

#[derive(Deserialize)]
pub struct LogBatch {
    run_id: Option<String>,
    run_uuid: Option<String>,
    #[serde(default)]
    metrics: Vec<MetricInput>,
    #[serde(default)]
    params: Vec<KeyValue>,
    #[serde(default)]
    tags: Vec<KeyValue>,
}

pub async fn log_batch(
    State(state): State<AppState>,
    ws: Workspace,
    Body(req): Body<LogBatch>,
) -> Result<Json<Value>> {
    let run_id = wire::run_id(req.run_id, req.run_uuid)?;
    let metrics = req
        .metrics
        .into_iter()
        .enumerate()
        .map(|(i, m)| m.into_metric(&format!("metrics[{i}].")))
        .collect::<Result<Vec<_>>>()?;
    let batch = Batch {
        metrics,
        params: key_values(req.params, "params")?,
        tags: key_values(req.tags, "tags")?,
    };
    state.store.log_batch(&ws, &run_id, batch).await?;
    Ok(empty())
}

#[derive(Deserialize)]
pub struct DatasetMessage {
    name: Option<String>,
    digest: Option<String>,
    source_type: Option<String>,
    source: Option<String>,
    schema: Option<String>,
    profile: Option<String>,
}

#[derive(Deserialize)]
pub struct DatasetInputMessage {
    #[serde(default)]
    tags: Vec<KeyValue>,
    dataset: Option<DatasetMessage>,
}

#[derive(Deserialize)]
pub struct LogInputs {
    run_id: Option<String>,
    run_uuid: Option<String>,
    #[serde(default)]
    datasets: Vec<DatasetInputMessage>,
    #[serde(default)]
    models: Vec<ModelIdMessage>,
}

#[derive(Deserialize)]
pub struct ModelIdMessage {
    model_id: Option<String>,
    #[serde(default, deserialize_with = "wire::opt_i64")]
    step: Option<i64>,
}

/// The model ids of `models`, each required.
fn model_ids(models: Vec<ModelIdMessage>) -> Result<Vec<(String, Option<i64>)>> {
    models
        .into_iter()
        .enumerate()
        .map(|(i, m)| {
            Ok((
                required(m.model_id, &format!("models[{i}].model_id"))?,
                m.step,
            ))
        })
        .collect()
}

pub async fn log_inputs(
    State(state): State<AppState>,
    ws: Workspace,
    Body(req): Body<LogInputs>,
) -> Result<Json<Value>> {
    let run_id = wire::run_id(req.run_id, req.run_uuid)?;
    let inputs = req
        .datasets
        .into_iter()
        .enumerate()
        .map(|(i, input)| {
            let field = |name: &str| format!("datasets[{i}].dataset.{name}");
            let dataset = input
                .dataset
                .ok_or_else(|| MlflowError::missing_parameter(&format!("datasets[{i}].dataset")))?;
            Ok(NewDatasetInput {
                dataset: Dataset {
                    name: required(dataset.name, &field("name"))?,
                    digest: required(dataset.digest, &field("digest"))?,
                    source_type: required(dataset.source_type, &field("source_type"))?,
                    source: required(dataset.source, &field("source"))?,
                    schema: dataset.schema,
                    profile: dataset.profile,
                },
                tags: key_values(input.tags, &format!("datasets[{i}].tags"))?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let models = model_ids(req.models)?
        .into_iter()
        .map(|(model_id, _)| ModelInput { model_id })
        .collect();
    state.store.log_inputs(&ws, &run_id, inputs, models).await?;
    Ok(empty())
}

#[derive(Deserialize)]
pub struct LogOutputs {
    run_id: Option<String>,
    models: Option<Vec<ModelIdMessage>>,
}

/// `POST runs/outputs`: the logged models a run produced, called by every
/// MLflow 3 `log_model`.
pub async fn log_outputs(
    State(state): State<AppState>,
    ws: Workspace,
    Body(req): Body<LogOutputs>,
) -> Result<Json<Value>> {
    let run_id = required(req.run_id, "run_id")?;
    let models = req
        .models
        .ok_or_else(|| MlflowError::missing_parameter("models"))?;
    let models: Vec<ModelOutput> = model_ids(models)?
        .into_iter()
        .enumerate()
        .map(|(i, (model_id, step))| {
            let step =
                step.ok_or_else(|| MlflowError::missing_parameter(&format!("models[{i}].step")))?;
            Ok(ModelOutput { model_id, step })
        })
        .collect::<Result<_>>()?;
    state.store.log_outputs(&ws, &run_id, &models).await?;
    Ok(empty())
}

#[derive(Deserialize)]
pub struct LogModel {
    run_id: Option<String>,
    run_uuid: Option<String>,
    model_json: Option<String>,
}

pub async fn log_model(
    State(state): State<AppState>,
    ws: Workspace,
    Body(req): Body<LogModel>,
) -> Result<Json<Value>> {
    let run_id = wire::run_id(req.run_id, req.run_uuid)?;
    let model_json = required(req.model_json, "model_json")?;
    state.store.log_model(&ws, &run_id, &model_json).await?;
    Ok(empty())
}
