//! MLflow's web UI as ferroflow serves it (a bundle faked in a temporary
//! directory), and the UI's own endpoints.

use std::sync::Arc;

use ferroflow::ui::Bundle;
use serde_json::json;

use crate::helpers::{spawn_app, spawn_under_prefix, spawn_with};

/// A directory shaped like MLflow's `server/js/build`.
fn fake_bundle() -> (tempfile::TempDir, Arc<Bundle>) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("index.html"),
        r#"<html><script src="static-files/static/js/main.js"></script></html>"#,
    )
    .unwrap();
    std::fs::create_dir_all(dir.path().join("static/js")).unwrap();
    std::fs::write(
        dir.path().join("static/js/main.js"),
        "let ui = 1;".repeat(200),
    )
    .unwrap();
    let bundle = Arc::new(Bundle::open(dir.path(), "test".into()).unwrap());
    (dir, bundle)
}

#[tokio::test]
async fn without_a_bundle_the_root_says_how_to_get_one() {
    let app = spawn_app().await;
    let page = app.http.get(app.url("/")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("ferroflow ui install"));
}

#[tokio::test]
async fn the_page_is_never_cached_and_the_bundle_is_cached_and_compressed() {
    let (_dir, bundle) = fake_bundle();
    let app = spawn_with(|state| state.ui = Some(bundle), false).await;
    let page = app.http.get(app.url("/")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert_eq!(page.headers()["cache-control"], "no-cache");
    assert!(page
        .text()
        .await
        .unwrap()
        .contains("static-files/static/js/main.js"));

    let script = app
        .http
        .get(app.url("/static-files/static/js/main.js"))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(script.status(), 200);
    assert_eq!(script.headers()["cache-control"], "public, max-age=2419200");
    assert_eq!(script.headers()["content-encoding"], "gzip");
    assert!(script.headers()["content-type"]
        .to_str()
        .unwrap()
        .contains("javascript"));

    for escape in [
        "/static-files/../index.html",
        "/static-files/%2e%2e/%2e%2e/etc/passwd",
        "/static-files/static/js/missing.js",
    ] {
        let answer = app.http.get(app.url(escape)).send().await.unwrap();
        assert_eq!(answer.status(), 404, "{escape}");
    }
}

#[tokio::test]
async fn a_static_prefix_moves_every_route_under_it() {
    let (_dir, bundle) = fake_bundle();
    let app = spawn_under_prefix(|state| state.ui = Some(bundle), "/mlflow").await;
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let bare = no_redirects.get(app.url("/mlflow")).send().await.unwrap();
    assert_eq!(bare.status(), 308);
    assert_eq!(bare.headers()["location"], "/mlflow/");
    for path in [
        "/mlflow/",
        "/mlflow/static-files/static/js/main.js",
        "/mlflow/health",
    ] {
        let answer = app.http.get(app.url(path)).send().await.unwrap();
        assert_eq!(answer.status(), 200, "{path}");
    }
    let search = app
        .http
        .post(app.url("/mlflow/api/2.0/mlflow/experiments/search"))
        .json(&json!({"max_results": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(search.status(), 200);
    for outside in ["/", "/health", "/mlflowx/health"] {
        let answer = app.http.get(app.url(outside)).send().await.unwrap();
        assert_eq!(answer.status(), 404, "{outside}");
    }
}

/// An experiment and a run in it, made over REST.
async fn experiment_with_run(app: &crate::helpers::TestApp) -> (String, String) {
    let created = app.post("experiments/create", json!({"name": "ui"})).await;
    let experiment_id = created.body["experiment_id"].as_str().unwrap().to_string();
    let run = app
        .post("runs/create", json!({"experiment_id": experiment_id}))
        .await;
    let run_id = run.body["run"]["info"]["run_id"]
        .as_str()
        .unwrap()
        .to_string();
    (experiment_id, run_id)
}

#[tokio::test]
async fn history_bulk_gives_each_point_its_run() {
    let app = spawn_app().await;
    let (experiment_id, first) = experiment_with_run(&app).await;
    let second = app
        .post("runs/create", json!({"experiment_id": experiment_id}))
        .await
        .body["run"]["info"]["run_id"]
        .as_str()
        .unwrap()
        .to_string();
    for (run_id, steps) in [(&first, 3), (&second, 2)] {
        for step in 0..steps {
            let metric = json!({"run_id": run_id, "key": "loss", "value": 1.0, "timestamp": step, "step": step});
            assert_eq!(app.post("runs/log-metric", metric).await.status, 200);
        }
    }
    let url = format!(
        "/ajax-api/2.0/mlflow/metrics/get-history-bulk?run_id={first}&run_id={second}&metric_key=loss&max_results=4"
    );
    let answer = app.send(app.http.get(app.url(&url))).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let metrics = answer.body["metrics"].as_array().unwrap();
    assert_eq!(metrics.len(), 4, "max_results caps the points of all runs");
    // Runs in id order, each run's points together.
    let runs: Vec<&str> = metrics
        .iter()
        .map(|m| m["run_id"].as_str().unwrap())
        .collect();
    let mut sorted = runs.clone();
    sorted.sort();
    assert_eq!(runs, sorted);
    assert_eq!(runs[0], first.clone().min(second.clone()));

    let missing = app
        .send(
            app.http
                .get(app.url("/ajax-api/2.0/mlflow/metrics/get-history-bulk?metric_key=loss")),
        )
        .await;
    let message = missing.error(400, "INVALID_PARAMETER_VALUE");
    assert!(message.contains("at least one run_id"), "{message}");
}

#[tokio::test]
async fn search_datasets_lists_what_runs_used_with_its_context() {
    let app = spawn_app().await;
    let (experiment_id, run_id) = experiment_with_run(&app).await;
    let inputs = json!({
        "run_id": run_id,
        "datasets": [{
            "tags": [{"key": "mlflow.data.context", "value": "train"}],
            "dataset": {"name": "iris", "digest": "abc", "source_type": "local", "source": "{}"}
        }]
    });
    assert_eq!(app.post("runs/log-inputs", inputs).await.status, 200);
    let url = app.url("/ajax-api/2.0/mlflow/experiments/search-datasets");
    let answer = app
        .send(
            app.http
                .post(&url)
                .json(&json!({"experiment_ids": [experiment_id]})),
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(
        answer.body["dataset_summaries"],
        json!([{"experiment_id": experiment_id, "name": "iris", "digest": "abc", "context": "train"}])
    );
    let none = app.send(app.http.post(&url).json(&json!({}))).await;
    none.error(400, "INVALID_PARAMETER_VALUE");
}

#[tokio::test]
async fn the_ui_uploads_a_run_artifact_of_at_most_10_mb() {
    let app = spawn_app().await;
    let (_, run_id) = experiment_with_run(&app).await;
    let url = |path: &str| {
        app.url(&format!(
            "/ajax-api/2.0/mlflow/upload-artifact?run_uuid={run_id}&path={path}"
        ))
    };
    let saved = app
        .http
        .post(url("tables/eval.json"))
        .body("{\"a\": 1}")
        .send()
        .await
        .unwrap();
    assert_eq!(saved.status(), 200);
    let listed = app
        .send(app.http.get(app.url(&format!(
            "/api/2.0/mlflow/artifacts/list?run_id={run_id}&path=tables"
        ))))
        .await;
    assert_eq!(
        listed.body["files"][0]["path"], "tables/eval.json",
        "{}",
        listed.body
    );

    let escape = app.send(app.http.post(url("../../x")).body("x")).await;
    escape.error(400, "INVALID_PARAMETER_VALUE");
    let empty = app.send(app.http.post(url("a.txt"))).await;
    assert!(empty
        .error(400, "INVALID_PARAMETER_VALUE")
        .contains("must specify data"));
    let big = app
        .send(
            app.http
                .post(url("big.bin"))
                .body(vec![0u8; 10 * 1024 * 1024 + 1]),
        )
        .await;
    assert!(big
        .error(400, "INVALID_PARAMETER_VALUE")
        .contains("Max size is 10MB"));
}

#[tokio::test]
async fn telemetry_is_off_and_the_traces_probe_finds_none() {
    let app = spawn_app().await;
    let config = app
        .send(app.http.get(app.url("/ajax-api/3.0/mlflow/ui-telemetry")))
        .await;
    assert_eq!(config.body["disable_ui_telemetry"], true);
    let events = app
        .send(
            app.http
                .post(app.url("/ajax-api/3.0/mlflow/ui-telemetry"))
                .json(&json!({"records": [{"event_name": "x"}]})),
        )
        .await;
    assert_eq!(events.body["status"], "disabled");
    let traces = app
        .send(
            app.http
                .get(app.url("/ajax-api/2.0/mlflow/traces?experiment_ids=0&max_results=1")),
        )
        .await;
    assert_eq!((traces.status, traces.body.clone()), (200, json!({})));
}
