//! Application state, the router, and serving with graceful shutdown.

use std::future::{Future, IntoFuture};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::header;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::serve::ListenerExt;
use axum::Router;
use tokio::net::TcpListener;
use tower::ServiceBuilder;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;
use tracing::Instrument;
use url::Url;

use crate::api::security::{self, WebPolicy};
use crate::artifacts::{ArtifactStore, LocationPolicy};
use crate::auth::{self, Access, Workspaces};
use crate::config::{AuthMode, Config};
use crate::observe::request_id;
use crate::reach;
use crate::store::{self, Store};
use crate::ui::Bundle;

/// Largest JSON request body on most routes: a log-batch at MLflow's limits
/// (1,000 metrics, 100 params of 6,000 characters, 100 tags of 8,000) is
/// under 2 MiB. The few routes that carry more raise it (`api::LARGE_BODY`);
/// artifact uploads stream and have none.
const MAX_REQUEST_BODY: usize = 4 * 1024 * 1024;

/// What every handler can reach, behind one `Arc`: axum clones the state into
/// each layer and extractor of every request, and one reference count costs
/// less than one per field.
#[derive(Clone)]
pub struct AppState(Arc<Services>);

impl AppState {
    pub fn new(services: Services) -> Self {
        Self(Arc::new(services))
    }
}

impl std::ops::Deref for AppState {
    type Target = Services;

    fn deref(&self) -> &Services {
        &self.0
    }
}

/// The parts of [`AppState`].
pub struct Services {
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
///
/// Layers added with `Router::layer` are re-boxed around every route and
/// cloned on every call; the layers that do not need the matched route wrap
/// the finished router once instead, as one service stack.
pub fn router(state: AppState, static_prefix: Option<&str>) -> Router {
    let workspaces_on = state.workspaces.is_some();
    let web = state.web.clone();
    let routes = crate::api::routes(&state).with_state(state);
    let prefix: Option<Arc<str>> = static_prefix.map(Arc::from);
    let edge = ServiceBuilder::new()
        .layer(TraceLayer::new_for_http())
        .layer(security_header(header::X_FRAME_OPTIONS, "SAMEORIGIN"))
        .layer(security_header(header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .layer(middleware::from_fn_with_state(web.clone(), admit))
        .layer(web.cors_layer())
        .layer(DefaultBodyLimit::max(MAX_REQUEST_BODY))
        // The prefixes are stripped before routing, so that routing (and the
        // permission of each route) sees the path without them.
        .option_layer(prefix.map(|prefix| {
            middleware::from_fn_with_state(prefix, crate::api::ui::strip_static_prefix)
        }))
        .option_layer(workspaces_on.then(|| middleware::from_fn(auth::strip_path_prefix)))
        .service(routes);
    Router::new().fallback_service(edge)
}

/// What every request passes first, in one middleware (each `from_fn`
/// layer costs allocations per request): it gets its id and runs in a span
/// carrying it, then unexpected `Host`s, cross-origin writes and NULs in
/// the URL are refused. Every response, refusals included, echoes the id.
async fn admit(State(web): State<Arc<WebPolicy>>, mut req: Request, next: Next) -> Response {
    let (id, span) = request_id::assign(&mut req);
    let refusal = span.in_scope(|| {
        security::refusal(&web, &req).or_else(|| crate::api::wire::nul_in_url(req.uri()))
    });
    let mut response = match refusal {
        Some(refusal) => refusal.into_response(),
        None => next.run(req).instrument(span).await,
    };
    request_id::echo(&id, &mut response);
    response
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
    let state = AppState::new(Services {
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
    });
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
