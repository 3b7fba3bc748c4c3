//! Application state, the router, and serving with graceful shutdown.

use std::future::{Future, IntoFuture};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::http::header;
use axum::middleware;
use axum::serve::ListenerExt;
use axum::Router;
use tokio::net::TcpListener;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;
use url::Url;

use crate::api::security::{self, WebPolicy};
use crate::artifacts::{ArtifactStore, LocationPolicy};
use crate::auth::{self, Access, Workspaces};
use crate::config::{AuthMode, Config};
use crate::reach;
use crate::store::{self, Store};
use crate::ui::Bundle;

/// Largest JSON request body on most routes: a log-batch at MLflow's limits
/// (1,000 metrics, 100 params of 6,000 characters, 100 tags of 8,000) is
/// under 2 MiB. The few routes that carry more raise it (`api::LARGE_BODY`);
/// artifact uploads stream and have none.
const MAX_REQUEST_BODY: usize = 4 * 1024 * 1024;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    /// The artifact destination; `None` with `--no-serve-artifacts`.
    pub artifacts: Option<Arc<ArtifactStore>>,
    /// `--artifacts-only`: only the artifact proxy is served.
    pub artifacts_only: bool,
    /// `--enable-workspaces`: the catalog requests resolve their workspace
    /// against; `None` puts every request in `default`.
    pub workspaces: Option<Arc<Workspaces>>,
    /// `--auth token`: tokens and their keys; `None` lets every request in.
    pub access: Option<Arc<Access>>,
    /// `--public-url`: the address in the tracking URIs handed out; `None`
    /// takes it from each request.
    pub public_url: Option<Url>,
    /// MLflow's web UI bundle; `None` serves a page saying how to get one.
    pub ui: Option<Arc<Bundle>>,
    /// Where clients may point a new experiment's artifacts.
    pub artifact_locations: Arc<LocationPolicy>,
    /// The `Host` headers and browser origins served.
    pub web: Arc<WebPolicy>,
}

/// The routes, under `/w/<name>` too when workspaces are on, and all of it
/// under `static_prefix` when one is given.
pub fn router(state: AppState, static_prefix: Option<&str>) -> Router {
    let workspaces_on = state.workspaces.is_some();
    let web = state.web.clone();
    let mut router = crate::api::routes(&state)
        .layer(DefaultBodyLimit::max(MAX_REQUEST_BODY))
        .layer(TraceLayer::new_for_http())
        .with_state(state);
    // The prefixes are stripped outside the routes, so that routing (and
    // the permission of each route) sees the path without them.
    if workspaces_on {
        router = Router::new()
            .fallback_service(router)
            .layer(middleware::from_fn(auth::strip_path_prefix));
    }
    if let Some(prefix) = static_prefix {
        router = Router::new()
            .fallback_service(router)
            .layer(middleware::from_fn_with_state(
                Arc::<str>::from(prefix),
                crate::api::ui::strip_static_prefix,
            ));
    }
    router
        .layer(middleware::from_fn(crate::api::wire::refuse_nul_in_url))
        .layer(middleware::from_fn_with_state(
            web.clone(),
            security::check_host_and_origin,
        ))
        .layer(web.cors_layer())
        // Outermost: every response, refusals included, carries an id.
        .layer(middleware::from_fn(crate::observe::request_id::assign))
        .layer(security_header(header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .layer(security_header(header::X_FRAME_OPTIONS, "SAMEORIGIN"))
}

/// A header every response carries, as behind `mlflow server`'s security
/// middleware: no content sniffing (an uploaded artifact served as text stays
/// text), and no framing by other sites (clickjacking).
fn security_header(
    name: header::HeaderName,
    value: &'static str,
) -> SetResponseHeaderLayer<header::HeaderValue> {
    SetResponseHeaderLayer::if_not_present(name, header::HeaderValue::from_static(value))
}

/// Opens the store named by the config and serves until SIGINT/SIGTERM.
pub async fn serve(config: Config) -> anyhow::Result<()> {
    config.check_exposure()?;
    let token_ttl = config.token_ttl()?;
    let drain_timeout = config.drain_timeout()?;
    let mut store = store::open(&config.backend_store_uri, &config.artifact_root()).await?;
    if config.enable_workspaces {
        store = store.with_workspaces();
    }
    let artifacts = if config.serve_artifacts || config.artifacts_only {
        Some(Arc::new(ArtifactStore::open(
            &config.artifacts_destination,
        )?))
    } else {
        None
    };
    let store = Arc::new(store);
    let access = match config.auth {
        AuthMode::None => None,
        AuthMode::Token => {
            let access = Arc::new(
                Access::open(store.clone(), config.signing_key_file.as_deref(), token_ttl).await?,
            );
            access.spawn_refresher(store.clone());
            Some(access)
        }
    };
    let public_url = config
        .public_url
        .as_deref()
        .map(reach::parse_server_url)
        .transpose()
        .map_err(|err| anyhow::anyhow!("public_url: {err}"))?;
    let ui = Bundle::find(config.ui_dir.as_deref())?.map(Arc::new);
    match &ui {
        Some(bundle) => tracing::info!(from = %bundle.origin, "serving MLflow's web UI"),
        None => tracing::warn!(
            "no MLflow web UI bundle found: `/` says how to get one (ferroflow ui install)"
        ),
    }
    let static_prefix = config.static_prefix()?.map(str::to_owned);
    let web = WebPolicy::new(
        config.allowed_hosts.as_deref(),
        config.cors_allowed_origins.as_deref(),
        public_host(public_url.as_ref()).as_deref(),
    );
    let state = AppState {
        artifact_locations: Arc::new(config.artifact_locations()),
        web: Arc::new(web),
        access,
        public_url,
        ui,
        workspaces: config
            .enable_workspaces
            .then(|| Arc::new(Workspaces::new(store.clone()))),
        store,
        artifacts,
        artifacts_only: config.artifacts_only,
    };
    let listener = TcpListener::bind((config.host.as_str(), config.port)).await?;
    tracing::info!(
        address = %listener.local_addr()?,
        backend = %crate::config::redact_uri(&config.backend_store_uri),
        "ferroflow listening"
    );
    let app = router(state, static_prefix.as_deref());
    run(listener, app, shutdown_signal(), drain_timeout).await
}

/// Serves `app` (see [`router`]) on `listener` until `shutdown` resolves;
/// in-flight requests get up to `drain_timeout` to finish. One still running
/// then is dropped: an upload it carried leaves nothing under its name.
pub async fn run(
    listener: TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
    drain_timeout: Duration,
) -> anyhow::Result<()> {
    // The stock client keeps connections alive; with Nagle on, delayed ACKs
    // add ~40 ms to every small response.
    let listener = listener.tap_io(|tcp| {
        if let Err(err) = tcp.set_nodelay(true) {
            tracing::warn!(%err, "could not set TCP_NODELAY");
        }
    });
    // The peer address feeds the token endpoint's per-address rate limit.
    let app = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
    let (signalled, draining) = tokio::sync::oneshot::channel::<()>();
    let shutdown = async move {
        shutdown.await;
        let _ = signalled.send(());
    };
    let deadline = async move {
        match draining.await {
            Ok(()) => tokio::time::sleep(drain_timeout).await,
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        served = axum::serve(listener, app).with_graceful_shutdown(shutdown).into_future() => served?,
        () = deadline => tracing::warn!(
            ?drain_timeout,
            "requests still in flight after the drain timeout: stopping without them"
        ),
    }
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
    tracing::info!("shutting down: finishing in-flight requests");
}

/// The `Host` header a client of `public_url` sends: the host, and the port
/// when it is not the scheme's default.
fn public_host(public_url: Option<&Url>) -> Option<String> {
    let url = public_url?;
    let host = url.host_str()?;
    Some(match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    })
}
