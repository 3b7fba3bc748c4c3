//! MLflow entities as the wire shows them (`service.proto` messages).
//!
//! The store returns these and the API serializes them unchanged, so field
//! names are MLflow's snake_case proto names. Unset fields are omitted and
//! empty lists are left out, as MLflow's own JSON printer does; `status` and
//! other enum fields are always present because the client reads a missing
//! enum as its first value (a missing run status reads as RUNNING).

use serde::{Serialize, Serializer};

/// Now, in milliseconds since the epoch: MLflow's timestamps.
pub fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

/// The workspace (tenant) every store operation is scoped to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workspace(String);

impl Workspace {
    /// The workspace MLflow's schema assigns to rows written without one.
    pub const DEFAULT: &'static str = "default";

    pub fn new(name: impl Into<String>) -> Self {
        Self(name.into())
    }

    pub fn name(&self) -> &str {
        &self.0
    }
}

impl Default for Workspace {
    fn default() -> Self {
        Self::new(Self::DEFAULT)
    }
}

/// A workspace as MLflow's workspace API shows it; unset fields are omitted.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct WorkspaceInfo {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Where this workspace's new experiments put their artifacts, instead of
    /// `<server root>/workspaces/<name>`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_artifact_root: Option<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Tag {
    pub key: String,
    pub value: String,
}

pub type Param = Tag;

#[derive(Debug, Clone, Serialize)]
pub struct Experiment {
    pub experiment_id: String,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub artifact_location: Option<String>,
    pub lifecycle_stage: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_update_time: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub creation_time: Option<i64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<Tag>,
    pub workspace: String,
}

/// Run states, serialized by name. Stored as the same names in `runs.status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RunStatus {
    Running,
    Scheduled,
    Finished,
    Failed,
    Killed,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "RUNNING",
            Self::Scheduled => "SCHEDULED",
            Self::Finished => "FINISHED",
            Self::Failed => "FAILED",
            Self::Killed => "KILLED",
        }
    }

    /// Accepts the enum name or its proto number, as protobuf's JSON parser does.
    pub fn parse(value: &str) -> Option<Self> {
        Some(match value {
            "RUNNING" | "1" => Self::Running,
            "SCHEDULED" | "2" => Self::Scheduled,
            "FINISHED" | "3" => Self::Finished,
            "FAILED" | "4" => Self::Failed,
            "KILLED" | "5" => Self::Killed,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct RunInfo {
    pub run_id: String,
    /// Legacy alias of `run_id`; old clients still read it.
    pub run_uuid: String,
    pub run_name: String,
    pub experiment_id: String,
    pub user_id: String,
    pub status: RunStatus,
    pub start_time: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_time: Option<i64>,
    pub artifact_uri: String,
    pub lifecycle_stage: String,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct RunData {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub metrics: Vec<Metric>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub params: Vec<Param>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<Tag>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Dataset {
    pub name: String,
    pub digest: String,
    pub source_type: String,
    pub source: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
}

/// `SearchDatasets`' summary: a dataset an experiment's runs used, and the
/// context (`mlflow.data.context`: train, eval...) it was used in.
#[derive(Debug, Clone, Serialize)]
pub struct DatasetSummary {
    pub experiment_id: String,
    pub name: String,
    pub digest: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DatasetInput {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<Tag>,
    pub dataset: Dataset,
}

/// `RunInputs`; MLflow emits `inputs: {}` even when a run has none.
#[derive(Debug, Clone, Serialize, Default)]
pub struct RunInputs {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dataset_inputs: Vec<DatasetInput>,
    /// Logged models the run consumed (`runs/log-inputs` `models`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub model_inputs: Vec<ModelInput>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ModelInput {
    pub model_id: String,
}

/// `RunOutputs`; MLflow emits `outputs: {}` even when a run has none.
#[derive(Debug, Clone, Serialize, Default)]
pub struct RunOutputs {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub model_outputs: Vec<ModelOutput>,
}

/// A logged model a run produced (`runs/outputs`), at a training step.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ModelOutput {
    pub model_id: String,
    pub step: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Run {
    pub info: RunInfo,
    pub data: RunData,
    pub inputs: RunInputs,
    pub outputs: RunOutputs,
}

/// One metric point. `value` carries NaN; ±Infinity never reaches the store
/// (MLflow clamps it to ±f64::MAX on the way in).
#[derive(Debug, Clone, Serialize, PartialEq, Default)]
pub struct Metric {
    pub key: String,
    #[serde(serialize_with = "serialize_double")]
    pub value: f64,
    pub timestamp: i64,
    pub step: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    /// MLflow 3: the logged model and dataset a metric was computed for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dataset_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dataset_digest: Option<String>,
}

/// `LoggedModelStatus`, serialized by name; stored as its proto number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum LoggedModelStatus {
    #[serde(rename = "LOGGED_MODEL_STATUS_UNSPECIFIED")]
    Unspecified,
    #[serde(rename = "LOGGED_MODEL_PENDING")]
    Pending,
    #[serde(rename = "LOGGED_MODEL_READY")]
    Ready,
    #[serde(rename = "LOGGED_MODEL_UPLOAD_FAILED")]
    UploadFailed,
}

impl LoggedModelStatus {
    pub fn number(self) -> i64 {
        match self {
            Self::Unspecified => 0,
            Self::Pending => 1,
            Self::Ready => 2,
            Self::UploadFailed => 3,
        }
    }

    pub fn from_number(number: i64) -> Option<Self> {
        Some(match number {
            0 => Self::Unspecified,
            1 => Self::Pending,
            2 => Self::Ready,
            3 => Self::UploadFailed,
            _ => return None,
        })
    }

    /// Accepts the proto name or number, as protobuf's JSON parser does; the
    /// short names (`READY`) are what MLflow's Python enum prints.
    pub fn parse(value: &str) -> Option<Self> {
        match value.trim() {
            "LOGGED_MODEL_STATUS_UNSPECIFIED" | "UNSPECIFIED" => Some(Self::Unspecified),
            "LOGGED_MODEL_PENDING" | "PENDING" => Some(Self::Pending),
            "LOGGED_MODEL_READY" | "READY" => Some(Self::Ready),
            "LOGGED_MODEL_UPLOAD_FAILED" | "FAILED" | "UPLOAD_FAILED" => Some(Self::UploadFailed),
            other => other.parse().ok().and_then(Self::from_number),
        }
    }
}

/// An MLflow 3 logged model: `{info, data}` as `LoggedModel` in service.proto.
#[derive(Debug, Clone, Serialize)]
pub struct LoggedModel {
    pub info: LoggedModelInfo,
    pub data: LoggedModelData,
}

#[derive(Debug, Clone, Serialize)]
pub struct LoggedModelInfo {
    pub experiment_id: String,
    pub model_id: String,
    pub name: String,
    pub artifact_uri: String,
    pub creation_timestamp_ms: i64,
    pub last_updated_timestamp_ms: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_run_id: Option<String>,
    pub status: LoggedModelStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_message: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<Tag>,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct LoggedModelData {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub params: Vec<Param>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub metrics: Vec<Metric>,
}

/// `ModelVersion` (model_registry.proto). `version` is a string on the wire;
/// `status` is always present because the client reads a missing status as
/// PENDING_REGISTRATION and polls for five minutes. Fields MLflow's SQL store
/// writes as `""` (description, run_id, run_link of a version created without
/// them) are emitted as `""`, like MLflow does.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ModelVersion {
    pub name: String,
    pub version: String,
    pub creation_timestamp: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_updated_timestamp: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    pub current_stage: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_message: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<Tag>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_link: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
}

/// `RegisteredModelAlias`: an alias and the version it points to (a string).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct RegisteredModelAlias {
    pub alias: String,
    pub version: String,
}

/// `RegisteredModel`. MLflow omits an empty description and a zero
/// last-updated time; `latest_versions` holds the newest version per stage.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RegisteredModel {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub creation_timestamp: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_updated_timestamp: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub latest_versions: Vec<ModelVersion>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<Tag>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<RegisteredModelAlias>,
}

/// A page of results and the token for the next one, if any.
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_page_token: Option<String>,
}

/// Doubles as MLflow prints them: NaN and infinities as JSON strings, since
/// JSON has no literal for them.
pub fn serialize_double<S: Serializer>(value: &f64, serializer: S) -> Result<S::Ok, S::Error> {
    if value.is_nan() {
        serializer.serialize_str("NaN")
    } else if value.is_infinite() {
        serializer.serialize_str(if *value > 0.0 {
            "Infinity"
        } else {
            "-Infinity"
        })
    } else {
        serializer.serialize_f64(*value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_values_print_like_mlflow() {
        let metric = |value| Metric {
            key: "m".into(),
            value,
            timestamp: 1,
            step: 0,
            ..Metric::default()
        };
        let json = |value| serde_json::to_value(metric(value)).unwrap()["value"].clone();
        assert_eq!(json(f64::NAN), "NaN");
        assert_eq!(json(f64::INFINITY), "Infinity");
        assert_eq!(json(1.5), 1.5);
        // Clamped infinities stay finite numbers on the wire.
        assert_eq!(json(f64::MAX), f64::MAX);
    }
}
