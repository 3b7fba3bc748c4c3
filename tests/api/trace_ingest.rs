//! Span ingest written together (group commit) and what it derives, the
//! legacy v2 trace calls, prompt links and trace metrics, across
//! workspaces: one export's error stays its own, and no answer counts or
//! reaches another workspace's traces.

use reqwest::Method;
use serde_json::json;

use crate::helpers::spawn_with_workspaces;
use crate::traces::{experiments_in_two_workspaces, export, otlp_json};

const METRICS: &str = "/api/3.0/mlflow/traces/metrics";

#[tokio::test]
async fn concurrent_exports_commit_together_and_fail_alone() {
    let app = spawn_with_workspaces().await;
    let (exp_a, exp_b) = experiments_in_two_workspaces(&app).await;
    let taken = "0000000000000000000000000000beef";
    let body = |hex: &str| serde_json::to_vec(&otlp_json(hex, 1)).unwrap();
    let first = export(
        &app,
        Some("team-b"),
        Some(&exp_b),
        body(taken),
        "application/json",
        false,
    )
    .await;
    assert_eq!(first.status, 200, "{}", first.body);

    // Twenty exports at once into team-a; one reuses team-b's trace id.
    let mut sends = Vec::new();
    for n in 0..20 {
        let hex = if n == 7 {
            taken.to_string()
        } else {
            format!("{n:032x}")
        };
        let (app, exp) = (&app, exp_a.clone());
        sends.push(async move {
            export(
                app,
                Some("team-a"),
                Some(&exp),
                body(&hex),
                "application/json",
                false,
            )
            .await
        });
    }
    let answers = futures::future::join_all(sends).await;
    for (n, answer) in answers.iter().enumerate() {
        match n {
            7 => {
                answer.error(400, "RESOURCE_ALREADY_EXISTS");
            }
            _ => assert_eq!(answer.status, 200, "export {n}: {}", answer.body),
        }
    }
    let counted = app
        .call(
            Method::POST,
            METRICS,
            Some("team-a"),
            Some(json!({"experiment_ids": [exp_a], "view_type": "TRACES",
                        "metric_name": "trace_count", "aggregations": [{"aggregation_type": "COUNT"}]})),
        )
        .await;
    assert_eq!(
        counted.body["data_points"][0]["values"]["COUNT"], 19.0,
        "{}",
        counted.body
    );
    let spans = app
        .call(
            Method::POST,
            METRICS,
            Some("team-a"),
            Some(json!({"experiment_ids": [exp_a], "view_type": "SPANS",
                        "metric_name": "span_count", "aggregations": [{"aggregation_type": "COUNT"}]})),
        )
        .await;
    assert_eq!(
        spans.body["data_points"][0]["values"]["COUNT"], 38.0,
        "{}",
        spans.body
    );
}

#[tokio::test]
async fn metrics_v2_calls_and_prompt_links_stay_in_their_workspace() {
    let app = spawn_with_workspaces().await;
    let (exp_a, exp_b) = experiments_in_two_workspaces(&app).await;
    let started = app
        .call(
            Method::POST,
            "/api/2.0/mlflow/traces",
            Some("team-a"),
            Some(json!({"experiment_id": exp_a, "timestamp_ms": 1000,
                        "tags": [{"key": "mlflow.traceName", "value": "legacy"}]})),
        )
        .await;
    assert_eq!(started.status, 200, "{}", started.body);
    let id = started.body["trace_info"]["request_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(id.len(), 32, "a v2 id is bare uuid hex");
    assert_eq!(started.body["trace_info"]["status"], "IN_PROGRESS");
    assert_eq!(started.body["trace_info"]["execution_time_ms"], 0);

    let end = json!({"timestamp_ms": 1250, "status": "OK"});
    let path = format!("/api/2.0/mlflow/traces/{id}");
    app.call(Method::PATCH, &path, Some("team-b"), Some(end.clone()))
        .await
        .error(404, "RESOURCE_DOES_NOT_EXIST");
    let ended = app
        .call(Method::PATCH, &path, Some("team-a"), Some(end))
        .await;
    assert_eq!(
        ended.body["trace_info"]["execution_time_ms"], 250,
        "{}",
        ended.body
    );
    assert_eq!(ended.body["trace_info"]["status"], "OK");
    let bad = app
        .call(
            Method::PATCH,
            &path,
            Some("team-a"),
            Some(json!({"status": "DONE"})),
        )
        .await;
    bad.error(400, "INVALID_PARAMETER_VALUE");

    let link = json!({"trace_id": id, "prompt_versions": [{"name": "p", "version": "1"}]});
    app.call(
        Method::POST,
        "/api/2.0/mlflow/traces/link-prompts",
        Some("team-b"),
        Some(link.clone()),
    )
    .await
    .error(404, "RESOURCE_DOES_NOT_EXIST");
    let linked = app
        .call(
            Method::POST,
            "/api/2.0/mlflow/traces/link-prompts",
            Some("team-a"),
            Some(link),
        )
        .await;
    assert_eq!(linked.status, 200, "{}", linked.body);

    // team-b asking about team-a's experiment counts nothing.
    let query = json!({"experiment_ids": [exp_a, exp_b], "view_type": "TRACES",
                       "metric_name": "latency", "aggregations": [{"aggregation_type": "AVG"}],
                       "dimensions": ["trace_name"]});
    let theirs = app
        .call(Method::POST, METRICS, Some("team-b"), Some(query.clone()))
        .await;
    assert_eq!(theirs.status, 200, "{}", theirs.body);
    assert_eq!(theirs.body, json!({}));
    let ours = app
        .call(Method::POST, METRICS, Some("team-a"), Some(query))
        .await;
    assert_eq!(
        ours.body["data_points"],
        json!([{"metric_name": "latency", "dimensions": {"trace_name": "legacy"},
                "values": {"AVG": 250.0}}])
    );
}

#[tokio::test]
async fn hostile_metric_queries_are_client_errors() {
    let app = spawn_with_workspaces().await;
    let (exp_a, _) = experiments_in_two_workspaces(&app).await;
    let base = json!({"experiment_ids": [exp_a], "view_type": "TRACES",
                      "metric_name": "latency", "aggregations": [{"aggregation_type": "AVG"}]});
    for (field, value) in [
        ("aggregations", json!([{"aggregation_type": "PERCENTILE"}])),
        (
            "aggregations",
            json!([{"aggregation_type": "PERCENTILE", "percentile_value": 101}]),
        ),
        ("aggregations", json!([])),
        ("aggregations", json!([{"aggregation_type": "MEDIAN"}])),
        ("view_type", json!("GRAPHS")),
        ("filters", json!(["trace.status = 'OK' OR 1 = 1"])),
        (
            "filters",
            json!(["trace.tag.`x'; DROP TABLE spans; --` = 'y'"]),
        ),
        ("time_interval_seconds", json!(-60)),
        ("experiment_ids", json!(["1 OR 1=1"])),
    ] {
        let mut body = base.clone();
        body[field] = value;
        if field == "time_interval_seconds" {
            body["start_time_ms"] = json!(0);
            body["end_time_ms"] = json!(1);
        }
        let answer = app
            .call(Method::POST, METRICS, Some("team-a"), Some(body.clone()))
            .await;
        if answer.status == 200 {
            // A quoted key is data, not SQL: it matches nothing.
            assert_eq!(field, "filters", "{body}: {}", answer.body);
            continue;
        }
        answer.error(400, "INVALID_PARAMETER_VALUE");
    }
}
