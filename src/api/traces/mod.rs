//! `/mlflow/traces/*`: MLflow 3 trace records (`/api/3.0`), the calls the
//! client still makes on `/api/2.0` (tags, deletion, links to runs, the
//! legacy search the UI probes with), and assessments. Handlers parse and
//! answer in MLflow's protobuf JSON; the rules live in `store::traces`.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::Json;
use chrono::{DateTime, SecondsFormat};
use serde::Deserialize;
use serde_json::{json, Map, Value};

mod assessments;
mod legacy;
mod metrics;
mod otlp;
mod spans;
mod translate;

pub use assessments::{create_assessment, delete_assessment, get_assessment, update_assessment};
pub use legacy::{end_trace_v2, start_trace_v2};
pub use metrics::query_trace_metrics;
pub use otlp::export as otlp_export;
pub use spans::{batch_get_traces, get_trace};

use super::wire::{self, required, Body, ExactBody, Query, QueryFields};
use crate::app::AppState;
use crate::error::{MlflowError, Result};
use crate::model::{Page, Workspace};
use crate::store::traces::{
    truncated, TraceDeletion, TraceInfo, TraceQuery, MAX_TAG_VALUE_LENGTH,
    SEARCH_DEFAULT_MAX_RESULTS,
};
use assessments::assessment_json;

// ---------------------------------------------------------------------------
// Protobuf JSON: timestamps, durations, trace records, assessments
// ---------------------------------------------------------------------------

/// A `google.protobuf.Timestamp` as JSON: RFC 3339 in UTC with 0, 3, 6 or
/// 9 fractional digits, as protobuf prints it.
fn timestamp(ms: i64) -> Value {
    DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(SecondsFormat::AutoSi, true))
        .map_or(Value::Null, Value::String)
}

fn parse_timestamp(field: &str, text: &str) -> Result<i64> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.timestamp_millis())
        .map_err(|_| {
            MlflowError::invalid_parameter(format!(
                "Invalid value '{text}' for '{field}': expected an RFC 3339 timestamp"
            ))
        })
}

/// A `google.protobuf.Duration` as JSON (`"1.500s"`, `"2s"`), written by
/// hand: protobuf's exact spelling, which no crate here prints.
fn duration(ms: i64) -> Value {
    let (seconds, millis) = (ms / 1000, (ms % 1000).abs());
    let sign = if ms < 0 && seconds == 0 { "-" } else { "" };
    Value::String(match millis {
        0 => format!("{seconds}s"),
        _ => format!("{sign}{seconds}.{millis:03}s"),
    })
}

fn parse_duration(text: &str) -> Result<i64> {
    let invalid = || {
        MlflowError::invalid_parameter(format!(
            "Invalid value '{text}' for 'execution_duration': expected a duration like '1.5s'"
        ))
    };
    let seconds: f64 = text
        .strip_suffix('s')
        .and_then(|s| s.parse().ok())
        .filter(|s: &f64| s.is_finite())
        .ok_or_else(invalid)?;
    Ok((seconds * 1000.0).round() as i64)
}

/// MLflow's `TraceInfo.to_proto` cuts metadata values to this many characters.
const MAX_METADATA_VALUE_CHARS: usize = 250;

/// A map as a trace record prints it: values cut as MLflow's `to_proto`
/// cuts them (the stored values stay whole).
fn cut_values(map: &BTreeMap<String, String>, max: usize) -> Value {
    let cut = map
        .iter()
        .map(|(key, value)| (key.clone(), Value::String(truncated(value, max))))
        .collect();
    Value::Object(cut)
}

/// MLflow's `TraceInfoV3` as JSON; unset fields are left out.
fn trace_info_v3(info: &TraceInfo) -> Value {
    let mut out = Map::new();
    out.insert("trace_id".into(), json!(info.trace_id));
    if let Some(id) = &info.client_request_id {
        out.insert("client_request_id".into(), json!(id));
    }
    out.insert(
        "trace_location".into(),
        json!({
            "type": "MLFLOW_EXPERIMENT",
            "mlflow_experiment": {"experiment_id": info.experiment_id},
        }),
    );
    for (name, value) in [
        ("request_preview", &info.request_preview),
        ("response_preview", &info.response_preview),
    ] {
        if let Some(value) = value {
            out.insert(name.into(), json!(value));
        }
    }
    out.insert("request_time".into(), timestamp(info.request_time));
    if let Some(ms) = info.execution_duration {
        out.insert("execution_duration".into(), duration(ms));
    }
    out.insert("state".into(), json!(info.state));
    out.insert(
        "trace_metadata".into(),
        cut_values(&info.trace_metadata, MAX_METADATA_VALUE_CHARS),
    );
    if !info.assessments.is_empty() {
        let assessments: Vec<Value> = info.assessments.iter().map(assessment_json).collect();
        out.insert("assessments".into(), Value::Array(assessments));
    }
    out.insert("tags".into(), cut_values(&info.tags, MAX_TAG_VALUE_LENGTH));
    Value::Object(out)
}

/// The legacy `TraceInfo` (v2) the UI's trace list and the v2 calls read.
pub(super) fn trace_info_v2(info: &TraceInfo) -> Value {
    let pairs = |map: &BTreeMap<String, String>, max: usize| -> Vec<Value> {
        map.iter()
            .map(|(key, value)| json!({"key": key, "value": truncated(value, max)}))
            .collect()
    };
    let status = match info.state.as_str() {
        "STATE_UNSPECIFIED" => "TRACE_STATUS_UNSPECIFIED",
        other => other,
    };
    let mut out = json!({
        "request_id": info.trace_id,
        "experiment_id": info.experiment_id,
        "timestamp_ms": info.request_time,
        "status": status,
        "request_metadata": pairs(&info.trace_metadata, MAX_METADATA_VALUE_CHARS),
        "tags": pairs(&info.tags, MAX_TAG_VALUE_LENGTH),
    });
    // The v2 message has no "unset": MLflow prints 0 until the trace ends.
    out["execution_time_ms"] = json!(info.execution_duration.unwrap_or(0));
    out
}

// ---------------------------------------------------------------------------
// Trace records
// ---------------------------------------------------------------------------

#[derive(Deserialize, Default)]
struct ExperimentLocation {
    experiment_id: Option<String>,
}

#[derive(Deserialize, Default)]
struct Location {
    mlflow_experiment: Option<ExperimentLocation>,
}

impl Location {
    fn experiment_id(self) -> Option<String> {
        self.mlflow_experiment?.experiment_id
    }
}

#[derive(Deserialize, Default)]
struct TraceInfoMessage {
    trace_id: Option<String>,
    client_request_id: Option<String>,
    trace_location: Option<Location>,
    request_preview: Option<String>,
    response_preview: Option<String>,
    request_time: Option<String>,
    execution_duration: Option<String>,
    state: Option<String>,
    #[serde(default)]
    trace_metadata: BTreeMap<String, String>,
    #[serde(default)]
    tags: BTreeMap<String, String>,
}

impl TraceInfoMessage {
    fn into_trace_info(self) -> Result<TraceInfo> {
        let experiment_id = self.trace_location.and_then(Location::experiment_id);
        Ok(TraceInfo {
            trace_id: required(self.trace_id, "trace_id")?,
            client_request_id: self.client_request_id.filter(|id| !id.is_empty()),
            experiment_id: required(experiment_id, "trace_location.mlflow_experiment")?,
            request_time: match &self.request_time {
                Some(text) => parse_timestamp("request_time", text)?,
                None => 0,
            },
            execution_duration: self
                .execution_duration
                .as_deref()
                .map(parse_duration)
                .transpose()?,
            state: self
                .state
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| "STATE_UNSPECIFIED".into()),
            request_preview: self.request_preview,
            response_preview: self.response_preview,
            trace_metadata: self.trace_metadata,
            tags: self.tags,
            assessments: Vec::new(),
        })
    }
}

#[derive(Deserialize)]
pub struct TraceMessage {
    trace_info: Option<TraceInfoMessage>,
}

#[derive(Deserialize)]
pub struct StartTrace {
    trace: Option<TraceMessage>,
}

/// `POST /api/3.0/mlflow/traces` (StartTraceV3): the record of a finished
/// trace. The client sends it once its spans are done; a resend rewrites it.
pub async fn start_trace(
    State(state): State<AppState>,
    ws: Workspace,
    ExactBody(req): ExactBody<StartTrace>,
) -> Result<Json<Value>> {
    let message = req
        .trace
        .and_then(|t| t.trace_info)
        .ok_or_else(|| MlflowError::missing_parameter("trace"))?;
    let info = state
        .store
        .start_trace(&ws, message.into_trace_info()?, true)
        .await?;
    Ok(Json(json!({"trace": {"trace_info": trace_info_v3(&info)}})))
}

/// `GET /api/3.0/mlflow/traces/{trace_id}` (GetTraceInfoV3).
pub async fn get_trace_info(
    State(state): State<AppState>,
    ws: Workspace,
    Path(trace_id): Path<String>,
) -> Result<Json<Value>> {
    let info = state.store.get_trace_info(&ws, &trace_id).await?;
    Ok(Json(json!({"trace": {"trace_info": trace_info_v3(&info)}})))
}

/// `GET /api/2.0/mlflow/traces/{trace_id}/info` (the legacy GetTraceInfo).
pub async fn get_trace_info_v2(
    State(state): State<AppState>,
    ws: Workspace,
    Path(trace_id): Path<String>,
) -> Result<Json<Value>> {
    let info = state.store.get_trace_info(&ws, &trace_id).await?;
    Ok(Json(json!({"trace_info": trace_info_v2(&info)})))
}

#[derive(Deserialize)]
pub struct BatchGetInfos {
    #[serde(default)]
    trace_ids: Vec<String>,
    experiment_ids: Option<Vec<String>>,
}

/// `POST /api/3.0/mlflow/traces/batchGetInfos`: the records that exist,
/// limited to `experiment_ids` when given.
pub async fn batch_get_trace_infos(
    State(state): State<AppState>,
    ws: Workspace,
    Body(req): Body<BatchGetInfos>,
) -> Result<Json<Value>> {
    if req.trace_ids.is_empty() {
        return Err(MlflowError::missing_parameter("trace_ids"));
    }
    let mut infos = state
        .store
        .batch_get_trace_infos(&ws, &req.trace_ids)
        .await?;
    if let Some(experiments) = req.experiment_ids {
        infos.retain(|info| experiments.contains(&info.experiment_id));
    }
    let mut out = Map::new();
    if !infos.is_empty() {
        let infos = infos.iter().map(trace_info_v3).collect();
        out.insert("trace_infos".into(), Value::Array(infos));
    }
    Ok(Json(Value::Object(out)))
}

#[derive(Deserialize)]
pub struct SearchTraces {
    #[serde(default)]
    locations: Vec<Location>,
    filter: Option<String>,
    #[serde(default, deserialize_with = "wire::opt_i64")]
    max_results: Option<i64>,
    #[serde(default)]
    order_by: Vec<String>,
    page_token: Option<String>,
}

/// A search's answer as protobuf JSON prints it: no `traces` when empty.
fn page_json(page: Page<TraceInfo>, render: fn(&TraceInfo) -> Value) -> Value {
    let mut out = Map::new();
    if !page.items.is_empty() {
        let traces = page.items.iter().map(render).collect();
        out.insert("traces".into(), Value::Array(traces));
    }
    if let Some(token) = page.next_page_token {
        out.insert("next_page_token".into(), Value::String(token));
    }
    Value::Object(out)
}

/// `POST /api/3.0/mlflow/traces/search` (SearchTracesV3).
pub async fn search_traces(
    State(state): State<AppState>,
    ws: Workspace,
    Body(req): Body<SearchTraces>,
) -> Result<Json<Value>> {
    if req.locations.is_empty() {
        return Err(MlflowError::missing_parameter("locations"));
    }
    let query = TraceQuery {
        experiment_ids: req
            .locations
            .into_iter()
            .filter_map(Location::experiment_id)
            .collect(),
        filter: req.filter.unwrap_or_default(),
        max_results: req.max_results.unwrap_or(SEARCH_DEFAULT_MAX_RESULTS),
        order_by: req.order_by,
        page_token: req.page_token,
    };
    let page = state.store.search_traces(&ws, &query).await?;
    Ok(Json(page_json(page, trace_info_v3)))
}

#[derive(Deserialize)]
pub struct SearchTracesV2 {
    #[serde(default)]
    experiment_ids: Vec<String>,
    filter: Option<String>,
    #[serde(default, deserialize_with = "wire::opt_i64")]
    max_results: Option<i64>,
    #[serde(default)]
    order_by: Vec<String>,
    page_token: Option<String>,
}
impl QueryFields for SearchTracesV2 {
    const REPEATED: &'static [&'static str] = &["experiment_ids", "order_by"];
}

/// `GET /api/2.0/mlflow/traces`: the legacy search, which the UI's
/// experiment page uses to probe whether an experiment holds traces.
pub async fn search_traces_v2(
    State(state): State<AppState>,
    ws: Workspace,
    Query(req): Query<SearchTracesV2>,
) -> Result<Json<Value>> {
    if req.experiment_ids.is_empty() {
        return Err(MlflowError::missing_parameter("experiment_ids"));
    }
    let query = TraceQuery {
        experiment_ids: req.experiment_ids,
        filter: req.filter.unwrap_or_default(),
        max_results: req.max_results.unwrap_or(SEARCH_DEFAULT_MAX_RESULTS),
        order_by: req.order_by,
        page_token: req.page_token,
    };
    let page = state.store.search_traces(&ws, &query).await?;
    Ok(Json(page_json(page, trace_info_v2)))
}

#[derive(Deserialize)]
pub struct SetTraceTag {
    key: Option<String>,
    value: Option<String>,
}

/// `PATCH /api/{2.0,3.0}/mlflow/traces/{trace_id}/tags`.
pub async fn set_trace_tag(
    State(state): State<AppState>,
    ws: Workspace,
    Path(trace_id): Path<String>,
    Body(req): Body<SetTraceTag>,
) -> Result<Json<Value>> {
    let key = required(req.key, "key")?;
    let value = req.value.unwrap_or_default();
    state
        .store
        .set_trace_tag(&ws, &trace_id, &key, &value)
        .await?;
    Ok(Json(json!({})))
}

#[derive(Deserialize)]
pub struct DeleteTraceTag {
    key: Option<String>,
}
impl QueryFields for DeleteTraceTag {}

/// `DELETE /api/{2.0,3.0}/mlflow/traces/{trace_id}/tags`; the key comes in
/// the body (the client) or the query string (the UI).
pub async fn delete_trace_tag(
    State(state): State<AppState>,
    ws: Workspace,
    Path(trace_id): Path<String>,
    Query(req): Query<DeleteTraceTag>,
) -> Result<Json<Value>> {
    let key = required(req.key, "key")?;
    state.store.delete_trace_tag(&ws, &trace_id, &key).await?;
    Ok(Json(json!({})))
}

#[derive(Deserialize)]
pub struct DeleteTraces {
    experiment_id: Option<String>,
    #[serde(default, deserialize_with = "wire::opt_i64")]
    max_timestamp_millis: Option<i64>,
    #[serde(default, deserialize_with = "wire::opt_i64")]
    max_traces: Option<i64>,
    #[serde(default)]
    request_ids: Vec<String>,
}

/// `POST /api/2.0/mlflow/traces/delete-traces`: older than a time (the
/// oldest first up to `max_traces`), or by ids.
pub async fn delete_traces(
    State(state): State<AppState>,
    ws: Workspace,
    Body(req): Body<DeleteTraces>,
) -> Result<Json<Value>> {
    let deletion = TraceDeletion {
        experiment_id: required(req.experiment_id, "experiment_id")?,
        max_timestamp_millis: req.max_timestamp_millis,
        max_traces: req.max_traces,
        trace_ids: req.request_ids,
    };
    let deleted = state.store.delete_traces(&ws, &deletion).await?;
    Ok(Json(json!({"traces_deleted": deleted})))
}

#[derive(Deserialize)]
pub struct LinkToRun {
    #[serde(default)]
    trace_ids: Vec<String>,
    run_id: Option<String>,
}

/// `POST /api/2.0/mlflow/traces/link-to-run`.
pub async fn link_traces_to_run(
    State(state): State<AppState>,
    ws: Workspace,
    Body(req): Body<LinkToRun>,
) -> Result<Json<Value>> {
    let run_id = required(req.run_id, "run_id")?;
    state
        .store
        .link_traces_to_run(&ws, &req.trace_ids, &run_id)
        .await?;
    Ok(Json(json!({})))
}

#[derive(Deserialize)]
pub struct PromptVersionRef {
    name: Option<String>,
    version: Option<String>,
}

#[derive(Deserialize)]
pub struct LinkPrompts {
    trace_id: Option<String>,
    prompt_versions: Option<Vec<PromptVersionRef>>,
}

/// `POST /api/2.0/mlflow/traces/link-prompts`: the prompt versions a trace
/// used, which `prompt = 'name/version'` then finds it by.
pub async fn link_prompts_to_trace(
    State(state): State<AppState>,
    ws: Workspace,
    Body(req): Body<LinkPrompts>,
) -> Result<Json<Value>> {
    let trace_id = required(req.trace_id, "trace_id")?;
    let versions = req
        .prompt_versions
        .ok_or_else(|| MlflowError::missing_parameter("prompt_versions"))?
        .into_iter()
        .map(|pv| {
            let name = required(pv.name, "prompt_versions.name")?;
            let version = required(pv.version, "prompt_versions.version")?;
            if version.parse::<i64>().is_err() {
                return Err(MlflowError::invalid_parameter(format!(
                    "Invalid prompt version '{version}': it must be an integer"
                )));
            }
            Ok(format!("{name}/{version}"))
        })
        .collect::<Result<Vec<_>>>()?;
    state
        .store
        .link_prompts_to_trace(&ws, &trace_id, &versions)
        .await?;
    Ok(Json(json!({})))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_read_and_print_as_protobuf_json() {
        assert_eq!(timestamp(1_700_000_000_000), json!("2023-11-14T22:13:20Z"));
        assert_eq!(
            timestamp(1_700_000_000_123),
            json!("2023-11-14T22:13:20.123Z")
        );
        assert_eq!(
            parse_timestamp("t", "2023-11-14T22:13:20.123456Z").unwrap(),
            1_700_000_000_123
        );
        assert!(parse_timestamp("t", "yesterday").is_err());
        assert_eq!(duration(1500), json!("1.500s"));
        assert_eq!(duration(2000), json!("2s"));
        assert_eq!(duration(7), json!("0.007s"));
        assert_eq!(parse_duration("1.5s").unwrap(), 1500);
        assert_eq!(parse_duration("0.000001s").unwrap(), 0);
        assert!(parse_duration("1.5").is_err());
    }
}
