//! `/mlflow/registered-models/*` and `/mlflow/model-versions/*`: the model
//! registry's HTTP surface. HTTP only, no SQL and no registry rules.

use axum::extract::State;
use axum::Json;
use serde::de::{Deserializer, Error as _};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::wire::{self, key_values, required, Body, KeyValue, Query, QueryFields};
use crate::app::AppState;
use crate::error::Result;
use crate::model::{ModelVersion, RegisteredModel, Tag, Workspace};
use crate::store::registry::{SEARCH_MODEL_VERSIONS_DEFAULT, SEARCH_REGISTERED_MODELS_DEFAULT};
use crate::store::{NewModelVersion, RegistryQuery};

/// A version number: a JSON string as the proto declares it, but a bare
/// integer is taken too (hand-written clients send one).
fn opt_version<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Option<String>, D::Error> {
    match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(Value::Number(n)) if n.is_i64() => Ok(Some(n.to_string())),
        Some(other) => Err(D::Error::custom(format!(
            "expected a version string, got {other}"
        ))),
    }
}

#[derive(Serialize)]
pub struct RegisteredModelResponse {
    registered_model: RegisteredModel,
}

#[derive(Serialize)]
pub struct ModelVersionResponse {
    model_version: ModelVersion,
}

#[derive(Serialize)]
pub struct ModelVersionsResponse {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    model_versions: Vec<ModelVersion>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_page_token: Option<String>,
}

#[derive(Serialize)]
pub struct RegisteredModelsResponse {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    registered_models: Vec<RegisteredModel>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_page_token: Option<String>,
}

// ---------------------------------------------------------------- registered models

#[derive(Deserialize)]
pub struct CreateRegisteredModel {
    name: Option<String>,
    #[serde(default)]
    tags: Vec<KeyValue>,
    description: Option<String>,
}

pub async fn create_registered_model(
    State(state): State<AppState>,
    ws: Workspace,
    Body(req): Body<CreateRegisteredModel>,
) -> Result<Json<RegisteredModelResponse>> {
    let name = required(req.name, "name")?;
    let tags = key_values(req.tags, "tags")?;
    let registered_model = state
        .store
        .create_registered_model(&ws, &name, &tags, req.description.as_deref())
        .await?;
    Ok(Json(RegisteredModelResponse { registered_model }))
}

#[derive(Deserialize)]
pub struct ModelName {
    name: Option<String>,
}
impl QueryFields for ModelName {}

pub async fn get_registered_model(
    State(state): State<AppState>,
    ws: Workspace,
    Query(req): Query<ModelName>,
) -> Result<Json<RegisteredModelResponse>> {
    let name = required(req.name, "name")?;
    let registered_model = state.store.get_registered_model(&ws, &name).await?;
    Ok(Json(RegisteredModelResponse { registered_model }))
}

pub async fn delete_registered_model(
    State(state): State<AppState>,
    ws: Workspace,
    Body(req): Body<ModelName>,
) -> Result<Json<Value>> {
    let name = required(req.name, "name")?;
    state.store.delete_registered_model(&ws, &name).await?;
    Ok(Json(json!({})))
}

#[derive(Deserialize)]
pub struct RenameRegisteredModel {
    name: Option<String>,
    new_name: Option<String>,
}

pub async fn rename_registered_model(
    State(state): State<AppState>,
    ws: Workspace,
    Body(req): Body<RenameRegisteredModel>,
) -> Result<Json<RegisteredModelResponse>> {
    let name = required(req.name, "name")?;
    let new_name = required(req.new_name, "new_name")?;
    let registered_model = state
        .store
        .rename_registered_model(&ws, &name, &new_name)
        .await?;
    Ok(Json(RegisteredModelResponse { registered_model }))
}

#[derive(Deserialize)]
pub struct UpdateRegisteredModel {
    name: Option<String>,
    description: Option<String>,
}

pub async fn update_registered_model(
    State(state): State<AppState>,
    ws: Workspace,
    Body(req): Body<UpdateRegisteredModel>,
) -> Result<Json<RegisteredModelResponse>> {
    let name = required(req.name, "name")?;
    // An absent description reads as the proto default "", as in MLflow.
    let description = req.description.unwrap_or_default();
    let registered_model = state
        .store
        .update_registered_model(&ws, &name, Some(&description))
        .await?;
    Ok(Json(RegisteredModelResponse { registered_model }))
}

#[derive(Deserialize)]
pub struct SearchRegistry {
    filter: Option<String>,
    #[serde(default, deserialize_with = "wire::opt_i64")]
    max_results: Option<i64>,
    #[serde(default)]
    order_by: Vec<String>,
    page_token: Option<String>,
}
impl QueryFields for SearchRegistry {
    const REPEATED: &'static [&'static str] = &["order_by"];
}

impl SearchRegistry {
    fn into_query(self, default_max_results: i64) -> RegistryQuery {
        RegistryQuery {
            filter: self.filter.unwrap_or_default(),
            max_results: self.max_results.unwrap_or(default_max_results),
            order_by: self.order_by,
            page_token: self.page_token.filter(|t| !t.is_empty()),
        }
    }
}

pub async fn search_registered_models(
    State(state): State<AppState>,
    ws: Workspace,
    Query(req): Query<SearchRegistry>,
) -> Result<Json<RegisteredModelsResponse>> {
    let query = req.into_query(SEARCH_REGISTERED_MODELS_DEFAULT);
    let page = state.store.search_registered_models(&ws, &query).await?;
    Ok(Json(RegisteredModelsResponse {
        registered_models: page.items,
        next_page_token: page.next_page_token,
    }))
}

#[derive(Deserialize)]
pub struct GetLatestVersions {
    name: Option<String>,
    #[serde(default)]
    stages: Vec<String>,
}
impl QueryFields for GetLatestVersions {
    const REPEATED: &'static [&'static str] = &["stages"];
}

async fn latest_versions(
    state: AppState,
    ws: Workspace,
    req: GetLatestVersions,
) -> Result<Json<ModelVersionsResponse>> {
    let name = required(req.name, "name")?;
    let model_versions = state
        .store
        .get_latest_versions(&ws, &name, &req.stages)
        .await?;
    Ok(Json(ModelVersionsResponse {
        model_versions,
        next_page_token: None,
    }))
}

pub async fn get_latest_versions_post(
    State(state): State<AppState>,
    ws: Workspace,
    Body(req): Body<GetLatestVersions>,
) -> Result<Json<ModelVersionsResponse>> {
    latest_versions(state, ws, req).await
}

pub async fn get_latest_versions_get(
    State(state): State<AppState>,
    ws: Workspace,
    Query(req): Query<GetLatestVersions>,
) -> Result<Json<ModelVersionsResponse>> {
    latest_versions(state, ws, req).await
}

#[derive(Deserialize)]
pub struct RegisteredModelTag {
    name: Option<String>,
    key: Option<String>,
    value: Option<String>,
}

pub async fn set_registered_model_tag(
    State(state): State<AppState>,
    ws: Workspace,
    Body(req): Body<RegisteredModelTag>,
) -> Result<Json<Value>> {
    let name = required(req.name, "name")?;
    let tag = Tag {
        key: required(req.key, "key")?,
        value: req.value.unwrap_or_default(),
    };
    state
        .store
        .set_registered_model_tag(&ws, &name, &tag)
        .await?;
    Ok(Json(json!({})))
}

pub async fn delete_registered_model_tag(
    State(state): State<AppState>,
    ws: Workspace,
    Body(req): Body<RegisteredModelTag>,
) -> Result<Json<Value>> {
    let name = required(req.name, "name")?;
    let key = required(req.key, "key")?;
    state
        .store
        .delete_registered_model_tag(&ws, &name, &key)
        .await?;
    Ok(Json(json!({})))
}

#[derive(Deserialize)]
pub struct AliasRequest {
    name: Option<String>,
    alias: Option<String>,
    #[serde(default, deserialize_with = "opt_version")]
    version: Option<String>,
}
impl QueryFields for AliasRequest {}

pub async fn set_alias(
    State(state): State<AppState>,
    ws: Workspace,
    Body(req): Body<AliasRequest>,
) -> Result<Json<Value>> {
    let name = required(req.name, "name")?;
    let alias = required(req.alias, "alias")?;
    let version = required(req.version, "version")?;
    state
        .store
        .set_registered_model_alias(&ws, &name, &alias, &version)
        .await?;
    Ok(Json(json!({})))
}

pub async fn delete_alias(
    State(state): State<AppState>,
    ws: Workspace,
    Body(req): Body<AliasRequest>,
) -> Result<Json<Value>> {
    let name = required(req.name, "name")?;
    let alias = required(req.alias, "alias")?;
    state
        .store
        .delete_registered_model_alias(&ws, &name, &alias)
        .await?;
    Ok(Json(json!({})))
}

pub async fn get_by_alias(
    State(state): State<AppState>,
    ws: Workspace,
    Query(req): Query<AliasRequest>,
) -> Result<Json<ModelVersionResponse>> {
    let name = required(req.name, "name")?;
    let alias = required(req.alias, "alias")?;
    let model_version = state
        .store
        .get_model_version_by_alias(&ws, &name, &alias)
        .await?;
    Ok(Json(ModelVersionResponse { model_version }))
}

// ---------------------------------------------------------------- model versions

#[derive(Deserialize)]
pub struct CreateModelVersion {
    name: Option<String>,
    source: Option<String>,
    run_id: Option<String>,
    #[serde(default)]
    tags: Vec<KeyValue>,
    run_link: Option<String>,
    description: Option<String>,
    model_id: Option<String>,
}

pub async fn create_model_version(
    State(state): State<AppState>,
    ws: Workspace,
    Body(req): Body<CreateModelVersion>,
) -> Result<Json<ModelVersionResponse>> {
    let version = NewModelVersion {
        name: required(req.name, "name")?,
        source: required(req.source, "source")?,
        run_id: req.run_id,
        model_id: req.model_id,
        tags: key_values(req.tags, "tags")?,
        run_link: req.run_link,
        description: req.description,
    };
    let model_version = state.store.create_model_version(&ws, version).await?;
    Ok(Json(ModelVersionResponse { model_version }))
}

#[derive(Deserialize)]
pub struct VersionRef {
    name: Option<String>,
    #[serde(default, deserialize_with = "opt_version")]
    version: Option<String>,
}
impl QueryFields for VersionRef {}

impl VersionRef {
    fn required(self) -> Result<(String, String)> {
        Ok((
            required(self.name, "name")?,
            required(self.version, "version")?,
        ))
    }
}

pub async fn get_model_version(
    State(state): State<AppState>,
    ws: Workspace,
    Query(req): Query<VersionRef>,
) -> Result<Json<ModelVersionResponse>> {
    let (name, version) = req.required()?;
    let model_version = state.store.get_model_version(&ws, &name, &version).await?;
    Ok(Json(ModelVersionResponse { model_version }))
}

pub async fn delete_model_version(
    State(state): State<AppState>,
    ws: Workspace,
    Body(req): Body<VersionRef>,
) -> Result<Json<Value>> {
    let (name, version) = req.required()?;
    state
        .store
        .delete_model_version(&ws, &name, &version)
        .await?;
    Ok(Json(json!({})))
}

pub async fn get_download_uri(
    State(state): State<AppState>,
    ws: Workspace,
    Query(req): Query<VersionRef>,
) -> Result<Json<Value>> {
    let (name, version) = req.required()?;
    let artifact_uri = state
        .store
        .get_model_version_download_uri(&ws, &name, &version)
        .await?;
    Ok(Json(json!({ "artifact_uri": artifact_uri })))
}

#[derive(Deserialize)]
pub struct UpdateModelVersion {
    name: Option<String>,
    #[serde(default, deserialize_with = "opt_version")]
    version: Option<String>,
    description: Option<String>,
}

pub async fn update_model_version(
    State(state): State<AppState>,
    ws: Workspace,
    Body(req): Body<UpdateModelVersion>,
) -> Result<Json<ModelVersionResponse>> {
    let name = required(req.name, "name")?;
    let version = required(req.version, "version")?;
    let model_version = state
        .store
        .update_model_version(&ws, &name, &version, req.description.as_deref())
        .await?;
    Ok(Json(ModelVersionResponse { model_version }))
}

#[derive(Deserialize)]
pub struct TransitionStage {
    name: Option<String>,
    #[serde(default, deserialize_with = "opt_version")]
    version: Option<String>,
    stage: Option<String>,
    #[serde(default, deserialize_with = "wire::opt_bool")]
    archive_existing_versions: Option<bool>,
}

pub async fn transition_stage(
    State(state): State<AppState>,
    ws: Workspace,
    Body(req): Body<TransitionStage>,
) -> Result<Json<ModelVersionResponse>> {
    let name = required(req.name, "name")?;
    let version = required(req.version, "version")?;
    let stage = required(req.stage, "stage")?;
    let model_version = state
        .store
        .transition_model_version_stage(
            &ws,
            &name,
            &version,
            &stage,
            req.archive_existing_versions.unwrap_or(false),
        )
        .await?;
    Ok(Json(ModelVersionResponse { model_version }))
}

pub async fn search_model_versions(
    State(state): State<AppState>,
    ws: Workspace,
    Query(req): Query<SearchRegistry>,
) -> Result<Json<ModelVersionsResponse>> {
    let query = req.into_query(SEARCH_MODEL_VERSIONS_DEFAULT);
    let page = state.store.search_model_versions(&ws, &query).await?;
    Ok(Json(ModelVersionsResponse {
        model_versions: page.items,
        next_page_token: page.next_page_token,
    }))
}

#[derive(Deserialize)]
pub struct ModelVersionTag {
    name: Option<String>,
    #[serde(default, deserialize_with = "opt_version")]
    version: Option<String>,
    key: Option<String>,
    value: Option<String>,
}

pub async fn set_model_version_tag(
    State(state): State<AppState>,
    ws: Workspace,
    Body(req): Body<ModelVersionTag>,
) -> Result<Json<Value>> {
    let name = required(req.name, "name")?;
    let version = required(req.version, "version")?;
    let tag = Tag {
        key: required(req.key, "key")?,
        value: req.value.unwrap_or_default(),
    };
    state
        .store
        .set_model_version_tag(&ws, &name, &version, &tag)
        .await?;
    Ok(Json(json!({})))
}

pub async fn delete_model_version_tag(
    State(state): State<AppState>,
    ws: Workspace,
    Body(req): Body<ModelVersionTag>,
) -> Result<Json<Value>> {
    let name = required(req.name, "name")?;
    let version = required(req.version, "version")?;
    let key = required(req.key, "key")?;
    state
        .store
        .delete_model_version_tag(&ws, &name, &version, &key)
        .await?;
    Ok(Json(json!({})))
}
