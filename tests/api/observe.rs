//! What operators read: the request id, readiness and `/metrics`.

use std::time::Duration;

use crate::helpers::{spawn_app, spawn_with_tokens};

#[tokio::test]
async fn every_response_carries_a_request_id_and_keeps_a_sane_one() {
    let app = spawn_app().await;
    let made_up = app.send(app.http.get(app.url("/health"))).await;
    let first = made_up.headers["x-request-id"]
        .to_str()
        .unwrap()
        .to_string();
    let again = app.send(app.http.get(app.url("/health"))).await;
    assert_ne!(first, again.headers["x-request-id"].to_str().unwrap());

    let kept = app
        .send(
            app.http
                .get(app.url("/api/2.0/mlflow/experiments/get?experiment_id=404"))
                .header("x-request-id", "lb-7f3a.1"),
        )
        .await;
    kept.error(404, "RESOURCE_DOES_NOT_EXIST");
    assert_eq!(kept.headers["x-request-id"], "lb-7f3a.1");

    // Too long or not a plain token: replaced, never echoed into logs.
    for hostile in ["a".repeat(200), "x\ty".to_string()] {
        let replaced = app
            .send(
                app.http
                    .get(app.url("/health"))
                    .header("x-request-id", hostile.as_str()),
            )
            .await;
        assert_ne!(replaced.headers["x-request-id"], hostile.as_str());
    }
}

#[tokio::test]
async fn readiness_checks_the_database_and_the_artifact_store() {
    let app = spawn_app().await;
    let ready = app.send(app.http.get(app.url("/ready"))).await;
    assert_eq!(ready.status, 200);
}

#[tokio::test]
async fn metrics_count_requests_by_route_bytes_and_workspace_resources() {
    let app = spawn_app().await;
    let experiment_id = app.experiment("scraped").await;
    let run_id = &app.run(&experiment_id).await;
    let upload = app
        .http
        .put(app.url(&format!(
            "/api/2.0/mlflow-artifacts/artifacts/{experiment_id}/{run_id}/artifacts/a.bin"
        )))
        .body(vec![7u8; 1000]);
    assert_eq!(app.send(upload).await.status, 200);

    let scrape = app.http.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(scrape.status(), 200);
    assert!(scrape.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/openmetrics-text"));
    let text = scrape.text().await.unwrap();
    for expected in [
        r#"ferroflow_http_requests_total{method="POST",route="/api/2.0/mlflow/runs/create",status="200"}"#,
        r#"ferroflow_http_request_duration_seconds_bucket{le="0.001",method="POST",route="/api/2.0/mlflow/runs/create"}"#,
        r#"ferroflow_workspace_experiments{workspace="default"} 2"#,
        r#"ferroflow_workspace_runs{workspace="default"} 1"#,
        "ferroflow_artifact_bytes_received_total ",
        "# EOF",
    ] {
        assert!(text.contains(expected), "{expected} missing from\n{text}");
    }
    let received = text
        .lines()
        .find_map(|line| line.strip_prefix("ferroflow_artifact_bytes_received_total "))
        .unwrap();
    assert!(received.parse::<u64>().unwrap() >= 1000, "{received}");
    assert!(
        !text.contains(run_id),
        "paths are reported by route template, not with their ids"
    );
}

#[tokio::test]
async fn readiness_and_metrics_need_no_token_and_refusals_are_counted() {
    let app = spawn_with_tokens(true, Duration::from_secs(3600)).await;
    assert_eq!(app.send(app.http.get(app.url("/ready"))).await.status, 200);
    let refused = app
        .send(app.http.get(app.url("/api/2.0/mlflow/experiments/search")))
        .await;
    refused.error(401, "UNAUTHENTICATED");
    let text = app
        .http
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains(r#"ferroflow_auth_refusals_total{status="401"}"#),
        "{text}"
    );
}
