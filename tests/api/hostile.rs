//! Hostile input, as a careless or malicious client sends it: refused with a
//! 400 in MLflow's shape on both databases, never a 500, a hang or a value
//! stored wrongly.

use serde_json::json;

use crate::helpers::{spawn_on_each_backend, TestApp};

const API: &str = "/api/2.0/mlflow";

async fn run_in(app: &TestApp, experiment: &str) -> String {
    let experiment_id = app.experiment(experiment).await;
    app.run(&experiment_id).await
}

#[tokio::test]
async fn a_nul_character_is_refused_wherever_it_is_sent() {
    for (backend, app) in spawn_on_each_backend().await {
        let run_id = run_in(&app, "nul").await;
        let bodies = [
            ("experiments/create", json!({"name": "a\u{0}b"})),
            (
                "runs/set-tag",
                json!({"run_id": run_id, "key": "k", "value": "v\u{0}"}),
            ),
            (
                "runs/log-batch",
                json!({"run_id": run_id, "params": [{"key": "p", "value": "\u{0}"}]}),
            ),
            (
                "runs/search",
                json!({"experiment_ids": ["0"], "filter": "params.p = 'a\u{0}'"}),
            ),
            ("registered-models/create", json!({"name": "m\u{0}"})),
        ];
        for (path, body) in bodies {
            let message = app
                .post(path, body)
                .await
                .error(400, "INVALID_PARAMETER_VALUE");
            assert!(message.contains("NUL"), "{backend:?} {path}: {message}");
        }
        for url in [
            "experiments/get-by-name?experiment_name=a%00b",
            "registered-models/search?filter=name%3D%27a%00%27",
            "artifacts/list?run_id=x&path=a%00b",
        ] {
            let answer = app
                .send(app.http.get(format!("{}{API}/{url}", app.base)))
                .await;
            answer.error(400, "INVALID_PARAMETER_VALUE");
        }
        // Nothing was written.
        let run = app.get("runs/get", &[("run_id", &run_id)]).await;
        let data = &run.body["run"]["data"];
        assert_eq!(data.get("params"), None, "{backend:?}: {data}");
        let tags = data["tags"].as_array().unwrap();
        assert!(
            tags.iter().all(|t| t["key"] == "mlflow.runName"),
            "{backend:?}: {data}"
        );
    }
}

#[tokio::test]
async fn a_query_string_that_is_not_utf8_is_refused() {
    for (backend, app) in spawn_on_each_backend().await {
        let answer = app
            .send(app.http.get(format!(
                "{}{API}/experiments/get-by-name?experiment_name=%ff%fe",
                app.base
            )))
            .await;
        let message = answer.error(400, "INVALID_PARAMETER_VALUE");
        assert!(message.contains("UTF-8"), "{backend:?}: {message}");
    }
}

#[tokio::test]
async fn times_and_steps_beyond_the_columns_are_refused_not_clamped() {
    for (backend, app) in spawn_on_each_backend().await {
        let run_id = run_in(&app, "ranges").await;
        let too_big = [
            json!({"run_id": run_id, "key": "m", "value": 1, "timestamp": 9_223_372_036_854_775_808u64, "step": 0}),
            json!({"run_id": run_id, "key": "m", "value": 1, "timestamp": 1e30, "step": 0}),
            json!({"run_id": run_id, "key": "m", "value": 1, "timestamp": 1, "step": 1e19}),
            json!({"run_id": run_id, "key": "m", "value": 1, "timestamp": -1e30, "step": 0}),
        ];
        for body in too_big {
            let message = app
                .post("runs/log-metric", body.clone())
                .await
                .error(400, "INVALID_PARAMETER_VALUE");
            assert!(
                message.starts_with("Invalid value"),
                "{backend:?} {body}: {message}"
            );
        }
        app.post(
            "runs/update",
            json!({"run_id": run_id, "end_time": 9_223_372_036_854_775_808u64}),
        )
        .await
        .error(400, "INVALID_PARAMETER_VALUE");
        let experiment_id = app.experiment("ranges-2").await;
        app.post(
            "runs/create",
            json!({"experiment_id": experiment_id, "start_time": 1e30}),
        )
        .await
        .error(400, "INVALID_PARAMETER_VALUE");
        // The largest value the columns hold still goes in, and comes back.
        let edge = app
            .post(
                "runs/log-metric",
                json!({"run_id": run_id, "key": "m", "value": 1,
                       "timestamp": i64::MAX, "step": 9.0e18}),
            )
            .await;
        assert_eq!(edge.status, 200, "{backend:?} {}", edge.body);
        let history = app
            .get(
                "metrics/get-history",
                &[("run_id", &run_id), ("metric_key", "m")],
            )
            .await;
        let metric = &history.body["metrics"][0];
        assert_eq!(metric["timestamp"], i64::MAX, "{backend:?}");
        assert_eq!(metric["step"], 9_000_000_000_000_000_000i64, "{backend:?}");
    }
}

#[tokio::test]
async fn a_filter_of_thousands_of_comparisons_is_refused_at_once() {
    for (backend, app) in spawn_on_each_backend().await {
        let many = vec!["metrics.m > 1"; 5000].join(" and ");
        let started = std::time::Instant::now();
        for path in ["runs/search", "experiments/search"] {
            let filter = if path == "runs/search" {
                many.clone()
            } else {
                vec!["name = 'x'"; 5000].join(" and ")
            };
            let message = app
                .post(
                    path,
                    json!({"experiment_ids": ["0"], "filter": filter, "max_results": 10}),
                )
                .await
                .error(400, "INVALID_PARAMETER_VALUE");
            assert!(
                message.contains("100 comparisons"),
                "{backend:?}: {message}"
            );
        }
        assert!(started.elapsed() < std::time::Duration::from_secs(2));
        // A hundred still run.
        let hundred = vec!["metrics.m > 1"; 100].join(" and ");
        let answer = app
            .post(
                "runs/search",
                json!({"experiment_ids": ["0"], "filter": hundred}),
            )
            .await;
        assert_eq!(answer.status, 200, "{backend:?} {}", answer.body);
    }
}

#[tokio::test]
async fn artifact_paths_with_lookalikes_of_dot_and_slash_are_refused() {
    for (backend, app) in spawn_on_each_backend().await {
        let run_id = run_in(&app, "lookalikes").await;
        for path in [
            "%EF%BC%8E%EF%BC%8E/x", // fullwidth full stops
            "%E2%80%A4%E2%80%A4/x", // one dot leaders
            "%E2%80%A5/x",          // two dot leader
            "..%EF%BC%8Fetc",       // fullwidth solidus
        ] {
            let answer = app
                .send(app.http.get(format!(
                    "{}{API}/artifacts/list?run_id={run_id}&path={path}",
                    app.base
                )))
                .await;
            let message = answer.error(400, "INVALID_PARAMETER_VALUE");
            assert_eq!(message, "Invalid path", "{backend:?} {path}");
        }
    }
}

#[tokio::test]
async fn bodies_are_limited_per_route() {
    let app = crate::helpers::spawn_app().await;
    let big = |field: &str| {
        let mut body = serde_json::Map::new();
        body.insert(field.into(), json!("x".repeat(5 * 1024 * 1024)));
        serde_json::Value::Object(body)
    };
    let refused = app.post("experiments/create", big("name")).await;
    let message = refused.error(400, "INVALID_PARAMETER_VALUE");
    assert!(message.contains("length limit"), "{message}");
    // Dataset profiles run to 16 MB in MLflow: log-inputs takes 5 MiB, and
    // answers about its content, not its size.
    let run_id = run_in(&app, "big").await;
    let mut inputs = big("unused");
    inputs["run_id"] = json!(run_id);
    let answer = app.post("runs/log-inputs", inputs).await;
    assert!(
        !answer.body["message"]
            .as_str()
            .unwrap_or("")
            .contains("length limit"),
        "{}",
        answer.body
    );
}
