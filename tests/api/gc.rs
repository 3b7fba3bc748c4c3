//! `POST /api/3.0/ferroflow/gc` (the same collection as `ferroflow gc`):
//! soft-deleted runs, logged models and experiments go for good with their
//! rows and artifacts; nothing else is touched, and a second pass finds
//! nothing. On both databases.

use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{spawn_on_each_backend, TestApp};

async fn gc(app: &TestApp, body: Value) -> Value {
    let answer = app
        .call(Method::POST, "/api/3.0/ferroflow/gc", None, Some(body))
        .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    answer.body
}

/// A run with metrics, params, tags and a 1000-byte artifact; its id.
async fn filled_run(app: &TestApp, experiment_id: &str) -> String {
    let run_id = app.run(experiment_id).await;
    let metrics: Vec<_> = (0..300)
        .map(|step| json!({"key": "loss", "value": 1.0, "timestamp": 1, "step": step}))
        .collect();
    let logged = app
        .post(
            "runs/log-batch",
            json!({"run_id": run_id, "metrics": metrics,
                   "params": [{"key": "lr", "value": "0.1"}],
                   "tags": [{"key": "t", "value": "v"}]}),
        )
        .await;
    assert_eq!(logged.status, 200, "{}", logged.body);
    let upload = app.http.put(app.url(&format!(
        "/api/2.0/mlflow-artifacts/artifacts/{experiment_id}/{run_id}/artifacts/model.bin"
    )));
    assert_eq!(app.send(upload.body(vec![1u8; 1000])).await.status, 200);
    run_id
}

async fn artifact_exists(app: &TestApp, experiment_id: &str, run_id: &str) -> bool {
    let got = app
        .send(app.http.get(app.url(&format!(
            "/api/2.0/mlflow-artifacts/artifacts/{experiment_id}/{run_id}/artifacts/model.bin"
        ))))
        .await;
    got.status == 200
}

#[tokio::test]
async fn gc_removes_what_was_deleted_with_its_artifacts_and_nothing_else() {
    for (backend, app) in spawn_on_each_backend().await {
        let experiment_id = app.experiment("kept").await;
        let kept = filled_run(&app, &experiment_id).await;
        let doomed = filled_run(&app, &experiment_id).await;
        app.post("runs/delete", json!({"run_id": doomed})).await;
        let model = app
            .post("logged-models", json!({"experiment_id": experiment_id}))
            .await;
        let model_id = model.body["model"]["info"]["model_id"].as_str().unwrap();
        let deleted_model = app
            .call(
                Method::DELETE,
                &format!("/api/2.0/mlflow/logged-models/{model_id}"),
                None,
                None,
            )
            .await;
        assert_eq!(deleted_model.status, 200, "{}", deleted_model.body);
        let gone_experiment = app.experiment("gone").await;
        let inside = filled_run(&app, &gone_experiment).await;
        app.post(
            "experiments/delete",
            json!({"experiment_id": gone_experiment}),
        )
        .await;

        let not_yet = gc(&app, json!({"older_than": "1d"})).await;
        assert_eq!(
            (not_yet["runs"].as_u64(), not_yet["rows"].as_u64()),
            (Some(0), Some(0)),
            "{backend:?}: {not_yet}"
        );
        let dry = gc(&app, json!({"dry_run": true})).await;
        assert_eq!(dry["experiments"], 1, "{backend:?}: {dry}");
        assert_eq!(dry["logged_models"], 1);
        // The deleted experiment's run is counted once, not also alone.
        assert_eq!(dry["runs"], 2, "{backend:?}: {dry}");
        assert_eq!(dry["artifact_bytes"], 2000, "{dry}");
        assert!(
            artifact_exists(&app, &experiment_id, &doomed).await,
            "dry run removes nothing"
        );

        let done = gc(&app, json!({"older_than": "0s"})).await;
        assert_eq!(done["runs"], 2, "{backend:?}: {done}");
        assert_eq!(done["logged_models"], 1);
        assert_eq!(done["experiments"], 1);
        assert_eq!(done["artifact_bytes"], 2000);
        assert!(done["rows"].as_u64().unwrap() > 600, "{done}");
        assert!(done["failed"].as_array().unwrap().is_empty());

        for run_id in [&doomed, &inside] {
            app.get("runs/get", &[("run_id", run_id)])
                .await
                .error(404, "RESOURCE_DOES_NOT_EXIST");
        }
        assert!(!artifact_exists(&app, &experiment_id, &doomed).await);
        assert!(!artifact_exists(&app, &gone_experiment, &inside).await);
        app.get("experiments/get", &[("experiment_id", &gone_experiment)])
            .await
            .error(404, "RESOURCE_DOES_NOT_EXIST");
        let history = app
            .get(
                "metrics/get-history",
                &[("run_id", &kept), ("metric_key", "loss")],
            )
            .await;
        assert_eq!(history.body["metrics"].as_array().unwrap().len(), 300);
        assert!(artifact_exists(&app, &experiment_id, &kept).await);

        let again = gc(&app, json!({})).await;
        assert_eq!(
            (
                again["runs"].as_u64(),
                again["experiments"].as_u64(),
                again["rows"].as_u64()
            ),
            (Some(0), Some(0), Some(0)),
            "nothing twice: {again}"
        );
    }
}

#[tokio::test]
async fn gc_refuses_a_bad_age() {
    for (_, app) in spawn_on_each_backend().await {
        let answer = app
            .call(
                Method::POST,
                "/api/3.0/ferroflow/gc",
                None,
                Some(json!({"older_than": "a week"})),
            )
            .await;
        assert!(answer
            .error(400, "INVALID_PARAMETER_VALUE")
            .contains("a week"));
    }
}
