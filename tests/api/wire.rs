//! MLflow's wire rules as the stock client and scripts meet them.

use std::sync::Arc;

use ferroflow::artifacts::LocationPolicy;
use serde_json::json;

use crate::helpers::{spawn_app, spawn_with};

#[tokio::test]
async fn lower_camel_field_names_are_read_at_every_depth() {
    let app = spawn_app().await;
    let experiment_id = app.experiment("camel").await;
    let run = app
        .post(
            "runs/create",
            json!({"experimentId": experiment_id, "runName": "r", "startTime": "17"}),
        )
        .await;
    assert_eq!(run.status, 200, "{}", run.body);
    let info = &run.body["run"]["info"];
    // Responses are snake_case, as MLflow's are.
    assert_eq!(info["run_name"], "r");
    assert_eq!(info["start_time"], 17);
    let run_id = info["run_id"].as_str().unwrap();
    // A nested message (dataset inside a dataset input) in lowerCamel too.
    let logged = app
        .post(
            "runs/log-inputs",
            json!({"runId": run_id, "datasets": [{"dataset": {
                "name": "d", "digest": "x1", "sourceType": "local", "source": "{}"}}]}),
        )
        .await;
    assert_eq!(logged.status, 200, "{}", logged.body);
    let got = app.get("runs/get", &[("runId", run_id)]).await;
    let dataset = &got.body["run"]["inputs"]["dataset_inputs"][0]["dataset"];
    assert_eq!(dataset["source_type"], "local", "{}", got.body);
}

#[tokio::test]
async fn one_field_spelled_both_ways_is_refused() {
    let app = spawn_app().await;
    let answer = app
        .post(
            "experiments/create",
            json!({"name": "a", "artifact_location": "x", "artifactLocation": "y"}),
        )
        .await;
    let message = answer.error(400, "INVALID_PARAMETER_VALUE");
    assert!(message.contains("duplicate field"), "{message}");
}

#[tokio::test]
async fn errors_are_mlflow_json_with_mlflow_statuses() {
    let app = spawn_app().await;
    let missing = app
        .get(
            "runs/get",
            &[("run_id", "0123456789abcdef0123456789abcdef")],
        )
        .await;
    missing.error(404, "RESOURCE_DOES_NOT_EXIST");
    let no_name = app.post("experiments/create", json!({})).await;
    let message = no_name.error(400, "INVALID_PARAMETER_VALUE");
    assert_eq!(message, "Missing value for required parameter 'name'.");
    app.experiment("twice").await;
    let twice = app
        .post("experiments/create", json!({"name": "twice"}))
        .await;
    twice.error(400, "RESOURCE_ALREADY_EXISTS");
    let wrong_type = app.post("runs/create", json!({"start_time": "soon"})).await;
    wrong_type.error(400, "INVALID_PARAMETER_VALUE");

    let malformed = app
        .send(
            app.http
                .post(app.url("/api/2.0/mlflow/experiments/create"))
                .header("content-type", "application/json")
                .body("{\"name\": "),
        )
        .await;
    malformed.error(400, "INVALID_PARAMETER_VALUE");
    let no_content_type = app
        .send(
            app.http
                .post(app.url("/api/2.0/mlflow/experiments/create"))
                .body("{\"name\": \"x\"}"),
        )
        .await;
    no_content_type.error(400, "INVALID_PARAMETER_VALUE");
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_json_404() {
    let app = spawn_app().await;
    for request in [
        app.http.get(app.url("/api/2.0/mlflow/no-such-thing")),
        app.http.get(app.url("/no-such-page")),
        app.http.delete(app.url("/api/2.0/mlflow/runs/create")),
    ] {
        let answer = app.send(request).await;
        let message = answer.error(404, "ENDPOINT_NOT_FOUND");
        assert!(message.starts_with("No API endpoint for"), "{message}");
    }
}

#[tokio::test]
async fn artifacts_only_serves_the_proxy_and_refuses_tracking_with_503() {
    let app = spawn_with(|state| state.artifacts_only = true, false).await;
    let tracking = app
        .send(app.http.get(app.url("/api/2.0/mlflow/experiments/search")))
        .await;
    assert_eq!(tracking.status, 503);
    let path = "/api/2.0/mlflow-artifacts/artifacts/0/r/artifacts/a.txt";
    let put = app.send(app.http.put(app.url(path)).body("hello")).await;
    assert_eq!(put.status, 200, "{}", put.body);
    let got = app.http.get(app.url(path)).send().await.unwrap();
    assert_eq!(got.status(), 200);
    assert_eq!(got.text().await.unwrap(), "hello");
}

#[tokio::test]
async fn artifact_paths_cannot_leave_their_root() {
    let app = spawn_app().await;
    // (A literal `..` or `%2e%2e` segment is resolved by the HTTP client
    // itself, so encoded slashes and backslashes carry the escape here.)
    for path in [
        "0/..%2F..%2Fetc/passwd",
        "0/x/..%5C..%5C..%5Cy",
        "0/a%00b",
        "%2Fetc/passwd",
    ] {
        let url = app.url(&format!("/api/2.0/mlflow-artifacts/artifacts/{path}"));
        let answer = app.send(app.http.put(url).body("x")).await;
        assert_eq!(answer.status, 400, "{path}: {}", answer.body);
        answer.error(400, "INVALID_PARAMETER_VALUE");
    }
}

#[tokio::test]
async fn a_value_of_the_wrong_type_is_refused_in_mlflows_words() {
    let app = spawn_app().await;
    let hint = "See the API docs for more information about request parameters.";
    for (path, body, expected) in [
        (
            "experiments/create",
            json!({"name": 123}),
            "Invalid value 123 for parameter 'name' supplied:  Hint: Value was of type 'int'.",
        ),
        (
            "experiments/create",
            json!({"name": "x", "tags": "abc"}),
            "Invalid value \"abc\" for parameter 'tags' supplied:  Hint: Value was of type 'str'.",
        ),
        (
            "runs/log-metric",
            json!({"run_id": "r", "key": "m", "value": "x", "timestamp": 1}),
            "Invalid value \"x\" for parameter 'value' supplied:  Hint: Value was of type 'str'.",
        ),
    ] {
        let answer = app.post(path, body).await;
        let message = answer.error(400, "INVALID_PARAMETER_VALUE");
        assert_eq!(message, format!("{expected} {hint}"));
    }
    let query = app
        .send(
            app.http
                .get(app.url("/api/2.0/mlflow/experiments/search?max_results=abc")),
        )
        .await;
    assert!(query
        .error(400, "INVALID_PARAMETER_VALUE")
        .starts_with("Invalid value \"abc\" for parameter 'max_results' supplied"));
}

#[tokio::test]
async fn a_bad_artifact_path_is_mlflows_invalid_path_before_any_lookup() {
    let app = spawn_app().await;
    for path in ["../x", "/etc/passwd", "a/../../b", "a/%2e%2e/%2e%2e/b"] {
        let url = format!("/api/2.0/mlflow/artifacts/list?run_id=no-such-run&path={path}");
        let answer = app.send(app.http.get(app.url(&url))).await;
        assert_eq!(
            answer.error(400, "INVALID_PARAMETER_VALUE"),
            "Invalid path",
            "{path}"
        );
    }
}

#[tokio::test]
async fn a_relative_local_artifact_location_is_made_absolute() {
    let app = spawn_with(
        |state| state.artifact_locations = Arc::new(LocationPolicy::any()),
        false,
    )
    .await;
    let created = app
        .post(
            "experiments/create",
            json!({"name": "rel", "artifact_location": "rel/dir"}),
        )
        .await;
    let id = created.body["experiment_id"].as_str().unwrap().to_string();
    let got = app
        .send(app.http.get(app.url(&format!(
            "/api/2.0/mlflow/experiments/get?experiment_id={id}"
        ))))
        .await;
    let cwd = std::env::current_dir().unwrap().display().to_string();
    assert_eq!(
        got.body["experiment"]["artifact_location"],
        format!("{cwd}/rel/dir")
    );
}

#[tokio::test]
async fn every_response_says_no_sniffing_and_no_framing_by_other_sites() {
    let app = spawn_app().await;
    let found = app.get("experiments/search", &[("max_results", "5")]).await;
    let missing = app
        .send(app.http.get(format!("{}/no/such/route", app.base)))
        .await;
    let refused = app.post("experiments/create", json!({})).await;
    for answer in [found, missing, refused] {
        assert_eq!(answer.headers["x-content-type-options"], "nosniff");
        assert_eq!(answer.headers["x-frame-options"], "SAMEORIGIN");
    }
}

#[tokio::test]
async fn metric_values_come_back_as_the_exact_doubles_sent() {
    let app = spawn_app().await;
    let experiment_id = app.experiment("exact").await;
    let run_id = &app.run(&experiment_id).await;
    // Values whose shortest decimal form the default float parser misreads.
    let mut values = vec![
        1.0 / 11.0,
        1.0 / 3.0,
        0.1 + 0.2,
        2.0f64.sqrt(),
        1e-300 / 7.0,
    ];
    values.extend((1..200).map(|i| f64::from(i).ln() / 7.0 + 1.0 / f64::from(i)));
    let metrics: Vec<_> = values
        .iter()
        .enumerate()
        .map(|(step, value)| json!({"key": "v", "value": value, "timestamp": 1, "step": step}))
        .collect();
    let logged = app
        .post(
            "runs/log-batch",
            json!({"run_id": run_id, "metrics": metrics}),
        )
        .await;
    assert_eq!(logged.status, 200, "{}", logged.body);
    let history = app
        .get(
            "metrics/get-history",
            &[
                ("run_id", run_id),
                ("metric_key", "v"),
                ("max_results", "1000"),
            ],
        )
        .await;
    let mut got: Vec<(i64, f64)> = history.body["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["step"].as_i64().unwrap(), m["value"].as_f64().unwrap()))
        .collect();
    got.sort_by_key(|(step, _)| *step);
    let got: Vec<u64> = got.iter().map(|(_, v)| v.to_bits()).collect();
    let sent: Vec<u64> = values.iter().map(|v| v.to_bits()).collect();
    assert_eq!(got, sent);
}
