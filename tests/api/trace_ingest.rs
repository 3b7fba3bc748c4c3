//! Span ingest written together (group commit) and what it derives, the
//! legacy v2 trace calls, prompt links and trace metrics, across
//! workspaces: one export's error stays its own, and no answer counts or
//! reaches another workspace's traces.

use reqwest::Method;
use serde_json::json;

use crate::helpers::{spawn_on_each_backend_with_workspaces, spawn_with_workspaces, TestApp};
use crate::traces::{experiments_in_two_workspaces, export, otlp_json};

const METRICS: &str = "/api/3.0/mlflow/traces/metrics";

#[tokio::test]
async fn concurrent_exports_commit_together_and_fail_alone() {
    for (backend, app) in spawn_on_each_backend_with_workspaces().await {
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
        assert_eq!(first.status, 200, "{backend:?}: {}", first.body);

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
                _ => assert_eq!(
                    answer.status, 200,
                    "{backend:?}: export {n}: {}",
                    answer.body
                ),
            }
        }
        assert_eq!(
            count(&app, "team-a", &exp_a, "TRACES", "trace_count").await,
            19.0
        );
        assert_eq!(
            count(&app, "team-a", &exp_a, "SPANS", "span_count").await,
            38.0
        );
        // team-b's trace kept its two spans and its record.
        assert_eq!(
            count(&app, "team-b", &exp_b, "SPANS", "span_count").await,
            2.0
        );
    }
}

/// What `traces/metrics` counts in one experiment.
async fn count(app: &TestApp, ws: &str, experiment: &str, view: &str, metric: &str) -> f64 {
    let counted = app
        .call(
            Method::POST,
            METRICS,
            Some(ws),
            Some(json!({"experiment_ids": [experiment], "view_type": view,
                        "metric_name": metric, "aggregations": [{"aggregation_type": "COUNT"}]})),
        )
        .await;
    assert_eq!(counted.status, 200, "{}", counted.body);
    counted.body["data_points"][0]["values"]["COUNT"]
        .as_f64()
        .unwrap_or(0.0)
}

/// More traces in one export than one statement of placeholders holds on
/// either database (18 columns a record), sent twice: written whole, once,
/// and the second time (every trace has a record now) each trace's usage
/// and session updated from its own spans, thousands in one statement.
#[tokio::test]
async fn an_export_of_thousands_of_traces_is_written_whole() {
    const TRACES: usize = 4000;
    let body = |factor: usize| {
        let spans: Vec<serde_json::Value> = (0..TRACES)
            .map(|n| {
                let usage = format!(
                    "{{\"input_tokens\": {}, \"output_tokens\": 1, \"total_tokens\": {}}}",
                    n * factor,
                    n * factor + 1
                );
                json!({"traceId": format!("{n:032x}"), "spanId": "0000000000000001",
                       "name": "root", "startTimeUnixNano": "1767225600000000000",
                       "endTimeUnixNano": "1767225601000000000", "status": {"code": 1},
                       "attributes": [
                           {"key": "user.id", "value": {"stringValue": "ada"}},
                           {"key": "session.id", "value": {"stringValue": format!("s-{n}")}},
                           {"key": "mlflow.chat.tokenUsage", "value": {"stringValue": usage}}]})
            })
            .collect();
        serde_json::to_vec(&json!({"resourceSpans": [{"scopeSpans": [{"spans": spans}]}]})).unwrap()
    };
    for (backend, app) in spawn_on_each_backend_with_workspaces().await {
        let (exp, _) = experiments_in_two_workspaces(&app).await;
        for factor in [1, 2] {
            let sent = export(
                &app,
                Some("team-a"),
                Some(&exp),
                body(factor),
                "application/json",
                false,
            )
            .await;
            assert_eq!(sent.status, 200, "{backend:?}: {}", sent.body);
        }
        assert_eq!(
            count(&app, "team-a", &exp, "TRACES", "trace_count").await,
            TRACES as f64
        );
        assert_eq!(
            count(&app, "team-a", &exp, "SPANS", "span_count").await,
            TRACES as f64
        );
        let found = app
            .call(
                Method::POST,
                "/api/3.0/mlflow/traces/search",
                Some("team-a"),
                Some(json!({"locations": [{"type": "MLFLOW_EXPERIMENT",
                                           "mlflow_experiment": {"experiment_id": exp}}],
                            "filter": "metadata.`mlflow.trace.user` = 'ada'",
                            "max_results": 500})),
            )
            .await;
        assert_eq!(found.status, 200, "{backend:?}: {}", found.body);
        assert_eq!(
            found.body["traces"].as_array().unwrap().len(),
            500,
            "{backend:?}"
        );
        for n in [0, 1, 1999, TRACES - 1] {
            let got = app
                .call(
                    Method::GET,
                    &format!("/api/3.0/mlflow/traces/tr-{n:032x}"),
                    Some("team-a"),
                    None,
                )
                .await;
            let metadata = &got.body["trace"]["trace_info"]["trace_metadata"];
            assert_eq!(
                metadata["mlflow.trace.tokenUsage"],
                format!(
                    "{{\"input_tokens\": {}, \"output_tokens\": 1, \"total_tokens\": {}}}",
                    2 * n,
                    2 * n + 1
                ),
                "{backend:?}: trace {n}"
            );
            assert_eq!(
                metadata["mlflow.trace.session"],
                format!("s-{n}"),
                "{backend:?}"
            );
        }
    }
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
