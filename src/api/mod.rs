//! The HTTP surface: MLflow's REST routes, mounted under `/api/2.0/mlflow`
//! and `/ajax-api/2.0/mlflow` like MLflow's own server. Handlers parse and
//! answer; they hold no SQL and no business rules.

mod experiments;
mod metrics;
mod runs;
mod server;
pub mod wire;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::Method;
use axum::routing::{get, post};
use axum::Router;

use crate::app::AppState;
use crate::error::{ErrorCode, MlflowError};
use crate::model::Workspace;

/// The tracking routes, relative to `/api/2.0/mlflow`.
fn tracking_routes() -> Router<AppState> {
    Router::new()
        .route("/experiments/create", post(experiments::create))
        .route("/experiments/get", get(experiments::get))
        .route("/experiments/get-by-name", get(experiments::get_by_name))
        .route(
            "/experiments/search",
            get(experiments::search_get).post(experiments::search_post),
        )
        .route("/experiments/update", post(experiments::update))
        .route("/experiments/delete", post(experiments::delete))
        .route("/experiments/restore", post(experiments::restore))
        .route(
            "/experiments/set-experiment-tag",
            post(experiments::set_tag),
        )
        .route(
            "/experiments/delete-experiment-tag",
            post(experiments::delete_tag),
        )
        .route("/runs/create", post(runs::create))
        .route("/runs/get", get(runs::get))
        .route("/runs/update", post(runs::update))
        .route("/runs/delete", post(runs::delete))
        .route("/runs/restore", post(runs::restore))
        .route("/runs/search", post(runs::search))
        .route("/runs/log-metric", post(runs::log_metric))
        .route("/runs/log-parameter", post(runs::log_parameter))
        .route("/runs/set-tag", post(runs::set_tag))
        .route("/runs/delete-tag", post(runs::delete_tag))
        .route("/runs/log-batch", post(runs::log_batch))
        .route("/runs/log-inputs", post(runs::log_inputs))
        .route("/runs/log-model", post(runs::log_model))
        .route("/metrics/get-history", get(metrics::get_history))
        .route(
            "/metrics/get-history-bulk-interval",
            get(metrics::get_history_bulk_interval),
        )
}

/// Every route ferroflow serves, with MLflow's JSON 404 for anything else.
pub fn routes() -> Router<AppState> {
    let tracking = tracking_routes();
    Router::new()
        .nest("/api/2.0/mlflow", tracking.clone())
        .nest("/ajax-api/2.0/mlflow", tracking)
        .route("/health", get(server::health))
        .route("/version", get(server::version))
        .route("/api/3.0/mlflow/server-info", get(server::server_info))
        .route("/ajax-api/3.0/mlflow/server-info", get(server::server_info))
        .fallback(endpoint_not_found)
        .method_not_allowed_fallback(endpoint_not_found)
}

/// MLflow's own server answers unknown routes with an HTML page; a JSON body
/// is what API clients can read, so the client still sees ENDPOINT_NOT_FOUND.
async fn endpoint_not_found(method: Method, uri: axum::http::Uri) -> MlflowError {
    MlflowError::new(
        ErrorCode::EndpointNotFound,
        format!("No API endpoint for {method} {}", uri.path()),
    )
}

/// The workspace a request acts in. Until workspaces are configurable every
/// request belongs to `default`; handlers already take it so tenancy is a
/// change here, not in every handler.
impl<S: Send + Sync> FromRequestParts<S> for Workspace {
    type Rejection = MlflowError;

    async fn from_request_parts(_parts: &mut Parts, _state: &S) -> Result<Self, MlflowError> {
        Ok(Workspace::default())
    }
}
