//! Runs: `runs/create`, `get`, `update`, `delete`/`restore`, `search`,
//! `delete-tag` and `log-model`, the run row mapping, and the run checks
//! other areas make (the run exists in the workspace, and is active).

use std::collections::HashMap;

use super::experiments::parse_experiment_id;
use super::{
    append_to_uri, bind_all, fetch_rendered, in_list, inputs, next_token, now_millis, SqlStore,
    ACTIVE, DELETED, IN_LIST_CHUNK,
};
use crate::error::{MlflowError, Result};
use crate::model::{
    Metric, Page, Run, RunData, RunInfo, RunInputs, RunOutputs, RunStatus, Tag, Workspace,
};
use crate::search::{self, page_token};
use crate::store::db::{self, Row, Target, Tx};
use crate::store::names::random_run_name;
use crate::store::validation::{self, MAX_RESULTS_SEARCH};
use crate::store::{run_not_found, NewRun, RunQuery, RunUpdate};

/// The tag MLflow keeps in sync with a run's name.
pub(super) const RUN_NAME_TAG: &str = "mlflow.runName";
const LOG_MODEL_HISTORY_TAG: &str = "mlflow.log-model.history";

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
    pub(super) async fn active_run_in(
        &self,
        tx: &mut Tx,
        ws: &Workspace,
        run_id: &str,
    ) -> Result<RunInfo> {
        let run = self.run_row(&mut *tx, ws, run_id).await?;
        if run.lifecycle_stage != ACTIVE {
            return Err(MlflowError::invalid_parameter(format!(
                "The run {run_id} must be in the 'active' state. Current state is {}.",
                run.lifecycle_stage
            )));
        }
        Ok(run)
    }

    pub(super) async fn accessible_run(&self, ws: &Workspace, run_id: &str) -> Result<RunInfo> {
        self.run_row(&self.db, ws, run_id).await
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
            let inputs_sql = inputs::dataset_inputs_sql(&list);
            let models_sql = inputs::model_links_sql(&list);
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
            inputs::attach_model_links(&mut runs, &model_rows)?;
            self.attach_dataset_inputs(&mut runs, &input_rows).await?;
        }
        Ok(run_ids.iter().filter_map(|id| runs.remove(id)).collect())
    }
}

pub(super) async fn create_run(store: &SqlStore, ws: &Workspace, run: NewRun) -> Result<Run> {
    // The experiment is read on the writer connection: on SQLite a reader
    // would find its cache stale after every write and reload it.
    let mut tx = store.db.begin().await?;
    let experiment = store
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
    store.write_run_tags(&mut tx, &run_id, &tags).await?;
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

pub(super) async fn get_run(store: &SqlStore, ws: &Workspace, run_id: &str) -> Result<Run> {
    store
        .load_runs(ws, &[run_id.to_string()])
        .await?
        .pop()
        .ok_or_else(|| run_not_found(run_id))
}

pub(super) async fn update_run(
    store: &SqlStore,
    ws: &Workspace,
    run_id: &str,
    update: RunUpdate,
) -> Result<RunInfo> {
    let mut tx = store.db.begin().await?;
    let mut info = store.active_run_in(&mut tx, ws, run_id).await?;
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
        store.write_run_tags(&mut tx, run_id, &[tag]).await?;
    }
    tx.commit().await?;
    Ok(info)
}

pub(super) async fn set_run_deleted(
    store: &SqlStore,
    ws: &Workspace,
    run_id: &str,
    deleted: bool,
) -> Result<()> {
    store.accessible_run(ws, run_id).await?;
    let (stage, deleted_time) = if deleted {
        (DELETED, Some(now_millis()))
    } else {
        (ACTIVE, None)
    };
    db::query("UPDATE runs SET lifecycle_stage = $1, deleted_time = $2 WHERE run_uuid = $3")
        .bind(stage)
        .bind(deleted_time)
        .bind(run_id)
        .execute(&store.db)
        .await?;
    Ok(())
}

pub(super) async fn search_runs(
    store: &SqlStore,
    ws: &Workspace,
    query: &RunQuery,
) -> Result<Page<Run>> {
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
        .fetch_all(&store.db)
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
    let mut run_ids = fetch_rendered(&store.db, &sql)
        .await?
        .iter()
        .map(|row| row.try_get::<String, _>(0).map_err(MlflowError::from))
        .collect::<Result<Vec<_>>>()?;
    let next_page_token = next_token(run_ids.len(), query.max_results, offset);
    run_ids.truncate(query.max_results as usize);
    Ok(Page {
        items: store.load_runs(ws, &run_ids).await?,
        next_page_token,
    })
}

pub(super) async fn delete_tag(
    store: &SqlStore,
    ws: &Workspace,
    run_id: &str,
    key: &str,
) -> Result<()> {
    let mut tx = store.db.begin().await?;
    store.active_run_in(&mut tx, ws, run_id).await?;
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

pub(super) async fn log_model(
    store: &SqlStore,
    ws: &Workspace,
    run_id: &str,
    model_json: &str,
) -> Result<()> {
    let model: serde_json::Value = serde_json::from_str(model_json)
        .map_err(|err| MlflowError::invalid_parameter(format!("Malformed model info: {err}")))?;
    let mut tx = store.db.begin().await?;
    store.active_run_in(&mut tx, ws, run_id).await?;
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
    store.write_run_tags(&mut tx, run_id, &[tag]).await?;
    tx.commit().await?;
    Ok(())
}
