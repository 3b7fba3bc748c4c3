//! Trace search's richer filters on each database: RLIKE (one SQL spelling,
//! PostgreSQL's `regexp_match` and SQLite's registered one, which must agree),
//! `feedback.` / `expectation.` over assessments, and bad patterns answered
//! as 400s on both, never as a database error.

use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{spawn_on_each_backend, Answer, TestApp};

const TRACES: &str = "/api/3.0/mlflow/traces";

/// A finished trace record with a name, one tag and one metadata entry.
async fn record(app: &TestApp, experiment_id: &str, id: &str, name: &str, env: &str, tenant: &str) {
    let body = json!({"trace": {"trace_info": {
        "trace_id": id,
        "trace_location": {"type": "MLFLOW_EXPERIMENT",
                           "mlflow_experiment": {"experiment_id": experiment_id}},
        "request_time": "2026-01-01T00:00:00Z",
        "execution_duration": "1s",
        "state": "OK",
        "trace_metadata": {"tenant": tenant},
        "tags": {"mlflow.traceName": name, "env": env},
    }}});
    let answer = app.call(Method::POST, TRACES, None, Some(body)).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
}

/// One root span over OTLP JSON, of `span_type`.
async fn span(app: &TestApp, experiment_id: &str, trace_hex: &str, name: &str, span_type: &str) {
    let body = json!({"resourceSpans": [{"resource": {"attributes": []}, "scopeSpans": [{"spans": [
        {"traceId": trace_hex, "spanId": "0000000000000001", "name": name,
         "startTimeUnixNano": "1767225600000000000", "endTimeUnixNano": "1767225601000000000",
         "status": {"code": 1},
         "attributes": [{"key": "mlflow.spanType", "value": {"stringValue": span_type}}]}
    ]}]}]});
    let request = app
        .http
        .post(app.url("/v1/traces"))
        .header("content-type", "application/json")
        .header("x-mlflow-experiment-id", experiment_id)
        .json(&body);
    let answer = app.send(request).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
}

async fn assess(app: &TestApp, trace_id: &str, name: &str, kind: &str, value: Value) -> String {
    let body = json!({"assessment": {"assessment_name": name, "trace_id": trace_id,
        "source": {"source_type": "HUMAN", "source_id": "ana"}, kind: {"value": value}}});
    let path = format!("{TRACES}/{trace_id}/assessments");
    let created = app.call(Method::POST, &path, None, Some(body)).await;
    assert_eq!(created.status, 200, "{}", created.body);
    created.body["assessment"]["assessment_id"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn search(app: &TestApp, experiment_id: &str, filter: &str) -> Answer {
    let body = json!({"locations": [{"type": "MLFLOW_EXPERIMENT",
        "mlflow_experiment": {"experiment_id": experiment_id}}], "filter": filter});
    app.call(Method::POST, &format!("{TRACES}/search"), None, Some(body))
        .await
}

/// The letters of the traces found (`tr-a...` is `a`), sorted.
async fn found(app: &TestApp, experiment_id: &str, filter: &str) -> String {
    let answer = search(app, experiment_id, filter).await;
    assert_eq!(answer.status, 200, "{filter}: {}", answer.body);
    let mut letters: Vec<char> = answer.body["traces"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|t| t["trace_id"].as_str().unwrap().chars().nth(3).unwrap())
        .collect();
    letters.sort();
    letters.into_iter().collect()
}

const A: &str = "a0000000000000000000000000000000";
const B: &str = "b0000000000000000000000000000000";
const C: &str = "c0000000000000000000000000000000";

/// Traces a (alpha-1, prod-eu, acme-01), b (beta-22, prod-us, Globex, an LLM
/// span) and c (gamma, staging, initech).
async fn three_traces(app: &TestApp) -> String {
    let exp = app.experiment("rlike").await;
    for (hex, name, env, tenant, span_type) in [
        (A, "alpha-1", "prod-eu", "acme-01", "CHAIN"),
        (B, "beta-22", "prod-us", "Globex", "LLM"),
        (C, "gamma", "staging", "initech", "CHAIN"),
    ] {
        span(app, &exp, hex, name, span_type).await;
        record(app, &exp, &format!("tr-{hex}"), name, env, tenant).await;
    }
    exp
}

#[tokio::test]
async fn rlike_searches_unanchored_and_case_sensitive_on_each_database() {
    for (backend, app) in spawn_on_each_backend().await {
        let exp = three_traces(&app).await;
        for (filter, expected) in [
            ("tags.env RLIKE '^prod-(eu|us)$'", "ab"),
            ("tags.env RLIKE 'PROD'", ""),
            ("tags.env rlike 'ging$'", "c"),
            ("tags.missing RLIKE '.*'", ""),
            ("metadata.tenant RLIKE '^[a-z]+-[0-9]+$'", "a"),
            ("trace.name RLIKE '^(alpha|beta)-[0-9]+$'", "ab"),
            ("tags.`mlflow.traceName` RLIKE 'amm'", "c"),
            ("trace.status RLIKE '^O'", "abc"),
            ("trace.request_id RLIKE '^tr-[0-9a-f]{32}$'", "abc"),
            ("span.name RLIKE '^beta'", "b"),
            ("span.attributes.mlflow.spanType RLIKE '^LLM$'", "b"),
            ("span.attributes.mlflow.spanType RLIKE 'HAI'", "ac"),
            ("tags.env RLIKE 'prod' AND metadata.tenant RLIKE '^G'", "b"),
        ] {
            assert_eq!(
                found(&app, &exp, filter).await,
                expected,
                "{backend:?}: {filter}"
            );
        }
        for bad in [
            "tags.env RLIKE '('",
            "span.name RLIKE 'a{2,1}'",
            "trace.text RLIKE 'q'",
        ] {
            search(&app, &exp, bad)
                .await
                .error(400, "INVALID_PARAMETER_VALUE");
        }
    }
}

#[tokio::test]
async fn feedback_and_expectations_match_valid_values_on_each_database() {
    for (backend, app) in spawn_on_each_backend().await {
        let exp = three_traces(&app).await;
        let id = |hex: &str| format!("tr-{hex}");
        assess(&app, &id(A), "quality", "feedback", json!("good")).await;
        let bad = assess(&app, &id(B), "quality", "feedback", json!("bad")).await;
        assess(&app, &id(A), "score", "feedback", json!(0.9)).await;
        assess(&app, &id(B), "score", "feedback", json!(0.3)).await;
        assess(&app, &id(C), "score", "feedback", json!(5.0)).await;
        assess(&app, &id(A), "ok", "feedback", json!(true)).await;
        assess(&app, &id(A), "answer", "expectation", json!("X")).await;
        for (filter, expected) in [
            ("feedback.quality = 'good'", "a"),
            ("feedback.quality = '\"good\"'", "a"),
            ("feedback.quality != 'good'", "b"),
            ("feedback.quality LIKE 'go%'", ""),
            ("feedback.quality ILIKE '%GOO%'", "a"),
            ("feedback.quality RLIKE '^\"good\"$'", "a"),
            ("feedback.quality IS NULL", "c"),
            ("feedback.score > 0.5", "ac"),
            ("feedback.score <= 0.3", "b"),
            ("feedback.score = '0.9'", "a"),
            ("feedback.ok = 'true'", "a"),
            ("feedback.ok > 0", ""),
            ("expectation.answer = 'X'", "a"),
            ("feedback.answer IS NOT NULL", ""),
            ("feedback.score > 0.5 AND tags.env RLIKE '^prod'", "a"),
        ] {
            assert_eq!(
                found(&app, &exp, filter).await,
                expected,
                "{backend:?}: {filter}"
            );
        }
        // The override counts; the overridden assessment no longer does.
        let body = json!({"assessment": {"assessment_name": "quality", "trace_id": id(B),
            "source": {"source_type": "HUMAN", "source_id": "bo"},
            "feedback": {"value": "good"}, "overrides": bad}});
        let path = format!("{TRACES}/{}/assessments", id(B));
        let overridden = app.call(Method::POST, &path, None, Some(body)).await;
        assert_eq!(overridden.status, 200, "{}", overridden.body);
        assert_eq!(found(&app, &exp, "feedback.quality = 'good'").await, "ab");
        assert_eq!(found(&app, &exp, "feedback.quality = 'bad'").await, "");
        for bad in [
            "feedback.score = 0.9",
            "feedback.score > '0.5'",
            "feedback.q IN ('a')",
        ] {
            search(&app, &exp, bad)
                .await
                .error(400, "INVALID_PARAMETER_VALUE");
        }
    }
}
