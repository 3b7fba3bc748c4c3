//! `/mlflow/experiments/*`: HTTP only, no SQL.

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::wire::{self, key_values, required, Body, KeyValue, Query, QueryFields};
use crate::app::AppState;
use crate::error::{MlflowError, Result};
use crate::model::{DatasetSummary, Experiment, Tag, Workspace};
use crate::search::ViewType;
use crate::store::ExperimentQuery;

#[derive(Deserialize)]
pub struct CreateExperiment {
    name: Option<String>,
    artifact_location: Option<String>,
    #[serde(default)]
    tags: Vec<KeyValue>,
}

pub async fn create(
    State(state): State<AppState>,
    ws: Workspace,
    Body(req): Body<CreateExperiment>,
) -> Result<Json<Value>> {
    let name = required(req.name, "name")?;
    let tags = key_values(req.tags, "tags")?;
    // With workspaces on, the store refuses any location, in MLflow's words.
    if let Some(location) = req.artifact_location.as_deref().filter(|l| !l.is_empty()) {
        if state.workspaces.is_none() {
            state.artifact_locations.check(location)?;
        }
    }
    let id = state
        .store
        .create_experiment(&ws, &name, req.artifact_location.as_deref(), &tags)
        .await?;
    Ok(Json(json!({ "experiment_id": id })))
}

#[derive(Deserialize)]
pub struct GetExperiment {
    experiment_id: Option<String>,
}
impl QueryFields for GetExperiment {}

#[derive(Serialize)]
pub struct ExperimentResponse {
    experiment: Experiment,
}

pub async fn get(
    State(state): State<AppState>,
    ws: Workspace,
    Query(req): Query<GetExperiment>,
) -> Result<Json<ExperimentResponse>> {
    let id = required(req.experiment_id, "experiment_id")?;
    let experiment = state.store.get_experiment(&ws, &id).await?;
    Ok(Json(ExperimentResponse { experiment }))
}

#[derive(Deserialize)]
pub struct GetByName {
    experiment_name: Option<String>,
}
impl QueryFields for GetByName {}

pub async fn get_by_name(
    State(state): State<AppState>,
    ws: Workspace,
    Query(req): Query<GetByName>,
) -> Result<Json<ExperimentResponse>> {
    let name = required(req.experiment_name, "experiment_name")?;
    let experiment = state.store.get_experiment_by_name(&ws, &name).await?;
    Ok(Json(ExperimentResponse { experiment }))
}

#[derive(Deserialize)]
pub struct SearchExperiments {
    // Absent reads as the proto default 0, which MLflow rejects as not positive.
    #[serde(default, deserialize_with = "wire::opt_i64")]
    max_results: Option<i64>,
    page_token: Option<String>,
    filter: Option<String>,
    #[serde(default)]
    order_by: Vec<String>,
    #[serde(default, deserialize_with = "wire::opt_enum")]
    view_type: Option<String>,
}
impl QueryFields for SearchExperiments {
    const REPEATED: &'static [&'static str] = &["order_by"];
}

#[derive(Serialize)]
pub struct SearchExperimentsResponse {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    experiments: Vec<Experiment>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_page_token: Option<String>,
}

async fn search(
    state: AppState,
    ws: Workspace,
    req: SearchExperiments,
) -> Result<Json<SearchExperimentsResponse>> {
    let query = ExperimentQuery {
        view: ViewType::parse(req.view_type.as_deref())?,
        filter: req.filter.unwrap_or_default(),
        max_results: req.max_results.unwrap_or(0),
        order_by: req.order_by,
        page_token: req.page_token.filter(|t| !t.is_empty()),
    };
    let page = state.store.search_experiments(&ws, &query).await?;
    Ok(Json(SearchExperimentsResponse {
        experiments: page.items,
        next_page_token: page.next_page_token,
    }))
}

pub async fn search_post(
    State(state): State<AppState>,
    ws: Workspace,
    Body(req): Body<SearchExperiments>,
) -> Result<Json<SearchExperimentsResponse>> {
    search(state, ws, req).await
}

pub async fn search_get(
    State(state): State<AppState>,
    ws: Workspace,
    Query(req): Query<SearchExperiments>,
) -> Result<Json<SearchExperimentsResponse>> {
    search(state, ws, req).await
}

#[derive(Deserialize)]
pub struct UpdateExperiment {
    experiment_id: Option<String>,
    new_name: Option<String>,
}

pub async fn update(
    State(state): State<AppState>,
    ws: Workspace,
    Body(req): Body<UpdateExperiment>,
) -> Result<Json<Value>> {
    let id = required(req.experiment_id, "experiment_id")?;
    let new_name = required(req.new_name, "new_name")?;
    state.store.rename_experiment(&ws, &id, &new_name).await?;
    Ok(Json(json!({})))
}

#[derive(Deserialize)]
pub struct ExperimentId {
    experiment_id: Option<String>,
}

pub async fn delete(
    State(state): State<AppState>,
    ws: Workspace,
    Body(req): Body<ExperimentId>,
) -> Result<Json<Value>> {
    let id = required(req.experiment_id, "experiment_id")?;
    state.store.set_experiment_deleted(&ws, &id, true).await?;
    Ok(Json(json!({})))
}

pub async fn restore(
    State(state): State<AppState>,
    ws: Workspace,
    Body(req): Body<ExperimentId>,
) -> Result<Json<Value>> {
    let id = required(req.experiment_id, "experiment_id")?;
    state.store.set_experiment_deleted(&ws, &id, false).await?;
    Ok(Json(json!({})))
}

#[derive(Deserialize)]
pub struct ExperimentTagRequest {
    experiment_id: Option<String>,
    key: Option<String>,
    value: Option<String>,
}

pub async fn set_tag(
    State(state): State<AppState>,
    ws: Workspace,
    Body(req): Body<ExperimentTagRequest>,
) -> Result<Json<Value>> {
    let id = required(req.experiment_id, "experiment_id")?;
    let tag = Tag {
        key: required(req.key, "key")?,
        value: req.value.unwrap_or_default(),
    };
    state.store.set_experiment_tag(&ws, &id, &tag).await?;
    Ok(Json(json!({})))
}

pub async fn delete_tag(
    State(state): State<AppState>,
    ws: Workspace,
    Body(req): Body<ExperimentTagRequest>,
) -> Result<Json<Value>> {
    let id = required(req.experiment_id, "experiment_id")?;
    let key = required(req.key, "key")?;
    state.store.delete_experiment_tag(&ws, &id, &key).await?;
    Ok(Json(json!({})))
}

/// MLflow's cap on the experiments one `search-datasets` call names.
const MAX_EXPERIMENTS_SEARCH_DATASETS: usize = 20;

#[derive(Deserialize)]
pub struct SearchDatasets {
    #[serde(default)]
    experiment_ids: Vec<String>,
}

#[derive(Serialize)]
pub struct SearchDatasetsResponse {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    dataset_summaries: Vec<DatasetSummary>,
}

/// `POST /ajax-api/2.0/mlflow/experiments/search-datasets`: the datasets the
/// runs table offers as filters (MLflow's ajax-only call).
pub async fn search_datasets(
    State(state): State<AppState>,
    ws: Workspace,
    Body(req): Body<SearchDatasets>,
) -> Result<Json<SearchDatasetsResponse>> {
    if req.experiment_ids.is_empty() {
        return Err(MlflowError::invalid_parameter(
            "SearchDatasets request must specify at least one experiment_id.",
        ));
    }
    if req.experiment_ids.len() > MAX_EXPERIMENTS_SEARCH_DATASETS {
        return Err(MlflowError::invalid_parameter(format!(
            "SearchDatasets request cannot specify more than {MAX_EXPERIMENTS_SEARCH_DATASETS} \
             experiment_ids. Received {} experiment_ids.",
            req.experiment_ids.len()
        )));
    }
    let dataset_summaries = state
        .store
        .search_datasets(&ws, &req.experiment_ids)
        .await?;
    Ok(Json(SearchDatasetsResponse { dataset_summaries }))
}
