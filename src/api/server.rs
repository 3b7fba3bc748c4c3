//! Server-level routes: health, version and the MLflow 3 capability probe.

use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};

use crate::app::AppState;

pub async fn health() -> &'static str {
    "OK"
}

/// The MLflow version whose API ferroflow speaks. The client parses it: 3.4
/// and later would make it export traces over OTLP to `/v1/traces`, which
/// ferroflow does not serve, so it reports the last version before that.
pub const COMPATIBLE_MLFLOW_VERSION: &str = "3.3.2";

pub async fn version() -> &'static str {
    COMPATIBLE_MLFLOW_VERSION
}

/// `GET /api/3.0/mlflow/server-info`, probed by the client before artifact
/// transfers and workspace use.
pub async fn server_info(State(state): State<AppState>) -> Json<Value> {
    // MLflow reports no tracking store in `--artifacts-only` mode.
    let store_type = (!state.artifacts_only).then_some("SqlStore");
    Json(json!({
        "store_type": store_type,
        "workspaces_enabled": false,
        "trace_archival_enabled": false,
        "artifact_serving_enabled": state.artifacts.is_some(),
        // No destination offers multipart through the proxy yet; the client
        // then uploads with one PUT (see api::artifacts).
        "multipart_uploads_enabled": false,
        "multipart_downloads_enabled": false,
        "artifacts_presigned_only": false,
    }))
}
