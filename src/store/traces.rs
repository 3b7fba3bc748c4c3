//! MLflow 3 traces: the trace records the client writes when a traced call
//! ends (`StartTraceV3`), their tags and metadata, searches over them, and
//! the assessments (feedback, expectations) attached to them. The trait, the
//! entities and MLflow's rules for their fields; no SQL, no wire format.
//!
//! Spans are not here: the client uploads them as `traces.json` through the
//! artifact proxy to the trace's `mlflow.artifactLocation`, as it does
//! against an MLflow server whose `/version` predates OTLP ingest.

use std::collections::BTreeMap;

use async_trait::async_trait;

use crate::error::{MlflowError, Result};
use crate::model::{Page, Workspace};
use crate::store::span_facts::SpanFacts;
use crate::store::trace_metrics::{DataPoint, MetricQuery};

/// Tags and metadata keys MLflow gives a meaning to.
pub mod keys {
    /// Tag: where the client uploads (and reads) the trace's spans.
    pub const ARTIFACT_LOCATION: &str = "mlflow.artifactLocation";
    /// Tag kept in `trace_info.trace_name`, not in `trace_tags`.
    pub const TRACE_NAME: &str = "mlflow.traceName";
    /// Metadata: the run the trace was made in.
    pub const SOURCE_RUN: &str = "mlflow.sourceRun";
    /// Metadata kept in `trace_info` columns (MLflow's promoted keys).
    pub const SESSION: &str = "mlflow.trace.session";
    pub const TOKEN_USAGE: &str = "mlflow.trace.tokenUsage";
    pub const COST: &str = "mlflow.trace.cost";
    /// Metadata: the user a span named (`user.id`), when the client did not.
    pub const USER: &str = "mlflow.trace.user";
    /// Metadata: `StartTraceV3` has written the trace's top-level fields.
    pub const INFO_FINALIZED: &str = "mlflow.trace.infoFinalized";
    /// Tag: where the spans are; `TRACKING_STORE` when they are in the database.
    pub const SPANS_LOCATION: &str = "mlflow.trace.spansLocation";
    pub const TRACKING_STORE: &str = "TRACKING_STORE";
    /// Tags the server owns: where the spans are. MLflow lets clients
    /// overwrite the artifact location; here it is refused too, since it
    /// decides which files `get-trace-artifact` serves.
    pub const SERVER_OWNED: [&str; 4] = [
        ARTIFACT_LOCATION,
        SPANS_LOCATION,
        "mlflow.trace.archiveLocation",
        "mlflow.trace.archivalFailure",
    ];
}

/// `trace_info`'s token-usage columns, named like the keys of the metadata's
/// JSON, in the order MLflow writes them back.
pub const TOKEN_COLUMNS: [&str; 6] = [
    "input_tokens",
    "output_tokens",
    "total_tokens",
    "cache_read_input_tokens",
    "cache_creation_input_tokens",
    "cache_creation_input_tokens_above_1hr",
];
/// `trace_info`'s cost columns, likewise.
pub const COST_COLUMNS: [&str; 3] = ["input_cost", "output_cost", "total_cost"];

/// Column sizes of MLflow's trace tables.
pub const MAX_TRACE_ID_LENGTH: usize = 50;
pub const MAX_TAG_KEY_LENGTH: usize = 250;
/// `set_trace_tag` truncates values to this (MLflow's `MAX_CHARS_IN_TRACE_INFO_TAGS_VALUE`).
pub const MAX_TAG_VALUE_LENGTH: usize = 4096;
/// `trace_tags.value` / `trace_request_metadata.value`.
pub const MAX_STORED_VALUE_LENGTH: usize = 8000;
pub const MAX_PREVIEW_LENGTH: usize = 1000;
pub const MAX_TRACE_NAME_LENGTH: usize = 4096;
pub const MAX_SESSION_ID_LENGTH: usize = 250;
pub const MAX_CLIENT_REQUEST_ID_LENGTH: usize = 50;
/// `traces/search`: default and largest page.
pub const SEARCH_DEFAULT_MAX_RESULTS: i64 = 100;
pub const SEARCH_MAX_RESULTS: i64 = 500;
/// `traces/link-to-run`: most traces per call.
pub const MAX_LINKS_PER_REQUEST: usize = 100;

/// A trace's record (MLflow's `TraceInfo`, V3). Times are epoch ms.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TraceInfo {
    pub trace_id: String,
    pub client_request_id: Option<String>,
    pub experiment_id: String,
    pub request_time: i64,
    pub execution_duration: Option<i64>,
    /// `OK`, `ERROR`, `IN_PROGRESS` or `STATE_UNSPECIFIED`.
    pub state: String,
    pub request_preview: Option<String>,
    pub response_preview: Option<String>,
    pub trace_metadata: BTreeMap<String, String>,
    pub tags: BTreeMap<String, String>,
    pub assessments: Vec<Assessment>,
}

/// One span as MLflow's `spans` table holds it; `content` is MLflow's span
/// dictionary as JSON text, which readers turn back into the span.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NewSpan {
    /// The MLflow trace id (`tr-` and the OTel trace id in hex).
    pub trace_id: String,
    pub span_id: String,
    pub parent_span_id: Option<String>,
    pub name: String,
    pub span_type: Option<String>,
    /// `OK`, `ERROR` or `UNSET` (MLflow's `SpanStatusCode`).
    pub status: String,
    pub start_time_ns: i64,
    pub end_time_ns: Option<i64>,
    pub content: String,
    /// What its attributes say about it and its trace.
    pub facts: SpanFacts,
}

/// The trace states MLflow stores in `trace_info.status`.
pub const TRACE_STATES: [&str; 4] = ["STATE_UNSPECIFIED", "OK", "ERROR", "IN_PROGRESS"];

/// Feedback or an expectation on a trace (or one of its spans).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Assessment {
    pub assessment_id: String,
    pub trace_id: String,
    pub name: String,
    pub kind: AssessmentKind,
    /// The value as JSON text, as MLflow stores it (`json.dumps(value)`).
    pub value: String,
    /// Feedback only: `{"error_code", "error_message", "stack_trace"}` as JSON text.
    pub error: Option<String>,
    pub source_type: String,
    pub source_id: Option<String>,
    pub span_id: Option<String>,
    pub run_id: Option<String>,
    pub rationale: Option<String>,
    pub metadata: Option<BTreeMap<String, String>>,
    pub overrides: Option<String>,
    pub valid: bool,
    pub create_time: i64,
    pub last_update_time: i64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum AssessmentKind {
    #[default]
    Feedback,
    Expectation,
}

impl AssessmentKind {
    /// `assessments.assessment_type`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Feedback => "feedback",
            Self::Expectation => "expectation",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "feedback" => Some(Self::Feedback),
            "expectation" => Some(Self::Expectation),
            _ => None,
        }
    }
}

/// The fields `UpdateAssessment` changes (its `update_mask`); `None` keeps.
#[derive(Debug, Clone, Default)]
pub struct AssessmentUpdate {
    pub name: Option<String>,
    /// A new value, with the kind the request gave it.
    pub value: Option<(AssessmentKind, String, Option<String>)>,
    pub rationale: Option<String>,
    pub metadata: Option<BTreeMap<String, String>>,
}

/// Arguments of `traces/search`.
#[derive(Debug, Clone, Default)]
pub struct TraceQuery {
    pub experiment_ids: Vec<String>,
    pub filter: String,
    pub max_results: i64,
    pub order_by: Vec<String>,
    pub page_token: Option<String>,
}

/// Arguments of `traces/delete-traces`: by age (with a cap) or by ids.
#[derive(Debug, Clone, Default)]
pub struct TraceDeletion {
    pub experiment_id: String,
    pub max_timestamp_millis: Option<i64>,
    pub max_traces: Option<i64>,
    pub trace_ids: Vec<String>,
}

#[async_trait]
pub trait TraceStore: Send + Sync {
    /// Writes the trace's record, or rewrites it when the client sends it
    /// again (a retry, or the record of a trace whose spans came first).
    /// A `final_record` (StartTraceV3's) is marked so: from then on spans
    /// no longer change its times, state, usage or cost. The legacy v2
    /// calls write open records.
    async fn start_trace(
        &self,
        ws: &Workspace,
        info: TraceInfo,
        final_record: bool,
    ) -> Result<TraceInfo>;
    async fn get_trace_info(&self, ws: &Workspace, trace_id: &str) -> Result<TraceInfo>;
    /// The records of these ids that exist here, in the order asked.
    async fn batch_get_trace_infos(
        &self,
        ws: &Workspace,
        trace_ids: &[String],
    ) -> Result<Vec<TraceInfo>>;
    async fn search_traces(&self, ws: &Workspace, query: &TraceQuery) -> Result<Page<TraceInfo>>;
    async fn set_trace_tag(
        &self,
        ws: &Workspace,
        trace_id: &str,
        key: &str,
        value: &str,
    ) -> Result<()>;
    async fn delete_trace_tag(&self, ws: &Workspace, trace_id: &str, key: &str) -> Result<()>;
    /// How many traces were deleted.
    async fn delete_traces(&self, ws: &Workspace, deletion: &TraceDeletion) -> Result<i64>;
    async fn link_traces_to_run(
        &self,
        ws: &Workspace,
        trace_ids: &[String],
        run_id: &str,
    ) -> Result<()>;
    /// Stores spans that arrived over OTLP, in experiment `experiment_id`:
    /// each trace gets its record if it has none yet (its times and state
    /// from its spans until the client's own record arrives), and a span
    /// sent again replaces itself.
    async fn log_spans(
        &self,
        ws: &Workspace,
        experiment_id: &str,
        spans: Vec<NewSpan>,
    ) -> Result<()>;
    /// Links prompt versions (`name/version`) to a trace; linking again is
    /// a no-op. The prompts are not looked up, as in MLflow.
    async fn link_prompts_to_trace(
        &self,
        ws: &Workspace,
        trace_id: &str,
        prompt_versions: &[String],
    ) -> Result<()>;
    /// A `traces/metrics` query's data points, in group order.
    async fn query_trace_metrics(
        &self,
        ws: &Workspace,
        query: &MetricQuery,
    ) -> Result<Vec<DataPoint>>;
    /// The spans stored in the database (MLflow's `spans.content`, one JSON
    /// text per span in start order) of those traces of this workspace that
    /// have any; traces whose spans are artifacts are absent.
    async fn trace_spans(
        &self,
        ws: &Workspace,
        trace_ids: &[String],
    ) -> Result<BTreeMap<String, Vec<String>>>;

    async fn create_assessment(&self, ws: &Workspace, assessment: Assessment)
        -> Result<Assessment>;
    async fn get_assessment(
        &self,
        ws: &Workspace,
        trace_id: &str,
        assessment_id: &str,
    ) -> Result<Assessment>;
    async fn update_assessment(
        &self,
        ws: &Workspace,
        trace_id: &str,
        assessment_id: &str,
        update: AssessmentUpdate,
    ) -> Result<Assessment>;
    async fn delete_assessment(
        &self,
        ws: &Workspace,
        trace_id: &str,
        assessment_id: &str,
    ) -> Result<()>;
}

pub fn trace_not_found(trace_id: &str) -> MlflowError {
    MlflowError::not_found(format!("Trace with ID '{trace_id}' not found."))
}

/// The first `max` characters: MLflow truncates previews and tag values
/// rather than refusing the trace that carries them.
pub fn truncated(value: &str, max: usize) -> String {
    match value.char_indices().nth(max) {
        Some((end, _)) => value[..end].to_string(),
        None => value.to_string(),
    }
}

fn too_long(field: &str, value: &str, max: usize) -> Result<()> {
    if value.chars().count() > max {
        return Err(MlflowError::invalid_parameter(format!(
            "'{field}' exceeds the maximum length of {max} characters"
        )));
    }
    Ok(())
}

/// MLflow's checks of a `StartTraceV3` record, and the truncation of what
/// would not fit its columns. Refuses what MLflow refuses (ids, names,
/// states); shortens what MLflow's client would have shortened.
pub fn validate_trace_info(info: &mut TraceInfo) -> Result<()> {
    if info.trace_id.is_empty() {
        return Err(MlflowError::missing_parameter("trace_id"));
    }
    too_long("trace_id", &info.trace_id, MAX_TRACE_ID_LENGTH)?;
    if let Some(id) = &info.client_request_id {
        too_long("client_request_id", id, MAX_CLIENT_REQUEST_ID_LENGTH)?;
    }
    if !TRACE_STATES.contains(&info.state.as_str()) {
        return Err(MlflowError::invalid_parameter(format!(
            "Invalid trace state '{}'. Valid states are {TRACE_STATES:?}",
            info.state
        )));
    }
    if let Some(name) = info.tags.get(keys::TRACE_NAME) {
        too_long("trace name", name, MAX_TRACE_NAME_LENGTH)?;
    }
    if let Some(session) = info.trace_metadata.get(keys::SESSION) {
        too_long(keys::SESSION, session, MAX_SESSION_ID_LENGTH)?;
    }
    for preview in [&mut info.request_preview, &mut info.response_preview]
        .into_iter()
        .flatten()
    {
        *preview = truncated(preview, MAX_PREVIEW_LENGTH);
    }
    for map in [&mut info.tags, &mut info.trace_metadata] {
        if let Some(key) = map
            .keys()
            .find(|k| k.is_empty() || k.chars().count() > MAX_TAG_KEY_LENGTH)
        {
            return Err(MlflowError::invalid_parameter(format!(
                "Invalid key '{}': it must be 1 to {MAX_TAG_KEY_LENGTH} characters long",
                truncated(key, 32)
            )));
        }
        for value in map.values_mut() {
            *value = truncated(value, MAX_STORED_VALUE_LENGTH);
        }
    }
    Ok(())
}

/// `set_trace_tag`'s checks (MLflow's `_validate_trace_tag`): the key must
/// be a valid tag name; the value is truncated.
pub fn validate_trace_tag(key: &str, value: &str) -> Result<String> {
    if key.is_empty() {
        return Err(MlflowError::missing_parameter("key"));
    }
    too_long("key", key, MAX_TAG_KEY_LENGTH)?;
    refuse_server_owned(key, "set")?;
    let value = truncated(value, MAX_TAG_VALUE_LENGTH);
    if key == keys::TRACE_NAME {
        too_long("trace name", &value, MAX_TRACE_NAME_LENGTH)?;
    }
    Ok(value)
}

/// Tags the server owns cannot be set or deleted through the tag calls.
pub fn refuse_server_owned(key: &str, operation: &str) -> Result<()> {
    if keys::SERVER_OWNED.contains(&key) {
        return Err(MlflowError::invalid_parameter(format!(
            "Tag '{key}' is immutable and cannot be {operation} on a trace."
        )));
    }
    Ok(())
}

/// `delete-traces`' rules (MLflow's `AbstractStore.delete_traces`).
pub fn validate_deletion(deletion: &TraceDeletion) -> Result<()> {
    let by_ids = !deletion.trace_ids.is_empty();
    let refuse = |message: String| Err(MlflowError::invalid_parameter(message));
    if deletion.max_timestamp_millis.is_none() && !by_ids {
        return refuse("Either `max_timestamp_millis` or `trace_ids` must be specified.".into());
    }
    if deletion.max_timestamp_millis.is_some() && by_ids {
        return refuse(
            "Only one of `max_timestamp_millis` and `trace_ids` can be specified.".into(),
        );
    }
    if by_ids && deletion.max_traces.is_some() {
        return refuse("`max_traces` can't be specified if `trace_ids` is specified.".into());
    }
    if let Some(max) = deletion.max_traces.filter(|m| *m <= 0) {
        return refuse(format!(
            "`max_traces` must be a positive integer, received {max}."
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_counts_characters_not_bytes() {
        assert_eq!(truncated("héllo", 2), "hé");
        assert_eq!(truncated("hi", 5), "hi");
    }

    #[test]
    fn a_trace_record_is_checked_and_its_long_values_shortened() {
        let mut info = TraceInfo {
            trace_id: "tr-1".into(),
            experiment_id: "0".into(),
            state: "OK".into(),
            request_preview: Some("x".repeat(5000)),
            tags: [("k".to_string(), "v".repeat(9000))].into(),
            ..TraceInfo::default()
        };
        validate_trace_info(&mut info).unwrap();
        assert_eq!(info.request_preview.unwrap().len(), MAX_PREVIEW_LENGTH);
        assert_eq!(info.tags["k"].len(), MAX_STORED_VALUE_LENGTH);

        let mut bad = TraceInfo {
            trace_id: "t".repeat(51),
            state: "OK".into(),
            ..TraceInfo::default()
        };
        assert!(validate_trace_info(&mut bad).is_err());
        bad.trace_id = "tr-2".into();
        bad.state = "DONE".into();
        assert!(validate_trace_info(&mut bad).is_err());
    }

    #[test]
    fn deletions_name_ages_or_ids_not_both() {
        let by_age = TraceDeletion {
            experiment_id: "1".into(),
            max_timestamp_millis: Some(5),
            ..TraceDeletion::default()
        };
        assert!(validate_deletion(&by_age).is_ok());
        let both = TraceDeletion {
            trace_ids: vec!["tr-1".into()],
            ..by_age.clone()
        };
        assert!(validate_deletion(&both).is_err());
        let neither = TraceDeletion {
            experiment_id: "1".into(),
            ..TraceDeletion::default()
        };
        assert!(validate_deletion(&neither).is_err());
        let zero = TraceDeletion {
            max_traces: Some(0),
            ..by_age
        };
        assert!(validate_deletion(&zero).is_err());
    }
}
