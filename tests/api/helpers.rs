//! `spawn_app`: a ferroflow on port 0 with a fresh database, and typed calls.

use std::sync::Arc;

use ferroflow::api::security::WebPolicy;
use ferroflow::app::{self, AppState, Services};
use ferroflow::artifacts::{ArtifactStore, LocationPolicy};
use ferroflow::auth::{Access, Workspaces};
use ferroflow::store::testing::{Backend, TestDatabase};
use ferroflow::store::SqlStore;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// A running server; dropping it shuts the server down and removes its
/// database.
pub struct TestApp {
    pub base: String,
    pub http: reqwest::Client,
    /// The server's store, for setting up keys and roles directly.
    pub store: Arc<SqlStore>,
    pub access: Option<Arc<Access>>,
    _shutdown: oneshot::Sender<()>,
    _database: TestDatabase,
}

/// What a call answered: the status and the body as JSON (`Null` if none).
pub struct Answer {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Answer {
    /// Asserts MLflow's error shape and returns the message.
    pub fn error(&self, status: u16, code: &str) -> String {
        assert_eq!(self.status, status, "{}", self.body);
        assert_eq!(self.body["error_code"], code, "{}", self.body);
        self.body["message"].as_str().expect("message").to_string()
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_with(|_| {}, false).await
}

/// A server with `--enable-workspaces`.
pub async fn spawn_with_workspaces() -> TestApp {
    spawn_with(|_| {}, true).await
}

/// A server with `--auth token` (tokens living `ttl`), workspaces on or off.
pub async fn spawn_with_tokens(workspaces: bool, ttl: std::time::Duration) -> TestApp {
    let database = TestDatabase::create(Backend::Sqlite).await.unwrap();
    let keys = Arc::new(database.store().await);
    let access = Arc::new(Access::open(keys, None, ttl).await.unwrap());
    let store = database.store().await;
    let mut app = spawn_on(
        database,
        store,
        workspaces,
        Some(access.clone()),
        |_| {},
        None,
    )
    .await;
    app.access = Some(access);
    app
}

/// Spawns the app (with workspaces when `workspaces`) after `configure`
/// had its say on the state.
pub async fn spawn_with(configure: impl FnOnce(&mut Services), workspaces: bool) -> TestApp {
    let database = TestDatabase::create(Backend::Sqlite).await.unwrap();
    let store = database.store().await;
    spawn_on(database, store, workspaces, None, configure, None).await
}

/// A plain server on each database this machine has: SQLite always,
/// PostgreSQL when `FERROFLOW_TEST_PG_URL` names one.
pub async fn spawn_on_each_backend() -> Vec<(Backend, TestApp)> {
    spawn_each_backend(false).await
}

/// Like [`spawn_on_each_backend`], serving workspaces.
pub async fn spawn_on_each_backend_with_workspaces() -> Vec<(Backend, TestApp)> {
    spawn_each_backend(true).await
}

async fn spawn_each_backend(workspaces: bool) -> Vec<(Backend, TestApp)> {
    let mut apps = Vec::new();
    for backend in [Backend::Sqlite, Backend::Postgres] {
        if let Some(database) = TestDatabase::create(backend).await {
            let store = database.store().await;
            apps.push((
                backend,
                spawn_on(database, store, workspaces, None, |_| {}, None).await,
            ));
        }
    }
    apps
}

/// A plain server on `store`, whose database `database` guards.
pub async fn spawn_on_store(database: TestDatabase, store: SqlStore) -> TestApp {
    spawn_on(database, store, false, None, |_| {}, None).await
}

/// Like [`spawn_with`], everything served under `--static-prefix prefix`.
pub async fn spawn_under_prefix(configure: impl FnOnce(&mut Services), prefix: &str) -> TestApp {
    let database = TestDatabase::create(Backend::Sqlite).await.unwrap();
    let store = database.store().await;
    spawn_on(database, store, false, None, configure, Some(prefix)).await
}

async fn spawn_on(
    database: TestDatabase,
    store: SqlStore,
    workspaces: bool,
    access: Option<Arc<Access>>,
    configure: impl FnOnce(&mut Services),
    static_prefix: Option<&str>,
) -> TestApp {
    let store = Arc::new(if workspaces {
        store.with_workspaces()
    } else {
        store
    });
    let mut services = Services {
        workspaces: workspaces.then(|| Arc::new(Workspaces::new(store.clone()))),
        store: store.clone(),
        artifacts: Some(Arc::new(ArtifactStore::in_memory())),
        artifacts_only: false,
        access,
        public_url: None,
        ui: None,
        artifact_locations: Arc::new(LocationPolicy::new(["mlflow-artifacts:/"])),
        web: Arc::new(WebPolicy::new(None, None, None)),
    };
    configure(&mut services);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (shutdown, stopped) = oneshot::channel::<()>();
    tokio::spawn(app::run(
        listener,
        app::router(AppState::new(services), static_prefix),
        async {
            let _ = stopped.await;
        },
        std::time::Duration::from_secs(5),
    ));
    TestApp {
        base,
        http: reqwest::Client::new(),
        store,
        access: None,
        _shutdown: shutdown,
        _database: database,
    }
}

impl TestApp {
    /// POSTs `body` as JSON to `/api/2.0/mlflow/<path>`.
    pub async fn post(&self, path: &str, body: Value) -> Answer {
        let request = self
            .http
            .post(format!("{}/api/2.0/mlflow/{path}", self.base))
            .json(&body);
        answer(request).await
    }

    /// GETs `/api/2.0/mlflow/<path>?<query>`.
    pub async fn get(&self, path: &str, query: &[(&str, &str)]) -> Answer {
        let request = self
            .http
            .get(format!("{}/api/2.0/mlflow/{path}", self.base))
            .query(query);
        answer(request).await
    }

    /// Sends `method` with a JSON `body` to any path of the server, in
    /// workspace `workspace` by header when given.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        workspace: Option<&str>,
        body: Option<Value>,
    ) -> Answer {
        let mut request = self.http.request(method, self.url(path));
        if let Some(workspace) = workspace {
            request = request.header("X-MLFLOW-WORKSPACE", workspace);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        answer(request).await
    }

    /// Sends a prepared request to any path of the server.
    pub async fn send(&self, request: reqwest::RequestBuilder) -> Answer {
        answer(request).await
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A new run's id, in experiment `experiment_id`.
    pub async fn run(&self, experiment_id: &str) -> String {
        let created = self
            .post(
                "runs/create",
                serde_json::json!({ "experiment_id": experiment_id }),
            )
            .await;
        assert_eq!(created.status, 200, "{}", created.body);
        created.body["run"]["info"]["run_id"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// A new experiment's id.
    pub async fn experiment(&self, name: &str) -> String {
        let created = self
            .post("experiments/create", serde_json::json!({ "name": name }))
            .await;
        assert_eq!(created.status, 200, "{}", created.body);
        created.body["experiment_id"].as_str().unwrap().to_string()
    }
}

async fn answer(request: reqwest::RequestBuilder) -> Answer {
    let response = request.send().await.expect("server answers");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    Answer {
        status,
        headers,
        body,
    }
}
