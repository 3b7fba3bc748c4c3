//! The legacy v2 trace calls (`POST /api/2.0/mlflow/traces`, StartTrace,
//! and `PATCH /api/2.0/mlflow/traces/{request_id}`, EndTrace): a record
//! opened when the trace starts and closed when it ends. Clients before
//! MLflow 2.21 make them, and current clients fall back to them when
//! StartTraceV3 is missing. Both answer the v2 `TraceInfo`.

use axum::extract::{Path, State};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::trace_info_v2;
use crate::api::wire::{self, key_values, required, Body, KeyValue};
use crate::app::AppState;
use crate::error::{MlflowError, Result};
use crate::model::Workspace;
use crate::store::traces::TraceInfo;

#[derive(Deserialize)]
pub struct StartTraceV2 {
    experiment_id: Option<String>,
    #[serde(default, deserialize_with = "wire::opt_i64")]
    timestamp_ms: Option<i64>,
    #[serde(default)]
    request_metadata: Vec<KeyValue>,
    #[serde(default)]
    tags: Vec<KeyValue>,
}

#[derive(Deserialize)]
pub struct EndTraceV2 {
    #[serde(default, deserialize_with = "wire::opt_i64")]
    timestamp_ms: Option<i64>,
    #[serde(default, deserialize_with = "wire::opt_enum")]
    status: Option<String>,
    #[serde(default)]
    request_metadata: Vec<KeyValue>,
    #[serde(default)]
    tags: Vec<KeyValue>,
}

/// A v2 `TraceStatus` as the record's state; its enum numbers are accepted
/// too, as protobuf JSON allows.
fn state_of(status: Option<String>) -> Result<String> {
    let state = match status.as_deref().unwrap_or("TRACE_STATUS_UNSPECIFIED") {
        "TRACE_STATUS_UNSPECIFIED" | "0" => "STATE_UNSPECIFIED",
        "OK" | "1" => "OK",
        "ERROR" | "2" => "ERROR",
        "IN_PROGRESS" | "3" => "IN_PROGRESS",
        other => {
            return Err(MlflowError::invalid_parameter(format!(
                "Invalid value {other} for parameter 'status' supplied."
            )))
        }
    };
    Ok(state.into())
}

/// `POST /api/2.0/mlflow/traces`: a new, in-progress record.
pub async fn start_trace_v2(
    State(state): State<AppState>,
    ws: Workspace,
    Body(req): Body<StartTraceV2>,
) -> Result<Json<Value>> {
    let info = TraceInfo {
        // v2 ids are bare uuid hex, without v3's `tr-`.
        trace_id: uuid::Uuid::new_v4().simple().to_string(),
        experiment_id: required(req.experiment_id, "experiment_id")?,
        request_time: req.timestamp_ms.unwrap_or_default(),
        state: "IN_PROGRESS".into(),
        trace_metadata: key_values(req.request_metadata, "request_metadata")?
            .into_iter()
            .map(|tag| (tag.key, tag.value))
            .collect(),
        tags: key_values(req.tags, "tags")?
            .into_iter()
            .map(|tag| (tag.key, tag.value))
            .collect(),
        ..TraceInfo::default()
    };
    let info = state.store.start_trace(&ws, info, false).await?;
    Ok(Json(json!({"trace_info": trace_info_v2(&info)})))
}

/// `PATCH /api/2.0/mlflow/traces/{request_id}`: the record closed with its
/// end time and status; metadata and tags are merged into what it has.
pub async fn end_trace_v2(
    State(state): State<AppState>,
    ws: Workspace,
    Path(request_id): Path<String>,
    Body(req): Body<EndTraceV2>,
) -> Result<Json<Value>> {
    let mut info = state.store.get_trace_info(&ws, &request_id).await?;
    let end_ms = req.timestamp_ms.unwrap_or_default();
    info.execution_duration = Some(end_ms - info.request_time);
    info.state = state_of(req.status)?;
    for tag in key_values(req.request_metadata, "request_metadata")? {
        info.trace_metadata.insert(tag.key, tag.value);
    }
    for tag in key_values(req.tags, "tags")? {
        info.tags.insert(tag.key, tag.value);
    }
    info.assessments.clear();
    let info = state.store.start_trace(&ws, info, false).await?;
    Ok(Json(json!({"trace_info": trace_info_v2(&info)})))
}
