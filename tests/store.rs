//! The store behaviour suite: the same tests against SQLite and PostgreSQL,
//! each test on a database of its own so they run in parallel.
//!
//! PostgreSQL cases run when `FERROFLOW_TEST_PG_URL` names a server
//! (`scripts/test.sh` and CI set it); each creates a database `ff_test_<uuid>`
//! that is dropped even when the test fails.

use ferroflow::error::ErrorCode;
use ferroflow::model::{LoggedModelStatus, Metric, ModelOutput, RunStatus, Tag, Workspace};
use ferroflow::search::ViewType;
use ferroflow::store::testing::{Backend, TestDatabase};
use ferroflow::store::{
    Batch, ExperimentQuery, HistoryInterval, LoggedModelQuery, LoggedModelStore, NewDatasetInput,
    NewLoggedModel, NewModelVersion, NewRun, RegistryQuery, RegistryStore, RunQuery, RunUpdate,
    SqlStore, TrackingStore,
};

/// Instantiates every listed behaviour test once per backend.
macro_rules! store_suite {
    ($($test:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $test() {
                    let db = super::TestDatabase::create(super::Backend::Sqlite).await.unwrap();
                    super::$test(&db.store().await).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $test() {
                    if let Some(db) = super::TestDatabase::create(super::Backend::Postgres).await {
                        super::$test(&db.store().await).await;
                    }
                }
            )*
        }
    };
}

store_suite!(
    default_experiment_exists,
    experiment_names_are_unique_even_when_deleted,
    experiment_lifecycle_cascades_to_runs,
    experiment_search_pages_and_filters,
    run_name_and_tag_stay_in_sync,
    update_without_status_keeps_status,
    batches_are_idempotent_and_atomic,
    latest_metric_is_max_of_step_timestamp_value,
    nan_and_infinity_are_stored_like_mlflow,
    deleted_runs_reject_writes,
    metric_history_pages_in_order,
    bulk_interval_samples_first_and_last,
    search_runs_filters_orders_and_pages,
    dataset_inputs_are_deduplicated,
    workspaces_are_isolated,
    concurrent_batches_keep_every_point,
    registry_versions_number_concurrently_without_gaps,
    registry_rename_and_delete_carry_children,
    registry_search_filters_orders_and_pages,
    registry_sources_are_validated,
    logged_models_link_runs_metrics_and_workspaces,
);

fn ws() -> Workspace {
    Workspace::default()
}

fn tag(key: &str, value: &str) -> Tag {
    Tag {
        key: key.into(),
        value: value.into(),
    }
}

fn metric(key: &str, value: f64, timestamp: i64, step: i64) -> Metric {
    Metric {
        key: key.into(),
        value,
        timestamp,
        step,
        ..Metric::default()
    }
}

async fn new_experiment(store: &SqlStore, name: &str) -> String {
    store
        .create_experiment(&ws(), name, None, &[])
        .await
        .unwrap()
}

async fn new_run(store: &SqlStore, experiment_id: &str) -> String {
    let run = NewRun {
        experiment_id: experiment_id.into(),
        ..NewRun::default()
    };
    store.create_run(&ws(), run).await.unwrap().info.run_id
}

async fn default_experiment_exists(store: &SqlStore) {
    let default = store.get_experiment(&ws(), "0").await.unwrap();
    assert_eq!(default.name, "Default");
    assert_eq!(default.lifecycle_stage, "active");
    assert_eq!(
        default.artifact_location.as_deref(),
        Some("mlflow-artifacts:/0")
    );
    // Opening again (a second replica, a restart) changes nothing.
    store.ensure_default_experiment().await.unwrap();
}

async fn experiment_names_are_unique_even_when_deleted(store: &SqlStore) {
    let id = new_experiment(store, "unique").await;
    let err = store
        .create_experiment(&ws(), "unique", None, &[])
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::ResourceAlreadyExists);
    store
        .set_experiment_deleted(&ws(), &id, true)
        .await
        .unwrap();
    let err = store
        .create_experiment(&ws(), "unique", None, &[])
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::ResourceAlreadyExists);
    let other = new_experiment(store, "other").await;
    let err = store
        .rename_experiment(&ws(), &other, "unique")
        .await
        .unwrap_err();
    assert_eq!(err.code.status(), 400);
    let err = store
        .get_experiment(&ws(), "not-a-number")
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::InvalidParameterValue);
    let err = store.get_experiment(&ws(), "424242").await.unwrap_err();
    assert_eq!(err.code, ErrorCode::ResourceDoesNotExist);
}

async fn experiment_lifecycle_cascades_to_runs(store: &SqlStore) {
    let id = new_experiment(store, "cascade").await;
    let experiment = store.get_experiment(&ws(), &id).await.unwrap();
    assert_eq!(
        experiment.artifact_location.as_deref(),
        Some(format!("mlflow-artifacts:/{id}").as_str())
    );
    let run_id = new_run(store, &id).await;
    store
        .set_experiment_deleted(&ws(), &id, true)
        .await
        .unwrap();
    let run = store.get_run(&ws(), &run_id).await.unwrap();
    assert_eq!(run.info.lifecycle_stage, "deleted");
    let err = store
        .create_run(
            &ws(),
            NewRun {
                experiment_id: id.clone(),
                ..NewRun::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::InvalidParameterValue);
    store
        .set_experiment_deleted(&ws(), &id, false)
        .await
        .unwrap();
    let run = store.get_run(&ws(), &run_id).await.unwrap();
    assert_eq!(run.info.lifecycle_stage, "active");
}

async fn experiment_search_pages_and_filters(store: &SqlStore) {
    for i in 0..5 {
        // Distinct creation times: equal ones tie-break by id ascending.
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        let id = new_experiment(store, &format!("search-{i}")).await;
        store
            .set_experiment_tag(&ws(), &id, &tag("team", if i % 2 == 0 { "a" } else { "b" }))
            .await
            .unwrap();
    }
    let mut query = ExperimentQuery {
        filter: "name LIKE 'search-%'".into(),
        max_results: 2,
        ..ExperimentQuery::default()
    };
    let mut names = Vec::new();
    loop {
        let page = store.search_experiments(&ws(), &query).await.unwrap();
        names.extend(page.items.into_iter().map(|e| e.name));
        match page.next_page_token {
            Some(token) => query.page_token = Some(token),
            None => break,
        }
    }
    // Newest first by default.
    assert_eq!(
        names,
        ["search-4", "search-3", "search-2", "search-1", "search-0"]
    );
    let tagged = ExperimentQuery {
        filter: "tags.team = 'b'".into(),
        max_results: 100,
        order_by: vec!["name ASC".into()],
        ..ExperimentQuery::default()
    };
    let page = store.search_experiments(&ws(), &tagged).await.unwrap();
    let names: Vec<_> = page.items.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, ["search-1", "search-3"]);
    let zero = ExperimentQuery::default();
    let err = store.search_experiments(&ws(), &zero).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::InvalidParameterValue);
}

async fn run_name_and_tag_stay_in_sync(store: &SqlStore) {
    let exp = new_experiment(store, "names").await;
    let run = store
        .create_run(
            &ws(),
            NewRun {
                experiment_id: exp.clone(),
                tags: vec![tag("mlflow.runName", "from-tag")],
                ..NewRun::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(run.info.run_name, "from-tag");
    let run_id = run.info.run_id;
    let batch = Batch {
        tags: vec![tag("mlflow.runName", "renamed")],
        ..Batch::default()
    };
    store.log_batch(&ws(), &run_id, batch).await.unwrap();
    assert_eq!(
        store.get_run(&ws(), &run_id).await.unwrap().info.run_name,
        "renamed"
    );
    let update = RunUpdate {
        run_name: Some("updated".into()),
        ..RunUpdate::default()
    };
    store.update_run(&ws(), &run_id, update).await.unwrap();
    let run = store.get_run(&ws(), &run_id).await.unwrap();
    assert_eq!(run.info.run_name, "updated");
    assert!(run.data.tags.contains(&tag("mlflow.runName", "updated")));

    let conflicting = NewRun {
        experiment_id: exp.clone(),
        run_name: Some("a".into()),
        tags: vec![tag("mlflow.runName", "b")],
        ..NewRun::default()
    };
    let err = store.create_run(&ws(), conflicting).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::InvalidParameterValue);
    // No name at all: a generated one, mirrored in the tag.
    let run = store
        .create_run(
            &ws(),
            NewRun {
                experiment_id: exp,
                ..NewRun::default()
            },
        )
        .await
        .unwrap();
    assert!(!run.info.run_name.is_empty());
    assert!(run
        .data
        .tags
        .contains(&tag("mlflow.runName", &run.info.run_name)));
}

async fn update_without_status_keeps_status(store: &SqlStore) {
    let exp = new_experiment(store, "status").await;
    let run_id = new_run(store, &exp).await;
    let finish = RunUpdate {
        status: Some(RunStatus::Finished),
        end_time: Some(10),
        ..RunUpdate::default()
    };
    store.update_run(&ws(), &run_id, finish).await.unwrap();
    let only_end = RunUpdate {
        end_time: Some(20),
        ..RunUpdate::default()
    };
    let info = store.update_run(&ws(), &run_id, only_end).await.unwrap();
    assert_eq!(info.status, RunStatus::Finished);
    assert_eq!(info.end_time, Some(20));
}

async fn batches_are_idempotent_and_atomic(store: &SqlStore) {
    let exp = new_experiment(store, "batches").await;
    let run_id = new_run(store, &exp).await;
    let batch = Batch {
        metrics: vec![metric("loss", 1.0, 100, 0), metric("loss", 0.5, 101, 1)],
        params: vec![tag("lr", "0.1")],
        tags: vec![tag("t", "1"), tag("t", "2")],
    };
    store
        .log_batch(&ws(), &run_id, batch.clone())
        .await
        .unwrap();
    // A client retry resends the same batch: nothing doubles, nothing fails.
    store.log_batch(&ws(), &run_id, batch).await.unwrap();
    let history = store
        .get_metric_history(&ws(), &run_id, "loss", None, None)
        .await
        .unwrap();
    assert_eq!(history.items.len(), 2);
    let run = store.get_run(&ws(), &run_id).await.unwrap();
    assert!(
        run.data.tags.contains(&tag("t", "2")),
        "last tag in a batch wins"
    );

    // A conflicting param fails the whole batch: its metric is not written.
    let conflicting = Batch {
        metrics: vec![metric("acc", 0.9, 102, 2)],
        params: vec![tag("lr", "0.2")],
        ..Batch::default()
    };
    let err = store
        .log_batch(&ws(), &run_id, conflicting)
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::InvalidParameterValue);
    let acc = store
        .get_metric_history(&ws(), &run_id, "acc", None, None)
        .await
        .unwrap();
    assert!(acc.items.is_empty());

    let too_many = Batch {
        metrics: (0..1001).map(|i| metric("m", 0.0, i, i)).collect(),
        ..Batch::default()
    };
    assert!(store.log_batch(&ws(), &run_id, too_many).await.is_err());
    let bad_key = Batch {
        params: vec![tag(&"k".repeat(10_000), "v")],
        ..Batch::default()
    };
    assert!(store.log_batch(&ws(), &run_id, bad_key).await.is_err());
    let run = store.get_run(&ws(), &run_id).await.unwrap();
    assert_eq!(run.data.params, vec![tag("lr", "0.1")]);
    assert!(store
        .log_batch(&ws(), "no-such-run", Batch::default())
        .await
        .is_err_and(|e| e.code == ErrorCode::ResourceDoesNotExist));
}

async fn latest_metric_is_max_of_step_timestamp_value(store: &SqlStore) {
    let exp = new_experiment(store, "latest").await;
    let run_id = new_run(store, &exp).await;
    let log = |metrics: Vec<Metric>| Batch {
        metrics,
        ..Batch::default()
    };
    store
        .log_batch(&ws(), &run_id, log(vec![metric("m", 5.0, 1000, 2)]))
        .await
        .unwrap();
    // A later timestamp at a smaller step does not win.
    store
        .log_batch(&ws(), &run_id, log(vec![metric("m", 7.0, 2000, 1)]))
        .await
        .unwrap();
    let latest = |run: ferroflow::model::Run| run.data.metrics[0].value;
    assert_eq!(latest(store.get_run(&ws(), &run_id).await.unwrap()), 5.0);
    // Same step, later timestamp wins; then same step and timestamp, larger value.
    store
        .log_batch(
            &ws(),
            &run_id,
            log(vec![metric("m", 3.0, 1500, 2), metric("m", 4.0, 1500, 2)]),
        )
        .await
        .unwrap();
    assert_eq!(latest(store.get_run(&ws(), &run_id).await.unwrap()), 4.0);
}

async fn nan_and_infinity_are_stored_like_mlflow(store: &SqlStore) {
    let exp = new_experiment(store, "specials").await;
    let run_id = new_run(store, &exp).await;
    let batch = Batch {
        metrics: vec![
            metric("nan", f64::NAN, 1, 0),
            metric("inf", f64::INFINITY, 1, 0),
            metric("ninf", f64::NEG_INFINITY, 1, 0),
        ],
        ..Batch::default()
    };
    store.log_batch(&ws(), &run_id, batch).await.unwrap();
    let run = store.get_run(&ws(), &run_id).await.unwrap();
    let value = |key: &str| {
        run.data
            .metrics
            .iter()
            .find(|m| m.key == key)
            .unwrap()
            .value
    };
    assert!(value("nan").is_nan());
    assert_eq!(value("inf"), f64::MAX);
    assert_eq!(value("ninf"), -f64::MAX);
}

async fn deleted_runs_reject_writes(store: &SqlStore) {
    let exp = new_experiment(store, "deleted-runs").await;
    let run_id = new_run(store, &exp).await;
    store.set_run_deleted(&ws(), &run_id, true).await.unwrap();
    let batch = Batch {
        metrics: vec![metric("m", 1.0, 1, 0)],
        ..Batch::default()
    };
    let err = store.log_batch(&ws(), &run_id, batch).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::InvalidParameterValue);
    assert!(err.message.contains("must be in the 'active' state"));
    let err = store
        .update_run(&ws(), &run_id, RunUpdate::default())
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::InvalidParameterValue);
    // Reads still see it; search honours the view type.
    assert_eq!(
        store
            .get_run(&ws(), &run_id)
            .await
            .unwrap()
            .info
            .lifecycle_stage,
        "deleted"
    );
    let search = |view| RunQuery {
        experiment_ids: vec![exp.clone()],
        view,
        max_results: 10,
        ..RunQuery::default()
    };
    let active = store
        .search_runs(&ws(), &search(ViewType::ActiveOnly))
        .await
        .unwrap();
    assert!(active.items.is_empty());
    let deleted = store
        .search_runs(&ws(), &search(ViewType::DeletedOnly))
        .await
        .unwrap();
    assert_eq!(deleted.items.len(), 1);
    store.set_run_deleted(&ws(), &run_id, false).await.unwrap();
    let active = store
        .search_runs(&ws(), &search(ViewType::ActiveOnly))
        .await
        .unwrap();
    assert_eq!(active.items.len(), 1);
}

async fn metric_history_pages_in_order(store: &SqlStore) {
    let exp = new_experiment(store, "history").await;
    let run_id = new_run(store, &exp).await;
    let points: Vec<Metric> = (0..30).rev().map(|i| metric("h", i as f64, i, i)).collect();
    let batch = Batch {
        metrics: points,
        ..Batch::default()
    };
    store.log_batch(&ws(), &run_id, batch).await.unwrap();
    let mut token = None;
    let mut steps = Vec::new();
    loop {
        let page = store
            .get_metric_history(&ws(), &run_id, "h", Some(7), token.as_deref())
            .await
            .unwrap();
        steps.extend(page.items.iter().map(|m| m.step));
        match page.next_page_token {
            Some(next) => token = Some(next),
            None => break,
        }
    }
    assert_eq!(steps, (0..30).collect::<Vec<_>>());
    let err = store
        .get_metric_history(&ws(), &run_id, "h", Some(7), Some("not-a-token"))
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::InvalidParameterValue);
}

async fn bulk_interval_samples_first_and_last(store: &SqlStore) {
    let exp = new_experiment(store, "interval").await;
    let run_id = new_run(store, &exp).await;
    let batch = Batch {
        metrics: (0..100).map(|i| metric("s", i as f64, i, i)).collect(),
        ..Batch::default()
    };
    store.log_batch(&ws(), &run_id, batch).await.unwrap();
    let query = HistoryInterval {
        run_ids: vec![run_id.clone()],
        metric_key: "s".into(),
        steps: None,
        max_results: 10,
    };
    let points = store
        .get_metric_history_bulk_interval(&ws(), &query)
        .await
        .unwrap();
    assert_eq!(points.len(), 10);
    assert_eq!(points.first().unwrap().step, 0);
    assert_eq!(points.last().unwrap().step, 99);
    assert!(points
        .iter()
        .all(|p| p.run_id.as_deref() == Some(run_id.as_str())));
    let window = HistoryInterval {
        steps: Some((10, 14)),
        max_results: 100,
        ..query
    };
    let points = store
        .get_metric_history_bulk_interval(&ws(), &window)
        .await
        .unwrap();
    assert_eq!(
        points.iter().map(|p| p.step).collect::<Vec<_>>(),
        [10, 11, 12, 13, 14]
    );
}

async fn search_runs_filters_orders_and_pages(store: &SqlStore) {
    let exp = new_experiment(store, "search-runs").await;
    let mut ids = Vec::new();
    for i in 0..6i64 {
        let run = NewRun {
            experiment_id: exp.clone(),
            start_time: Some(1000 + i),
            run_name: Some(format!("run-{i}")),
            ..NewRun::default()
        };
        let run_id = store.create_run(&ws(), run).await.unwrap().info.run_id;
        let mut batch = Batch {
            params: vec![tag("model", if i % 2 == 0 { "cnn" } else { "rnn" })],
            ..Batch::default()
        };
        if i != 5 {
            batch.metrics.push(metric("acc", i as f64 / 10.0, 1, 0));
        }
        store.log_batch(&ws(), &run_id, batch).await.unwrap();
        ids.push(run_id);
    }
    let names = |page: ferroflow::model::Page<ferroflow::model::Run>| {
        page.items
            .into_iter()
            .map(|r| r.info.run_name)
            .collect::<Vec<_>>()
    };
    let query = |filter: &str, order_by: &[&str]| RunQuery {
        experiment_ids: vec![exp.clone()],
        filter: filter.into(),
        max_results: 100,
        order_by: order_by.iter().map(|s| s.to_string()).collect(),
        ..RunQuery::default()
    };
    let all = store.search_runs(&ws(), &query("", &[])).await.unwrap();
    assert_eq!(
        names(all),
        ["run-5", "run-4", "run-3", "run-2", "run-1", "run-0"]
    );
    let filtered = store
        .search_runs(
            &ws(),
            &query("metrics.acc > 0.15 AND params.model = 'cnn'", &[]),
        )
        .await
        .unwrap();
    assert_eq!(names(filtered), ["run-4", "run-2"]);
    // Runs without the metric sort last, whichever the direction.
    let by_metric = store
        .search_runs(&ws(), &query("", &["metrics.acc ASC"]))
        .await
        .unwrap();
    assert_eq!(names(by_metric).last().unwrap(), "run-5");
    let injected = store
        .search_runs(&ws(), &query("params.model = 'x'' OR 1=1 --'", &[]))
        .await;
    assert!(injected.map(|p| p.items.is_empty()).unwrap_or(true));
    let err = store
        .search_runs(&ws(), &query("metrics.acc > 1 OR metrics.acc < 0", &[]))
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::InvalidParameterValue);

    let mut paged = query("", &[]);
    paged.max_results = 4;
    let first = store.search_runs(&ws(), &paged).await.unwrap();
    assert_eq!(first.items.len(), 4);
    paged.page_token = first.next_page_token;
    let second = store.search_runs(&ws(), &paged).await.unwrap();
    assert_eq!(second.items.len(), 2);
    assert!(second.next_page_token.is_none());
    let run = &second.items[0];
    assert_eq!(run.data.params.len(), 1, "search pages carry run data");
}

async fn dataset_inputs_are_deduplicated(store: &SqlStore) {
    let exp = new_experiment(store, "datasets").await;
    let run_id = new_run(store, &exp).await;
    let input = NewDatasetInput {
        dataset: ferroflow::model::Dataset {
            name: "train".into(),
            digest: "abc123".into(),
            source_type: "code".into(),
            source: "{}".into(),
            schema: Some("{}".into()),
            profile: None,
        },
        tags: vec![tag("mlflow.data.context", "training")],
    };
    store
        .log_inputs(&ws(), &run_id, vec![input.clone(), input.clone()], vec![])
        .await
        .unwrap();
    store
        .log_inputs(&ws(), &run_id, vec![input], vec![])
        .await
        .unwrap();
    let run = store.get_run(&ws(), &run_id).await.unwrap();
    assert_eq!(run.inputs.dataset_inputs.len(), 1);
    let input = &run.inputs.dataset_inputs[0];
    assert_eq!(input.dataset.digest, "abc123");
    assert_eq!(input.tags, vec![tag("mlflow.data.context", "training")]);
}

async fn workspaces_are_isolated(store: &SqlStore) {
    let exp = new_experiment(store, "mine").await;
    let run_id = new_run(store, &exp).await;
    let other = Workspace::new("other-team");
    assert_eq!(
        store.get_run(&other, &run_id).await.unwrap_err().code,
        ErrorCode::ResourceDoesNotExist
    );
    assert_eq!(
        store.get_experiment(&other, &exp).await.unwrap_err().code,
        ErrorCode::ResourceDoesNotExist
    );
    let batch = Batch {
        metrics: vec![metric("m", 1.0, 1, 0)],
        ..Batch::default()
    };
    assert!(store.log_batch(&other, &run_id, batch).await.is_err());
    let query = RunQuery {
        experiment_ids: vec![exp.clone()],
        max_results: 10,
        ..RunQuery::default()
    };
    assert!(store
        .search_runs(&other, &query)
        .await
        .unwrap()
        .items
        .is_empty());
    let experiments = ExperimentQuery {
        max_results: 100,
        ..ExperimentQuery::default()
    };
    assert!(store
        .search_experiments(&other, &experiments)
        .await
        .unwrap()
        .items
        .is_empty());
}

async fn concurrent_batches_keep_every_point(store: &SqlStore) {
    let exp = new_experiment(store, "concurrent").await;
    let run_id = new_run(store, &exp).await;
    let writers = (0..8).map(|writer| {
        let run_id = run_id.clone();
        async move {
            let batch = Batch {
                metrics: (0..100)
                    .map(|i| metric("c", (writer * 100 + i) as f64, i, writer * 100 + i))
                    .collect(),
                ..Batch::default()
            };
            store.log_batch(&ws(), &run_id, batch).await
        }
    });
    for result in futures::future::join_all(writers).await {
        result.unwrap();
    }
    let history = store
        .get_metric_history(&ws(), &run_id, "c", None, None)
        .await
        .unwrap();
    assert_eq!(history.items.len(), 800);
    let run = store.get_run(&ws(), &run_id).await.unwrap();
    assert_eq!(run.data.metrics[0].step, 799);
}

async fn new_model_version(store: &SqlStore, name: &str, run_id: &str) -> String {
    let run = store.get_run(&ws(), run_id).await.unwrap();
    let version = NewModelVersion {
        name: name.into(),
        source: format!("{}/model", run.info.artifact_uri),
        run_id: Some(run_id.into()),
        ..NewModelVersion::default()
    };
    store
        .create_model_version(&ws(), version)
        .await
        .unwrap()
        .version
}

async fn registry_versions_number_concurrently_without_gaps(store: &SqlStore) {
    let exp = new_experiment(store, "registry-concurrent").await;
    let run_id = new_run(store, &exp).await;
    store
        .create_registered_model(&ws(), "concurrent", &[], None)
        .await
        .unwrap();
    let creators = (0..12).map(|_| new_model_version(store, "concurrent", &run_id));
    let mut versions: Vec<i64> = futures::future::join_all(creators)
        .await
        .iter()
        .map(|v| v.parse().unwrap())
        .collect();
    versions.sort();
    assert_eq!(versions, (1..=12).collect::<Vec<_>>());
}

async fn registry_rename_and_delete_carry_children(store: &SqlStore) {
    let exp = new_experiment(store, "registry-rename").await;
    let run_id = new_run(store, &exp).await;
    store
        .create_registered_model(&ws(), "old", &[tag("team", "ml")], Some("desc"))
        .await
        .unwrap();
    new_model_version(store, "old", &run_id).await;
    new_model_version(store, "old", &run_id).await;
    store
        .set_model_version_tag(&ws(), "old", "1", &tag("k", "v"))
        .await
        .unwrap();
    store
        .set_registered_model_alias(&ws(), "old", "champ", "2")
        .await
        .unwrap();
    let renamed = store
        .rename_registered_model(&ws(), "old", "new")
        .await
        .unwrap();
    assert_eq!(renamed.tags, vec![tag("team", "ml")]);
    assert_eq!(renamed.aliases[0].version, "2");
    assert_eq!(renamed.latest_versions[0].version, "2");
    let v1 = store.get_model_version(&ws(), "new", "1").await.unwrap();
    assert_eq!(v1.tags, vec![tag("k", "v")]);
    let err = store.get_registered_model(&ws(), "old").await.unwrap_err();
    assert_eq!(err.code, ErrorCode::ResourceDoesNotExist);
    // A rename onto an existing name is "already exists" and changes nothing.
    store
        .create_registered_model(&ws(), "taken", &[], None)
        .await
        .unwrap();
    let err = store
        .rename_registered_model(&ws(), "new", "taken")
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::ResourceAlreadyExists);

    // A deleted version keeps its number; a deleted model takes everything along.
    store.delete_model_version(&ws(), "new", "2").await.unwrap();
    let model = store.get_registered_model(&ws(), "new").await.unwrap();
    assert!(model.aliases.is_empty());
    assert_eq!(model.latest_versions[0].version, "1");
    assert_eq!(new_model_version(store, "new", &run_id).await, "3");
    store.delete_registered_model(&ws(), "new").await.unwrap();
    store
        .create_registered_model(&ws(), "new", &[], None)
        .await
        .unwrap();
    assert_eq!(new_model_version(store, "new", &run_id).await, "1");
    let v1 = store.get_model_version(&ws(), "new", "1").await.unwrap();
    assert!(v1.tags.is_empty());
    // Other workspaces see nothing.
    let other = Workspace::new("other");
    let err = store.get_registered_model(&other, "new").await.unwrap_err();
    assert_eq!(err.code, ErrorCode::ResourceDoesNotExist);
}

async fn registry_search_filters_orders_and_pages(store: &SqlStore) {
    let exp = new_experiment(store, "registry-search").await;
    let run_id = new_run(store, &exp).await;
    for (name, tags) in [
        ("a", vec![tag("flavor", "x")]),
        ("b", vec![]),
        ("c", vec![tag("flavor", "y")]),
        ("p", vec![tag("mlflow.prompt.is_prompt", "true")]),
    ] {
        store
            .create_registered_model(&ws(), name, &tags, None)
            .await
            .unwrap();
        new_model_version(store, name, &run_id).await;
    }
    let names = |page: &ferroflow::model::Page<ferroflow::model::RegisteredModel>| {
        page.items
            .iter()
            .map(|m| m.name.clone())
            .collect::<Vec<_>>()
    };
    let query = |filter: &str, max_results: i64| RegistryQuery {
        filter: filter.into(),
        max_results,
        ..RegistryQuery::default()
    };
    let all = store
        .search_registered_models(
            &ws(),
            &query("tag.`mlflow.prompt.is_prompt` != 'true'", 100),
        )
        .await
        .unwrap();
    assert_eq!(names(&all), ["a", "b", "c"]);
    assert_eq!(all.items[0].latest_versions.len(), 1);
    let tagged = store
        .search_registered_models(&ws(), &query("tags.flavor != 'x'", 100))
        .await
        .unwrap();
    assert_eq!(names(&tagged), ["c"]);
    let prompts = store
        .search_registered_models(
            &ws(),
            &query("tags.`mlflow.prompt.is_prompt` = 'true'", 100),
        )
        .await
        .unwrap();
    assert_eq!(names(&prompts), ["p"]);
    let first = store
        .search_registered_models(&ws(), &query("", 2))
        .await
        .unwrap();
    assert_eq!(names(&first), ["a", "b"]);
    let second = store
        .search_registered_models(
            &ws(),
            &RegistryQuery {
                page_token: first.next_page_token,
                ..query("", 2)
            },
        )
        .await
        .unwrap();
    assert_eq!(names(&second), ["c"]);
    assert!(second.next_page_token.is_none());

    let versions = store
        .search_model_versions(
            &ws(),
            &RegistryQuery {
                order_by: vec!["name DESC".into()],
                ..query("name IN ('a', 'c') AND version_number = 1", 10)
            },
        )
        .await
        .unwrap();
    let found: Vec<_> = versions.items.iter().map(|v| v.name.as_str()).collect();
    assert_eq!(found, ["c", "a"]);
    let err = store
        .search_model_versions(&ws(), &query("", 200_001))
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::InvalidParameterValue);
}

async fn registry_sources_are_validated(store: &SqlStore) {
    let exp = new_experiment(store, "registry-sources").await;
    let run_id = new_run(store, &exp).await;
    let other = new_run(store, &exp).await;
    store
        .create_registered_model(&ws(), "m", &[], None)
        .await
        .unwrap();
    let create = |source: String, run: Option<&str>| NewModelVersion {
        name: "m".into(),
        source,
        run_id: run.map(str::to_string),
        ..NewModelVersion::default()
    };
    let run = store.get_run(&ws(), &run_id).await.unwrap();
    for (source, run) in [
        (format!("runs:/{other}/model"), Some(run_id.as_str())),
        (format!("{}/../x", run.info.artifact_uri), Some(&run_id)),
        (format!("{}/%2E%2E/x", run.info.artifact_uri), Some(&run_id)),
        ("mlflow-artifacts:/0/elsewhere".to_string(), Some(&run_id)),
        ("/etc/passwd".to_string(), Some(&run_id)),
        ("http://example.com/x".to_string(), None),
    ] {
        let err = store
            .create_model_version(&ws(), create(source.clone(), run))
            .await
            .unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidParameterValue, "{source}");
    }
    let created = store
        .create_model_version(
            &ws(),
            create(format!("runs:/{run_id}/model"), Some(&run_id)),
        )
        .await
        .unwrap();
    assert_eq!(created.version, "1");
    let uri = store
        .get_model_version_download_uri(&ws(), "m", "1")
        .await
        .unwrap();
    assert_eq!(uri, format!("{}/model", run.info.artifact_uri));
}

async fn logged_models_link_runs_metrics_and_workspaces(store: &SqlStore) {
    let exp = new_experiment(store, "models").await;
    let run_id = new_run(store, &exp).await;
    let model = store
        .create_logged_model(
            &ws(),
            NewLoggedModel {
                experiment_id: exp.clone(),
                name: Some("clf".into()),
                source_run_id: Some(run_id.clone()),
                params: vec![tag("a", "1"), tag("a", "2")],
                ..NewLoggedModel::default()
            },
        )
        .await
        .unwrap();
    let model_id = model.info.model_id.clone();
    assert_eq!(
        model.data.params,
        vec![tag("a", "2")],
        "a repeated key keeps its last value"
    );
    assert_eq!(
        model.info.artifact_uri,
        format!("mlflow-artifacts:/{exp}/models/{model_id}/artifacts")
    );

    // A batch naming the model records its metrics on the model too; resent, nothing doubles.
    let batch = Batch {
        metrics: vec![Metric {
            model_id: Some(model_id.clone()),
            dataset_name: Some("train".into()),
            ..metric("acc", 0.9, 10, 1)
        }],
        ..Batch::default()
    };
    store
        .log_batch(&ws(), &run_id, batch.clone())
        .await
        .unwrap();
    store.log_batch(&ws(), &run_id, batch).await.unwrap();
    let outputs = [ModelOutput {
        model_id: model_id.clone(),
        step: 1,
    }];
    store.log_outputs(&ws(), &run_id, &outputs).await.unwrap();
    store.log_outputs(&ws(), &run_id, &outputs).await.unwrap();

    let got = store
        .finalize_logged_model(&ws(), &model_id, LoggedModelStatus::Ready)
        .await
        .unwrap();
    assert_eq!(got.info.status, LoggedModelStatus::Ready);
    assert_eq!(got.data.metrics.len(), 1);
    assert_eq!(got.data.metrics[0].run_id.as_deref(), Some(run_id.as_str()));
    assert_eq!(got.data.metrics[0].dataset_name.as_deref(), Some("train"));
    let run = store.get_run(&ws(), &run_id).await.unwrap();
    assert_eq!(run.outputs.model_outputs, outputs);

    let query = LoggedModelQuery {
        experiment_ids: vec![exp.clone()],
        filter: Some("metrics.acc > 0.5 AND status = 'READY'".into()),
        ..LoggedModelQuery::default()
    };
    let found = store.search_logged_models(&ws(), &query).await.unwrap();
    assert_eq!(found.items.len(), 1);

    let other = Workspace::new("other");
    assert_eq!(
        store
            .get_logged_model(&other, &model_id, true)
            .await
            .unwrap_err()
            .code,
        ErrorCode::ResourceDoesNotExist
    );
    assert!(store
        .search_logged_models(&other, &query)
        .await
        .unwrap()
        .items
        .is_empty());

    store.delete_logged_model(&ws(), &model_id).await.unwrap();
    assert!(store
        .get_logged_model(&ws(), &model_id, false)
        .await
        .is_err());
    assert!(store.get_logged_model(&ws(), &model_id, true).await.is_ok());
}
