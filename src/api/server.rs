//! Server-level routes: health, version and the MLflow 3 capability probe.

use std::time::Duration;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use crate::app::AppState;
use crate::error::{ErrorCode, MlflowError, Result};
use crate::observe::metrics::metrics as registry;

/// How long readiness waits for the database or the blob store.
const READY_TIMEOUT: Duration = Duration::from_secs(3);

/// Liveness: the process answers. It reads nothing, so a database outage
/// does not get the server restarted.
pub async fn health() -> &'static str {
    "OK"
}

/// Readiness: the database and the artifact destination both answer, so a
/// load balancer sends requests only to replicas that can serve them.
pub async fn ready(State(state): State<AppState>) -> Result<&'static str> {
    let database = tokio::time::timeout(READY_TIMEOUT, state.store.ping()).await;
    if !matches!(database, Ok(Ok(()))) {
        return Err(unavailable("The database is not reachable."));
    }
    if let Some(artifacts) = &state.artifacts {
        let blobs = tokio::time::timeout(READY_TIMEOUT, artifacts.probe()).await;
        if !matches!(blobs, Ok(Ok(()))) {
            return Err(unavailable("The artifact store is not reachable."));
        }
    }
    Ok("OK")
}

fn unavailable(message: &str) -> MlflowError {
    MlflowError::new(ErrorCode::TemporarilyUnavailable, message)
}

/// Prometheus' scrape.
pub async fn metrics(State(state): State<AppState>) -> Result<Response> {
    let text = registry().render(state.store.as_ref()).await?;
    Ok((
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response())
}

/// `GET /version`: the MLflow version whose API ferroflow speaks (the UI's
/// too). The client parses it: from 3.4 it exports spans over OTLP
/// (`/v1/traces`) and then sends each trace's record.
pub async fn version() -> &'static str {
    crate::ui::MLFLOW_VERSION
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
