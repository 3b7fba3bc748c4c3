//! The HTTP surface: MLflow's REST routes, mounted under `/api/2.0/mlflow`
//! and `/ajax-api/2.0/mlflow` like MLflow's own server, the artifact proxy
//! under `/api/2.0/mlflow-artifacts` (and `/ajax-api`). Handlers parse and
//! answer; they hold no SQL and no business rules.

mod artifacts;
mod audit;
mod experiments;
mod gc;
mod graphql;
mod keys;
mod logged_models;
mod metrics;
mod oauth;
mod reach;
mod registry;
mod runs;
pub mod security;
mod server;
mod session;
mod traces;
pub mod ui;
pub mod wire;
mod workspaces;

use std::time::Instant;

use axum::extract::{DefaultBodyLimit, FromRequestParts, MatchedPath, Request, State};
use axum::http::request::Parts;
use axum::http::{Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, patch, post, put};
use axum::Router;
use tower_http::compression::CompressionLayer;

use crate::app::AppState;
use crate::error::{ErrorCode, MlflowError};
use crate::model::Workspace;

/// The body limit of the routes that carry documents: dataset profiles and
/// schemas (up to 16 MB in MLflow) and MLmodel files.
const LARGE_BODY: usize = 32 * 1024 * 1024;

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
        .route(
            "/runs/log-inputs",
            post(runs::log_inputs).layer(DefaultBodyLimit::max(LARGE_BODY)),
        )
        .route(
            "/runs/log-model",
            post(runs::log_model).layer(DefaultBodyLimit::max(LARGE_BODY)),
        )
        .route("/runs/outputs", post(runs::log_outputs))
        .route("/logged-models", post(logged_models::create))
        .route("/logged-models/search", post(logged_models::search))
        .route(
            "/logged-models/{model_id}",
            get(logged_models::get)
                .patch(logged_models::finalize)
                .delete(logged_models::delete),
        )
        .route(
            "/logged-models/{model_id}/tags",
            patch(logged_models::set_tags),
        )
        .route(
            "/logged-models/{model_id}/tags/{tag_key}",
            delete(logged_models::delete_tag),
        )
        .route(
            "/logged-models/{model_id}/params",
            post(logged_models::log_params),
        )
        .route(
            "/logged-models/{model_id}/artifacts/directories",
            get(artifacts::list_logged_model_artifacts),
        )
        .route(
            "/logged-models/{model_id}/artifacts/files",
            get(artifacts::get_logged_model_artifact),
        )
        .route("/artifacts/list", get(artifacts::list_run_artifacts))
        .route("/metrics/get-history", get(metrics::get_history))
        .route(
            "/metrics/get-history-bulk-interval",
            get(metrics::get_history_bulk_interval),
        )
        // MLflow serves these three for its UI under /ajax-api only.
        .route("/upload-artifact", post(artifacts::upload_run_artifact))
        .route("/metrics/get-history-bulk", get(metrics::get_history_bulk))
        .route(
            "/experiments/search-datasets",
            post(experiments::search_datasets),
        )
        // Traces: the legacy search (the UI's probe) and the calls the
        // client still makes on the 2.0 paths.
        .route(
            "/traces",
            get(traces::search_traces_v2).post(traces::start_trace_v2),
        )
        .route("/traces/{trace_id}", patch(traces::end_trace_v2))
        .route("/traces/delete-traces", post(traces::delete_traces))
        .route("/traces/link-to-run", post(traces::link_traces_to_run))
        .route("/traces/link-prompts", post(traces::link_prompts_to_trace))
        .route("/traces/{trace_id}/info", get(traces::get_trace_info_v2))
        .route(
            "/traces/{trace_id}/tags",
            patch(traces::set_trace_tag).delete(traces::delete_trace_tag),
        )
        .route("/get-trace-artifact", get(artifacts::get_trace_artifact))
        .merge(registry_routes())
}

/// MLflow 3's trace routes, relative to `/api/3.0/mlflow`.
fn trace_routes() -> Router<AppState> {
    Router::new()
        .route("/traces", post(traces::start_trace))
        .route("/traces/search", post(traces::search_traces))
        .route("/traces/batchGetInfos", post(traces::batch_get_trace_infos))
        .route("/traces/delete-traces", post(traces::delete_traces))
        .route("/traces/metrics", post(traces::query_trace_metrics))
        .route("/traces/get", get(traces::get_trace))
        .route("/traces/batchGet", get(traces::batch_get_traces))
        .route("/traces/{trace_id}", get(traces::get_trace_info))
        .route(
            "/traces/{trace_id}/tags",
            patch(traces::set_trace_tag).delete(traces::delete_trace_tag),
        )
        .route(
            "/traces/{trace_id}/assessments",
            post(traces::create_assessment),
        )
        .route(
            "/traces/{trace_id}/assessments/{assessment_id}",
            get(traces::get_assessment)
                .patch(traces::update_assessment)
                .delete(traces::delete_assessment),
        )
        .route("/get-trace-artifact", get(artifacts::get_trace_artifact))
}

/// The model registry routes, relative to `/api/2.0/mlflow`. The client sends
/// JSON bodies on DELETE and PATCH.
fn registry_routes() -> Router<AppState> {
    Router::new()
        .route(
            "/registered-models/create",
            post(registry::create_registered_model),
        )
        .route(
            "/registered-models/rename",
            post(registry::rename_registered_model),
        )
        .route(
            "/registered-models/update",
            patch(registry::update_registered_model),
        )
        .route(
            "/registered-models/delete",
            delete(registry::delete_registered_model),
        )
        .route(
            "/registered-models/get",
            get(registry::get_registered_model),
        )
        .route(
            "/registered-models/search",
            get(registry::search_registered_models),
        )
        .route(
            "/registered-models/get-latest-versions",
            post(registry::get_latest_versions_post).get(registry::get_latest_versions_get),
        )
        .route(
            "/registered-models/set-tag",
            post(registry::set_registered_model_tag),
        )
        .route(
            "/registered-models/delete-tag",
            delete(registry::delete_registered_model_tag),
        )
        .route(
            "/registered-models/alias",
            post(registry::set_alias)
                .delete(registry::delete_alias)
                .get(registry::get_by_alias),
        )
        .route(
            "/model-versions/create",
            post(registry::create_model_version),
        )
        .route(
            "/model-versions/update",
            patch(registry::update_model_version),
        )
        .route(
            "/model-versions/delete",
            delete(registry::delete_model_version),
        )
        .route("/model-versions/get", get(registry::get_model_version))
        .route(
            "/model-versions/search",
            get(registry::search_model_versions),
        )
        .route(
            "/model-versions/transition-stage",
            post(registry::transition_stage),
        )
        .route(
            "/model-versions/set-tag",
            post(registry::set_model_version_tag),
        )
        .route(
            "/model-versions/delete-tag",
            delete(registry::delete_model_version_tag),
        )
        .route(
            "/model-versions/get-download-uri",
            get(registry::get_download_uri),
        )
}

/// The artifact proxy, relative to `/api/2.0/mlflow-artifacts`; paths are
/// relative to `--artifacts-destination`.
fn artifact_routes() -> Router<AppState> {
    Router::new()
        .route("/artifacts", get(artifacts::list))
        .route(
            "/artifacts/{*path}",
            get(artifacts::download)
                .delete(artifacts::delete)
                // Uploads are streamed to the store, never held whole: the
                // JSON body limit does not apply.
                .merge(put(artifacts::upload).layer(DefaultBodyLimit::disable())),
        )
        .route("/mpu/create/{*path}", post(artifacts::create_multipart))
        .route("/mpu/complete/{*path}", post(artifacts::complete_multipart))
        .route("/mpu/abort/{*path}", post(artifacts::abort_multipart))
        // ferroflow's own: the part URLs `mpu/create` hands out. Parts are
        // bounded by the store (MAX_PART_SIZE), not the JSON limit.
        .route(
            "/mpu/part/{*path}",
            put(artifacts::upload_part).layer(DefaultBodyLimit::disable()),
        )
        .route(
            "/presigned/{*path}",
            get(artifacts::presigned_not_supported),
        )
}

/// The workspace catalog, relative to `/api/3.0/mlflow/workspaces`.
fn workspace_routes(state: &AppState) -> Router<AppState> {
    Router::new()
        .route("/", get(workspaces::list).post(workspaces::create))
        .route(
            "/{name}",
            get(workspaces::get)
                .patch(workspaces::update)
                .delete(workspaces::delete),
        )
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            workspaces::require_workspaces,
        ))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            disable_if_artifacts_only,
        ))
}

/// Every route ferroflow serves, with MLflow's JSON 404 for anything else.
pub fn routes(state: &AppState) -> Router<AppState> {
    // `--artifacts-only`: tracking answers 503 text, as in MLflow.
    let artifacts_only =
        || middleware::from_fn_with_state(state.clone(), disable_if_artifacts_only);
    let tracking = tracking_routes().route_layer(artifacts_only());
    let traces = trace_routes().route_layer(artifacts_only());
    let get_artifact = Router::new()
        .route("/get-artifact", get(artifacts::get_run_artifact))
        .route(
            "/model-versions/get-artifact",
            get(artifacts::get_model_version_artifact),
        )
        .route_layer(artifacts_only());
    Router::new()
        .nest("/api/2.0/mlflow", tracking.clone())
        .nest("/ajax-api/2.0/mlflow", tracking)
        .nest("/api/3.0/mlflow", traces.clone())
        .nest("/ajax-api/3.0/mlflow", traces)
        .nest("/api/2.0/mlflow-artifacts", artifact_routes())
        .nest("/ajax-api/2.0/mlflow-artifacts", artifact_routes())
        .merge(get_artifact)
        .route(
            "/graphql",
            get(graphql::get)
                .post(graphql::post)
                .route_layer(artifacts_only()),
        )
        // OTLP/HTTP: spans from the client and from OpenTelemetry SDKs.
        .route(
            "/v1/traces",
            post(traces::otlp_export)
                .layer(DefaultBodyLimit::max(LARGE_BODY))
                .route_layer(artifacts_only()),
        )
        .route("/health", get(server::health))
        .route("/ready", get(server::ready))
        .route("/metrics", get(server::metrics))
        .route("/version", get(server::version))
        .route("/api/3.0/mlflow/server-info", get(server::server_info))
        .route("/ajax-api/3.0/mlflow/server-info", get(server::server_info))
        .route("/oauth/token", post(oauth::token))
        .route("/api/3.0/ferroflow/gc", post(gc::collect))
        .route("/api/3.0/ferroflow/audit", get(audit::read))
        .route("/ajax-api/3.0/ferroflow/audit", get(audit::read))
        .route(
            "/api/3.0/ferroflow/keys",
            get(keys::list).post(keys::create),
        )
        .route("/api/3.0/ferroflow/keys/{key_id}", delete(keys::revoke))
        .route(
            "/api/3.0/ferroflow/principals/{name}",
            delete(keys::delete_principal),
        )
        .route("/api/3.0/ferroflow/tracking-uri", post(reach::tracking_uri))
        .route("/api/3.0/ferroflow/init-script", get(reach::init_script))
        .route("/.well-known/jwks.json", get(oauth::jwks))
        .route("/", get(ui::index))
        .route("/signin", get(session::page).post(session::sign_in))
        .route("/signout", post(session::sign_out))
        .route(
            "/ajax-api/3.0/mlflow/ui-telemetry",
            get(ui::telemetry_config).post(ui::telemetry_events),
        )
        .route(
            "/ajax-api/3.0/mlflow/assistant/config",
            get(ui::assistant_config),
        )
        .route(
            "/ajax-api/3.0/mlflow/assistant/providers",
            get(ui::assistant_providers),
        )
        .route(
            "/ajax-api/3.0/mlflow/datasets/search",
            post(ui::no_evaluation_datasets),
        )
        .route(
            "/ajax-api/2.0/mlflow/gateway-proxy",
            get(ui::no_gateway_endpoints),
        )
        .route(
            "/static-files/{*path}",
            get(ui::static_file).layer(CompressionLayer::new()),
        )
        .nest("/api/3.0/mlflow/workspaces", workspace_routes(state))
        .nest("/ajax-api/3.0/mlflow/workspaces", workspace_routes(state))
        // After routing (so the matched route is known), before any handler.
        .layer(middleware::from_fn_with_state(state.clone(), per_route))
        .fallback(endpoint_not_found)
        .method_not_allowed_fallback(endpoint_not_found)
}

/// What runs once the route is known, in one middleware (a layer on the
/// router is re-boxed around every route): the route's permission, and the
/// request's count and duration under the route's template.
async fn per_route(state: State<AppState>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().clone();
    let route = req.extensions().get::<MatchedPath>().cloned();
    let response = crate::auth::middleware::require_access(state, req, next).await;
    let route = route.as_ref().map_or("unmatched", MatchedPath::as_str);
    crate::observe::metrics::record(&method, route, started.elapsed(), response.status());
    response
}

async fn disable_if_artifacts_only(
    State(state): State<AppState>,
    req: Request,
    next: Next,
) -> Response {
    if state.artifacts_only {
        let message = format!(
            "Endpoint: {} disabled due to the mlflow server running in `--artifacts-only` mode.",
            req.uri().path()
        );
        return (StatusCode::SERVICE_UNAVAILABLE, message).into_response();
    }
    next.run(req).await
}

/// MLflow's own server answers unknown routes with an HTML page; a JSON body
/// is what API clients can read, so the client still sees ENDPOINT_NOT_FOUND.
async fn endpoint_not_found(method: Method, uri: axum::http::Uri) -> MlflowError {
    no_endpoint(&method, uri.path())
}

fn no_endpoint(method: &Method, path: &str) -> MlflowError {
    MlflowError::new(
        ErrorCode::EndpointNotFound,
        format!("No API endpoint for {method} {path}"),
    )
}

/// The workspace a request acts in: `default` unless workspaces are on, then
/// the one its header or path prefix names (see `auth::workspace`). Every
/// scoped handler takes it, so no route can forget its tenant.
impl FromRequestParts<AppState> for Workspace {
    type Rejection = MlflowError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, MlflowError> {
        match &state.workspaces {
            None => Ok(Workspace::default()),
            Some(workspaces) => workspaces.resolve(parts).await,
        }
    }
}
