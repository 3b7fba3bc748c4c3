//! Trace records, their search, tags, deletion, links to runs and
//! assessments on the wire: MLflow's protobuf JSON shapes, a resend that
//! changes nothing, what a hostile body gets, and that no call reaches a
//! trace of another workspace.

use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{spawn_on_each_backend, spawn_with_workspaces, Answer, TestApp};

const TRACES: &str = "/api/3.0/mlflow/traces";
/// The most an OTLP body may inflate to (64 MiB).
const OTLP_INFLATE_LIMIT: usize = 64 * 1024 * 1024;

/// A trace record as the client sends it at the end of a traced call.
fn record(trace_id: &str, experiment_id: &str, request_time: &str, state: &str) -> Value {
    json!({"trace": {"trace_info": {
        "trace_id": trace_id,
        "trace_location": {"type": "MLFLOW_EXPERIMENT",
                           "mlflow_experiment": {"experiment_id": experiment_id}},
        "request_preview": "{\"q\": \"hi\"}",
        "response_preview": "\"hello\"",
        "request_time": request_time,
        "execution_duration": "1.500s",
        "state": state,
        "trace_metadata": {
            "mlflow.user": "ana",
            "mlflow.trace.session": "s-1",
            "mlflow.trace.tokenUsage": "{\"input_tokens\": 3, \"output_tokens\": 4, \"total_tokens\": 7}",
            "mlflow.trace.cost": "{\"total_cost\": 1.0}",
        },
        "tags": {"mlflow.traceName": "chat", "team": "a"},
    }}})
}

/// Workspaces `team-a` and `team-b`, and an experiment in each.
pub(crate) async fn experiments_in_two_workspaces(app: &TestApp) -> (String, String) {
    let mut experiments = Vec::new();
    for name in ["team-a", "team-b"] {
        let created = app
            .call(
                Method::POST,
                "/api/3.0/mlflow/workspaces",
                None,
                Some(json!({"name": name})),
            )
            .await;
        assert_eq!(created.status, 201, "{}", created.body);
        let experiment = app
            .call(
                Method::POST,
                "/api/2.0/mlflow/experiments/create",
                Some(name),
                Some(json!({"name": "e"})),
            )
            .await;
        experiments.push(
            experiment.body["experiment_id"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    (experiments.remove(0), experiments.remove(0))
}

async fn start(app: &TestApp, ws: Option<&str>, body: Value) -> Answer {
    app.call(Method::POST, TRACES, ws, Some(body)).await
}

async fn search(app: &TestApp, experiment_id: &str, extra: Value) -> Answer {
    let mut body = json!({"locations": [{"type": "MLFLOW_EXPERIMENT",
        "mlflow_experiment": {"experiment_id": experiment_id}}]});
    body.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    app.call(Method::POST, &format!("{TRACES}/search"), None, Some(body))
        .await
}

fn ids(answer: &Answer) -> Vec<String> {
    answer.body["traces"]
        .as_array()
        .unwrap_or(&Vec::new())
        .iter()
        .map(|t| t["trace_id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn a_record_round_trips_in_mlflow_shapes_and_a_resend_changes_nothing() {
    for (backend, app) in spawn_on_each_backend().await {
        let exp = app.experiment("traces").await;
        let body = record("tr-1", &exp, "2026-01-02T03:04:05.678Z", "OK");
        let first = start(&app, None, body.clone()).await;
        assert_eq!(first.status, 200, "{backend:?}: {}", first.body);
        let again = start(&app, None, body).await;
        assert_eq!(again.body, first.body, "{backend:?}");

        let got = app
            .call(Method::GET, &format!("{TRACES}/tr-1"), None, None)
            .await;
        let info = &got.body["trace"]["trace_info"];
        assert_eq!(info["request_time"], "2026-01-02T03:04:05.678Z");
        assert_eq!(info["execution_duration"], "1.500s");
        assert_eq!(info["state"], "OK");
        assert_eq!(
            info["trace_location"]["mlflow_experiment"]["experiment_id"],
            exp
        );
        assert_eq!(info["tags"]["mlflow.traceName"], "chat");
        assert_eq!(
            info["tags"]["mlflow.artifactLocation"],
            format!("mlflow-artifacts:/{exp}/traces/tr-1/artifacts")
        );
        // Promoted metadata comes back as MLflow's server writes it.
        let metadata = &info["trace_metadata"];
        assert_eq!(metadata["mlflow.trace.session"], "s-1");
        assert_eq!(
            metadata["mlflow.trace.tokenUsage"],
            "{\"input_tokens\": 3, \"output_tokens\": 4, \"total_tokens\": 7}"
        );
        assert_eq!(metadata["mlflow.trace.cost"], "{\"total_cost\": 1.0}");
        assert_eq!(metadata["mlflow.trace.infoFinalized"], "true");

        let v2 = app.get("traces/tr-1/info", &[]).await;
        assert_eq!(v2.body["trace_info"]["request_id"], "tr-1");
        assert_eq!(v2.body["trace_info"]["execution_time_ms"], 1500);
        assert!(v2.body["trace_info"]["tags"].is_array());
    }
}

#[tokio::test]
async fn search_filters_orders_and_pages_like_mlflow() {
    for (backend, app) in spawn_on_each_backend().await {
        let exp = app.experiment("search").await;
        for (i, state) in ["OK", "ERROR", "OK", "OK", "IN_PROGRESS"]
            .iter()
            .enumerate()
        {
            let time = format!("2026-01-0{}T00:00:00Z", i + 1);
            let answer = start(&app, None, record(&format!("tr-{i}"), &exp, &time, state)).await;
            assert_eq!(answer.status, 200, "{}", answer.body);
        }
        let newest_first = search(&app, &exp, json!({})).await;
        assert_eq!(
            ids(&newest_first),
            ["tr-4", "tr-3", "tr-2", "tr-1", "tr-0"],
            "{backend:?}"
        );
        let errors = search(&app, &exp, json!({"filter": "trace.status = 'ERROR'"})).await;
        assert_eq!(ids(&errors), ["tr-1"]);
        let named = search(
            &app,
            &exp,
            json!({"filter": "trace.name = 'chat' AND tags.team = 'a' \
            AND metadata.`mlflow.user` LIKE 'an%' AND timestamp_ms > 1767312000000"}),
        )
        .await;
        assert_eq!(ids(&named), ["tr-4", "tr-3", "tr-2"], "{}", named.body);
        let oldest = search(
            &app,
            &exp,
            json!({"order_by": ["timestamp_ms ASC"], "max_results": 2}),
        )
        .await;
        assert_eq!(ids(&oldest), ["tr-0", "tr-1"]);
        let token = oldest.body["next_page_token"].as_str().unwrap();
        let next = search(
            &app,
            &exp,
            json!({"order_by": ["timestamp_ms ASC"], "max_results": 2,
            "page_token": token}),
        )
        .await;
        assert_eq!(ids(&next), ["tr-2", "tr-3"]);

        let legacy = app
            .get(
                "traces",
                &[("experiment_ids", exp.as_str()), ("max_results", "1")],
            )
            .await;
        assert_eq!(legacy.body["traces"][0]["request_id"], "tr-4");
        assert!(legacy.body["next_page_token"].is_string());
    }
}

#[tokio::test]
async fn tags_deletion_and_links_to_runs() {
    for (backend, app) in spawn_on_each_backend().await {
        let exp = app.experiment("manage").await;
        for i in 0..3 {
            let time = format!("2026-02-0{}T00:00:00Z", i + 1);
            start(&app, None, record(&format!("tr-{i}"), &exp, &time, "OK")).await;
        }
        let tags = "/api/2.0/mlflow/traces/tr-0/tags";
        let set = app
            .call(
                Method::PATCH,
                tags,
                None,
                Some(json!({"key": "k", "value": "v"})),
            )
            .await;
        assert_eq!(set.status, 200, "{backend:?}: {}", set.body);
        let renamed = app
            .call(
                Method::PATCH,
                tags,
                None,
                Some(json!({"key": "mlflow.traceName", "value": "x"})),
            )
            .await;
        assert_eq!(renamed.status, 200);
        let found = search(
            &app,
            &exp,
            json!({"filter": "tags.k = 'v' AND trace.name = 'x'"}),
        )
        .await;
        assert_eq!(ids(&found), ["tr-0"]);
        let deleted = app
            .call(Method::DELETE, tags, None, Some(json!({"key": "k"})))
            .await;
        assert_eq!(deleted.status, 200);
        let again = app
            .call(Method::DELETE, tags, None, Some(json!({"key": "k"})))
            .await;
        assert_eq!(
            again.error(404, "RESOURCE_DOES_NOT_EXIST"),
            "No trace tag with key 'k' for trace with ID 'tr-0'"
        );

        let run = app.run(&exp).await;
        let linked = app
            .post(
                "traces/link-to-run",
                json!({"trace_ids": ["tr-2", "tr-9"], "run_id": run}),
            )
            .await;
        assert_eq!(linked.status, 200, "{}", linked.body);
        let in_run = search(&app, &exp, json!({"filter": format!("run_id = '{run}'")})).await;
        assert_eq!(ids(&in_run), ["tr-2"]);
        let too_many: Vec<String> = (0..101).map(|i| format!("tr-{i}")).collect();
        let refused = app
            .post(
                "traces/link-to-run",
                json!({"trace_ids": too_many, "run_id": run}),
            )
            .await;
        refused.error(400, "INVALID_PARAMETER_VALUE");

        // The oldest go first under a cap; then by ids.
        let by_age = app
            .post(
                "traces/delete-traces",
                json!({"experiment_id": exp,
                "max_timestamp_millis": 4_102_444_800_000i64, "max_traces": 1}),
            )
            .await;
        assert_eq!(by_age.body, json!({"traces_deleted": 1}));
        assert_eq!(ids(&search(&app, &exp, json!({})).await), ["tr-2", "tr-1"]);
        let by_ids = app
            .post(
                "traces/delete-traces",
                json!({"experiment_id": exp, "request_ids": ["tr-2"]}),
            )
            .await;
        assert_eq!(by_ids.body, json!({"traces_deleted": 1}));
        let gone = app
            .call(Method::GET, &format!("{TRACES}/tr-2"), None, None)
            .await;
        assert_eq!(
            gone.error(404, "RESOURCE_DOES_NOT_EXIST"),
            "Trace with ID 'tr-2' not found."
        );
    }
}

#[tokio::test]
async fn assessments_override_update_and_delete_as_in_mlflow() {
    for (backend, app) in spawn_on_each_backend().await {
        let exp = app.experiment("assess").await;
        start(
            &app,
            None,
            record("tr-a", &exp, "2026-03-01T00:00:00Z", "OK"),
        )
        .await;
        let path = format!("{TRACES}/tr-a/assessments");
        let feedback = json!({"assessment": {"assessment_name": "correct", "trace_id": "tr-a",
            "source": {"source_type": "HUMAN", "source_id": "ana"},
            "feedback": {"value": {"score": 0.5, "labels": ["a"]}}, "rationale": "why",
            "metadata": {"mlflow.user": "x"}}});
        let created = app.call(Method::POST, &path, None, Some(feedback)).await;
        assert_eq!(created.status, 200, "{backend:?}: {}", created.body);
        let first = created.body["assessment"]["assessment_id"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(first.starts_with("a-"));
        assert_eq!(
            created.body["assessment"]["feedback"]["value"]["labels"],
            json!(["a"])
        );

        let override_it = json!({"assessment": {"assessment_name": "correct",
            "source": {"source_type": "HUMAN", "source_id": "bo"},
            "feedback": {"value": true}, "overrides": first}});
        let second = app.call(Method::POST, &path, None, Some(override_it)).await;
        let second_id = second.body["assessment"]["assessment_id"]
            .as_str()
            .unwrap()
            .to_string();
        let old = app
            .call(Method::GET, &format!("{path}/{first}"), None, None)
            .await;
        assert_eq!(old.body["assessment"]["valid"], false);

        let update = json!({"assessment": {"rationale": "because", "feedback": {"value": false}},
            "update_mask": "rationale,feedback"});
        let updated = app
            .call(
                Method::PATCH,
                &format!("{path}/{second_id}"),
                None,
                Some(update),
            )
            .await;
        assert_eq!(updated.status, 200, "{}", updated.body);
        assert_eq!(updated.body["assessment"]["rationale"], "because");
        assert_eq!(updated.body["assessment"]["feedback"]["value"], false);
        let wrong_kind = json!({"assessment": {"expectation": {"value": 1}},
            "update_mask": "expectation"});
        app.call(
            Method::PATCH,
            &format!("{path}/{second_id}"),
            None,
            Some(wrong_kind),
        )
        .await
        .error(400, "INVALID_PARAMETER_VALUE");

        let expectation = json!({"assessment": {"assessment_name": "expected",
            "source": {"source_type": "HUMAN"},
            "expectation": {"serialized_value": {"serialization_format": "JSON_FORMAT",
                "value": "{\"answer\": [1, 2]}"}}}});
        let expected = app.call(Method::POST, &path, None, Some(expectation)).await;
        assert_eq!(
            expected.body["assessment"]["expectation"]["serialized_value"]["value"],
            "{\"answer\":[1,2]}"
        );

        // Deleting the override restores what it overrode; deleting twice is fine.
        for _ in 0..2 {
            let deleted = app
                .call(Method::DELETE, &format!("{path}/{second_id}"), None, None)
                .await;
            assert_eq!(deleted.status, 200, "{}", deleted.body);
        }
        let restored = app
            .call(Method::GET, &format!("{path}/{first}"), None, None)
            .await;
        assert_eq!(restored.body["assessment"]["valid"], true);
        let info = app
            .call(Method::GET, &format!("{TRACES}/tr-a"), None, None)
            .await;
        assert_eq!(
            info.body["trace"]["trace_info"]["assessments"]
                .as_array()
                .unwrap()
                .len(),
            2
        );
        let missing = app
            .call(Method::GET, &format!("{path}/a-nope"), None, None)
            .await;
        assert_eq!(
            missing.error(404, "RESOURCE_DOES_NOT_EXIST"),
            "Assessment with ID 'a-nope' not found for trace 'tr-a'"
        );
    }
}

#[tokio::test]
async fn hostile_bodies_get_mlflow_errors_never_a_500() {
    for (backend, app) in spawn_on_each_backend().await {
        let exp = app.experiment("hostile").await;
        let raw = app
            .send(
                app.http
                    .post(app.url(TRACES))
                    .header("content-type", "application/json")
                    .body("{\"trace\": {"),
            )
            .await;
        raw.error(400, "INVALID_PARAMETER_VALUE");
        for body in [
            json!({}),
            json!({"trace": {"trace_info": {"trace_id": "tr-x"}}}),
            record(&"t".repeat(51), &exp, "2026-01-01T00:00:00Z", "OK"),
            record("tr-x", &exp, "2026-01-01T00:00:00Z", "DONE"),
            record("tr-x", &exp, "yesterday", "OK"),
            record("tr-x", "not-a-number", "2026-01-01T00:00:00Z", "OK"),
        ] {
            let answer = start(&app, None, body.clone()).await;
            assert_eq!(answer.status, 400, "{backend:?}: {body} -> {}", answer.body);
        }
        let unknown = start(
            &app,
            None,
            record("tr-x", "987654", "2026-01-01T00:00:00Z", "OK"),
        )
        .await;
        unknown.error(404, "RESOURCE_DOES_NOT_EXIST");

        // Oversized values are bounded, not a database error.
        let mut huge = record("tr-big", &exp, "2026-01-01T00:00:00Z", "OK");
        let info = &mut huge["trace"]["trace_info"];
        info["request_preview"] = json!("p".repeat(100_000));
        info["tags"]["big"] = json!("v".repeat(100_000));
        info["trace_metadata"]["big"] = json!("m".repeat(100_000));
        let stored = start(&app, None, huge).await;
        assert_eq!(stored.status, 200, "{}", stored.body);
        let info = &stored.body["trace"]["trace_info"];
        assert_eq!(info["request_preview"].as_str().unwrap().len(), 1000);
        // Stored up to the column (8000); a record prints 4096, as MLflow's does.
        assert_eq!(info["tags"]["big"].as_str().unwrap().len(), 4096);
        assert_eq!(info["trace_metadata"]["big"].as_str().unwrap().len(), 250);
        let long_key = start(&app, None, {
            let mut body = record("tr-key", &exp, "2026-01-01T00:00:00Z", "OK");
            body["trace"]["trace_info"]["tags"]["k".repeat(251)] = json!("v");
            body
        })
        .await;
        long_key.error(400, "INVALID_PARAMETER_VALUE");
        let tag = app
            .call(
                Method::PATCH,
                "/api/2.0/mlflow/traces/tr-big/tags",
                None,
                Some(json!({"key": "t", "value": "x".repeat(100_000)})),
            )
            .await;
        assert_eq!(tag.status, 200, "{}", tag.body);

        for extra in [
            json!({"max_results": 501}),
            json!({"max_results": -1}),
            json!({"filter": "trace.status = OK"}),
            json!({"filter": "trace.bogus = 'x'"}),
            json!({"filter": "tags.k = 'a' OR tags.k = 'b'"}),
            json!({"page_token": "not-a-token"}),
            json!({"order_by": ["tags.k", "tags.k"]}),
        ] {
            search(&app, &exp, extra)
                .await
                .error(400, "INVALID_PARAMETER_VALUE");
        }
        app.get("traces/tr-none/info", &[])
            .await
            .error(404, "RESOURCE_DOES_NOT_EXIST");
        app.call(
            Method::POST,
            &format!("{TRACES}/batchGetInfos"),
            None,
            Some(json!({})),
        )
        .await
        .error(400, "INVALID_PARAMETER_VALUE");
        let no_locations = app
            .call(
                Method::POST,
                &format!("{TRACES}/search"),
                None,
                Some(json!({})),
            )
            .await;
        no_locations.error(400, "INVALID_PARAMETER_VALUE");
        for deletion in [
            json!({"experiment_id": exp}),
            json!({"experiment_id": exp, "max_timestamp_millis": 1, "request_ids": ["tr-big"]}),
            json!({"experiment_id": exp, "max_timestamp_millis": 1, "max_traces": 0}),
        ] {
            app.post("traces/delete-traces", deletion)
                .await
                .error(400, "INVALID_PARAMETER_VALUE");
        }
        let no_value = json!({"assessment": {"assessment_name": "n"}});
        app.call(
            Method::POST,
            &format!("{TRACES}/tr-big/assessments"),
            None,
            Some(no_value),
        )
        .await
        .error(400, "INVALID_PARAMETER_VALUE");
    }
}

#[tokio::test]
async fn no_call_reaches_a_trace_of_another_workspace() {
    let app = spawn_with_workspaces().await;
    let (exp_a, exp_b) = experiments_in_two_workspaces(&app).await;
    let stored = start(
        &app,
        Some("team-a"),
        record("tr-a", &exp_a, "2026-01-01T00:00:00Z", "OK"),
    )
    .await;
    assert_eq!(stored.status, 200, "{}", stored.body);
    let location = stored.body["trace"]["trace_info"]["tags"]["mlflow.artifactLocation"].clone();
    assert_eq!(
        location,
        format!("mlflow-artifacts:/workspaces/team-a/{exp_a}/traces/tr-a/artifacts")
    );

    let b = Some("team-b");
    let get = app
        .call(Method::GET, &format!("{TRACES}/tr-a"), b, None)
        .await;
    get.error(404, "RESOURCE_DOES_NOT_EXIST");
    // A record for another workspace's experiment, and one that would take
    // over another workspace's trace id.
    start(
        &app,
        b,
        record("tr-b", &exp_a, "2026-01-01T00:00:00Z", "OK"),
    )
    .await
    .error(404, "RESOURCE_DOES_NOT_EXIST");
    start(
        &app,
        b,
        record("tr-a", &exp_b, "2026-01-01T00:00:00Z", "OK"),
    )
    .await
    .error(400, "RESOURCE_ALREADY_EXISTS");
    let tags = app
        .call(
            Method::PATCH,
            &format!("{TRACES}/tr-a/tags"),
            b,
            Some(json!({"key": "k", "value": "v"})),
        )
        .await;
    tags.error(404, "RESOURCE_DOES_NOT_EXIST");
    let searched = app
        .call(
            Method::POST,
            &format!("{TRACES}/search"),
            b,
            Some(json!({"locations": [
            {"type": "MLFLOW_EXPERIMENT", "mlflow_experiment": {"experiment_id": exp_a}}]})),
        )
        .await;
    assert_eq!(searched.body, json!({}));
    let batch = app
        .call(
            Method::POST,
            &format!("{TRACES}/batchGetInfos"),
            b,
            Some(json!({"trace_ids": ["tr-a"]})),
        )
        .await;
    assert_eq!(batch.body, json!({}));
    let deleted = app
        .call(
            Method::POST,
            "/api/2.0/mlflow/traces/delete-traces",
            b,
            Some(json!({"experiment_id": exp_a, "request_ids": ["tr-a"]})),
        )
        .await;
    assert_eq!(deleted.body, json!({"traces_deleted": 0}));
    let assessment = json!({"assessment": {"assessment_name": "n", "feedback": {"value": 1}}});
    app.call(
        Method::POST,
        &format!("{TRACES}/tr-a/assessments"),
        b,
        Some(assessment),
    )
    .await
    .error(404, "RESOURCE_DOES_NOT_EXIST");
    let spans = app
        .call(
            Method::GET,
            "/ajax-api/3.0/mlflow/get-trace-artifact?request_id=tr-a",
            b,
            None,
        )
        .await;
    spans.error(404, "RESOURCE_DOES_NOT_EXIST");
    // Still whole in its own workspace.
    let own = app
        .call(Method::GET, &format!("{TRACES}/tr-a"), Some("team-a"), None)
        .await;
    assert_eq!(
        own.body["trace"]["trace_info"]["tags"]["mlflow.artifactLocation"],
        location
    );
}

#[tokio::test]
async fn the_ui_reads_the_spans_the_client_uploaded() {
    let app = crate::helpers::spawn_app().await;
    let exp = app.experiment("spans").await;
    start(
        &app,
        None,
        record("tr-s", &exp, "2026-01-01T00:00:00Z", "OK"),
    )
    .await;
    let spans = r#"{"spans": [{"name": "chat"}]}"#;
    let upload = app
        .send(
            app.http
                .put(app.url(&format!(
                    "/api/2.0/mlflow-artifacts/artifacts/{exp}/traces/tr-s/artifacts/traces.json"
                )))
                .body(spans),
        )
        .await;
    assert_eq!(upload.status, 200, "{}", upload.body);
    for version in ["2.0", "3.0"] {
        let read = app
            .send(app.http.get(app.url(&format!(
                "/ajax-api/{version}/mlflow/get-trace-artifact?request_id=tr-s"
            ))))
            .await;
        assert_eq!(read.status, 200);
        assert_eq!(read.body, serde_json::from_str::<Value>(spans).unwrap());
    }
    let escape = app
        .send(app.http.get(
            app.url("/ajax-api/3.0/mlflow/get-trace-artifact?request_id=tr-s&path=../../../../x"),
        ))
        .await;
    escape.error(400, "INVALID_PARAMETER_VALUE");
    let no_id = app
        .send(
            app.http
                .get(app.url("/ajax-api/3.0/mlflow/get-trace-artifact")),
        )
        .await;
    no_id.error(400, "BAD_REQUEST");
}

#[tokio::test]
async fn whole_traces_answer_for_records_whose_spans_are_elsewhere_too() {
    let app = crate::helpers::spawn_app().await;
    let exp = app.experiment("whole").await;
    start(
        &app,
        None,
        record("tr-w", &exp, "2026-01-01T00:00:00Z", "OK"),
    )
    .await;
    let got = app
        .call(
            Method::GET,
            &format!("{TRACES}/get?trace_id=tr-w"),
            None,
            None,
        )
        .await;
    assert_eq!(got.body["trace"]["trace_info"]["trace_id"], "tr-w");
    assert_eq!(got.body["trace"]["spans"], json!([]));
    let missing = app
        .call(
            Method::GET,
            &format!("{TRACES}/get?trace_id=tr-none"),
            None,
            None,
        )
        .await;
    assert_eq!(
        missing.error(404, "RESOURCE_DOES_NOT_EXIST"),
        "Trace with ID tr-none is not found."
    );
    let batch = app
        .call(
            Method::GET,
            &format!("{TRACES}/batchGet?trace_ids=tr-w&trace_ids=tr-none"),
            None,
            None,
        )
        .await;
    assert_eq!(batch.body["traces"].as_array().unwrap().len(), 1);
    app.call(Method::GET, &format!("{TRACES}/batchGet"), None, None)
        .await
        .error(400, "INVALID_PARAMETER_VALUE");
}

/// An OTLP JSON export of one root span and one child (OTLP's JSON: hex
/// ids, lowerCamel names, enums as numbers).
pub(crate) fn otlp_json(trace_hex: &str, child_status: u8) -> Value {
    json!({"resourceSpans": [{"resource": {"attributes": []}, "scopeSpans": [{"spans": [
        {"traceId": trace_hex, "spanId": "0000000000000001", "name": "root",
         "startTimeUnixNano": "1767225600000000000", "endTimeUnixNano": "1767225601500000000",
         "status": {"code": 1},
         "attributes": [{"key": "mlflow.spanType", "value": {"stringValue": "AGENT"}},
                        {"key": "n", "value": {"intValue": "3"}}]},
        {"traceId": trace_hex, "spanId": "0000000000000002", "parentSpanId": "0000000000000001",
         "name": "child", "startTimeUnixNano": "1767225600100000000",
         "endTimeUnixNano": "1767225600200000000", "status": {"code": child_status}}
    ]}]}]})
}

pub(crate) async fn export(
    app: &TestApp,
    ws: Option<&str>,
    experiment: Option<&str>,
    body: Vec<u8>,
    content_type: &str,
    gzip: bool,
) -> Answer {
    let mut request = app
        .http
        .post(app.url("/v1/traces"))
        .header("content-type", content_type);
    if let Some(ws) = ws {
        request = request.header("X-MLFLOW-WORKSPACE", ws);
    }
    if let Some(experiment) = experiment {
        request = request.header("x-mlflow-experiment-id", experiment);
    }
    let body = if gzip {
        use std::io::Write;
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(&body).unwrap();
        request = request.header("content-encoding", "gzip");
        encoder.finish().unwrap()
    } else {
        body
    };
    app.send(request.body(body)).await
}

#[tokio::test]
async fn otlp_spans_become_traces_once_however_often_they_are_sent() {
    for (backend, app) in spawn_on_each_backend().await {
        let exp = app.experiment("otlp").await;
        let trace_hex = "0123456789abcdef0123456789abcdef";
        let body = serde_json::to_vec(&otlp_json(trace_hex, 2)).unwrap();
        for gzip in [false, true] {
            let sent = export(
                &app,
                None,
                Some(&exp),
                body.clone(),
                "application/json",
                gzip,
            )
            .await;
            assert_eq!(sent.status, 200, "{backend:?}: {}", sent.body);
        }
        let id = format!("tr-{trace_hex}");
        let whole = app
            .call(
                Method::GET,
                &format!("{TRACES}/get?trace_id={id}"),
                None,
                None,
            )
            .await;
        let trace = &whole.body["trace"];
        let info = &trace["trace_info"];
        assert_eq!(info["state"], "OK", "{backend:?}: the root's state");
        assert_eq!(info["request_time"], "2026-01-01T00:00:00Z");
        assert_eq!(info["execution_duration"], "1.500s");
        assert_eq!(info["tags"]["mlflow.trace.spansLocation"], "TRACKING_STORE");
        let spans = trace["spans"].as_array().unwrap();
        assert_eq!(spans.len(), 2, "a resent span replaces itself");
        assert_eq!(spans[1]["status"]["code"], "STATUS_CODE_ERROR");
        let n = spans[0]["attributes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["key"] == "n")
            .unwrap();
        assert_eq!(n["value"], json!({"int_value": 3}));
        // The client's record, sent after its spans, finalizes the trace and
        // keeps where the spans are.
        let mut record_body = record(&id, &exp, "2026-01-01T00:00:00.000Z", "ERROR");
        record_body["trace"]["trace_info"]["execution_duration"] = json!("2s");
        let recorded = start(&app, None, record_body).await;
        let info = &recorded.body["trace"]["trace_info"];
        assert_eq!(info["state"], "ERROR");
        assert_eq!(info["tags"]["mlflow.trace.spansLocation"], "TRACKING_STORE");
        let found = search(
            &app,
            &exp,
            json!({"filter": "span.name = 'child' AND span.type IS NULL"}),
        )
        .await;
        found.error(400, "INVALID_PARAMETER_VALUE");
        let found = search(&app, &exp, json!({"filter": "span.name = 'child'"})).await;
        assert_eq!(ids(&found), vec![id.clone()]);
        let by_attribute = search(
            &app,
            &exp,
            json!({"filter": "span.attributes.mlflow.spanType LIKE '%AGENT%'"}),
        )
        .await;
        assert_eq!(ids(&by_attribute), vec![id.clone()]);
        let spans_json = app
            .send(app.http.get(app.url(&format!(
                "/ajax-api/3.0/mlflow/get-trace-artifact?request_id={id}"
            ))))
            .await;
        assert_eq!(spans_json.body["spans"].as_array().unwrap().len(), 2);
    }
}

#[tokio::test]
async fn hostile_otlp_exports_are_refused_whole() {
    let app = spawn_with_workspaces().await;
    let (exp_a, exp_b) = experiments_in_two_workspaces(&app).await;
    let a = Some("team-a");
    let body = serde_json::to_vec(&otlp_json("00000000000000000000000000000abc", 1)).unwrap();
    let protobuf = "application/x-protobuf";
    for (experiment, bytes, content_type) in [
        (Some(exp_a.as_str()), b"garbage".to_vec(), protobuf),
        (
            Some(exp_a.as_str()),
            b"{\"resourceSpans\": []}".to_vec(),
            "application/json",
        ),
        (Some(exp_a.as_str()), body.clone(), "text/plain"),
        (None, body.clone(), "application/json"),
        (Some("not-a-number"), body.clone(), "application/json"),
    ] {
        let refused = export(&app, a, experiment, bytes, content_type, false).await;
        refused.error(400, "INVALID_PARAMETER_VALUE");
    }
    // A span whose ids have the wrong width is refused with its batch.
    let mut short = otlp_json("00000000000000000000000000000abc", 1);
    short["resourceSpans"][0]["scopeSpans"][0]["spans"][1]["spanId"] = json!("01");
    export(
        &app,
        a,
        Some(&exp_a),
        serde_json::to_vec(&short).unwrap(),
        "application/json",
        false,
    )
    .await
    .error(400, "INVALID_PARAMETER_VALUE");
    // Another workspace's experiment, and a trace id another workspace holds.
    export(
        &app,
        a,
        Some(&exp_b),
        body.clone(),
        "application/json",
        false,
    )
    .await
    .error(404, "RESOURCE_DOES_NOT_EXIST");
    let stored = export(
        &app,
        a,
        Some(&exp_a),
        body.clone(),
        "application/json",
        false,
    )
    .await;
    assert_eq!(stored.status, 200, "{}", stored.body);
    export(
        &app,
        Some("team-b"),
        Some(&exp_b),
        body,
        "application/json",
        false,
    )
    .await
    .error(400, "RESOURCE_ALREADY_EXISTS");
    // A huge attribute is stored whole and read back (the body limit bounds it).
    let mut huge = otlp_json("00000000000000000000000000000def", 1);
    huge["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["attributes"][1]["value"] =
        json!({"stringValue": "x".repeat(1_000_000)});
    let stored = export(
        &app,
        a,
        Some(&exp_a),
        serde_json::to_vec(&huge).unwrap(),
        "application/json",
        false,
    )
    .await;
    assert_eq!(stored.status, 200, "{}", stored.body);
    let read = app
        .call(
            Method::GET,
            "/api/3.0/mlflow/traces/get?trace_id=tr-00000000000000000000000000000def",
            a,
            None,
        )
        .await;
    let value = &read.body["trace"]["spans"][0]["attributes"][1]["value"]["string_value"];
    assert_eq!(value.as_str().map(str::len), Some(1_000_000));
    // A gzip bomb is cut off, not inflated whole.
    let bomb = vec![b' '; OTLP_INFLATE_LIMIT + 1];
    export(&app, a, Some(&exp_a), bomb, "application/json", true)
        .await
        .error(400, "INVALID_PARAMETER_VALUE");
    let nothing_of_it = app
        .call(
            Method::GET,
            "/api/3.0/mlflow/traces/get?trace_id=tr-00000000000000000000000000000abc",
            a,
            None,
        )
        .await;
    assert_eq!(
        nothing_of_it.body["trace"]["spans"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
}
