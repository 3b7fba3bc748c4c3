//! The SQL implementation of [`TrackingStore`], shared by PostgreSQL and SQLite.
//!
//! Both backends run the same statements through one query API (`db.rs`:
//! sqlx for PostgreSQL, rusqlite for SQLite): MLflow's schema is the same in
//! both dialects and everything used here (`$N`
//! placeholders, `ON CONFLICT`, `RETURNING`, row-value comparison, window
//! functions) means the same in both, so the two backends cannot drift apart
//! in behaviour. What does differ — connecting, pool shape and pragmas — stays
//! in `postgres.rs` and `sqlite.rs`.
//!
//! Hot paths are set-based: a batch is a handful of multi-row statements in
//! one transaction, and a search page loads its runs' params, tags, metrics
//! and inputs with one query each.

mod logged_models;
mod registry;

use std::collections::{HashMap, HashSet};

use async_trait::async_trait;

use super::db::{self, Db, Query, Row, Target, Tx, UniqueViolation};
use super::names::random_run_name;
use super::validation::{self, MAX_RESULTS_SEARCH};
use super::{
    run_not_found, Batch, ExperimentQuery, HistoryInterval, NewDatasetInput, NewRun, RunQuery,
    RunUpdate, TrackingStore,
};
use crate::error::{ErrorCode, MlflowError, Result};
use crate::model::{
    Dataset, DatasetInput, Experiment, Metric, ModelInput, ModelOutput, Page, Run, RunData,
    RunInfo, RunInputs, RunOutputs, RunStatus, Tag, Workspace,
};
use crate::search::{self, page_token, SqlQuery, SqlValue};

/// The tag MLflow keeps in sync with a run's name.
const RUN_NAME_TAG: &str = "mlflow.runName";
const LOG_MODEL_HISTORY_TAG: &str = "mlflow.log-model.history";
const ACTIVE: &str = "active";
const DELETED: &str = "deleted";
/// Ids per `IN (...)` list; keeps bulk loads under SQLite's variable limit.
const IN_LIST_CHUNK: usize = 5000;

/// MLflow's tracking store over a SQL database.
pub struct SqlStore {
    /// Reads run on it directly, writes in a transaction from `db.begin()`.
    db: Db,
    dialect: Dialect,
    /// Root under which experiments get their artifact location, e.g.
    /// `mlflow-artifacts:/`.
    default_artifact_root: String,
}

fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
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

/// Selects `is_nan` as an integer, which reads the same on both backends
/// (SQLite keeps BOOLEAN as 0/1, PostgreSQL as a bool).
const IS_NAN: &str = "CASE WHEN is_nan THEN 1 ELSE 0 END AS is_nan";

fn is_nan(row: &Row) -> Result<bool> {
    Ok(row.try_get::<i64, _>("is_nan")? != 0)
}

fn parse_experiment_id(experiment_id: &str) -> Result<i64> {
    experiment_id.trim().parse::<i64>().map_err(|_| {
        MlflowError::invalid_parameter(format!(
            "Experiment ID must be a valid integer, got '{experiment_id}'"
        ))
    })
}

fn experiment_not_found(experiment_id: &str) -> MlflowError {
    MlflowError::not_found(format!("No Experiment with id={experiment_id} exists"))
}

/// `append_to_uri_path(root, parts...)` as MLflow builds artifact locations.
fn append_to_uri(root: &str, parts: &[&str]) -> String {
    // `mlflow-artifacts:/` + `0` gives `mlflow-artifacts:/0`, the form MLflow emits.
    format!("{}/{}", root.trim_end_matches('/'), parts.join("/"))
}

const RUN_COLUMNS: &str = "r.run_uuid, r.name, r.user_id, r.status, r.start_time, r.end_time, \
     r.artifact_uri, r.lifecycle_stage, r.experiment_id";

fn run_info_from_row(row: &Row) -> Result<RunInfo> {
    let run_id: String = row.try_get("run_uuid")?;
    let status: String = row.try_get("status")?;
    let experiment_id: i64 = row.try_get("experiment_id")?;
    Ok(RunInfo {
        run_uuid: run_id.clone(),
        run_id,
        run_name: row
            .try_get::<Option<String>, _>("name")?
            .unwrap_or_default(),
        experiment_id: experiment_id.to_string(),
        user_id: row
            .try_get::<Option<String>, _>("user_id")?
            .unwrap_or_default(),
        status: RunStatus::parse(&status).unwrap_or(RunStatus::Running),
        start_time: row.try_get::<Option<i64>, _>("start_time")?.unwrap_or(0),
        end_time: row.try_get("end_time")?,
        artifact_uri: row
            .try_get::<Option<String>, _>("artifact_uri")?
            .unwrap_or_default(),
        lifecycle_stage: row
            .try_get::<Option<String>, _>("lifecycle_stage")?
            .unwrap_or_else(|| ACTIVE.into()),
    })
}

fn metric_from_row(row: &Row, key: Option<&str>) -> Result<Metric> {
    let value: f64 = row.try_get("value")?;
    Ok(Metric {
        key: match key {
            Some(key) => key.to_string(),
            None => row.try_get("key")?,
        },
        value: if is_nan(row)? { f64::NAN } else { value },
        timestamp: row.try_get("timestamp")?,
        step: row.try_get("step")?,
        ..Metric::default()
    })
}

/// A run of [`SqlStore::load_runs`]'s query: its info, and its params, tags
/// and latest metrics from their JSON aggregates, each sorted by key.
fn run_from_row(row: &Row) -> Result<Run> {
    fn aggregate<T: serde::de::DeserializeOwned>(row: &Row, column: &str) -> Result<Vec<T>> {
        let text: Option<String> = row.try_get(column)?;
        serde_json::from_str(text.as_deref().unwrap_or("[]"))
            .map_err(|err| MlflowError::internal(format!("unreadable {column} aggregate: {err}")))
    }
    let key_values = |column: &str| -> Result<Vec<Tag>> {
        let mut pairs: Vec<(String, Option<String>)> = aggregate(row, column)?;
        pairs.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        Ok(pairs
            .into_iter()
            .map(|(key, value)| Tag {
                key,
                value: value.unwrap_or_default(),
            })
            .collect())
    };
    // (key, value as exact text, timestamp, step, is_nan)
    let mut metrics: Vec<(String, String, i64, i64, i64)> = aggregate(row, "metrics")?;
    metrics.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    let metrics = metrics
        .into_iter()
        .map(|(key, value, timestamp, step, is_nan)| {
            let value: f64 = value
                .parse()
                .map_err(|_| MlflowError::internal(format!("unreadable metric value '{value}'")))?;
            Ok(Metric {
                key,
                value: if is_nan != 0 { f64::NAN } else { value },
                timestamp,
                step,
                ..Metric::default()
            })
        })
        .collect::<Result<_>>()?;
    Ok(Run {
        info: run_info_from_row(row)?,
        data: RunData {
            params: key_values("params")?,
            tags: key_values("tags")?,
            metrics,
        },
        inputs: RunInputs::default(),
        outputs: RunOutputs::default(),
    })
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
        }
    }

    /// Creates experiment 0 ("Default") if it is missing, as MLflow's SQL
    /// store does at startup; safe when several replicas start at once.
    pub async fn ensure_default_experiment(&self) -> Result<()> {
        let now = now_millis();
        db::query(
            "INSERT INTO experiments (experiment_id, name, artifact_location, lifecycle_stage, \
             creation_time, last_update_time, workspace) \
             VALUES (0, 'Default', $1, 'active', $2, $2, $3) ON CONFLICT DO NOTHING",
        )
        .bind(append_to_uri(&self.default_artifact_root, &["0"]))
        .bind(now)
        .bind(Workspace::DEFAULT)
        .execute(&self.db)
        .await?;
        Ok(())
    }

    /// Loads an experiment row of this workspace, without tags.
    async fn experiment_row<'a>(
        &self,
        target: impl Into<Target<'a>>,
        ws: &Workspace,
        experiment_id: &str,
    ) -> Result<Experiment> {
        let id = parse_experiment_id(experiment_id)?;
        let sql = format!(
            "SELECT {} FROM experiments e WHERE e.experiment_id = $1 AND e.workspace = $2",
            search::EXPERIMENT_COLUMNS
        );
        let row = db::query(&sql)
            .bind(id)
            .bind(ws.name())
            .fetch_optional(target)
            .await?
            .ok_or_else(|| experiment_not_found(experiment_id))?;
        experiment_from_row(&row)
    }

    async fn experiments_by_ids(&self, ids: &[i64]) -> Result<Vec<Experiment>> {
        let mut experiments = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(IN_LIST_CHUNK) {
            let sql = format!(
                "SELECT {} FROM experiments e WHERE e.experiment_id IN ({})",
                search::EXPERIMENT_COLUMNS,
                in_list(chunk.len(), 1)
            );
            let rows = chunk
                .iter()
                .fold(db::query(&sql), |q, id| q.bind(*id))
                .fetch_all(&self.db)
                .await?;
            for row in rows {
                experiments.push(experiment_from_row(&row)?);
            }
        }
        let position: HashMap<String, usize> = ids
            .iter()
            .enumerate()
            .map(|(i, id)| (id.to_string(), i))
            .collect();
        experiments.sort_by_key(|e| position.get(&e.experiment_id).copied());
        self.attach_experiment_tags(&mut experiments).await?;
        Ok(experiments)
    }

    /// Reads the tags of `experiments` (one query per chunk) into them.
    async fn attach_experiment_tags(&self, experiments: &mut [Experiment]) -> Result<()> {
        let mut tags: HashMap<String, Vec<Tag>> = HashMap::new();
        for chunk in experiments.chunks(IN_LIST_CHUNK) {
            let sql = format!(
                "SELECT experiment_id, key, value FROM experiment_tags WHERE experiment_id IN ({})",
                in_list(chunk.len(), 1)
            );
            let mut query = db::query(&sql);
            for experiment in chunk {
                query = query.bind(parse_experiment_id(&experiment.experiment_id)?);
            }
            for row in query.fetch_all(&self.db).await? {
                let id: i64 = row.try_get("experiment_id")?;
                tags.entry(id.to_string())
                    .or_default()
                    .push(tag_from_row(&row, "key")?);
            }
        }
        for experiment in experiments {
            if let Some(tags) = tags.remove(&experiment.experiment_id) {
                experiment.tags = tags;
            }
        }
        Ok(())
    }

    async fn active_experiment<'a>(
        &self,
        target: impl Into<Target<'a>>,
        ws: &Workspace,
        experiment_id: &str,
    ) -> Result<Experiment> {
        let experiment = self.experiment_row(target, ws, experiment_id).await?;
        if experiment.lifecycle_stage != ACTIVE {
            return Err(MlflowError::invalid_parameter(format!(
                "The experiment {experiment_id} must be in the 'active' state. Current state is {}.",
                experiment.lifecycle_stage
            )));
        }
        Ok(experiment)
    }

    /// A run's row, checked to belong to this workspace.
    async fn run_row<'a>(
        &self,
        target: impl Into<Target<'a>>,
        ws: &Workspace,
        run_id: &str,
    ) -> Result<RunInfo> {
        let sql = format!(
            "SELECT {RUN_COLUMNS} FROM runs r JOIN experiments e ON e.experiment_id = r.experiment_id \
             WHERE r.run_uuid = $1 AND e.workspace = $2"
        );
        let row = db::query(&sql)
            .bind(run_id)
            .bind(ws.name())
            .fetch_optional(target)
            .await?
            .ok_or_else(|| run_not_found(run_id))?;
        run_info_from_row(&row)
    }

    /// Checks inside a write transaction that the run exists here and is active.
    async fn active_run_in(&self, tx: &mut Tx, ws: &Workspace, run_id: &str) -> Result<RunInfo> {
        let run = self.run_row(&mut *tx, ws, run_id).await?;
        if run.lifecycle_stage != ACTIVE {
            return Err(MlflowError::invalid_parameter(format!(
                "The run {run_id} must be in the 'active' state. Current state is {}.",
                run.lifecycle_stage
            )));
        }
        Ok(run)
    }

    /// Loads whole runs (info, params, tags, latest metrics, inputs) of this
    /// workspace for the given ids, in the order of `run_ids`; ids that name
    /// nothing here are left out. Each run's params, tags and latest metrics
    /// come back aggregated in its own row (one row per run, not per value:
    /// rows cost far more than bytes through the driver); the three reads of
    /// a chunk run concurrently on PostgreSQL.
    async fn load_runs(&self, ws: &Workspace, run_ids: &[String]) -> Result<Vec<Run>> {
        let mut runs: HashMap<String, Run> = HashMap::with_capacity(run_ids.len());
        let json = |columns: &str| self.dialect.json_rows(columns);
        for chunk in run_ids.chunks(IN_LIST_CHUNK) {
            let list = in_list(chunk.len(), 1);
            let runs_sql = format!(
                "SELECT {RUN_COLUMNS}, \
                 (SELECT {} FROM params p WHERE p.run_uuid = r.run_uuid) AS params, \
                 (SELECT {} FROM tags t WHERE t.run_uuid = r.run_uuid) AS tags, \
                 (SELECT {} FROM latest_metrics m WHERE m.run_uuid = r.run_uuid) AS metrics \
                 FROM runs r JOIN experiments e ON e.experiment_id = r.experiment_id \
                 WHERE r.run_uuid IN ({list}) AND e.workspace = ${}",
                json("p.key, p.value"),
                json("t.key, t.value"),
                json(&format!(
                    "m.key, {}, m.timestamp, m.step, CASE WHEN m.is_nan THEN 1 ELSE 0 END",
                    self.dialect.exact_real("m.value")
                )),
                chunk.len() + 1
            );
            let inputs_sql = format!(
                "SELECT i.input_uuid, i.destination_id, d.name, d.digest, d.dataset_source_type, \
                 d.dataset_source, d.dataset_schema, d.dataset_profile \
                 FROM inputs i JOIN datasets d ON d.dataset_uuid = i.source_id \
                 WHERE i.source_type = 'DATASET' AND i.destination_type = 'RUN' \
                 AND i.destination_id IN ({list}) ORDER BY d.name, d.digest"
            );
            let models_sql = format!(
                "SELECT source_type, source_id, destination_id, step FROM inputs \
                 WHERE source_type IN ('RUN_INPUT', 'RUN_OUTPUT') AND source_id IN ({list}) \
                 ORDER BY destination_id"
            );
            let (run_rows, input_rows, model_rows) = tokio::try_join!(
                bind_all(&runs_sql, chunk)
                    .bind(ws.name())
                    .fetch_all(&self.db),
                bind_all(&inputs_sql, chunk).fetch_all(&self.db),
                bind_all(&models_sql, chunk).fetch_all(&self.db),
            )?;
            for row in &run_rows {
                let run = run_from_row(row)?;
                runs.insert(run.info.run_id.clone(), run);
            }
            for row in &model_rows {
                let Some(run) = runs.get_mut(&row.try_get::<String, _>("source_id")?) else {
                    continue;
                };
                let model_id: String = row.try_get("destination_id")?;
                if row.try_get::<String, _>("source_type")? == "RUN_INPUT" {
                    run.inputs.model_inputs.push(ModelInput { model_id });
                } else {
                    let step = row.try_get::<Option<i64>, _>("step")?.unwrap_or(0);
                    run.outputs
                        .model_outputs
                        .push(ModelOutput { model_id, step });
                }
            }
            self.attach_dataset_inputs(&mut runs, &input_rows).await?;
        }
        Ok(run_ids.iter().filter_map(|id| runs.remove(id)).collect())
    }

    /// Adds the dataset inputs in `rows` (and their tags) to their runs.
    async fn attach_dataset_inputs(
        &self,
        runs: &mut HashMap<String, Run>,
        rows: &[Row],
    ) -> Result<()> {
        let mut owner: HashMap<String, (String, usize)> = HashMap::new();
        for row in rows {
            let run_id: String = row.try_get("destination_id")?;
            let Some(run) = runs.get_mut(&run_id) else {
                continue;
            };
            owner.insert(
                row.try_get("input_uuid")?,
                (run_id, run.inputs.dataset_inputs.len()),
            );
            run.inputs.dataset_inputs.push(DatasetInput {
                tags: Vec::new(),
                dataset: Dataset {
                    name: row.try_get("name")?,
                    digest: row.try_get("digest")?,
                    source_type: row.try_get("dataset_source_type")?,
                    source: row.try_get("dataset_source")?,
                    schema: row.try_get("dataset_schema")?,
                    profile: row.try_get("dataset_profile")?,
                },
            });
        }
        let input_uuids: Vec<String> = owner.keys().cloned().collect();
        for chunk in input_uuids.chunks(IN_LIST_CHUNK) {
            let sql = format!(
                "SELECT input_uuid, name, value FROM input_tags WHERE input_uuid IN ({}) ORDER BY name",
                in_list(chunk.len(), 1)
            );
            for row in bind_all(&sql, chunk).fetch_all(&self.db).await? {
                let input_uuid: String = row.try_get("input_uuid")?;
                let Some((run_id, index)) = owner.get(&input_uuid) else {
                    continue;
                };
                if let Some(input) = runs
                    .get_mut(run_id)
                    .and_then(|run| run.inputs.dataset_inputs.get_mut(*index))
                {
                    input.tags.push(tag_from_row(&row, "name")?);
                }
            }
        }
        Ok(())
    }

    /// Writes a validated batch inside `tx`.
    async fn write_batch(&self, tx: &mut Tx, run_id: &str, batch: &Batch) -> Result<()> {
        if !batch.params.is_empty() {
            self.write_params(tx, run_id, &batch.params).await?;
        }
        if !batch.tags.is_empty() {
            self.write_run_tags(tx, run_id, &batch.tags).await?;
        }
        if !batch.metrics.is_empty() {
            self.write_metrics(tx, run_id, &batch.metrics).await?;
        }
        Ok(())
    }

    /// Params are immutable: inserting an existing key is a no-op when the
    /// value is equal and a 400 when it differs (checked after the insert so
    /// concurrent writers of the same key are caught too).
    async fn write_params(&self, tx: &mut Tx, run_id: &str, params: &[Tag]) -> Result<()> {
        let sql = format!(
            "INSERT INTO params (key, value, run_uuid) VALUES {} ON CONFLICT DO NOTHING",
            values_rows(params.len(), 3, 1)
        );
        let mut query = db::query(&sql);
        for param in params {
            query = query
                .bind(param.key.as_str())
                .bind(param.value.as_str())
                .bind(run_id);
        }
        query.execute(&mut *tx).await?;

        let sql = format!(
            "SELECT key, value FROM params WHERE run_uuid = $1 AND key IN ({})",
            in_list(params.len(), 2)
        );
        let mut query = db::query(&sql).bind(run_id);
        for param in params {
            query = query.bind(param.key.as_str());
        }
        let stored: HashMap<String, String> = query
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(|row| {
                Ok((
                    row.try_get("key")?,
                    row.try_get::<Option<String>, _>("value")?
                        .unwrap_or_default(),
                ))
            })
            .collect::<Result<_>>()?;
        for param in params {
            if let Some(old) = stored.get(&param.key) {
                if *old != param.value {
                    return Err(MlflowError::invalid_parameter(format!(
                        "Changing param values is not allowed. Param with key='{}' was already \
                         logged with value='{old}' for run ID='{run_id}'. Attempted logging new \
                         value '{}'.",
                        param.key, param.value
                    )));
                }
            }
        }
        Ok(())
    }

    /// Upserts tags (last one wins within a batch) and keeps the run name in
    /// sync with `mlflow.runName`.
    async fn write_run_tags(&self, tx: &mut Tx, run_id: &str, tags: &[Tag]) -> Result<()> {
        let mut latest: Vec<&Tag> = Vec::with_capacity(tags.len());
        let mut seen = HashSet::new();
        for tag in tags.iter().rev() {
            if seen.insert(tag.key.as_str()) {
                latest.push(tag);
            }
        }
        let sql = format!(
            "INSERT INTO tags (key, value, run_uuid) VALUES {} \
             ON CONFLICT (key, run_uuid) DO UPDATE SET value = excluded.value",
            values_rows(latest.len(), 3, 1)
        );
        let mut query = db::query(&sql);
        for tag in &latest {
            query = query
                .bind(tag.key.as_str())
                .bind(tag.value.as_str())
                .bind(run_id);
        }
        query.execute(&mut *tx).await?;
        if let Some(name) = latest.iter().find(|t| t.key == RUN_NAME_TAG) {
            // Only when it changes: a new run already has its name.
            db::query(
                "UPDATE runs SET name = $1 WHERE run_uuid = $2 AND (name <> $1 OR name IS NULL)",
            )
            .bind(name.value.as_str())
            .bind(run_id)
            .execute(&mut *tx)
            .await?;
        }
        Ok(())
    }

    /// Inserts metric points (identical points are de-duplicated by the
    /// primary key, so a resent batch changes nothing) and moves each key's
    /// latest value forward when the batch holds a larger (step, timestamp,
    /// value).
    async fn write_metrics(&self, tx: &mut Tx, run_id: &str, metrics: &[Metric]) -> Result<()> {
        let stored_value = |m: &Metric| if m.value.is_nan() { 0.0 } else { m.value };
        let sql = format!(
            "INSERT INTO metrics (key, value, timestamp, step, is_nan, run_uuid) VALUES {} \
             ON CONFLICT DO NOTHING",
            values_rows(metrics.len(), 6, 1)
        );
        let mut query = db::query(&sql);
        for metric in metrics {
            query = query
                .bind(metric.key.as_str())
                .bind(stored_value(metric))
                .bind(metric.timestamp)
                .bind(metric.step)
                .bind(metric.value.is_nan())
                .bind(run_id);
        }
        query.execute(&mut *tx).await?;

        let mut latest: HashMap<&str, &Metric> = HashMap::new();
        for metric in metrics {
            let newer = match latest.get(metric.key.as_str()) {
                None => true,
                Some(current) => {
                    (metric.step, metric.timestamp, stored_value(metric))
                        > (current.step, current.timestamp, stored_value(current))
                }
            };
            if newer {
                latest.insert(&metric.key, metric);
            }
        }
        let mut latest: Vec<&Metric> = latest.into_values().collect();
        // A fixed order keeps concurrent upserts from deadlocking on PostgreSQL.
        latest.sort_by(|a, b| a.key.cmp(&b.key));
        let sql = format!(
            "INSERT INTO latest_metrics (key, value, timestamp, step, is_nan, run_uuid) VALUES {} \
             ON CONFLICT (key, run_uuid) DO UPDATE SET value = excluded.value, \
             timestamp = excluded.timestamp, step = excluded.step, is_nan = excluded.is_nan \
             WHERE (excluded.step, excluded.timestamp, excluded.value) > \
             (latest_metrics.step, latest_metrics.timestamp, latest_metrics.value)",
            values_rows(latest.len(), 6, 1)
        );
        let mut query = db::query(&sql);
        for metric in latest {
            query = query
                .bind(metric.key.as_str())
                .bind(stored_value(metric))
                .bind(metric.timestamp)
                .bind(metric.step)
                .bind(metric.value.is_nan())
                .bind(run_id);
        }
        query.execute(&mut *tx).await?;
        Ok(())
    }

    /// Records edges run -> logged model in `inputs` (MLflow's lineage table:
    /// `RUN_INPUT`/`MODEL_INPUT` for models a run used, `RUN_OUTPUT`/
    /// `MODEL_OUTPUT` for models it produced); an edge logged again is kept once.
    async fn link_models(
        &self,
        tx: &mut Tx,
        run_id: &str,
        source_type: &str,
        destination_type: &str,
        models: &[(&str, i64)],
    ) -> Result<()> {
        if models.is_empty() {
            return Ok(());
        }
        let sql = format!(
            "INSERT INTO inputs (input_uuid, source_type, source_id, destination_type, \
             destination_id, step) VALUES {} ON CONFLICT DO NOTHING",
            values_rows(models.len(), 6, 1)
        );
        let mut query = db::query(&sql);
        for (model_id, step) in models {
            query = query
                .bind(uuid::Uuid::new_v4().simple().to_string())
                .bind(source_type)
                .bind(run_id)
                .bind(destination_type)
                .bind(*model_id)
                .bind(*step);
        }
        query.execute(&mut *tx).await?;
        Ok(())
    }

    async fn accessible_run(&self, ws: &Workspace, run_id: &str) -> Result<RunInfo> {
        self.run_row(&self.db, ws, run_id).await
    }
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

fn experiment_from_row(row: &Row) -> Result<Experiment> {
    let id: i64 = row.try_get("experiment_id")?;
    Ok(Experiment {
        experiment_id: id.to_string(),
        name: row.try_get("name")?,
        artifact_location: row.try_get("artifact_location")?,
        lifecycle_stage: row
            .try_get::<Option<String>, _>("lifecycle_stage")?
            .unwrap_or_else(|| ACTIVE.into()),
        last_update_time: row.try_get("last_update_time")?,
        creation_time: row.try_get("creation_time")?,
        tags: Vec::new(),
        workspace: row
            .try_get::<Option<String>, _>("workspace")?
            .unwrap_or_else(|| Workspace::DEFAULT.into()),
    })
}

fn next_token(len: usize, max_results: i64, offset: i64) -> Option<String> {
    (len as i64 > max_results).then(|| page_token::encode(offset + max_results))
}

/// Runs a query rendered by `search`.
async fn fetch_rendered(db: &Db, query: &SqlQuery) -> Result<Vec<Row>> {
    Ok(bind_values(db::query(&query.sql), &query.binds)
        .fetch_all(db)
        .await?)
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
        validation::validate_experiment_name(name)?;
        for tag in tags {
            validation::validate_experiment_tag(tag)?;
        }
        let exists = db::query("SELECT 1 FROM experiments WHERE name = $1 AND workspace = $2")
            .bind(name)
            .bind(ws.name())
            .fetch_optional(&self.db)
            .await?;
        let already_exists =
            || MlflowError::already_exists(format!("Experiment(name={name}) already exists."));
        if exists.is_some() {
            return Err(already_exists());
        }
        let now = now_millis();
        let mut tx = self.db.begin().await?;
        let id: i64 = db::query(
            "INSERT INTO experiments (name, artifact_location, lifecycle_stage, creation_time, \
             last_update_time, workspace) VALUES ($1, $2, 'active', $3, $3, $4) \
             RETURNING experiment_id",
        )
        .bind(name)
        .bind(artifact_location.filter(|l| !l.is_empty()))
        .bind(now)
        .bind(ws.name())
        .fetch_one(&mut tx)
        .await
        .or_conflict(already_exists)?
        .try_get("experiment_id")?;
        if artifact_location.is_none_or(str::is_empty) {
            db::query("UPDATE experiments SET artifact_location = $1 WHERE experiment_id = $2")
                .bind(append_to_uri(
                    &self.default_artifact_root,
                    &[&id.to_string()],
                ))
                .bind(id)
                .execute(&mut tx)
                .await?;
        }
        for tag in tags {
            db::query(
                "INSERT INTO experiment_tags (key, value, experiment_id) VALUES ($1, $2, $3) \
                 ON CONFLICT (key, experiment_id) DO UPDATE SET value = excluded.value",
            )
            .bind(tag.key.as_str())
            .bind(tag.value.as_str())
            .bind(id)
            .execute(&mut tx)
            .await?;
        }
        tx.commit().await?;
        Ok(id.to_string())
    }

    async fn get_experiment(&self, ws: &Workspace, experiment_id: &str) -> Result<Experiment> {
        let id = parse_experiment_id(experiment_id)?;
        self.experiments_by_ids(&[id])
            .await?
            .pop()
            .filter(|experiment| experiment.workspace == ws.name())
            .ok_or_else(|| experiment_not_found(experiment_id))
    }

    async fn get_experiment_by_name(&self, ws: &Workspace, name: &str) -> Result<Experiment> {
        let row =
            db::query("SELECT experiment_id FROM experiments WHERE name = $1 AND workspace = $2")
                .bind(name)
                .bind(ws.name())
                .fetch_optional(&self.db)
                .await?
                .ok_or_else(|| {
                    MlflowError::not_found(format!("Could not find experiment with name '{name}'"))
                })?;
        let id: i64 = row.try_get("experiment_id")?;
        self.experiments_by_ids(&[id])
            .await?
            .pop()
            .ok_or_else(|| experiment_not_found(&id.to_string()))
    }

    async fn search_experiments(
        &self,
        ws: &Workspace,
        query: &ExperimentQuery,
    ) -> Result<Page<Experiment>> {
        validation::validate_max_results(query.max_results, MAX_RESULTS_SEARCH)?;
        let offset = page_token::decode(query.page_token.as_deref())?;
        let sql = search::experiments_search_query(
            ws.name(),
            query.view,
            &query.filter,
            &query.order_by,
            query.max_results + 1,
            offset,
        )?;
        let mut experiments = fetch_rendered(&self.db, &sql)
            .await?
            .iter()
            .map(experiment_from_row)
            .collect::<Result<Vec<_>>>()?;
        let next_page_token = next_token(experiments.len(), query.max_results, offset);
        experiments.truncate(query.max_results as usize);
        self.attach_experiment_tags(&mut experiments).await?;
        Ok(Page {
            items: experiments,
            next_page_token,
        })
    }

    async fn rename_experiment(
        &self,
        ws: &Workspace,
        experiment_id: &str,
        new_name: &str,
    ) -> Result<()> {
        validation::validate_experiment_name(new_name)?;
        let experiment = self.experiment_row(&self.db, ws, experiment_id).await?;
        if experiment.lifecycle_stage != ACTIVE {
            return Err(MlflowError::invalid_parameter(
                "Cannot rename a non-active experiment.",
            ));
        }
        db::query(
            "UPDATE experiments SET name = $1, last_update_time = $2 WHERE experiment_id = $3",
        )
        .bind(new_name)
        .bind(now_millis())
        .bind(parse_experiment_id(experiment_id)?)
        .execute(&self.db)
        .await
        // MLflow lets the database reject the rename and reports BAD_REQUEST.
        .or_conflict(|| {
            MlflowError::new(
                ErrorCode::BadRequest,
                format!("Experiment(name={new_name}) already exists."),
            )
        })?;
        Ok(())
    }

    async fn set_experiment_deleted(
        &self,
        ws: &Workspace,
        experiment_id: &str,
        deleted: bool,
    ) -> Result<()> {
        let experiment = self.experiment_row(&self.db, ws, experiment_id).await?;
        // MLflow deletes only active experiments and restores only deleted ones.
        let expected = if deleted { ACTIVE } else { DELETED };
        if experiment.lifecycle_stage != expected {
            return Err(experiment_not_found(experiment_id));
        }
        let id = parse_experiment_id(experiment_id)?;
        let now = now_millis();
        let (stage, deleted_time) = if deleted {
            (DELETED, Some(now))
        } else {
            (ACTIVE, None)
        };
        let mut tx = self.db.begin().await?;
        db::query(
            "UPDATE experiments SET lifecycle_stage = $1, last_update_time = $2 WHERE experiment_id = $3",
        )
        .bind(stage)
        .bind(now)
        .bind(id)
        .execute(&mut tx)
        .await?;
        // Runs follow their experiment, as in MLflow.
        db::query(
            "UPDATE runs SET lifecycle_stage = $1, deleted_time = $2 WHERE experiment_id = $3",
        )
        .bind(stage)
        .bind(deleted_time)
        .bind(id)
        .execute(&mut tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn set_experiment_tag(
        &self,
        ws: &Workspace,
        experiment_id: &str,
        tag: &Tag,
    ) -> Result<()> {
        validation::validate_experiment_tag(tag)?;
        let experiment = self.active_experiment(&self.db, ws, experiment_id).await?;
        db::query(
            "INSERT INTO experiment_tags (key, value, experiment_id) VALUES ($1, $2, $3) \
             ON CONFLICT (key, experiment_id) DO UPDATE SET value = excluded.value",
        )
        .bind(tag.key.as_str())
        .bind(tag.value.as_str())
        .bind(parse_experiment_id(&experiment.experiment_id)?)
        .execute(&self.db)
        .await?;
        Ok(())
    }

    async fn delete_experiment_tag(
        &self,
        ws: &Workspace,
        experiment_id: &str,
        key: &str,
    ) -> Result<()> {
        let experiment = self.active_experiment(&self.db, ws, experiment_id).await?;
        let deleted =
            db::query("DELETE FROM experiment_tags WHERE experiment_id = $1 AND key = $2")
                .bind(parse_experiment_id(&experiment.experiment_id)?)
                .bind(key)
                .execute(&self.db)
                .await?;
        if deleted == 0 {
            return Err(MlflowError::not_found(format!(
                "No tag with name: {key} in experiment with id {experiment_id}"
            )));
        }
        Ok(())
    }

    async fn create_run(&self, ws: &Workspace, run: NewRun) -> Result<Run> {
        // The experiment is read on the writer connection: on SQLite a reader
        // would find its cache stale after every write and reload it.
        let mut tx = self.db.begin().await?;
        let experiment = self
            .active_experiment(&mut tx, ws, &run.experiment_id)
            .await?;
        let mut tags = run.tags;
        for tag in &mut tags {
            validation::normalize_run_tag(tag)?;
        }
        let name_tag = tags
            .iter()
            .rev()
            .find(|t| t.key == RUN_NAME_TAG)
            .map(|t| t.value.clone());
        let run_name = run.run_name.filter(|n| !n.is_empty());
        if let (Some(name), Some(tag)) = (&run_name, &name_tag) {
            if name != tag {
                return Err(MlflowError::invalid_parameter(format!(
                    "Both 'run_name' argument and 'mlflow.runName' tag are specified, but with \
                     different values (run_name='{name}', mlflow.runName='{tag}')."
                )));
            }
        }
        let run_name = run_name
            .or(name_tag.clone())
            .unwrap_or_else(random_run_name);
        if name_tag.is_none() {
            tags.push(Tag {
                key: RUN_NAME_TAG.into(),
                value: run_name.clone(),
            });
        }
        let run_id = uuid::Uuid::new_v4().simple().to_string();
        let artifact_uri = append_to_uri(
            experiment.artifact_location.as_deref().unwrap_or_default(),
            &[&run_id, "artifacts"],
        );
        let start_time = run.start_time.unwrap_or_else(now_millis);
        let user_id = run.user_id.unwrap_or_default();

        db::query(
            "INSERT INTO runs (run_uuid, name, source_type, source_name, entry_point_name, \
             user_id, status, start_time, end_time, source_version, lifecycle_stage, \
             artifact_uri, experiment_id, deleted_time) \
             VALUES ($1, $2, 'UNKNOWN', '', '', $3, 'RUNNING', $4, NULL, '', 'active', $5, $6, NULL)",
        )
        .bind(run_id.as_str())
        .bind(run_name.as_str())
        .bind(user_id.as_str())
        .bind(start_time)
        .bind(artifact_uri.as_str())
        .bind(parse_experiment_id(&experiment.experiment_id)?)
        .execute(&mut tx)
        .await?;
        self.write_run_tags(&mut tx, &run_id, &tags).await?;
        tx.commit().await?;

        // A new run has only its tags, so nothing needs reading back. As in
        // the upsert, the last value of a repeated key wins.
        let data_tags = tags
            .into_iter()
            .map(|tag| (tag.key, tag.value))
            .collect::<std::collections::BTreeMap<_, _>>()
            .into_iter()
            .map(|(key, value)| Tag { key, value })
            .collect();
        Ok(Run {
            info: RunInfo {
                run_uuid: run_id.clone(),
                run_id,
                run_name,
                experiment_id: experiment.experiment_id,
                user_id,
                status: RunStatus::Running,
                start_time,
                end_time: None,
                artifact_uri,
                lifecycle_stage: ACTIVE.into(),
            },
            data: RunData {
                tags: data_tags,
                ..RunData::default()
            },
            inputs: RunInputs::default(),
            outputs: RunOutputs::default(),
        })
    }

    async fn get_run(&self, ws: &Workspace, run_id: &str) -> Result<Run> {
        self.load_runs(ws, &[run_id.to_string()])
            .await?
            .pop()
            .ok_or_else(|| run_not_found(run_id))
    }

    async fn update_run(&self, ws: &Workspace, run_id: &str, update: RunUpdate) -> Result<RunInfo> {
        let mut tx = self.db.begin().await?;
        let mut info = self.active_run_in(&mut tx, ws, run_id).await?;
        // Absent fields keep their stored value (mlflow #8141).
        if let Some(status) = update.status {
            info.status = status;
        }
        if let Some(end_time) = update.end_time {
            info.end_time = Some(end_time);
        }
        let run_name = update.run_name.filter(|n| !n.is_empty());
        if let Some(name) = &run_name {
            info.run_name = name.clone();
        }
        db::query("UPDATE runs SET status = $1, end_time = $2, name = $3 WHERE run_uuid = $4")
            .bind(info.status.as_str())
            .bind(info.end_time)
            .bind(info.run_name.as_str())
            .bind(run_id)
            .execute(&mut tx)
            .await?;
        if let Some(name) = run_name {
            let tag = Tag {
                key: RUN_NAME_TAG.into(),
                value: name,
            };
            self.write_run_tags(&mut tx, run_id, &[tag]).await?;
        }
        tx.commit().await?;
        Ok(info)
    }

    async fn set_run_deleted(&self, ws: &Workspace, run_id: &str, deleted: bool) -> Result<()> {
        self.accessible_run(ws, run_id).await?;
        let (stage, deleted_time) = if deleted {
            (DELETED, Some(now_millis()))
        } else {
            (ACTIVE, None)
        };
        db::query("UPDATE runs SET lifecycle_stage = $1, deleted_time = $2 WHERE run_uuid = $3")
            .bind(stage)
            .bind(deleted_time)
            .bind(run_id)
            .execute(&self.db)
            .await?;
        Ok(())
    }

    async fn search_runs(&self, ws: &Workspace, query: &RunQuery) -> Result<Page<Run>> {
        validation::validate_max_results(query.max_results, MAX_RESULTS_SEARCH)?;
        let offset = page_token::decode(query.page_token.as_deref())?;
        let requested = query
            .experiment_ids
            .iter()
            .map(|id| parse_experiment_id(id))
            .collect::<Result<Vec<_>>>()?;
        if requested.is_empty() {
            return Ok(Page {
                items: Vec::new(),
                next_page_token: None,
            });
        }
        // Only experiments of this workspace are searched; others match nothing.
        let sql = format!(
            "SELECT experiment_id FROM experiments WHERE workspace = $1 AND experiment_id IN ({})",
            in_list(requested.len(), 2)
        );
        let mut visible = db::query(&sql).bind(ws.name());
        for id in &requested {
            visible = visible.bind(*id);
        }
        let experiment_ids = visible
            .fetch_all(&self.db)
            .await?
            .iter()
            .map(|row| row.try_get::<i64, _>(0).map_err(MlflowError::from))
            .collect::<Result<Vec<_>>>()?;
        // The filter is parsed even when nothing can match, so a bad filter is
        // always a 400.
        let sql = search::runs_search_query(
            &experiment_ids,
            query.view,
            &query.filter,
            &query.order_by,
            query.max_results + 1,
            offset,
        )?;
        if experiment_ids.is_empty() {
            return Ok(Page {
                items: Vec::new(),
                next_page_token: None,
            });
        }
        let mut run_ids = fetch_rendered(&self.db, &sql)
            .await?
            .iter()
            .map(|row| row.try_get::<String, _>(0).map_err(MlflowError::from))
            .collect::<Result<Vec<_>>>()?;
        let next_page_token = next_token(run_ids.len(), query.max_results, offset);
        run_ids.truncate(query.max_results as usize);
        Ok(Page {
            items: self.load_runs(ws, &run_ids).await?,
            next_page_token,
        })
    }

    async fn log_batch(&self, ws: &Workspace, run_id: &str, mut batch: Batch) -> Result<()> {
        validation::normalize_batch(&mut batch)?;
        let mut tx = self.db.begin().await?;
        let run = self.active_run_in(&mut tx, ws, run_id).await?;
        self.write_batch(&mut tx, run_id, &batch).await?;
        let experiment_id = parse_experiment_id(&run.experiment_id)?;
        self.write_model_metrics(&mut tx, run_id, experiment_id, &batch.metrics)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn delete_tag(&self, ws: &Workspace, run_id: &str, key: &str) -> Result<()> {
        let mut tx = self.db.begin().await?;
        self.active_run_in(&mut tx, ws, run_id).await?;
        let deleted = db::query("DELETE FROM tags WHERE run_uuid = $1 AND key = $2")
            .bind(run_id)
            .bind(key)
            .execute(&mut tx)
            .await?;
        if deleted == 0 {
            return Err(MlflowError::not_found(format!(
                "No tag with name: {key} in run with id {run_id}"
            )));
        }
        tx.commit().await?;
        Ok(())
    }

    async fn log_inputs(
        &self,
        ws: &Workspace,
        run_id: &str,
        inputs: Vec<NewDatasetInput>,
        models: Vec<ModelInput>,
    ) -> Result<()> {
        for input in &inputs {
            validation::validate_dataset_input(input)?;
        }
        let mut tx = self.db.begin().await?;
        let run = self.active_run_in(&mut tx, ws, run_id).await?;
        let experiment_id = parse_experiment_id(&run.experiment_id)?;
        // Same (name, digest) twice in one request: the first one counts.
        let mut seen = HashSet::new();
        for input in inputs {
            let dataset = &input.dataset;
            if !seen.insert((dataset.name.clone(), dataset.digest.clone())) {
                continue;
            }
            let existing = db::query(
                "SELECT dataset_uuid FROM datasets WHERE experiment_id = $1 AND name = $2 AND digest = $3",
            )
            .bind(experiment_id)
            .bind(dataset.name.as_str())
            .bind(dataset.digest.as_str())
            .fetch_optional(&mut tx)
            .await?;
            let dataset_uuid = match existing {
                Some(row) => row.try_get::<String, _>("dataset_uuid")?,
                None => {
                    let uuid = uuid::Uuid::new_v4().simple().to_string();
                    db::query(
                        "INSERT INTO datasets (dataset_uuid, experiment_id, name, digest, \
                         dataset_source_type, dataset_source, dataset_schema, dataset_profile) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                    )
                    .bind(uuid.as_str())
                    .bind(experiment_id)
                    .bind(dataset.name.as_str())
                    .bind(dataset.digest.as_str())
                    .bind(dataset.source_type.as_str())
                    .bind(dataset.source.as_str())
                    .bind(dataset.schema.as_deref())
                    .bind(dataset.profile.as_deref())
                    .execute(&mut tx)
                    .await?;
                    uuid
                }
            };
            let linked = db::query(
                "SELECT 1 FROM inputs WHERE source_type = 'DATASET' AND source_id = $1 \
                 AND destination_type = 'RUN' AND destination_id = $2",
            )
            .bind(dataset_uuid.as_str())
            .bind(run_id)
            .fetch_optional(&mut tx)
            .await?;
            if linked.is_some() {
                continue;
            }
            let input_uuid = uuid::Uuid::new_v4().simple().to_string();
            db::query(
                "INSERT INTO inputs (input_uuid, source_type, source_id, destination_type, \
                 destination_id) VALUES ($1, 'DATASET', $2, 'RUN', $3)",
            )
            .bind(input_uuid.as_str())
            .bind(dataset_uuid.as_str())
            .bind(run_id)
            .execute(&mut tx)
            .await?;
            for tag in &input.tags {
                db::query("INSERT INTO input_tags (input_uuid, name, value) VALUES ($1, $2, $3)")
                    .bind(input_uuid.as_str())
                    .bind(tag.key.as_str())
                    .bind(tag.value.as_str())
                    .execute(&mut tx)
                    .await?;
            }
        }
        let models: Vec<(&str, i64)> = models.iter().map(|m| (m.model_id.as_str(), 0)).collect();
        self.link_models(&mut tx, run_id, "RUN_INPUT", "MODEL_INPUT", &models)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn log_outputs(
        &self,
        ws: &Workspace,
        run_id: &str,
        models: &[ModelOutput],
    ) -> Result<()> {
        let mut tx = self.db.begin().await?;
        self.active_run_in(&mut tx, ws, run_id).await?;
        let models: Vec<(&str, i64)> = models
            .iter()
            .map(|m| (m.model_id.as_str(), m.step))
            .collect();
        self.link_models(&mut tx, run_id, "RUN_OUTPUT", "MODEL_OUTPUT", &models)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn log_model(&self, ws: &Workspace, run_id: &str, model_json: &str) -> Result<()> {
        let model: serde_json::Value = serde_json::from_str(model_json).map_err(|err| {
            MlflowError::invalid_parameter(format!("Malformed model info: {err}"))
        })?;
        let mut tx = self.db.begin().await?;
        self.active_run_in(&mut tx, ws, run_id).await?;
        let current: Option<String> =
            db::query("SELECT value FROM tags WHERE run_uuid = $1 AND key = $2")
                .bind(run_id)
                .bind(LOG_MODEL_HISTORY_TAG)
                .fetch_optional(&mut tx)
                .await?
                .map(|row| row.try_get("value"))
                .transpose()?;
        let mut history: Vec<serde_json::Value> = current
            .and_then(|v| serde_json::from_str(&v).ok())
            .unwrap_or_default();
        history.push(model);
        let tag = Tag {
            key: LOG_MODEL_HISTORY_TAG.into(),
            value: serde_json::Value::from(history).to_string(),
        };
        self.write_run_tags(&mut tx, run_id, &[tag]).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn get_metric_history(
        &self,
        ws: &Workspace,
        run_id: &str,
        key: &str,
        max_results: Option<i64>,
        page_token: Option<&str>,
    ) -> Result<Page<Metric>> {
        self.accessible_run(ws, run_id).await?;
        let offset = page_token::decode(page_token)?;
        // `LIMIT -1` means "no limit" to SQLite but is an error on PostgreSQL,
        // so an unpaged read uses the largest limit instead.
        let limit = max_results.map_or(i64::MAX, |m| m + 1);
        let rows = db::query(&format!(
            "SELECT value, timestamp, step, {IS_NAN} FROM metrics \
                 WHERE run_uuid = $1 AND key = $2 \
                 ORDER BY timestamp, step, value LIMIT $3 OFFSET $4"
        ))
        .bind(run_id)
        .bind(key)
        .bind(limit)
        .bind(offset)
        .fetch_all(&self.db)
        .await?;
        let mut items = rows
            .iter()
            .map(|row| metric_from_row(row, Some(key)))
            .collect::<Result<Vec<_>>>()?;
        let next_page_token = max_results.and_then(|m| next_token(items.len(), m, offset));
        if let Some(m) = max_results {
            items.truncate(m as usize);
        }
        Ok(Page {
            items,
            next_page_token,
        })
    }

    async fn get_metric_history_bulk_interval(
        &self,
        ws: &Workspace,
        query: &HistoryInterval,
    ) -> Result<Vec<Metric>> {
        for run_id in &query.run_ids {
            self.accessible_run(ws, run_id).await?;
        }
        let (start, end) = query.steps.unwrap_or((i64::MIN, i64::MAX));
        let buckets = query.max_results.max(1);
        let mut points = Vec::new();
        // Evenly samples rows: the first row of each of `buckets` equal slices
        // of the ordered series, plus the very last row.
        for run_id in &query.run_ids {
            let rows = db::query(&format!(
                "SELECT value, timestamp, step, is_nan FROM ( \
                   SELECT value, timestamp, step, {IS_NAN}, \
                     ROW_NUMBER() OVER (ORDER BY step, timestamp, value, is_nan) - 1 AS rn, \
                     COUNT(*) OVER () AS n \
                   FROM metrics WHERE run_uuid = $1 AND key = $2 AND step >= $3 AND step <= $4 \
                 ) s \
                 WHERE n <= $5 OR rn = n - 1 OR rn = 0 OR (rn * $5) / n <> ((rn - 1) * $5) / n \
                 ORDER BY step, timestamp, value, is_nan"
            ))
            .bind(run_id.as_str())
            .bind(query.metric_key.as_str())
            .bind(start)
            .bind(end)
            .bind(buckets)
            .fetch_all(&self.db)
            .await?;
            let mut sampled = rows
                .iter()
                .map(|row| {
                    let mut metric = metric_from_row(row, Some(&query.metric_key))?;
                    metric.run_id = Some(run_id.clone());
                    Ok(metric)
                })
                .collect::<Result<Vec<_>>>()?;
            // Keeping the last row may add one point too many: drop the one
            // before it, as MLflow does.
            if sampled.len() as i64 > buckets && sampled.len() >= 2 {
                sampled.remove(sampled.len() - 2);
            }
            points.extend(sampled);
        }
        Ok(points)
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
