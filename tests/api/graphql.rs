//! `/graphql`: the four queries MLflow's web UI sends, copied verbatim from
//! its bundle (mlflow/server/js/build), answered in MLflow's shape after data
//! is made over REST; store errors as field errors; MLflow's limits; the
//! request's workspace.

use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{spawn_app, spawn_with_workspaces, Answer, TestApp};

// The UI's queries (MLflow 3.17.2), verbatim: they are the contract.
const SEARCH_RUNS: &str = r#"
  query SearchRuns($data: MlflowSearchRunsInput!) {
    mlflowSearchRuns(input: $data) {
      apiError {
        helpUrl
        code
        message
      }
      runs {
        info {
          runName
          status
          runUuid
          experimentId
          artifactUri
          endTime
          lifecycleStage
          startTime
          userId
        }
        experiment {
          experimentId
          name
          tags {
            key
            value
          }
          artifactLocation
          lifecycleStage
          lastUpdateTime
        }
        data {
          metrics {
            key
            value
            step
            timestamp
          }
          params {
            key
            value
          }
          tags {
            key
            value
          }
        }
        inputs {
          datasetInputs {
            dataset {
              digest
              name
              profile
              schema
              source
              sourceType
            }
            tags {
              key
              value
            }
          }
          modelInputs {
            modelId
          }
        }
        outputs {
          modelOutputs {
            modelId
            step
          }
        }
        modelVersions {
          version
          name
          creationTimestamp
          status
          source
        }
      }
    }
  }
"#;

const GET_EXPERIMENT: &str = r#"
  query MlflowGetExperimentQuery($input: MlflowGetExperimentInput!) @component(name: "MLflow.ExperimentRunTracking") {
    mlflowGetExperiment(input: $input) {
      apiError {
        code
        message
      }
      experiment {
        artifactLocation
        creationTime
        effectiveTraceArchivalRetention
        experimentId
        lastUpdateTime
        lifecycleStage
        name
        tags {
          key
          value
        }
      }
    }
  }
"#;

const GET_RUN: &str = r#"
  query GetRun($data: MlflowGetRunInput!) @component(name: "MLflow.ExperimentRunTracking") {
    mlflowGetRun(input: $data) {
      apiError {
        helpUrl
        code
        message
      }
      run {
        info {
          runName
          status
          runUuid
          experimentId
          artifactUri
          endTime
          lifecycleStage
          startTime
          userId
        }
        experiment {
          experimentId
          name
          tags {
            key
            value
          }
          artifactLocation
          lifecycleStage
          lastUpdateTime
        }
        modelVersions {
          status
          version
          name
          source
        }
        data {
          metrics {
            key
            value
            step
            timestamp
          }
          params {
            key
            value
          }
          tags {
            key
            value
          }
        }
        inputs {
          datasetInputs {
            dataset {
              digest
              name
              profile
              schema
              source
              sourceType
            }
            tags {
              key
              value
            }
          }
          modelInputs {
            modelId
          }
        }
        outputs {
          modelOutputs {
            modelId
            step
          }
        }
      }
    }
  }
"#;

const GET_METRIC_HISTORY_BULK_INTERVAL: &str = r#"
  query GetMetricHistoryBulkInterval($data: MlflowGetMetricHistoryBulkIntervalInput!)
  @component(name: "MLflow.ExperimentRunTracking") {
    mlflowGetMetricHistoryBulkInterval(input: $data) {
      __typename
      metrics {
        timestamp
        step
        runId
        key
        value
      }
      apiError {
        code
        message
      }
    }
  }
"#;

/// POSTs a GraphQL request, in `workspace` by header when given.
async fn graphql(app: &TestApp, workspace: Option<&str>, query: &str, variables: Value) -> Answer {
    let body = json!({ "query": query, "variables": variables });
    let answer = app
        .call(Method::POST, "/graphql", workspace, Some(body))
        .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    answer
}

/// Calls the REST API in `workspace`, expecting success.
async fn rest(
    app: &TestApp,
    workspace: Option<&str>,
    method: Method,
    path: &str,
    body: Value,
) -> Value {
    let body = (method != Method::GET).then_some(body);
    let answer = app
        .call(method, &format!("/api/2.0/mlflow/{path}"), workspace, body)
        .await;
    assert_eq!(answer.status, 200, "{path}: {}", answer.body);
    answer.body
}

/// An experiment with a finished run that has metrics (one NaN at a step
/// past 2^53), a param, a tag, a dataset and a registered version.
async fn seed(app: &TestApp, workspace: Option<&str>) -> (String, String) {
    let post = |path: &'static str, body: Value| rest(app, workspace, Method::POST, path, body);
    let experiment = post(
        "experiments/create",
        json!({"name": "gql", "tags": [{"key": "team", "value": "a"}]}),
    )
    .await["experiment_id"]
        .as_str()
        .unwrap()
        .to_string();
    let run = post(
        "runs/create",
        json!({"experiment_id": experiment, "run_name": "r1", "start_time": 1_700_000_000_000i64, "user_id": "u"}),
    )
    .await["run"]["info"]["run_id"]
        .as_str()
        .unwrap()
        .to_string();
    post(
        "runs/log-batch",
        json!({
            "run_id": run,
            "metrics": [
                {"key": "loss", "value": 0.5, "timestamp": 1_700_000_000_001i64, "step": 0},
                {"key": "loss", "value": 0.25, "timestamp": 1_700_000_000_002i64, "step": 1},
                {"key": "nanm", "value": "NaN", "timestamp": 1_700_000_000_003i64, "step": 9_007_199_254_740_993i64},
            ],
            "params": [{"key": "lr", "value": "0.1"}],
            "tags": [{"key": "t", "value": "v"}],
        }),
    )
    .await;
    post(
        "runs/log-inputs",
        json!({"run_id": run, "datasets": [{
            "tags": [{"key": "mlflow.data.context", "value": "train"}],
            "dataset": {"name": "ds", "digest": "abc", "source_type": "local", "source": "{}", "schema": "{}"},
        }]}),
    )
    .await;
    post(
        "runs/update",
        json!({"run_id": run, "status": "FINISHED", "end_time": 1_700_000_001_000i64}),
    )
    .await;
    post("registered-models/create", json!({"name": "m"})).await;
    post(
        "model-versions/create",
        json!({"name": "m", "source": format!("runs:/{run}/model"), "run_id": run}),
    )
    .await;
    (experiment, run)
}

#[tokio::test]
async fn the_ui_queries_answer_like_mlflow() {
    let app = spawn_app().await;
    let (experiment, run) = seed(&app, None).await;
    let rest_run = rest(
        &app,
        None,
        Method::GET,
        &format!("runs/get?run_id={run}"),
        json!({}),
    )
    .await;
    let rest_experiment = rest(
        &app,
        None,
        Method::GET,
        &format!("experiments/get?experiment_id={experiment}"),
        json!({}),
    )
    .await["experiment"]
        .clone();
    let last_update = rest_experiment["last_update_time"]
        .as_i64()
        .unwrap()
        .to_string();

    // int64 fields are strings (LongString), NaN is null, unset proto
    // strings are "" and empty lists [].
    let expected_run = json!({
        "info": {
            "runName": "r1",
            "status": "FINISHED",
            "runUuid": run,
            "experimentId": experiment,
            "artifactUri": rest_run["run"]["info"]["artifact_uri"],
            "endTime": "1700000001000",
            "lifecycleStage": "active",
            "startTime": "1700000000000",
            "userId": "u",
        },
        "experiment": {
            "experimentId": experiment,
            "name": "gql",
            "tags": [{"key": "team", "value": "a"}],
            "artifactLocation": rest_experiment["artifact_location"],
            "lifecycleStage": "active",
            "lastUpdateTime": last_update,
        },
        "modelVersions": [
            {"status": "READY", "version": "1", "name": "m", "source": format!("runs:/{run}/model")},
        ],
        "data": {
            "metrics": [
                {"key": "loss", "value": 0.25, "step": "1", "timestamp": "1700000000002"},
                {"key": "nanm", "value": null, "step": "9007199254740993", "timestamp": "1700000000003"},
            ],
            "params": [{"key": "lr", "value": "0.1"}],
            "tags": [{"key": "mlflow.runName", "value": "r1"}, {"key": "t", "value": "v"}],
        },
        "inputs": {
            "datasetInputs": [{
                "dataset": {"digest": "abc", "name": "ds", "profile": "", "schema": "{}", "source": "{}", "sourceType": "local"},
                "tags": [{"key": "mlflow.data.context", "value": "train"}],
            }],
            "modelInputs": [],
        },
        "outputs": {"modelOutputs": []},
    });

    let got = graphql(&app, None, GET_RUN, json!({"data": {"runId": run}})).await;
    assert_eq!(
        got.body,
        json!({"data": {"mlflowGetRun": {"apiError": null, "run": expected_run}}, "errors": null})
    );

    // As the UI asks: one run by filter, without a view type or page size.
    let filter = format!("attributes.run_id = \"{run}\"");
    let got = graphql(
        &app,
        None,
        SEARCH_RUNS,
        json!({"data": {"filter": filter, "experimentIds": [experiment]}}),
    )
    .await;
    let mut searched = expected_run.clone();
    let created = rest(
        &app,
        None,
        Method::GET,
        "model-versions/get?name=m&version=1",
        json!({}),
    )
    .await["model_version"]["creation_timestamp"]
        .as_i64()
        .unwrap();
    searched["modelVersions"] = json!([{
        "version": "1", "name": "m", "creationTimestamp": created.to_string(),
        "status": "READY", "source": format!("runs:/{run}/model"),
    }]);
    assert_eq!(
        got.body,
        json!({"data": {"mlflowSearchRuns": {
            "apiError": null,
            "runs": [searched],
        }}, "errors": null})
    );

    let got = graphql(
        &app,
        None,
        GET_EXPERIMENT,
        json!({"input": {"experimentId": experiment}}),
    )
    .await;
    assert_eq!(
        got.body,
        json!({"data": {"mlflowGetExperiment": {"apiError": null, "experiment": {
            "artifactLocation": rest_experiment["artifact_location"],
            "creationTime": rest_experiment["creation_time"].as_i64().unwrap().to_string(),
            "effectiveTraceArchivalRetention": "",
            "experimentId": experiment,
            "lastUpdateTime": last_update,
            "lifecycleStage": "active",
            "name": "gql",
            "tags": [{"key": "team", "value": "a"}],
        }}}, "errors": null})
    );

    // The UI's variables: no range yet (nulls), 320 points per run.
    let bulk = |metric_key: &str, start: Value, end: Value| json!({"data": {"runIds": [run], "metricKey": metric_key, "startStep": start, "endStep": end, "maxResults": 320}});
    let got = graphql(
        &app,
        None,
        GET_METRIC_HISTORY_BULK_INTERVAL,
        bulk("loss", Value::Null, Value::Null),
    )
    .await;
    let point = |step: &str, timestamp: &str, value: f64| json!({"timestamp": timestamp, "step": step, "runId": run, "key": "loss", "value": value});
    assert_eq!(
        got.body,
        json!({"data": {"mlflowGetMetricHistoryBulkInterval": {
            "__typename": "MlflowGetMetricHistoryBulkIntervalResponse",
            "metrics": [point("0", "1700000000001", 0.5), point("1", "1700000000002", 0.25)],
            "apiError": null,
        }}, "errors": null})
    );
    // A zoomed chart sends its step range.
    let got = graphql(
        &app,
        None,
        GET_METRIC_HISTORY_BULK_INTERVAL,
        bulk("loss", json!(1), json!(1)),
    )
    .await;
    assert_eq!(
        got.body["data"]["mlflowGetMetricHistoryBulkInterval"]["metrics"],
        json!([point("1", "1700000000002", 0.25)])
    );
    // MLflow answers a NaN value null here too (with an error besides, which
    // ferroflow leaves out: the point is there, only its value is not).
    let got = graphql(
        &app,
        None,
        GET_METRIC_HISTORY_BULK_INTERVAL,
        bulk("nanm", Value::Null, Value::Null),
    )
    .await;
    assert_eq!(got.body["errors"], Value::Null);
    assert_eq!(
        got.body["data"]["mlflowGetMetricHistoryBulkInterval"]["metrics"],
        json!([{"timestamp": "1700000000003", "step": "9007199254740993", "runId": run, "key": "nanm", "value": null}])
    );
}

#[tokio::test]
async fn store_errors_null_the_field_and_list_the_message() {
    let app = spawn_app().await;
    // MLflow's resolvers raise: the field is null, `apiError` is never
    // filled, and the message goes to `errors`, still with HTTP 200.
    let got = graphql(&app, None, GET_RUN, json!({"data": {"runId": "nope"}})).await;
    assert_eq!(
        got.body,
        json!({"data": {"mlflowGetRun": null}, "errors": ["Run with id=nope not found"]})
    );
    let got = graphql(
        &app,
        None,
        GET_EXPERIMENT,
        json!({"input": {"experimentId": "12345"}}),
    )
    .await;
    assert_eq!(
        got.body,
        json!({"data": {"mlflowGetExperiment": null}, "errors": ["No Experiment with id=12345 exists"]})
    );
    // One failing root field leaves its siblings alone.
    let got = graphql(
        &app,
        None,
        r#"{ a: mlflowGetRun(input: {runId: "nope"}) { run { info { runId } } }
             b: mlflowGetExperiment(input: {experimentId: "0"}) { experiment { name } } }"#,
        Value::Null,
    )
    .await;
    assert_eq!(
        got.body,
        json!({"data": {"a": null, "b": {"experiment": {"name": "Default"}}}, "errors": ["Run with id=nope not found"]})
    );
    // The REST handlers' validation applies.
    let got = graphql(
        &app,
        None,
        SEARCH_RUNS,
        json!({"data": {"experimentIds": ["0"], "maxResults": 50001}}),
    )
    .await;
    assert_eq!(
        got.body["errors"],
        json!([
            "Invalid value 50001 for parameter 'max_results' supplied. It must be at most 50000"
        ])
    );
    let got = graphql(
        &app,
        None,
        GET_METRIC_HISTORY_BULK_INTERVAL,
        json!({"data": {"runIds": ["r"], "metricKey": "m", "maxResults": 2501}}),
    )
    .await;
    assert_eq!(
        got.body["errors"],
        json!(["max_results must be between 1 and 2500."])
    );
    // Validation errors fail the whole request, as in MLflow.
    let got = graphql(&app, None, GET_RUN, Value::Null).await;
    assert_eq!(got.body["data"], Value::Null);
    assert_eq!(
        got.body["errors"].as_array().unwrap().len(),
        1,
        "{}",
        got.body
    );
}

#[tokio::test]
async fn deleted_runs_show_with_their_view_type() {
    let app = spawn_app().await;
    let (experiment, run) = seed(&app, None).await;
    rest(
        &app,
        None,
        Method::POST,
        "runs/delete",
        json!({"run_id": run}),
    )
    .await;
    let search = |view: &str| json!({"data": {"experimentIds": [experiment], "runViewType": view}});
    let query = "query Q($data: MlflowSearchRunsInput!) { mlflowSearchRuns(input: $data) { runs { info { runUuid lifecycleStage } } nextPageToken } }";
    let active = graphql(&app, None, query, search("ACTIVE_ONLY")).await;
    assert_eq!(
        active.body["data"]["mlflowSearchRuns"],
        json!({"runs": [], "nextPageToken": ""})
    );
    let deleted = graphql(&app, None, query, search("DELETED_ONLY")).await;
    assert_eq!(
        deleted.body["data"]["mlflowSearchRuns"]["runs"],
        json!([{"info": {"runUuid": run, "lifecycleStage": "deleted"}}])
    );
}

#[tokio::test]
async fn mlflows_limits_and_directive() {
    let app = spawn_app().await;
    let errors = |answer: Answer| {
        assert_eq!(answer.body["data"], Value::Null, "{}", answer.body);
        answer.body["errors"].clone()
    };
    let deep = format!("{}{}", "{ a ".repeat(11), "}".repeat(11));
    assert_eq!(
        errors(graphql(&app, None, &deep, Value::Null).await),
        json!(["Query exceeds maximum depth of 10"])
    );
    let wide = format!("{{ {} }}", vec!["__typename"; 1001].join(" "));
    assert_eq!(
        errors(graphql(&app, None, &wide, Value::Null).await),
        json!(["Query exceeds maximum total selections of 1000"])
    );
    let roots = format!("{{ {} }}", ["__typename"; 11].join(" "));
    assert_eq!(
        errors(graphql(&app, None, &roots, Value::Null).await),
        json!(["GraphQL queries should have at most 10 root fields, got 11 root fields. To increase the limit, set the MLFLOW_SERVER_GRAPHQL_MAX_ROOT_FIELDS environment variable."])
    );
    let aliased: Vec<_> = (0..11)
        .map(|i| format!("a{i}: apiError {{ code }}"))
        .collect();
    let aliases = format!(
        "{{ mlflowGetRun(input: {{runId: \"x\"}}) {{ {} }} }}",
        aliased.join(" ")
    );
    assert_eq!(
        errors(graphql(&app, None, &aliases, Value::Null).await),
        json!(["GraphQL queries should have at most 10 aliases, got 11 aliases. To increase the limit, set the MLFLOW_SERVER_GRAPHQL_MAX_ALIASES environment variable."])
    );
    // Ten of each pass.
    let roots = format!("{{ {} }}", ["__typename"; 10].join(" "));
    let answer = graphql(&app, None, &roots, Value::Null).await;
    assert_eq!(
        answer.body,
        json!({"data": {"__typename": "Query"}, "errors": null})
    );

    // `@component` is declared for operations, with its argument required.
    let component = |directive: &str| format!("query Q {directive} {{ __typename }}");
    let answer = graphql(
        &app,
        None,
        &component("@component(name: \"X\")"),
        Value::Null,
    )
    .await;
    assert_eq!(
        answer.body,
        json!({"data": {"__typename": "Query"}, "errors": null})
    );
    for refused in ["@component", "@other(name: \"X\")"] {
        let answer = graphql(&app, None, &component(refused), Value::Null).await;
        assert_eq!(errors(answer).as_array().unwrap().len(), 1, "{refused}");
    }
    let on_field = "{ mlflowGetRun(input: {}) @component(name: \"X\") { apiError { code } } }";
    assert_eq!(
        errors(graphql(&app, None, on_field, Value::Null).await),
        json!(["Directive \"component\" may not be used on \"FIELD\""])
    );
}

#[tokio::test]
async fn requests_are_single_json_objects_or_a_get() {
    let app = spawn_app().await;
    let post = |body: &'static str| {
        app.http
            .post(app.url("/graphql"))
            .header("Content-Type", "application/json")
            .body(body)
    };
    // MLflow fails these with an HTML 500; ferroflow refuses them as a
    // malformed request.
    let batch = app
        .send(post(
            r#"[{"query": "{ __typename }"}, {"query": "{ __typename }"}]"#,
        ))
        .await;
    let message = batch.error(400, "INVALID_PARAMETER_VALUE");
    assert!(message.contains("Batched"), "{message}");
    app.send(post("{}"))
        .await
        .error(400, "INVALID_PARAMETER_VALUE");
    app.send(post("not json"))
        .await
        .error(400, "INVALID_PARAMETER_VALUE");
    let plain = app
        .send(
            app.http
                .post(app.url("/graphql"))
                .body(r#"{"query": "{ __typename }"}"#),
        )
        .await;
    plain.error(400, "INVALID_PARAMETER_VALUE");
    // A syntax error is an answer like any other invalid query.
    let broken = app.send(post(r#"{"query": "{ mlflowGetRun( }"}"#)).await;
    assert_eq!(broken.status, 200);
    assert_eq!(broken.body["data"], Value::Null);
    let message = broken.body["errors"][0].as_str().unwrap();
    assert!(message.starts_with("Syntax Error: "), "{message}");

    // GET: the query string, or a JSON body as MLflow reads it.
    let variables = json!({"input": {"experimentId": "0"}}).to_string();
    let query = "query Q($input: MlflowGetExperimentInput!) { mlflowGetExperiment(input: $input) { experiment { name } } }";
    let got = app
        .send(app.http.get(app.url("/graphql")).query(&[
            ("query", query),
            ("variables", variables.as_str()),
            ("operationName", "Q"),
        ]))
        .await;
    assert_eq!(
        got.body,
        json!({"data": {"mlflowGetExperiment": {"experiment": {"name": "Default"}}}, "errors": null})
    );
    let got = app
        .send(
            app.http
                .get(app.url("/graphql"))
                .json(&json!({"query": "{ __typename }"})),
        )
        .await;
    assert_eq!(
        got.body,
        json!({"data": {"__typename": "Query"}, "errors": null})
    );
}

#[tokio::test]
async fn a_query_sees_only_its_workspace() {
    let app = spawn_with_workspaces().await;
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
    }
    let (experiment, run) = seed(&app, Some("team-a")).await;

    let got = graphql(
        &app,
        Some("team-a"),
        GET_RUN,
        json!({"data": {"runId": run}}),
    )
    .await;
    assert_eq!(got.body["errors"], Value::Null, "{}", got.body);
    assert_eq!(
        got.body["data"]["mlflowGetRun"]["run"]["info"]["runUuid"],
        run
    );
    // The same request from the /w/<name> prefix.
    let prefixed = app
        .send(
            app.http
                .post(app.url("/w/team-a/graphql"))
                .json(&json!({"query": GET_RUN, "variables": {"data": {"runId": run}}})),
        )
        .await;
    assert_eq!(prefixed.body, got.body);

    let not_found = format!("Run with id={run} not found");
    let got = graphql(
        &app,
        Some("team-b"),
        GET_RUN,
        json!({"data": {"runId": run}}),
    )
    .await;
    assert_eq!(
        got.body,
        json!({"data": {"mlflowGetRun": null}, "errors": [not_found]})
    );
    let got = graphql(
        &app,
        Some("team-b"),
        SEARCH_RUNS,
        json!({"data": {"filter": "", "experimentIds": [experiment]}}),
    )
    .await;
    assert_eq!(got.body["data"]["mlflowSearchRuns"]["runs"], json!([]));
    let got = graphql(
        &app,
        Some("team-b"),
        GET_EXPERIMENT,
        json!({"input": {"experimentId": experiment}}),
    )
    .await;
    assert_eq!(got.body["data"]["mlflowGetExperiment"], Value::Null);
    let got = graphql(
        &app,
        Some("team-b"),
        GET_METRIC_HISTORY_BULK_INTERVAL,
        json!({"data": {"runIds": [run], "metricKey": "loss"}}),
    )
    .await;
    assert_eq!(
        got.body,
        json!({"data": {"mlflowGetMetricHistoryBulkInterval": null}, "errors": [not_found]})
    );
}
