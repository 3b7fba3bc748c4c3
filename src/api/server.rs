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
    // Multipart uploads work exactly when the destination has a native
    // multipart upload (cloud stores); the client then uses `mpu/*` for
    // files of MLFLOW_MULTIPART_UPLOAD_MINIMUM_FILE_SIZE and up, else one
    // PUT. Downloads are plain ranged GETs (no presigned URLs).
    let multipart_uploads = state
        .artifacts
        .as_ref()
        .is_some_and(|store| store.supports_multipart());
    // The keys of MLflow 3.17.2's server-info, plus 3.18's
    // `artifact_serving_enabled` and `artifacts_presigned_only`.
    Json(json!({
        "store_type": store_type,
        "workspaces_enabled": state.workspaces.is_some(),
        "trace_archival_enabled": false,
        "multipart_uploads_enabled": multipart_uploads,
        "multipart_downloads_enabled": false,
        // No presigned-upload endpoints are served.
        "presigned_upload_run_id_supported": false,
        "presigned_upload_model_id_supported": false,
        "features_enabled": {"gateway": false},
        "artifact_serving_enabled": state.artifacts.is_some(),
        "artifacts_presigned_only": false,
    }))
}
