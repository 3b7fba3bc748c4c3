//! `mlflow server`'s security options, carried over: the `Host` check
//! against DNS rebinding, cross-origin writes, CORS, and the policy on
//! client-chosen artifact locations.

use std::sync::Arc;

use ferroflow::api::security::WebPolicy;
use serde_json::json;

use crate::helpers::{spawn_app, spawn_with};

#[tokio::test]
async fn an_unexpected_host_is_refused_except_on_probes() {
    let app = spawn_app().await;
    let rebound = app
        .send(
            app.http
                .get(app.url("/api/2.0/mlflow/experiments/search"))
                .header("host", "attacker.example.com"),
        )
        .await;
    let message = rebound.error(403, "PERMISSION_DENIED");
    assert!(message.contains("DNS rebinding"), "{message}");
    for probe in ["/health", "/ready"] {
        let answer = app
            .send(
                app.http
                    .get(app.url(probe))
                    .header("host", "ferroflow-1:5000"),
            )
            .await;
        assert_eq!(answer.status, 200, "{probe}");
    }
    let private = app
        .send(
            app.http
                .get(app.url("/api/2.0/mlflow/experiments/get?experiment_id=0"))
                .header("host", "10.0.0.7:5000"),
        )
        .await;
    assert_eq!(private.status, 200);

    let named = spawn_with(
        |state| state.web = Arc::new(WebPolicy::new(Some("mlflow.example.com"), None, None)),
        false,
    )
    .await;
    let by_name = named
        .send(
            named
                .http
                .get(named.url("/api/2.0/mlflow/experiments/get?experiment_id=0"))
                .header("host", "mlflow.example.com"),
        )
        .await;
    assert_eq!(by_name.status, 200);
}

#[tokio::test]
async fn a_write_from_another_sites_page_is_blocked_and_allowed_origins_get_cors() {
    let app = spawn_with(
        |state| state.web = Arc::new(WebPolicy::new(None, Some("https://app.example.com"), None)),
        false,
    )
    .await;
    let create = |origin: &str| {
        app.http
            .post(app.url("/api/2.0/mlflow/experiments/create"))
            .header("origin", origin)
            .json(&json!({"name": origin}))
    };
    let blocked = app.send(create("https://evil.example.com")).await;
    assert!(blocked
        .error(403, "PERMISSION_DENIED")
        .contains("Cross-origin"));
    for allowed in ["https://app.example.com", "http://localhost:3000"] {
        let answer = app.send(create(allowed)).await;
        assert_eq!(answer.status, 200, "{allowed}: {}", answer.body);
        assert_eq!(answer.headers["access-control-allow-origin"], allowed);
        assert_eq!(answer.headers["access-control-allow-credentials"], "true");
    }
    let preflight = app
        .http
        .request(
            reqwest::Method::OPTIONS,
            app.url("/api/2.0/mlflow/runs/log-batch"),
        )
        .header("origin", "https://app.example.com")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type")
        .send()
        .await
        .unwrap();
    assert!(preflight.status().is_success());
    assert_eq!(
        preflight.headers()["access-control-allow-origin"],
        "https://app.example.com"
    );
    // Reads from elsewhere are answered, without CORS headers the browser
    // would need to hand them to the page.
    let read = app
        .send(
            app.http
                .get(app.url("/api/2.0/mlflow/experiments/get?experiment_id=0"))
                .header("origin", "https://evil.example.com"),
        )
        .await;
    assert_eq!(read.status, 200);
    assert!(!read.headers.contains_key("access-control-allow-origin"));
}

#[tokio::test]
async fn artifact_locations_outside_the_allowed_roots_are_refused() {
    let app = spawn_app().await;
    for hostile in [
        "file:///etc",
        "/etc",
        "http://169.254.169.254/latest/meta-data",
        "http://127.0.0.1:6379",
        "s3://someone-elses-bucket/x",
        "mlflow-artifacts://evil.example.com/x",
        "mlflow-artifacts:/../escape",
    ] {
        let answer = app
            .post(
                "experiments/create",
                json!({"name": hostile, "artifact_location": hostile}),
            )
            .await;
        let message = answer.error(400, "INVALID_PARAMETER_VALUE");
        assert!(
            message.contains("--allowed-artifact-locations"),
            "{message}"
        );
    }
    let inside = app
        .post(
            "experiments/create",
            json!({"name": "inside", "artifact_location": "mlflow-artifacts:/team-a"}),
        )
        .await;
    assert_eq!(inside.status, 200, "{}", inside.body);
}
