//! Run data: the writes of `runs/log-batch` (which the single-item log calls
//! share) into `metrics`/`latest_metrics`, `params` and `tags`, and the
//! metric reads (`metrics/get-history`, `get-history-bulk-interval`).

use std::collections::{HashMap, HashSet};

use super::experiments::parse_experiment_id;
use super::runs::RUN_NAME_TAG;
use super::{in_list, next_token, values_rows, SqlStore};
use crate::error::{MlflowError, Result};
use crate::model::{Metric, Page, Tag, Workspace};
use crate::search::page_token;
use crate::store::db::{self, Row, Tx};
use crate::store::validation;
use crate::store::{Batch, HistoryInterval};

/// Selects `is_nan` as an integer, which reads the same on both backends
/// (SQLite keeps BOOLEAN as 0/1, PostgreSQL as a bool).
const IS_NAN: &str = "CASE WHEN is_nan THEN 1 ELSE 0 END AS is_nan";

fn is_nan(row: &Row) -> Result<bool> {
    Ok(row.try_get::<i64, _>("is_nan")? != 0)
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

impl SqlStore {
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
    pub(super) async fn write_run_tags(
        &self,
        tx: &mut Tx,
        run_id: &str,
        tags: &[Tag],
    ) -> Result<()> {
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
}

pub(super) async fn log_batch(
    store: &SqlStore,
    ws: &Workspace,
    run_id: &str,
    mut batch: Batch,
) -> Result<()> {
    validation::normalize_batch(&mut batch)?;
    let mut tx = store.db.begin().await?;
    let run = store.active_run_in(&mut tx, ws, run_id).await?;
    store.write_batch(&mut tx, run_id, &batch).await?;
    let experiment_id = parse_experiment_id(&run.experiment_id)?;
    store
        .write_model_metrics(&mut tx, run_id, experiment_id, &batch.metrics)
        .await?;
    tx.commit().await?;
    Ok(())
}

pub(super) async fn get_metric_history(
    store: &SqlStore,
    ws: &Workspace,
    run_id: &str,
    key: &str,
    max_results: Option<i64>,
    page_token: Option<&str>,
) -> Result<Page<Metric>> {
    store.accessible_run(ws, run_id).await?;
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
    .fetch_all(&store.db)
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

pub(super) async fn get_metric_history_bulk_interval(
    store: &SqlStore,
    ws: &Workspace,
    query: &HistoryInterval,
) -> Result<Vec<Metric>> {
    for run_id in &query.run_ids {
        store.accessible_run(ws, run_id).await?;
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
        .fetch_all(&store.db)
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
