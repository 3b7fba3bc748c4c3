//! Workspaces on the wire: the catalog API's statuses and errors, and a
//! request's workspace from its header or its `/w/<name>` path prefix.

use reqwest::Method;
use serde_json::json;

use crate::helpers::{spawn_app, spawn_with_workspaces, TestApp};

const WORKSPACES: &str = "/api/3.0/mlflow/workspaces";

async fn create_workspace(app: &TestApp, name: &str) {
    let created = app
        .call(Method::POST, WORKSPACES, None, Some(json!({"name": name})))
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
}

async fn create_experiment(app: &TestApp, workspace: &str, name: &str) -> String {
    let created = app
        .call(
            Method::POST,
            "/api/2.0/mlflow/experiments/create",
            Some(workspace),
            Some(json!({ "name": name })),
        )
        .await;
    assert_eq!(created.status, 200, "{}", created.body);
    created.body["experiment_id"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn the_catalog_answers_with_mlflow_statuses_and_bodies() {
    let app = spawn_with_workspaces().await;
    let created = app
        .call(
            Method::POST,
            WORKSPACES,
            None,
            Some(
                json!({"name": "team-a", "description": "A", "default_artifact_root": "s3://a/x"}),
            ),
        )
        .await;
    assert_eq!(created.status, 201);
    assert_eq!(
        created.body,
        json!({"workspace": {"name": "team-a", "description": "A", "default_artifact_root": "s3://a/x"}})
    );
    create_workspace(&app, "b-team").await;
    let listed = app.call(Method::GET, WORKSPACES, None, None).await;
    let names: Vec<_> = listed.body["workspaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["b-team", "default", "team-a"]);

    let path = format!("{WORKSPACES}/team-a");
    let cleared = app
        .call(
            Method::PATCH,
            &path,
            None,
            Some(json!({"default_artifact_root": ""})),
        )
        .await;
    assert_eq!(
        cleared.body,
        json!({"workspace": {"name": "team-a", "description": "A"}})
    );
    let empty = app.call(Method::PATCH, &path, None, Some(json!({}))).await;
    empty.error(400, "INVALID_PARAMETER_VALUE");
    let again = app
        .call(
            Method::POST,
            WORKSPACES,
            None,
            Some(json!({"name": "team-a"})),
        )
        .await;
    again.error(400, "RESOURCE_ALREADY_EXISTS");
    let deleted = app.call(Method::DELETE, &path, None, None).await;
    assert_eq!(deleted.status, 204);
    let gone = app.call(Method::GET, &path, None, None).await;
    let message = gone.error(404, "RESOURCE_DOES_NOT_EXIST");
    assert_eq!(message, "Workspace 'team-a' not found");
}

#[tokio::test]
async fn bad_names_and_the_default_workspace_are_refused() {
    let app = spawn_with_workspaces().await;
    let long = "a".repeat(64);
    for name in [
        "Team",
        "a",
        "api",
        "-ab",
        "a_b",
        "..",
        long.as_str(),
        "",
        "default",
    ] {
        let answer = app
            .call(
                Method::POST,
                WORKSPACES,
                None,
                Some(json!({ "name": name })),
            )
            .await;
        answer.error(400, "INVALID_PARAMETER_VALUE");
    }
    let relative = app
        .call(
            Method::POST,
            WORKSPACES,
            None,
            Some(json!({"name": "rel", "default_artifact_root": "relative/dir"})),
        )
        .await;
    relative.error(400, "INVALID_PARAMETER_VALUE");
    let delete_default = app
        .call(Method::DELETE, &format!("{WORKSPACES}/default"), None, None)
        .await;
    delete_default.error(400, "INVALID_PARAMETER_VALUE");
    for path in [
        "/w/Team/api/2.0/mlflow/experiments/search",
        "/w/%2e%2e/api/2.0/mlflow/experiments/search",
    ] {
        let answer = app.call(Method::GET, path, None, None).await;
        answer.error(400, "INVALID_PARAMETER_VALUE");
    }
    let unknown = app
        .call(
            Method::GET,
            "/api/2.0/mlflow/experiments/search",
            Some("nope"),
            None,
        )
        .await;
    unknown.error(404, "RESOURCE_DOES_NOT_EXIST");
}

#[tokio::test]
async fn header_and_path_prefix_reach_the_same_workspace_and_only_it() {
    let app = spawn_with_workspaces().await;
    create_workspace(&app, "team-a").await;
    create_workspace(&app, "team-b").await;
    let id = create_experiment(&app, "team-a", "churn").await;
    // The same name in another workspace is another experiment.
    let other = create_experiment(&app, "team-b", "churn").await;
    assert_ne!(id, other);

    let get = |workspace: Option<&'static str>, path: String| {
        let app = &app;
        async move { app.call(Method::GET, &path, workspace, None).await }
    };
    let by_prefix = get(
        None,
        format!("/w/team-a/api/2.0/mlflow/experiments/get?experiment_id={id}"),
    )
    .await;
    assert_eq!(by_prefix.status, 200, "{}", by_prefix.body);
    assert_eq!(by_prefix.body["experiment"]["name"], "churn");
    let both = get(
        Some("team-a"),
        format!("/w/team-a/api/2.0/mlflow/experiments/get?experiment_id={id}"),
    )
    .await;
    assert_eq!(both.status, 200);
    let mismatch = get(
        Some("team-b"),
        format!("/w/team-a/api/2.0/mlflow/experiments/get?experiment_id={id}"),
    )
    .await;
    mismatch.error(400, "INVALID_PARAMETER_VALUE");
    for (workspace, path) in [
        (
            Some("team-b"),
            format!("/api/2.0/mlflow/experiments/get?experiment_id={id}"),
        ),
        (
            None,
            format!("/api/2.0/mlflow/experiments/get?experiment_id={id}"),
        ),
        (
            None,
            format!("/w/team-b/api/2.0/mlflow/experiments/get?experiment_id={id}"),
        ),
    ] {
        let answer = get(workspace, path).await;
        answer.error(404, "RESOURCE_DOES_NOT_EXIST");
    }
    let info = get(None, "/w/team-a/api/3.0/mlflow/server-info".into()).await;
    assert_eq!(info.body["workspaces_enabled"], true);
    let health = app
        .http
        .get(app.url("/w/team-a/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
}

#[tokio::test]
async fn restrict_refuses_a_non_empty_workspace_and_cascade_empties_it() {
    let app = spawn_with_workspaces().await;
    create_workspace(&app, "team-a").await;
    let id = create_experiment(&app, "team-a", "e").await;
    let run = app
        .call(
            Method::POST,
            "/api/2.0/mlflow/runs/create",
            Some("team-a"),
            Some(json!({ "experiment_id": id })),
        )
        .await;
    assert_eq!(run.status, 200, "{}", run.body);
    let path = format!("{WORKSPACES}/team-a");
    let restrict = app.call(Method::DELETE, &path, None, None).await;
    let message = restrict.error(400, "INVALID_STATE");
    assert!(
        message.contains("'experiments' still contains 1 resource(s)"),
        "{message}"
    );
    let bad_mode = app
        .call(Method::DELETE, &format!("{path}?mode=NOPE"), None, None)
        .await;
    bad_mode.error(400, "INVALID_PARAMETER_VALUE");
    let cascade = app
        .call(Method::DELETE, &format!("{path}?mode=CASCADE"), None, None)
        .await;
    assert_eq!(cascade.status, 204, "{}", cascade.body);
    create_workspace(&app, "team-a").await;
    let search = app
        .call(
            Method::POST,
            "/api/2.0/mlflow/experiments/search",
            Some("team-a"),
            Some(json!({"max_results": 10})),
        )
        .await;
    assert_eq!(
        search.body,
        json!({}),
        "the recreated workspace starts empty"
    );
}

#[tokio::test]
async fn set_default_moves_resources_unless_names_collide() {
    let app = spawn_with_workspaces().await;
    create_workspace(&app, "team-a").await;
    create_experiment(&app, "team-a", "clash").await;
    create_experiment(&app, "default", "clash").await;
    let path = format!("{WORKSPACES}/team-a?mode=SET_DEFAULT");
    let refused = app.call(Method::DELETE, &path, None, None).await;
    let message = refused.error(400, "INVALID_STATE");
    assert!(message.contains("experiments: 'clash'"), "{message}");
    create_workspace(&app, "team-b").await;
    create_experiment(&app, "team-b", "moves").await;
    let moved = app
        .call(
            Method::DELETE,
            &format!("{WORKSPACES}/team-b?mode=SET_DEFAULT"),
            None,
            None,
        )
        .await;
    assert_eq!(moved.status, 204, "{}", moved.body);
    let found = app
        .call(
            Method::GET,
            "/api/2.0/mlflow/experiments/get-by-name?experiment_name=moves",
            None,
            None,
        )
        .await;
    assert_eq!(found.status, 200, "{}", found.body);
}

#[tokio::test]
async fn concurrent_creates_of_one_name_make_one_workspace() {
    let app = spawn_with_workspaces().await;
    let create = || {
        app.call(
            Method::POST,
            WORKSPACES,
            None,
            Some(json!({"name": "race"})),
        )
    };
    let (a, b) = tokio::join!(create(), create());
    let mut statuses = [a.status, b.status];
    statuses.sort();
    assert_eq!(statuses, [201, 400]);
    let loser = if a.status == 400 { a } else { b };
    loser.error(400, "RESOURCE_ALREADY_EXISTS");
}

#[tokio::test]
async fn without_workspaces_the_catalog_is_503_and_prefixes_are_unknown() {
    let app = spawn_app().await;
    let answer = app.call(Method::GET, WORKSPACES, None, None).await;
    assert_eq!(answer.status, 503);
    let prefixed = app
        .call(
            Method::GET,
            "/w/team-a/api/2.0/mlflow/experiments/search",
            None,
            None,
        )
        .await;
    prefixed.error(404, "ENDPOINT_NOT_FOUND");
    let info = app
        .call(Method::GET, "/api/3.0/mlflow/server-info", None, None)
        .await;
    assert_eq!(info.body["workspaces_enabled"], false);
}

#[tokio::test]
async fn new_experiments_get_their_workspace_artifact_root() {
    let app = spawn_with_workspaces().await;
    create_workspace(&app, "team-a").await;
    let own = app
        .call(
            Method::POST,
            WORKSPACES,
            None,
            Some(json!({"name": "own-root", "default_artifact_root": "s3://bucket-b/mlflow"})),
        )
        .await;
    assert_eq!(own.status, 201);
    for (workspace, expected) in [
        ("team-a", "mlflow-artifacts:/workspaces/team-a/"),
        ("default", "mlflow-artifacts:/workspaces/default/"),
        ("own-root", "s3://bucket-b/mlflow/"),
    ] {
        let id = create_experiment(&app, workspace, "located").await;
        let got = app
            .call(
                Method::GET,
                &format!("/api/2.0/mlflow/experiments/get?experiment_id={id}"),
                Some(workspace),
                None,
            )
            .await;
        let location = got.body["experiment"]["artifact_location"]
            .as_str()
            .unwrap();
        assert_eq!(location, format!("{expected}{id}"));
    }
    let chosen = app
        .call(
            Method::POST,
            "/api/2.0/mlflow/experiments/create",
            Some("team-a"),
            Some(json!({"name": "chosen", "artifact_location": "file:///etc"})),
        )
        .await;
    let message = chosen.error(400, "INVALID_PARAMETER_VALUE");
    assert_eq!(
        message,
        "artifact_location cannot be specified when workspaces are enabled"
    );
}

#[tokio::test]
async fn runs_cannot_link_another_workspaces_logged_models() {
    let app = spawn_with_workspaces().await;
    create_workspace(&app, "team-a").await;
    create_workspace(&app, "team-b").await;
    let a_experiment = create_experiment(&app, "team-a", "a").await;
    let model = app
        .call(
            Method::POST,
            "/api/2.0/mlflow/logged-models",
            Some("team-a"),
            Some(json!({"experiment_id": a_experiment, "name": "m"})),
        )
        .await;
    assert_eq!(model.status, 200, "{}", model.body);
    let model_id = model.body["model"]["info"]["model_id"].as_str().unwrap();
    let b_experiment = create_experiment(&app, "team-b", "b").await;
    let run = app
        .call(
            Method::POST,
            "/api/2.0/mlflow/runs/create",
            Some("team-b"),
            Some(json!({ "experiment_id": b_experiment })),
        )
        .await;
    let run_id = run.body["run"]["info"]["run_id"].as_str().unwrap();
    for (path, body) in [
        (
            "runs/outputs",
            json!({"run_id": run_id, "models": [{"model_id": model_id, "step": 0}]}),
        ),
        (
            "runs/log-inputs",
            json!({"run_id": run_id, "models": [{"model_id": model_id}]}),
        ),
    ] {
        let linked = app
            .call(
                Method::POST,
                &format!("/api/2.0/mlflow/{path}"),
                Some("team-b"),
                Some(body),
            )
            .await;
        let message = linked.error(404, "RESOURCE_DOES_NOT_EXIST");
        assert_eq!(
            message,
            format!("Logged model with ID '{model_id}' not found.")
        );
    }
    // An unknown id answers the same, so existence elsewhere does not show.
    let unknown = app
        .call(
            Method::POST,
            "/api/2.0/mlflow/runs/outputs",
            Some("team-b"),
            Some(json!({"run_id": run_id, "models": [{"model_id": "m-unknown", "step": 0}]})),
        )
        .await;
    unknown.error(404, "RESOURCE_DOES_NOT_EXIST");
    let from_b = app
        .call(
            Method::GET,
            &format!("/api/2.0/mlflow/logged-models/{model_id}"),
            Some("team-b"),
            None,
        )
        .await;
    from_b.error(404, "RESOURCE_DOES_NOT_EXIST");
}
