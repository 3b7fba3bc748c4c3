//! `/mlflow/logged-models/*`: MLflow 3 logged models. Every `log_model`
//! creates one, uploads the files under its artifact root, then finalizes it;
//! `models:/m-...` and `runs:/...` URIs are resolved through these routes.

use axum::extract::{Path, State};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::wire::{self, key_values, required, Body, KeyValue, Query, QueryFields};
use crate::app::AppState;
use crate::error::{MlflowError, Result};
use crate::model::{LoggedModel, LoggedModelStatus, Workspace};
use crate::search::logged_models::{DatasetFilter, LoggedModelOrder};
use crate::store::{LoggedModelQuery, NewLoggedModel};

#[derive(Serialize)]
pub struct ModelResponse {
    model: LoggedModel,
}

/// Proto strings are "unset" when empty.
fn non_empty(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.is_empty())
}

#[derive(Deserialize)]
pub struct CreateLoggedModel {
    experiment_id: Option<String>,
    name: Option<String>,
    model_type: Option<String>,
    source_run_id: Option<String>,
    #[serde(default)]
    params: Vec<KeyValue>,
    #[serde(default)]
    tags: Vec<KeyValue>,
}

pub async fn create(
    State(state): State<AppState>,
    ws: Workspace,
    Body(req): Body<CreateLoggedModel>,
) -> Result<Json<ModelResponse>> {
    let model = NewLoggedModel {
        experiment_id: required(req.experiment_id, "experiment_id")?,
        name: non_empty(req.name),
        model_type: non_empty(req.model_type),
        source_run_id: non_empty(req.source_run_id),
        params: key_values(req.params, "params")?,
        tags: key_values(req.tags, "tags")?,
    };
    let model = state.store.create_logged_model(&ws, model).await?;
    Ok(Json(ModelResponse { model }))
}

#[derive(Deserialize)]
pub struct GetLoggedModel {
    #[serde(default, deserialize_with = "wire::opt_bool")]
    allow_deleted: Option<bool>,
}
impl QueryFields for GetLoggedModel {}

pub async fn get(
    State(state): State<AppState>,
    ws: Workspace,
    Path(model_id): Path<String>,
    Query(req): Query<GetLoggedModel>,
) -> Result<Json<ModelResponse>> {
    let allow_deleted = req.allow_deleted.unwrap_or(false);
    let model = state
        .store
        .get_logged_model(&ws, &model_id, allow_deleted)
        .await?;
    Ok(Json(ModelResponse { model }))
}

#[derive(Deserialize)]
pub struct FinalizeLoggedModel {
    #[serde(default, deserialize_with = "wire::opt_enum")]
    status: Option<String>,
}

/// `PATCH /logged-models/{id}`: the status after the upload. The body repeats
/// the id; the path's is the one used.
pub async fn finalize(
    State(state): State<AppState>,
    ws: Workspace,
    Path(model_id): Path<String>,
    Body(req): Body<FinalizeLoggedModel>,
) -> Result<Json<ModelResponse>> {
    let status = required(req.status, "status")?;
    let status = LoggedModelStatus::parse(&status).ok_or_else(|| {
        MlflowError::invalid_parameter(format!("Invalid value '{status}' for parameter 'status'"))
    })?;
    let model = state
        .store
        .finalize_logged_model(&ws, &model_id, status)
        .await?;
    Ok(Json(ModelResponse { model }))
}

pub async fn delete(
    State(state): State<AppState>,
    ws: Workspace,
    Path(model_id): Path<String>,
) -> Result<Json<Value>> {
    state.store.delete_logged_model(&ws, &model_id).await?;
    Ok(Json(json!({})))
}

#[derive(Deserialize)]
pub struct SetTags {
    #[serde(default)]
    tags: Vec<KeyValue>,
}

/// `PATCH /logged-models/{id}/tags`: upserts.
pub async fn set_tags(
    State(state): State<AppState>,
    ws: Workspace,
    Path(model_id): Path<String>,
    Body(req): Body<SetTags>,
) -> Result<Json<Value>> {
    let tags = key_values(req.tags, "tags")?;
    state
        .store
        .set_logged_model_tags(&ws, &model_id, &tags)
        .await?;
    Ok(Json(json!({})))
}

pub async fn delete_tag(
    State(state): State<AppState>,
    ws: Workspace,
    Path((model_id, key)): Path<(String, String)>,
) -> Result<Json<Value>> {
    state
        .store
        .delete_logged_model_tag(&ws, &model_id, &key)
        .await?;
    Ok(Json(json!({})))
}

#[derive(Deserialize)]
pub struct LogParams {
    #[serde(default)]
    params: Vec<KeyValue>,
}

pub async fn log_params(
    State(state): State<AppState>,
    ws: Workspace,
    Path(model_id): Path<String>,
    Body(req): Body<LogParams>,
) -> Result<Json<Value>> {
    let params = key_values(req.params, "params")?;
    state
        .store
        .log_logged_model_params(&ws, &model_id, &params)
        .await?;
    Ok(Json(json!({})))
}

#[derive(Deserialize)]
pub struct DatasetMessage {
    dataset_name: Option<String>,
    dataset_digest: Option<String>,
}

#[derive(Deserialize)]
pub struct OrderByMessage {
    field_name: Option<String>,
    #[serde(default, deserialize_with = "wire::opt_bool")]
    ascending: Option<bool>,
    dataset_name: Option<String>,
    dataset_digest: Option<String>,
}

#[derive(Deserialize)]
pub struct SearchLoggedModels {
    experiment_ids: Option<Vec<String>>,
    filter: Option<String>,
    #[serde(default)]
    datasets: Vec<DatasetMessage>,
    #[serde(default, deserialize_with = "wire::opt_i64")]
    max_results: Option<i64>,
    #[serde(default)]
    order_by: Vec<OrderByMessage>,
    page_token: Option<String>,
}

#[derive(Serialize)]
pub struct SearchResponse {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    models: Vec<LoggedModel>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_page_token: Option<String>,
}

pub async fn search(
    State(state): State<AppState>,
    ws: Workspace,
    Body(req): Body<SearchLoggedModels>,
) -> Result<Json<SearchResponse>> {
    let order_by = req
        .order_by
        .into_iter()
        .enumerate()
        .map(|(i, o)| {
            Ok(LoggedModelOrder {
                field_name: required(o.field_name, &format!("order_by[{i}].field_name"))?,
                ascending: o.ascending.unwrap_or(true),
                dataset_name: non_empty(o.dataset_name),
                dataset_digest: non_empty(o.dataset_digest),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let query = LoggedModelQuery {
        experiment_ids: req
            .experiment_ids
            .ok_or_else(|| MlflowError::missing_parameter("experiment_ids"))?,
        filter: non_empty(req.filter),
        datasets: req
            .datasets
            .into_iter()
            .map(|d| DatasetFilter {
                dataset_name: d.dataset_name.unwrap_or_default(),
                dataset_digest: non_empty(d.dataset_digest),
            })
            .collect(),
        max_results: req.max_results,
        order_by: (!order_by.is_empty()).then_some(order_by),
        page_token: non_empty(req.page_token),
    };
    let page = state.store.search_logged_models(&ws, &query).await?;
    Ok(Json(SearchResponse {
        models: page.items,
        next_page_token: page.next_page_token,
    }))
}
