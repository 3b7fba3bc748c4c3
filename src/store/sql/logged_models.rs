//! [`LoggedModelStore`] over MLflow's `logged_models`, `logged_model_params`,
//! `logged_model_tags` and `logged_model_metrics` tables. Those tables carry
//! no workspace: a model belongs to the workspace of its experiment.

use std::collections::HashMap;

use crate::store::db::{self, Row, Target, Tx};
use async_trait::async_trait;

use super::experiments::parse_experiment_id;
use super::{
    append_to_uri, bind_all, fetch_rendered, in_list, now_millis, tag_from_row, values_rows,
    SqlStore, ACTIVE, DELETED, IN_LIST_CHUNK,
};
use crate::error::{MlflowError, Result};
use crate::model::{
    LoggedModel, LoggedModelData, LoggedModelInfo, LoggedModelStatus, Metric, Page, Param, Tag,
    Workspace,
};
use crate::search::logged_models::{self, PageToken, DEFAULT_MAX_RESULTS};
use crate::store::logged_models::{
    dedup_keys, validate_new_logged_model, LoggedModelQuery, LoggedModelStore, NewLoggedModel,
};
use crate::store::names::random_run_name;

pub(super) fn model_not_found(model_id: &str) -> MlflowError {
    MlflowError::not_found(format!("Logged model with ID '{model_id}' not found."))
}

fn info_from_row(row: &Row) -> Result<LoggedModelInfo> {
    let experiment_id: i64 = row.try_get("experiment_id")?;
    let status: i64 = row.try_get("status")?;
    Ok(LoggedModelInfo {
        experiment_id: experiment_id.to_string(),
        model_id: row.try_get("model_id")?,
        name: row.try_get("name")?,
        artifact_uri: row.try_get("artifact_location")?,
        creation_timestamp_ms: row.try_get("creation_timestamp_ms")?,
        last_updated_timestamp_ms: row.try_get("last_updated_timestamp_ms")?,
        model_type: row.try_get("model_type")?,
        source_run_id: row.try_get("source_run_id")?,
        status: LoggedModelStatus::from_number(status).unwrap_or(LoggedModelStatus::Unspecified),
        status_message: row.try_get("status_message")?,
        tags: Vec::new(),
    })
}

impl SqlStore {
    /// The experiment of a model of this workspace, and whether it is deleted.
    async fn logged_model_owner<'a>(
        &self,
        target: impl Into<Target<'a>>,
        ws: &Workspace,
        model_id: &str,
    ) -> Result<(i64, bool)> {
        let row = db::query(
            "SELECT lm.experiment_id, lm.lifecycle_stage FROM logged_models lm \
             JOIN experiments e ON e.experiment_id = lm.experiment_id \
             WHERE lm.model_id = $1 AND e.workspace = $2",
        )
        .bind(model_id)
        .bind(ws.name())
        .fetch_optional(target)
        .await?
        .ok_or_else(|| model_not_found(model_id))?;
        let stage: Option<String> = row.try_get("lifecycle_stage")?;
        Ok((
            row.try_get("experiment_id")?,
            stage.as_deref() == Some(DELETED),
        ))
    }

    /// Whole models (info, tags, params, metrics) in the order of `ids`; ids
    /// that name nothing in this workspace are left out. A chunk's four reads
    /// run concurrently.
    async fn load_logged_models(&self, ws: &Workspace, ids: &[String]) -> Result<Vec<LoggedModel>> {
        let mut models: HashMap<String, LoggedModel> = HashMap::with_capacity(ids.len());
        for chunk in ids.chunks(IN_LIST_CHUNK) {
            let list = in_list(chunk.len(), 1);
            let models_sql = format!(
                "SELECT lm.model_id, lm.experiment_id, lm.name, lm.artifact_location, \
                 lm.creation_timestamp_ms, lm.last_updated_timestamp_ms, lm.status, \
                 lm.model_type, lm.source_run_id, lm.status_message FROM logged_models lm \
                 JOIN experiments e ON e.experiment_id = lm.experiment_id \
                 WHERE lm.model_id IN ({list}) AND e.workspace = ${}",
                chunk.len() + 1
            );
            let tags_sql = format!(
                "SELECT model_id, tag_key, tag_value AS value FROM logged_model_tags \
                 WHERE model_id IN ({list}) ORDER BY tag_key"
            );
            let params_sql = format!(
                "SELECT model_id, param_key, param_value AS value FROM logged_model_params \
                 WHERE model_id IN ({list}) ORDER BY param_key"
            );
            let metrics_sql = format!(
                "SELECT model_id, metric_name, metric_value, metric_timestamp_ms, metric_step, \
                 run_id, dataset_name, dataset_digest FROM logged_model_metrics \
                 WHERE model_id IN ({list}) \
                 ORDER BY metric_name, metric_timestamp_ms, metric_step, run_id"
            );
            let (model_rows, tag_rows, param_rows, metric_rows) = tokio::try_join!(
                bind_all(&models_sql, chunk)
                    .bind(ws.name())
                    .fetch_all(&self.db),
                bind_all(&tags_sql, chunk).fetch_all(&self.db),
                bind_all(&params_sql, chunk).fetch_all(&self.db),
                bind_all(&metrics_sql, chunk).fetch_all(&self.db),
            )?;
            for row in &model_rows {
                let info = info_from_row(row)?;
                models.insert(
                    info.model_id.clone(),
                    LoggedModel {
                        info,
                        data: LoggedModelData::default(),
                    },
                );
            }
            let model_of = |row: &Row| -> Result<String> { Ok(row.try_get("model_id")?) };
            for row in &tag_rows {
                if let Some(model) = models.get_mut(&model_of(row)?) {
                    model.info.tags.push(tag_from_row(row, "tag_key")?);
                }
            }
            for row in &param_rows {
                if let Some(model) = models.get_mut(&model_of(row)?) {
                    model.data.params.push(tag_from_row(row, "param_key")?);
                }
            }
            for row in &metric_rows {
                let model_id = model_of(row)?;
                if let Some(model) = models.get_mut(&model_id) {
                    model.data.metrics.push(Metric {
                        key: row.try_get("metric_name")?,
                        value: row
                            .try_get::<Option<f64>, _>("metric_value")?
                            .unwrap_or(f64::NAN),
                        timestamp: row.try_get("metric_timestamp_ms")?,
                        step: row.try_get("metric_step")?,
                        run_id: row.try_get("run_id")?,
                        dataset_name: row.try_get("dataset_name")?,
                        dataset_digest: row.try_get("dataset_digest")?,
                        model_id: Some(model_id),
                    });
                }
            }
        }
        Ok(ids.iter().filter_map(|id| models.remove(id)).collect())
    }

    async fn load_logged_model(&self, ws: &Workspace, model_id: &str) -> Result<LoggedModel> {
        self.load_logged_models(ws, &[model_id.to_string()])
            .await?
            .pop()
            .ok_or_else(|| model_not_found(model_id))
    }

    pub(super) async fn upsert_logged_model_tags(
        &self,
        tx: &mut Tx,
        model_id: &str,
        experiment_id: i64,
        tags: &[&Tag],
    ) -> Result<()> {
        if tags.is_empty() {
            return Ok(());
        }
        let sql = format!(
            "INSERT INTO logged_model_tags (model_id, experiment_id, tag_key, tag_value) \
             VALUES {} ON CONFLICT (model_id, tag_key) DO UPDATE SET tag_value = excluded.tag_value",
            values_rows(tags.len(), 4, 1)
        );
        let mut query = db::query(&sql);
        for tag in tags {
            query = query
                .bind(model_id)
                .bind(experiment_id)
                .bind(tag.key.as_str())
                .bind(tag.value.as_str());
        }
        query.execute(&mut *tx).await?;
        Ok(())
    }

    async fn upsert_logged_model_params(
        &self,
        tx: &mut Tx,
        model_id: &str,
        experiment_id: i64,
        params: &[&Param],
    ) -> Result<()> {
        if params.is_empty() {
            return Ok(());
        }
        let sql = format!(
            "INSERT INTO logged_model_params (model_id, experiment_id, param_key, param_value) \
             VALUES {} ON CONFLICT (model_id, param_key) DO UPDATE SET param_value = excluded.param_value",
            values_rows(params.len(), 4, 1)
        );
        let mut query = db::query(&sql);
        for param in params {
            query = query
                .bind(model_id)
                .bind(experiment_id)
                .bind(param.key.as_str())
                .bind(param.value.as_str());
        }
        query.execute(&mut *tx).await?;
        Ok(())
    }

    /// Records the metrics of a batch that name a logged model against that
    /// model too, as MLflow does; a resent batch adds nothing.
    pub(super) async fn write_model_metrics(
        &self,
        tx: &mut Tx,
        run_id: &str,
        experiment_id: i64,
        metrics: &[Metric],
    ) -> Result<()> {
        let metrics: Vec<(&Metric, &str)> = metrics
            .iter()
            .filter_map(|m| m.model_id.as_deref().map(|id| (m, id)))
            .collect();
        if metrics.is_empty() {
            return Ok(());
        }
        let mut model_ids: Vec<&str> = metrics.iter().map(|(_, id)| *id).collect();
        model_ids.sort_unstable();
        model_ids.dedup();
        let sql = format!(
            "SELECT model_id FROM logged_models WHERE model_id IN ({})",
            in_list(model_ids.len(), 1)
        );
        let found = model_ids
            .iter()
            .fold(db::query(&sql), |q, id| q.bind(*id))
            .fetch_all(&mut *tx)
            .await?;
        if let Some(missing) = model_ids.iter().find(|id| {
            !found.iter().any(|row| {
                row.try_get::<String, _>("model_id")
                    .is_ok_and(|f| f == **id)
            })
        }) {
            return Err(model_not_found(missing));
        }
        let sql = format!(
            "INSERT INTO logged_model_metrics (model_id, metric_name, metric_timestamp_ms, \
             metric_step, metric_value, experiment_id, run_id, dataset_name, dataset_digest) \
             VALUES {} ON CONFLICT DO NOTHING",
            values_rows(metrics.len(), 9, 1)
        );
        let mut query = db::query(&sql);
        for (metric, model_id) in metrics {
            // MLflow stores NaN as 0 here (the table has no is_nan column).
            let value = if metric.value.is_nan() {
                0.0
            } else {
                metric.value
            };
            query = query
                .bind(model_id)
                .bind(metric.key.as_str())
                .bind(metric.timestamp)
                .bind(metric.step)
                .bind(value)
                .bind(experiment_id)
                .bind(run_id)
                .bind(metric.dataset_name.as_deref())
                .bind(metric.dataset_digest.as_deref());
        }
        query.execute(&mut *tx).await?;
        Ok(())
    }
}

#[async_trait]
impl LoggedModelStore for SqlStore {
    async fn create_logged_model(
        &self,
        ws: &Workspace,
        model: NewLoggedModel,
    ) -> Result<LoggedModel> {
        validate_new_logged_model(&model)?;
        let params = dedup_keys(&model.params, "param")?;
        let tags = dedup_keys(&model.tags, "tag")?;
        let experiment = self
            .active_experiment(&self.db, ws, &model.experiment_id)
            .await?;
        let experiment_id = parse_experiment_id(&experiment.experiment_id)?;
        let model_id = format!("m-{}", uuid::Uuid::new_v4().simple());
        let root = experiment
            .artifact_location
            .as_deref()
            .unwrap_or(&self.default_artifact_root);
        let artifact_location = append_to_uri(root, &["models", &model_id, "artifacts"]);
        let name = model.name.unwrap_or_else(random_run_name);
        let now = now_millis();

        let mut tx = self.db.begin().await?;
        db::query(
            "INSERT INTO logged_models (model_id, experiment_id, name, artifact_location, \
             creation_timestamp_ms, last_updated_timestamp_ms, status, lifecycle_stage, \
             model_type, source_run_id) VALUES ($1, $2, $3, $4, $5, $5, $6, $7, $8, $9)",
        )
        .bind(model_id.as_str())
        .bind(experiment_id)
        .bind(name.as_str())
        .bind(artifact_location.as_str())
        .bind(now)
        .bind(LoggedModelStatus::Pending.number())
        .bind(ACTIVE)
        .bind(model.model_type.as_deref())
        .bind(model.source_run_id.as_deref())
        .execute(&mut tx)
        .await?;
        self.upsert_logged_model_params(&mut tx, &model_id, experiment_id, &params)
            .await?;
        self.upsert_logged_model_tags(&mut tx, &model_id, experiment_id, &tags)
            .await?;
        tx.commit().await?;

        Ok(LoggedModel {
            info: LoggedModelInfo {
                experiment_id: experiment.experiment_id,
                model_id,
                name,
                artifact_uri: artifact_location,
                creation_timestamp_ms: now,
                last_updated_timestamp_ms: now,
                model_type: model.model_type,
                source_run_id: model.source_run_id,
                status: LoggedModelStatus::Pending,
                status_message: None,
                tags: tags.into_iter().cloned().collect(),
            },
            data: LoggedModelData {
                params: params.into_iter().cloned().collect(),
                metrics: Vec::new(),
            },
        })
    }

    async fn get_logged_model(
        &self,
        ws: &Workspace,
        model_id: &str,
        allow_deleted: bool,
    ) -> Result<LoggedModel> {
        let (_, deleted) = self.logged_model_owner(&self.db, ws, model_id).await?;
        if deleted && !allow_deleted {
            return Err(model_not_found(model_id));
        }
        self.load_logged_model(ws, model_id).await
    }

    async fn finalize_logged_model(
        &self,
        ws: &Workspace,
        model_id: &str,
        status: LoggedModelStatus,
    ) -> Result<LoggedModel> {
        let mut tx = self.db.begin().await?;
        self.logged_model_owner(&mut tx, ws, model_id).await?;
        db::query(
            "UPDATE logged_models SET status = $1, last_updated_timestamp_ms = $2 \
             WHERE model_id = $3",
        )
        .bind(status.number())
        .bind(now_millis())
        .bind(model_id)
        .execute(&mut tx)
        .await?;
        tx.commit().await?;
        self.load_logged_model(ws, model_id).await
    }

    async fn delete_logged_model(&self, ws: &Workspace, model_id: &str) -> Result<()> {
        let mut tx = self.db.begin().await?;
        self.logged_model_owner(&mut tx, ws, model_id).await?;
        db::query(
            "UPDATE logged_models SET lifecycle_stage = $1, last_updated_timestamp_ms = $2 \
             WHERE model_id = $3",
        )
        .bind(DELETED)
        .bind(now_millis())
        .bind(model_id)
        .execute(&mut tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn set_logged_model_tags(
        &self,
        ws: &Workspace,
        model_id: &str,
        tags: &[Tag],
    ) -> Result<()> {
        let tags = dedup_keys(tags, "tag")?;
        let mut tx = self.db.begin().await?;
        let (experiment_id, _) = self.logged_model_owner(&mut tx, ws, model_id).await?;
        self.upsert_logged_model_tags(&mut tx, model_id, experiment_id, &tags)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn delete_logged_model_tag(
        &self,
        ws: &Workspace,
        model_id: &str,
        key: &str,
    ) -> Result<()> {
        let mut tx = self.db.begin().await?;
        self.logged_model_owner(&mut tx, ws, model_id).await?;
        let deleted =
            db::query("DELETE FROM logged_model_tags WHERE model_id = $1 AND tag_key = $2")
                .bind(model_id)
                .bind(key)
                .execute(&mut tx)
                .await?;
        if deleted == 0 {
            return Err(MlflowError::not_found(format!(
                "No tag with key '{key}' found for model with ID '{model_id}'."
            )));
        }
        tx.commit().await?;
        Ok(())
    }

    async fn log_logged_model_params(
        &self,
        ws: &Workspace,
        model_id: &str,
        params: &[Param],
    ) -> Result<()> {
        let params = dedup_keys(params, "param")?;
        let mut tx = self.db.begin().await?;
        let (experiment_id, _) = self.logged_model_owner(&mut tx, ws, model_id).await?;
        self.upsert_logged_model_params(&mut tx, model_id, experiment_id, &params)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn search_logged_models(
        &self,
        ws: &Workspace,
        query: &LoggedModelQuery,
    ) -> Result<Page<LoggedModel>> {
        if query.datasets.iter().any(|d| d.dataset_name.is_empty()) {
            return Err(MlflowError::invalid_parameter(
                "`dataset_name` in the `datasets` clause must be specified.",
            ));
        }
        let max_results = match query.max_results {
            None | Some(0) => DEFAULT_MAX_RESULTS,
            Some(n) if n > 0 => n,
            Some(n) => {
                return Err(MlflowError::invalid_parameter(format!(
                    "Invalid value {n} for parameter 'max_results': it must be positive"
                )))
            }
        };
        let experiment_ids = query
            .experiment_ids
            .iter()
            .map(|id| parse_experiment_id(id))
            .collect::<Result<Vec<_>>>()?;
        let mut token = PageToken {
            experiment_ids: query.experiment_ids.clone(),
            filter_string: query.filter.clone(),
            order_by: query.order_by.clone(),
            offset: 0,
        };
        let offset = PageToken::offset_for(query.page_token.as_deref(), &token)?;
        let sql = logged_models::logged_models_search_query(
            ws.name(),
            &experiment_ids,
            query.filter.as_deref().unwrap_or_default(),
            &query.datasets,
            query.order_by.as_deref().unwrap_or_default(),
            max_results + 1,
            offset,
        )?;
        let rows = fetch_rendered(&self.db, &sql).await?;
        let mut ids = rows
            .iter()
            .map(|row| row.try_get::<String, _>("model_id"))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let next_page_token = (ids.len() as i64 > max_results).then(|| {
            token.offset = offset + max_results;
            token.encode()
        });
        ids.truncate(max_results as usize);
        Ok(Page {
            items: self.load_logged_models(ws, &ids).await?,
            next_page_token,
        })
    }
}
