//! Prometheus metrics, served at `/metrics` in the OpenMetrics text format
//! (through `prometheus-client`): requests by route and status, latency
//! histograms, the database pool, artifact bytes, token refusals, and
//! per-workspace counts of experiments, runs and registered models.
//!
//! The registry is process-wide, as Prometheus' own client libraries keep
//! it: one server runs per process, and counting an artifact byte should not
//! need the application state threaded down to the stream that carries it.

use std::sync::LazyLock;
use std::time::{Duration, Instant};

use axum::http::{Method, StatusCode};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::error::{MlflowError, Result};
use crate::store::operations::{OperationsStore, PoolStats};

/// How often the per-workspace counts are recomputed at most: they are
/// `COUNT(*)`s over whole tables, and scrapes come every 15–60 s.
const COUNTS_MAX_AGE: Duration = Duration::from_secs(60);

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: String,
    /// The route template (`/api/2.0/mlflow/runs/get`), never the raw path:
    /// ids in paths would make a series per run.
    route: String,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    method: String,
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabel {
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabel {
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WorkspaceLabel {
    workspace: String,
}

pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    durations: Family<RouteLabels, Histogram>,
    pub artifact_bytes_in: Counter,
    pub artifact_bytes_out: Counter,
    auth_refusals: Family<StatusLabel, Counter>,
    db_connections: Family<StateLabel, Gauge>,
    experiments: Family<WorkspaceLabel, Gauge>,
    runs: Family<WorkspaceLabel, Gauge>,
    registered_models: Family<WorkspaceLabel, Gauge>,
    /// When and from which store the per-workspace counts were last read
    /// (the store's address: tests run several servers in one process); the
    /// lock also keeps concurrent scrapes from counting twice.
    counted: tokio::sync::Mutex<Option<(usize, Instant)>>,
}

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

pub fn metrics() -> &'static Metrics {
    &METRICS
}

impl Metrics {
    fn new() -> Self {
        let mut registry = Registry::with_prefix("ferroflow");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests answered, by route and status",
            requests.clone(),
        );
        // 1 ms to ~16 s.
        let durations = Family::<RouteLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.001, 2.0, 15))
        });
        registry.register(
            "http_request_duration_seconds",
            "Time from a request's arrival to its response headers",
            durations.clone(),
        );
        let artifact_bytes_in = Counter::default();
        registry.register(
            "artifact_bytes_received",
            "Artifact bytes uploaded through the proxy",
            artifact_bytes_in.clone(),
        );
        let artifact_bytes_out = Counter::default();
        registry.register(
            "artifact_bytes_sent",
            "Artifact bytes downloaded through the proxy",
            artifact_bytes_out.clone(),
        );
        let auth_refusals = Family::<StatusLabel, Counter>::default();
        registry.register(
            "auth_refusals",
            "Requests refused for their credentials (401), role (403) or rate (429)",
            auth_refusals.clone(),
        );
        let db_connections = Family::<StateLabel, Gauge>::default();
        registry.register(
            "db_pool_connections",
            "PostgreSQL pool connections in use, idle, and requests waiting for one",
            db_connections.clone(),
        );
        let mut per_workspace = |name: &str, help: &str| {
            let family = Family::<WorkspaceLabel, Gauge>::default();
            registry.register(name, help, family.clone());
            family
        };
        let experiments = per_workspace("workspace_experiments", "Active experiments");
        let runs = per_workspace("workspace_runs", "Active runs");
        let registered_models = per_workspace("workspace_registered_models", "Registered models");
        Self {
            registry,
            requests,
            durations,
            artifact_bytes_in,
            artifact_bytes_out,
            auth_refusals,
            db_connections,
            experiments,
            runs,
            registered_models,
            counted: tokio::sync::Mutex::new(None),
        }
    }

    pub fn auth_refusal(&self, status: u16) {
        self.auth_refusals
            .get_or_create(&StatusLabel {
                status: status.to_string(),
            })
            .inc();
    }

    /// The exposition text, with the gauges read from `store` first.
    pub async fn render(&self, store: &dyn OperationsStore) -> Result<String> {
        if let Some(PoolStats {
            in_use,
            idle,
            waiting,
        }) = store.pool_stats()
        {
            for (state, value) in [("in_use", in_use), ("idle", idle), ("waiting", waiting)] {
                self.db_connections
                    .get_or_create(&StateLabel { state })
                    .set(value);
            }
        }
        // Metrics matter most while the database is down: the counts keep
        // their last values then, and everything else is still served.
        if let Err(err) = self.refresh_counts(store).await {
            tracing::warn!(%err, "metrics: could not count workspace resources");
        }
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)
            .map_err(MlflowError::internal)?;
        Ok(text)
    }

    async fn refresh_counts(&self, store: &dyn OperationsStore) -> Result<()> {
        let source = std::ptr::from_ref(store).cast::<()>() as usize;
        let mut counted = self.counted.lock().await;
        if counted.is_some_and(|(from, at)| from == source && at.elapsed() < COUNTS_MAX_AGE) {
            return Ok(());
        }
        let counts = store.workspace_counts().await?;
        // Cleared first, so a deleted workspace's series goes away.
        for family in [&self.experiments, &self.runs, &self.registered_models] {
            family.clear();
        }
        for count in counts {
            let label = WorkspaceLabel {
                workspace: count.workspace,
            };
            self.experiments
                .get_or_create(&label)
                .set(count.experiments);
            self.runs.get_or_create(&label).set(count.runs);
            self.registered_models
                .get_or_create(&label)
                .set(count.registered_models);
        }
        *counted = Some((source, Instant::now()));
        Ok(())
    }
}

/// Counts a request that was routed to `route` (the route's template,
/// never the raw path: ids in paths would make a series per run) and
/// observes how long it took.
pub fn record(method: &Method, route: &str, took: Duration, status: StatusCode) {
    let metrics = metrics();
    let labels = RouteLabels {
        method: method.as_str().to_owned(),
        route: route.to_owned(),
    };
    metrics
        .durations
        .get_or_create(&labels)
        .observe(took.as_secs_f64());
    metrics
        .requests
        .get_or_create(&RequestLabels {
            method: labels.method,
            route: labels.route,
            status: status.as_str().to_owned(),
        })
        .inc();
}
