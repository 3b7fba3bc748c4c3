//! Renderer tests: the produced SQL runs on a small fixture in a migrated
//! database, through the store's own query API, and the returned ids and
//! their order are checked. Every scenario runs on SQLite and on PostgreSQL
//! (when `FERROFLOW_TEST_PG_URL` is set), each on a database of its own.

use super::*;
use crate::error::ErrorCode;
use crate::store::db::{self, Db};
use crate::store::testing::{Backend, TestDatabase};

/// Runs of experiment 1 unless noted:
/// - r1 alpha  FINISHED alice start 100 end 200; acc 0.9, loss 0.5; lr 0.1, opt adam; team A;
///   dataset train_ds/abc as "training"
/// - r2 beta   RUNNING  bob   start 200 end -;   acc 0.7; lr 0.01; team b; dataset eval_ds/def as "eval"
/// - r3 gamma  FINISHED alice start 200 end 250; acc NaN; lr 0.1; no team tag
/// - r4 delta  FAILED   carol start 50, deleted; team A
/// - r5 eps    experiment 2, start 300; acc 0.8
/// - r6 zeta   FINISHED dave  start 150 end -;   no metrics, params or team tag
const FIXTURE: &str = r#"
INSERT INTO experiments (experiment_id, name, artifact_location, lifecycle_stage, creation_time,
                         last_update_time, workspace) VALUES
    (0, 'Default', 'a/0', 'active', 10, 10, 'default'),
    (1, 'alpha-exp', 'a/1', 'active', 30, 40, 'default'),
    (2, 'beta-exp', 'a/2', 'active', 30, 35, 'default'),
    (3, 'gamma', 'a/3', 'active', NULL, NULL, 'default'),
    (4, 'old-exp', 'a/4', 'deleted', 5, 5, 'default'),
    (5, 'alpha-exp', 'a/5', 'active', 100, 100, 'other');
INSERT INTO experiment_tags (key, value, experiment_id) VALUES
    ('team', 'A', 1), ('team', 'B', 2), ('team', 'A', 5);
INSERT INTO runs (run_uuid, name, user_id, status, start_time, end_time, lifecycle_stage,
                  artifact_uri, experiment_id) VALUES
    ('r1', 'alpha', 'alice', 'FINISHED', 100, 200, 'active', 's3://b/r1', 1),
    ('r2', 'beta', 'bob', 'RUNNING', 200, NULL, 'active', 's3://b/r2', 1),
    ('r3', 'gamma', 'alice', 'FINISHED', 200, 250, 'active', 's3://b/r3', 1),
    ('r4', 'delta', 'carol', 'FAILED', 50, 60, 'deleted', 's3://b/r4', 1),
    ('r5', 'eps', 'alice', 'FINISHED', 300, 400, 'active', 's3://b/r5', 2),
    ('r6', 'zeta', 'dave', 'FINISHED', 150, NULL, 'active', 's3://b/r6', 1);
INSERT INTO latest_metrics (key, value, timestamp, step, is_nan, run_uuid) VALUES
    ('acc', 0.9, 1, 0, FALSE, 'r1'), ('loss', 0.5, 1, 0, FALSE, 'r1'),
    ('acc', 0.7, 1, 0, FALSE, 'r2'),
    ('acc', 0.0, 1, 0, TRUE, 'r3'),
    ('acc', 0.8, 1, 0, FALSE, 'r5');
INSERT INTO params (key, value, run_uuid) VALUES
    ('lr', '0.1', 'r1'), ('opt', 'adam', 'r1'), ('lr', '0.01', 'r2'), ('lr', '0.1', 'r3');
INSERT INTO tags (key, value, run_uuid) VALUES
    ('mlflow.runName', 'alpha', 'r1'), ('team', 'A', 'r1'),
    ('mlflow.runName', 'beta', 'r2'), ('team', 'b', 'r2'),
    ('mlflow.runName', 'gamma', 'r3'),
    ('mlflow.runName', 'delta', 'r4'), ('team', 'A', 'r4'),
    ('mlflow.runName', 'eps', 'r5'),
    ('mlflow.runName', 'zeta', 'r6');
INSERT INTO datasets (dataset_uuid, experiment_id, name, digest, dataset_source_type,
                      dataset_source) VALUES
    ('d1', 1, 'train_ds', 'abc', 'local', '{}'), ('d2', 1, 'eval_ds', 'def', 'local', '{}');
INSERT INTO inputs (input_uuid, source_type, source_id, destination_type, destination_id) VALUES
    ('i1', 'DATASET', 'd1', 'RUN', 'r1'), ('i2', 'DATASET', 'd2', 'RUN', 'r2');
INSERT INTO input_tags (input_uuid, name, value) VALUES
    ('i1', 'mlflow.data.context', 'training'), ('i2', 'mlflow.data.context', 'eval')
"#;

/// The fixture in a fresh migrated database; `None` when the backend is
/// not available (PostgreSQL without `FERROFLOW_TEST_PG_URL`).
struct Fixture {
    db: Db,
    _database: TestDatabase,
}

async fn fixture(backend: Backend) -> Option<Fixture> {
    let database = TestDatabase::create(backend).await?;
    let db = crate::store::open_db(database.uri()).await.unwrap();
    for statement in FIXTURE.split(';') {
        db::query(statement).execute(&db).await.unwrap();
    }
    Some(Fixture {
        db,
        _database: database,
    })
}

impl Fixture {
    /// The first column of every row, as text.
    async fn fetch(&self, query: &SqlQuery) -> Vec<String> {
        let statement = query
            .binds
            .iter()
            .fold(db::query(&query.sql), |q, bind| match bind {
                SqlValue::Text(s) => q.bind(s),
                SqlValue::Int(i) => q.bind(*i),
                SqlValue::Float(f) => q.bind(*f),
            });
        let rows = statement
            .fetch_all(&self.db)
            .await
            .unwrap_or_else(|e| panic!("{e}\n{}", query.sql));
        rows.iter()
            .map(|row| match row.try_get::<String, _>(0) {
                Ok(s) => s,
                Err(_) => row.try_get::<i64, _>(0).unwrap().to_string(),
            })
            .collect()
    }
}

fn owned(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

async fn runs(pool: &Fixture, filter: &str, order_by: &[&str]) -> Vec<String> {
    runs_in(pool, &[1], ViewType::ActiveOnly, filter, order_by, 100, 0).await
}

async fn runs_in(
    pool: &Fixture,
    experiment_ids: &[i64],
    view: ViewType,
    filter: &str,
    order_by: &[&str],
    limit: i64,
    offset: i64,
) -> Vec<String> {
    let query = runs_search_query(
        experiment_ids,
        view,
        filter,
        &owned(order_by),
        limit,
        offset,
    )
    .unwrap_or_else(|e| panic!("{filter} / {order_by:?}: {e}"));
    pool.fetch(&query).await
}

async fn experiments(
    pool: &Fixture,
    view: ViewType,
    filter: &str,
    order_by: &[&str],
) -> Vec<String> {
    let query = experiments_search_query("default", view, filter, &owned(order_by), 100, 0)
        .unwrap_or_else(|e| panic!("{filter} / {order_by:?}: {e}"));
    pool.fetch(&query).await
}

async fn runs_default_order_views_and_experiments(pool: &Fixture) {
    // start_time DESC, then run_uuid ASC for the r2/r3 tie.
    assert_eq!(runs(pool, "", &[]).await, ["r2", "r3", "r6", "r1"]);
    assert_eq!(runs(pool, "  ", &[]).await, ["r2", "r3", "r6", "r1"]);
    let all = runs_in(pool, &[1], ViewType::All, "", &[], 100, 0).await;
    assert_eq!(all, ["r2", "r3", "r6", "r1", "r4"]);
    let deleted = runs_in(pool, &[1], ViewType::DeletedOnly, "", &[], 100, 0).await;
    assert_eq!(deleted, ["r4"]);
    let both = runs_in(pool, &[1, 2], ViewType::ActiveOnly, "", &[], 100, 0).await;
    assert_eq!(both, ["r5", "r2", "r3", "r6", "r1"]);
    let none = runs_in(pool, &[], ViewType::All, "", &[], 100, 0).await;
    assert!(none.is_empty());
}

async fn runs_filters(pool: &Fixture) {
    let cases: &[(&str, &[&str])] = &[
        // Metrics: a NaN row never matches a comparison except `!=`, and its
        // stored placeholder 0 never matches anything.
        ("metrics.acc > 0.5", &["r2", "r1"]),
        ("metrics.acc < 1", &["r2", "r1"]),
        ("metrics.acc = 0", &[]),
        ("metrics.acc >= 0", &["r2", "r1"]),
        ("metrics.acc != 0.9", &["r2", "r3"]),
        ("metrics.acc = 0.7", &["r2"]),
        ("metrics.missing < 100", &[]),
        // Params and tags: `!=` needs the key to exist (r3, r6 have no team tag).
        ("tags.team = 'A'", &["r1"]),
        ("tags.team != 'A'", &["r2"]),
        ("tags.team LIKE 'a'", &[]),
        ("tags.team LIKE 'b'", &["r2"]),
        ("tags.team ILIKE 'a'", &["r1"]),
        ("tags.team ILIKE '%'", &["r2", "r1"]),
        ("tags.team IS NULL", &["r3", "r6"]),
        ("tags.team IS NOT NULL", &["r2", "r1"]),
        ("tags.`mlflow.runName` = 'gamma'", &["r3"]),
        ("params.lr = '0.1'", &["r3", "r1"]),
        ("params.lr != '0.1'", &["r2"]),
        ("params.lr LIKE '0.%'", &["r2", "r3", "r1"]),
        ("params.lr LIKE '0.1%'", &["r3", "r1"]),
        ("params.opt IS NULL", &["r2", "r3", "r6"]),
        ("params.opt IS NOT NULL", &["r1"]),
        // Attributes.
        ("status = 'FINISHED'", &["r3", "r6", "r1"]),
        ("attributes.status != 'FINISHED'", &["r2"]),
        ("status = 'finished'", &[]),
        ("status ILIKE 'finished'", &["r3", "r6", "r1"]),
        ("user_id LIKE 'al%'", &["r3", "r1"]),
        ("artifact_uri = 's3://b/r2'", &["r2"]),
        ("run_id = 'r6'", &["r6"]),
        ("run_id IN ('r1', 'r3', 'r4')", &["r3", "r1"]),
        ("run_id NOT IN ('r1')", &["r2", "r3", "r6"]),
        ("start_time >= 200", &["r2", "r3"]),
        ("created < 150", &["r1"]),
        ("start_time > 149.5", &["r2", "r3", "r6"]),
        ("end_time <= 250", &["r3", "r1"]),
        ("end_time != 200", &["r3"]),
        ("run_name = 'alpha'", &["r1"]),
        ("attributes.`Run Name` ILIKE 'BETA'", &["r2"]),
        // Datasets: any of the run's dataset inputs.
        ("datasets.name = 'train_ds'", &["r1"]),
        ("datasets.name != 'train_ds'", &["r2"]),
        ("datasets.name LIKE '%_ds'", &["r2", "r1"]),
        ("datasets.digest IN ('abc', 'def')", &["r2", "r1"]),
        ("datasets.digest NOT IN ('abc')", &["r2"]),
        ("datasets.context = 'eval'", &["r2"]),
        ("datasets.context ILIKE 'TRAIN%'", &["r1"]),
        // Conjunctions.
        ("metrics.acc > 0.5 AND params.lr = '0.1'", &["r1"]),
        (
            "status = 'FINISHED' and tags.team IS NULL and start_time < 200",
            &["r6"],
        ),
        ("metrics.acc > 0.5 AND metrics.acc < 0.8", &["r2"]),
    ];
    for (filter, expected) in cases {
        assert_eq!(runs(pool, filter, &[]).await, *expected, "{filter}");
    }
}

async fn runs_order_by(pool: &Fixture) {
    let cases: &[(&[&str], &[&str])] = &[
        // Metrics: NaN after real values and missing last, in both directions.
        (&["metrics.acc DESC"], &["r1", "r2", "r3", "r6"]),
        (&["metrics.acc"], &["r2", "r1", "r3", "r6"]),
        (&["metrics.`acc` ASC"], &["r2", "r1", "r3", "r6"]),
        // Tags and params: missing last both ways; ties by start_time DESC, run_uuid.
        (&["tags.team ASC"], &["r1", "r2", "r3", "r6"]),
        (&["tags.team DESC"], &["r2", "r1", "r3", "r6"]),
        (&["params.lr DESC"], &["r3", "r1", "r2", "r6"]),
        (&["params.lr", "start_time ASC"], &["r2", "r1", "r3", "r6"]),
        // Attributes: start_time given, so no start_time DESC tie-break; run_uuid last.
        (&["start_time ASC"], &["r1", "r6", "r2", "r3"]),
        (&["created DESC"], &["r2", "r3", "r6", "r1"]),
        (&["end_time ASC"], &["r1", "r3", "r2", "r6"]),
        (&["end_time DESC"], &["r3", "r1", "r2", "r6"]),
        (&["run_name DESC"], &["r6", "r3", "r2", "r1"]),
        (&["status", "run_id DESC"], &["r6", "r3", "r1", "r2"]),
        (&["user_id", "metrics.acc DESC"], &["r1", "r3", "r2", "r6"]),
    ];
    for (order_by, expected) in cases {
        assert_eq!(runs(pool, "", order_by).await, *expected, "{order_by:?}");
    }
    // Ordering and filtering on the same key together.
    let ordered = runs(pool, "metrics.acc != 0.5", &["metrics.acc DESC"]).await;
    assert_eq!(ordered, ["r1", "r2", "r3"]);
}

async fn runs_paging_with_limit_and_offset(pool: &Fixture) {
    let page = |offset| {
        runs_in(
            pool,
            &[1],
            ViewType::All,
            "",
            &["metrics.acc DESC"],
            2,
            offset,
        )
    };
    assert_eq!(page(0).await, ["r1", "r2"]);
    assert_eq!(page(2).await, ["r3", "r6"]);
    assert_eq!(page(4).await, ["r4"]);
    assert!(page(6).await.is_empty());
    // The store asks for max_results + 1 to see whether a next page exists.
    let token = page_token::encode(2);
    let offset = page_token::decode(Some(&token)).unwrap();
    let next = runs_in(pool, &[1], ViewType::ActiveOnly, "", &[], 3, offset).await;
    assert_eq!(next, ["r6", "r1"]);
}

async fn hostile_values_are_bound_and_match_nothing(pool: &Fixture) {
    let hostile = [
        "tags.team = \"' OR 1=1 --\"",
        "params.lr = '\"; DROP TABLE runs; --'",
        "params.lr LIKE '%'' OR ''1''=''1'",
        "tags.`team' OR '1'='1` = 'A'",
        "tags.\"x\"\" OR 1=1 --\" != 'A'",
        "run_id IN ('r1'') OR (''1''=''1', \"' OR 1=1 --\")",
        "status ILIKE '\"; DROP TABLE runs; --'",
        "datasets.name = '\" OR 1=1 --'",
        "metrics.`acc' OR 1=1 --` > 0",
    ];
    for filter in hostile {
        assert!(runs(pool, filter, &[]).await.is_empty(), "{filter}");
    }
    let order = ["tags.`x'; DROP TABLE runs; --` DESC"];
    assert_eq!(runs(pool, "", &order).await, ["r2", "r3", "r6", "r1"]);
    let query = runs_search_query(&[1], ViewType::All, hostile[1], &[], 10, 0).unwrap();
    assert!(!query.sql.contains("DROP"), "{}", query.sql);
    let exps = experiments(pool, ViewType::All, "name = \"' OR 1=1 --\"", &[]).await;
    assert!(exps.is_empty());
    // Everything is still there.
    assert_eq!(
        runs_in(pool, &[1, 2], ViewType::All, "", &[], 100, 0)
            .await
            .len(),
        6
    );
}

async fn experiments_filters_order_and_workspace(pool: &Fixture) {
    let active = ViewType::ActiveOnly;
    // creation_time DESC, experiment_id ASC; a missing creation_time sorts last.
    assert_eq!(
        experiments(pool, active, "", &[]).await,
        ["1", "2", "0", "3"]
    );
    assert_eq!(
        experiments(pool, ViewType::DeletedOnly, "", &[]).await,
        ["4"]
    );
    assert_eq!(
        experiments(pool, ViewType::All, "", &[]).await,
        ["1", "2", "0", "4", "3"]
    );
    let cases: &[(&str, &[&str], &[&str])] = &[
        ("name LIKE '%-exp'", &[], &["1", "2"]),
        ("name ILIKE 'ALPHA%'", &[], &["1"]),
        ("name != 'gamma'", &[], &["1", "2", "0"]),
        ("attributes.name = 'Default'", &[], &["0"]),
        ("experiment_id = '2'", &[], &["2"]),
        ("experiment_id IN ('0', '2', '5')", &[], &["2", "0"]),
        ("experiment_id NOT IN ('0', '2')", &[], &["1", "3"]),
        ("creation_time > 10", &[], &["1", "2"]),
        (
            "last_update_time <= 35 AND creation_time >= 10",
            &[],
            &["2", "0"],
        ),
        ("tags.team = 'A'", &[], &["1"]),
        ("tags.team != 'A'", &[], &["2"]),
        ("tags.team IS NULL", &[], &["0", "3"]),
        ("tag.team IS NOT NULL", &[], &["1", "2"]),
        ("tags.team ILIKE 'b'", &[], &["2"]),
        // Given keys get MLflow's experiment_id DESC tie-break.
        ("", &["creation_time"], &["0", "2", "1", "3"]),
        ("", &["creation_time DESC"], &["2", "1", "0", "3"]),
        // ('Default' is left out: where it sorts depends on PostgreSQL's collation.)
        ("name != 'Default'", &["name DESC"], &["3", "2", "1"]),
        ("", &["experiment_id DESC"], &["3", "2", "1", "0"]),
        ("", &["last_update_time", "name"], &["0", "2", "1", "3"]),
    ];
    for (filter, order_by, expected) in cases {
        let got = experiments(pool, active, filter, order_by).await;
        assert_eq!(got, *expected, "{filter} / {order_by:?}");
    }
    // Experiment 5 lives in another workspace.
    let query = experiments_search_query("other", active, "", &[], 100, 0).unwrap();
    assert_eq!(pool.fetch(&query).await, ["5"]);
    // Paging.
    let page = |offset| experiments_search_query("default", active, "", &[], 2, offset);
    assert_eq!(pool.fetch(&page(0).unwrap()).await, ["1", "2"]);
    assert_eq!(pool.fetch(&page(2).unwrap()).await, ["0", "3"]);
}

/// Each scenario as a test on SQLite and on PostgreSQL.
macro_rules! on_both_backends {
    ($($scenario:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $scenario() {
                    let fixture = super::fixture(super::Backend::Sqlite).await.unwrap();
                    super::$scenario(&fixture).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $scenario() {
                    if let Some(fixture) = super::fixture(super::Backend::Postgres).await {
                        super::$scenario(&fixture).await;
                    }
                }
            )*
        }
    };
}

on_both_backends!(
    runs_default_order_views_and_experiments,
    runs_filters,
    runs_order_by,
    runs_paging_with_limit_and_offset,
    hostile_values_are_bound_and_match_nothing,
    experiments_filters_order_and_workspace,
);

#[test]
fn bad_searches_are_400() {
    let ids = [1];
    let view = ViewType::ActiveOnly;
    let cases: &[(&str, &[&str], &str)] = &[
        ("metrics.a > 1 OR metrics.b > 1", &[], "Invalid clause(s)"),
        (
            "metrics.a > 'x'",
            &[],
            "Expected numeric value type for metric",
        ),
        ("", &["start_time", "created DESC"], "duplicate fields"),
        ("", &["datasets.name"], "Invalid order_by entity"),
    ];
    for (filter, order_by, fragment) in cases {
        let err = runs_search_query(&ids, view, filter, &owned(order_by), 10, 0).unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidParameterValue);
        assert!(err.message.contains(fragment), "{}", err.message);
    }
    let err = experiments_search_query("default", view, "metrics.a > 1", &[], 10, 0).unwrap_err();
    assert!(
        err.message.contains("Invalid entity type 'metrics'"),
        "{}",
        err.message
    );
    let err =
        experiments_search_query("default", view, "", &owned(&["tags.t"]), 10, 0).unwrap_err();
    assert!(
        err.message.contains("Invalid order_by entity: tag"),
        "{}",
        err.message
    );
}

#[test]
fn every_value_is_a_placeholder() {
    let query = runs_search_query(
        &[7],
        ViewType::All,
        "metrics.acc != 0.5 AND tags.t LIKE 'x%' AND run_id IN ('a', 'b')",
        &owned(&["params.p DESC"]),
        11,
        22,
    )
    .unwrap();
    assert_eq!(
        query.binds,
        vec![
            SqlValue::Text("p".into()),
            SqlValue::Int(7),
            SqlValue::Text("active".into()),
            SqlValue::Text("deleted".into()),
            SqlValue::Text("acc".into()),
            SqlValue::Float(0.5),
            SqlValue::Text("t".into()),
            SqlValue::Text("x%".into()),
            SqlValue::Text("a".into()),
            SqlValue::Text("b".into()),
            SqlValue::Int(11),
            SqlValue::Int(22),
        ]
    );
    // Placeholders appear in the text in the order of the binds.
    let mut last = 0;
    for n in 1..=query.binds.len() {
        let at = query
            .sql
            .find(&format!("${n}"))
            .expect("placeholder present");
        assert!(at >= last, "${n} out of order in {}", query.sql);
        last = at;
    }
    assert!(!query.sql.contains("ILIKE"));
    assert!(!query.sql.contains('\''), "no literal in {}", query.sql);
}

#[test]
fn view_type_parses_names_and_numbers() {
    let cases = [
        (None, ViewType::ActiveOnly),
        (Some(""), ViewType::ActiveOnly),
        (Some("ACTIVE_ONLY"), ViewType::ActiveOnly),
        (Some("1"), ViewType::ActiveOnly),
        (Some("DELETED_ONLY"), ViewType::DeletedOnly),
        (Some("2"), ViewType::DeletedOnly),
        (Some("ALL"), ViewType::All),
        (Some("all"), ViewType::All),
        (Some("3"), ViewType::All),
    ];
    for (input, expected) in cases {
        assert_eq!(ViewType::parse(input).unwrap(), expected, "{input:?}");
    }
    for bad in ["4", "0", "EVERYTHING", "-1"] {
        let err = ViewType::parse(Some(bad)).unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidParameterValue);
        assert!(err.message.contains("Invalid view type"), "{}", err.message);
    }
}
