//! The database going away under a running server: requests are answered 503
//! `TEMPORARILY_UNAVAILABLE` with `Retry-After` (the stock client retries
//! them) within seconds, and the server recovers by itself, losing nothing it
//! acknowledged. The outage is a TCP proxy between server and PostgreSQL
//! that drops every connection and refuses new ones, as a restart or a
//! network partition does, without disturbing the shared test cluster.

use std::time::{Duration, Instant};

use ferroflow::store::testing::{Backend, TestDatabase};
use serde_json::json;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

use crate::helpers::spawn_on_store;

/// Forwards one loopback port to PostgreSQL until dropped.
struct Proxy {
    connections: JoinSet<()>,
}

impl Proxy {
    /// Listens on `port` (0: any) and forwards to `upstream`.
    async fn start(port: u16, upstream: String) -> (Self, u16) {
        let listener = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let mut connections = JoinSet::new();
        connections.spawn(async move {
            let mut pipes = JoinSet::new();
            // Dropping this task drops the listener and every pipe with it.
            while let Ok((mut client, _)) = listener.accept().await {
                let upstream = upstream.clone();
                pipes.spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
            }
        });
        (Self { connections }, port)
    }

    /// The outage: every connection reset, the port closed.
    async fn cut(mut self) {
        self.connections.shutdown().await;
    }
}

#[tokio::test]
async fn a_database_outage_answers_503_and_the_server_recovers() {
    let Some(database) = TestDatabase::create(Backend::Postgres).await else {
        return;
    };
    let mut uri = url::Url::parse(database.uri()).unwrap();
    let upstream = format!("{}:{}", uri.host_str().unwrap(), uri.port().unwrap_or(5432));
    let (proxy, port) = Proxy::start(0, upstream.clone()).await;
    uri.set_port(Some(port)).unwrap();
    let store = ferroflow::store::open(uri.as_str(), "mlflow-artifacts:/")
        .await
        .unwrap();
    let app = spawn_on_store(database, store).await;
    let experiment_id = app.experiment("outage").await;
    let run_id = app.run(&experiment_id).await;
    let log = |step: i64| json!({"run_id": run_id, "key": "loss", "value": 1.0, "timestamp": 1, "step": step});
    assert_eq!(app.post("runs/log-metric", log(0)).await.status, 200);

    proxy.cut().await;
    for step in [1, 2] {
        let started = Instant::now();
        let refused = app.post("runs/log-metric", log(step)).await;
        let message = refused.error(503, "TEMPORARILY_UNAVAILABLE");
        assert!(message.contains("unavailable"), "{message}");
        assert!(!message.contains("127.0.0.1"), "no internals: {message}");
        assert!(refused.headers.contains_key("retry-after"));
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "answered in {:?}",
            started.elapsed()
        );
    }
    let search = app
        .post("runs/search", json!({"experiment_ids": [experiment_id]}))
        .await;
    search.error(503, "TEMPORARILY_UNAVAILABLE");
    let ready = app.send(app.http.get(app.url("/ready"))).await;
    assert!(ready
        .error(503, "TEMPORARILY_UNAVAILABLE")
        .contains("database"));
    assert_eq!(app.send(app.http.get(app.url("/health"))).await.status, 200);
    let metrics = app.send(app.http.get(app.url("/metrics"))).await;
    assert_eq!(
        metrics.status, 200,
        "metrics are served while the database is down"
    );

    // Back on the same address: the pool reconnects without a restart.
    let (_proxy, _) = Proxy::start(port, upstream).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let logged = app.post("runs/log-metric", log(3)).await;
        if logged.status == 200 {
            break;
        }
        logged.error(503, "TEMPORARILY_UNAVAILABLE");
        assert!(Instant::now() < deadline, "not recovered within 30 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(app.send(app.http.get(app.url("/ready"))).await.status, 200);
    let history = app
        .get(
            "metrics/get-history",
            &[("run_id", &run_id), ("metric_key", "loss")],
        )
        .await;
    let steps: Vec<i64> = history.body["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["step"].as_i64().unwrap())
        .collect();
    // Acknowledged writes are there, refused ones are not.
    assert_eq!(steps, vec![0, 3], "{}", history.body);
}
