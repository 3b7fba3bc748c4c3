//! The SQL implementation of the stores ([`TrackingStore`], and the registry
//! and logged-model traits), shared by PostgreSQL and SQLite.
//!
//! Both backends run the same statements through one query API (`db.rs`:
//! sqlx for PostgreSQL, rusqlite for SQLite): MLflow's schema is the same in
//! both dialects and everything used here (`$N` placeholders, `ON CONFLICT`,
//! `RETURNING`, row-value comparison, window functions) means the same in
//! both, so the two backends cannot drift apart in behaviour. What does
//! differ — connecting, pool shape and pragmas — stays in `postgres.rs` and
//! `sqlite.rs`.
//!
//! Hot paths are set-based: a batch is a handful of multi-row statements in
//! one transaction, and a search page loads its runs' params, tags, metrics
//! and inputs with one query each.
//!
//! One file per MLflow area; this one holds only what they share (the store,
//! the dialect's spellings, `$N` list builders, query helpers, `{key, value}`
//! rows):
//! - `experiments.rs`: experiments and their tags
//! - `runs.rs`: runs (create, get, update, delete, search), run rows
//! - `metrics.rs`: `log-batch` writes (metrics, params, tags), metric reads
//! - `inputs.rs`: dataset inputs, run–logged-model links
//! - `logged_models.rs`: MLflow 3 logged models
//! - `registry/`: registered models, model versions, tags and aliases
//! - `traces.rs`, `assessments.rs`, `spans.rs`: MLflow 3 trace records, their
//!   assessments, and spans that arrive over OTLP
//!
//! Traits and files: Rust allows one `impl Trait for SqlStore`, and a trait
//! may span several areas. [`TrackingStore`] (experiments, runs, metrics,
//! inputs) is implemented at the end of this file, `RegistryStore` in
//! `registry/mod.rs`, each method one line that calls the area's function
//! of the same name; a trait that one area owns (`LoggedModelStore`) is
//! implemented whole in that area's file. The area functions take
//! `store: &SqlStore` rather than being inherent methods: an inherent method
//! named like the trait's would make each delegation read like a call to
//! itself, and become one, silently, if it were ever renamed. A new area
//! (workspaces, traces) is a new file, and its trait's impl lives there.

mod access;
mod assessments;
mod experiments;
mod gc;
mod inputs;
mod logged_models;
mod metrics;
mod operations;
mod registry;
mod runs;
mod span_batches;
mod span_rows;
mod spans;
mod trace_metrics;
mod traces;
mod workspaces;

use std::sync::Arc;

use async_trait::async_trait;

use super::db::{self, Db, Query, Row};
use super::{
    Batch, ExperimentQuery, HistoryInterval, NewDatasetInput, NewRun, RunQuery, RunUpdate,
    TrackingStore,
};
use crate::error::Result;
use crate::model::now_millis;
use crate::model::{
    DatasetSummary, Experiment, Metric, ModelInput, ModelOutput, Page, Run, RunInfo, Tag, Workspace,
};
use crate::search::{page_token, SqlQuery, SqlValue};

/// MLflow's lifecycle stages of experiments, runs and logged models.
const ACTIVE: &str = "active";
const DELETED: &str = "deleted";
/// Ids per `IN (...)` list; keeps bulk loads under SQLite's variable limit.
const IN_LIST_CHUNK: usize = 5000;

/// MLflow's tracking store over a SQL database. Clones share the database
/// and the span queue.
#[derive(Clone)]
pub struct SqlStore {
    /// Reads run on it directly, writes in a transaction from `db.begin()`.
    db: Db,
    dialect: Dialect,
    /// Root under which experiments get their artifact location, e.g.
    /// `mlflow-artifacts:/`.
    default_artifact_root: String,
    /// `--enable-workspaces`: new experiments' artifacts go under
    /// `<root>/workspaces/<name>/` (or the workspace's own root), as MLflow
    /// lays them out, and clients may not choose a location.
    workspaces: bool,
    /// OTLP exports waiting to be written together (`span_batches.rs`).
    span_queue: Arc<span_batches::SpanQueue>,
}

impl SqlStore {
    pub(super) fn new(db: Db, default_artifact_root: &str) -> Self {
        let dialect = match db {
            Db::Postgres(_) => Dialect::Postgres,
            Db::Sqlite(_) => Dialect::Sqlite,
        };
        Self {
            db,
            dialect,
            default_artifact_root: default_artifact_root.to_string(),
            workspaces: false,
            span_queue: Arc::new(span_batches::SpanQueue::new(dialect)),
        }
    }

    /// The store of a server running with `--enable-workspaces`.
    pub fn with_workspaces(mut self) -> Self {
        self.workspaces = true;
        self
    }
}

/// The database behind the store. Statements are written once for both; the
/// few spellings that differ are methods here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Dialect {
    Postgres,
    Sqlite,
}

impl Dialect {
    /// A double as text that parses back to the same bits. JSON functions
    /// print doubles with 15 digits, so aggregated values go through this.
    pub(super) fn exact_real(self, column: &str) -> String {
        match self {
            // SQLite's `%!.17g` is exact since 3.43 (the bundled one is newer;
            // sqlite.rs tests it); 17 significant digits identify a double.
            Self::Sqlite => format!("printf('%!.17g', {column})"),
            // Shortest exact form since PostgreSQL 12.
            Self::Postgres => format!("{column}::text"),
        }
    }

    /// An aggregate of the group's rows as a JSON text array of arrays of
    /// `columns` (`[]` for no rows): a page of runs then reads each run's
    /// params, tags and metrics in one row instead of one row per value.
    fn json_rows(self, columns: &str) -> String {
        match self {
            Self::Postgres => {
                format!("COALESCE(json_agg(json_build_array({columns}))::text, '[]')")
            }
            Self::Sqlite => format!("json_group_array(json_array({columns}))"),
        }
    }
}

/// `append_to_uri_path(root, parts...)` as MLflow builds artifact locations.
fn append_to_uri(root: &str, parts: &[&str]) -> String {
    // `mlflow-artifacts:/` + `0` gives `mlflow-artifacts:/0`, the form MLflow emits.
    format!("{}/{}", root.trim_end_matches('/'), parts.join("/"))
}

// Statements spell every parameter `$N`, on both backends (`db.rs` binds
// them by number on SQLite); these build the long lists.

/// `($s,$s+1,...),($s+c,...)`: the placeholders of a multi-row `VALUES` of
/// `rows` rows of `columns`, numbered from `start`.
fn values_rows(rows: usize, columns: usize, start: usize) -> String {
    let mut sql = String::with_capacity(rows * (columns * 7 + 3));
    for row in 0..rows {
        sql.push_str(if row == 0 { "(" } else { ",(" });
        for col in 0..columns {
            if col > 0 {
                sql.push(',');
            }
            push_param(&mut sql, start + row * columns + col);
        }
        sql.push(')');
    }
    sql
}

/// `$s,$s+1,...`: the placeholders of an `IN (...)` list of `n`, numbered
/// from `start`.
fn in_list(n: usize, start: usize) -> String {
    let mut sql = String::with_capacity(n * 7);
    for i in start..start + n {
        if i > start {
            sql.push(',');
        }
        push_param(&mut sql, i);
    }
    sql
}

fn push_param(sql: &mut String, n: usize) {
    sql.push('$');
    sql.push_str(itoa::Buffer::new().format(n));
}

fn bind_values<'q>(mut query: Query<'q>, values: &[SqlValue]) -> Query<'q> {
    for value in values {
        query = match value {
            SqlValue::Text(s) => query.bind(s),
            SqlValue::Int(i) => query.bind(*i),
            SqlValue::Float(f) => query.bind(*f),
        };
    }
    query
}

/// A query whose `$1..$n` are `ids`.
fn bind_all<'q>(sql: &'q str, ids: &[String]) -> Query<'q> {
    ids.iter().fold(db::query(sql), |query, id| query.bind(id))
}

/// Runs a query rendered by `search`.
async fn fetch_rendered(db: &Db, query: &SqlQuery) -> Result<Vec<Row>> {
    Ok(bind_values(db::query(&query.sql), &query.binds)
        .fetch_all(db)
        .await?)
}

/// The token of the next page when a query for `max_results + 1` rows got
/// more than `max_results`.
fn next_token(len: usize, max_results: i64, offset: i64) -> Option<String> {
    (len as i64 > max_results).then(|| page_token::encode(offset + max_results))
}

/// A `{key, value}` row; `key_column` names the key (`name` for input tags).
fn tag_from_row(row: &Row, key_column: &str) -> Result<Tag> {
    Ok(Tag {
        key: row.try_get(key_column)?,
        value: row
            .try_get::<Option<String>, _>("value")?
            .unwrap_or_default(),
    })
}

#[async_trait]
impl TrackingStore for SqlStore {
    async fn create_experiment(
        &self,
        ws: &Workspace,
        name: &str,
        artifact_location: Option<&str>,
        tags: &[Tag],
    ) -> Result<String> {
        experiments::create_experiment(self, ws, name, artifact_location, tags).await
    }

    async fn get_experiment(&self, ws: &Workspace, experiment_id: &str) -> Result<Experiment> {
        experiments::get_experiment(self, ws, experiment_id).await
    }

    async fn get_experiment_by_name(&self, ws: &Workspace, name: &str) -> Result<Experiment> {
        experiments::get_experiment_by_name(self, ws, name).await
    }

    async fn search_experiments(
        &self,
        ws: &Workspace,
        query: &ExperimentQuery,
    ) -> Result<Page<Experiment>> {
        experiments::search_experiments(self, ws, query).await
    }

    async fn rename_experiment(
        &self,
        ws: &Workspace,
        experiment_id: &str,
        new_name: &str,
    ) -> Result<()> {
        experiments::rename_experiment(self, ws, experiment_id, new_name).await
    }

    async fn set_experiment_deleted(
        &self,
        ws: &Workspace,
        experiment_id: &str,
        deleted: bool,
    ) -> Result<()> {
        experiments::set_experiment_deleted(self, ws, experiment_id, deleted).await
    }

    async fn set_experiment_tag(
        &self,
        ws: &Workspace,
        experiment_id: &str,
        tag: &Tag,
    ) -> Result<()> {
        experiments::set_experiment_tag(self, ws, experiment_id, tag).await
    }

    async fn delete_experiment_tag(
        &self,
        ws: &Workspace,
        experiment_id: &str,
        key: &str,
    ) -> Result<()> {
        experiments::delete_experiment_tag(self, ws, experiment_id, key).await
    }

    async fn create_run(&self, ws: &Workspace, run: NewRun) -> Result<Run> {
        runs::create_run(self, ws, run).await
    }

    async fn get_run(&self, ws: &Workspace, run_id: &str) -> Result<Run> {
        runs::get_run(self, ws, run_id).await
    }

    async fn update_run(&self, ws: &Workspace, run_id: &str, update: RunUpdate) -> Result<RunInfo> {
        runs::update_run(self, ws, run_id, update).await
    }

    async fn set_run_deleted(&self, ws: &Workspace, run_id: &str, deleted: bool) -> Result<()> {
        runs::set_run_deleted(self, ws, run_id, deleted).await
    }

    async fn search_runs(&self, ws: &Workspace, query: &RunQuery) -> Result<Page<Run>> {
        runs::search_runs(self, ws, query).await
    }

    async fn log_batch(&self, ws: &Workspace, run_id: &str, batch: Batch) -> Result<()> {
        metrics::log_batch(self, ws, run_id, batch).await
    }

    async fn delete_tag(&self, ws: &Workspace, run_id: &str, key: &str) -> Result<()> {
        runs::delete_tag(self, ws, run_id, key).await
    }

    async fn log_inputs(
        &self,
        ws: &Workspace,
        run_id: &str,
        inputs: Vec<NewDatasetInput>,
        models: Vec<ModelInput>,
    ) -> Result<()> {
        inputs::log_inputs(self, ws, run_id, inputs, models).await
    }

    async fn log_outputs(
        &self,
        ws: &Workspace,
        run_id: &str,
        models: &[ModelOutput],
    ) -> Result<()> {
        inputs::log_outputs(self, ws, run_id, models).await
    }

    async fn log_model(&self, ws: &Workspace, run_id: &str, model_json: &str) -> Result<()> {
        runs::log_model(self, ws, run_id, model_json).await
    }

    async fn get_metric_history(
        &self,
        ws: &Workspace,
        run_id: &str,
        key: &str,
        max_results: Option<i64>,
        page_token: Option<&str>,
    ) -> Result<Page<Metric>> {
        metrics::get_metric_history(self, ws, run_id, key, max_results, page_token).await
    }

    async fn get_metric_history_bulk_interval(
        &self,
        ws: &Workspace,
        query: &HistoryInterval,
    ) -> Result<Vec<Metric>> {
        metrics::get_metric_history_bulk_interval(self, ws, query).await
    }

    async fn search_datasets(
        &self,
        ws: &Workspace,
        experiment_ids: &[String],
    ) -> Result<Vec<DatasetSummary>> {
        inputs::search_datasets(self, ws, experiment_ids).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_number_rows_in_order() {
        assert_eq!(values_rows(2, 3, 1), "($1,$2,$3),($4,$5,$6)");
        assert_eq!(in_list(3, 2), "$2,$3,$4");
        assert_eq!(values_rows(1, 1, 12), "($12)");
    }

    #[test]
    fn artifact_locations_append_like_mlflow() {
        assert_eq!(
            append_to_uri("mlflow-artifacts:/", &["3"]),
            "mlflow-artifacts:/3"
        );
        assert_eq!(
            append_to_uri("mlflow-artifacts:/3", &["abc", "artifacts"]),
            "mlflow-artifacts:/3/abc/artifacts"
        );
        assert_eq!(append_to_uri("s3://b/p/", &["1"]), "s3://b/p/1");
    }
}
