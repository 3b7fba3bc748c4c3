//! The SQL of `store::gc`.

use async_trait::async_trait;

use super::experiments::parse_experiment_id;
use super::{in_list, Dialect, SqlStore, DELETED};
use crate::error::Result;
use crate::store::db::{self, Row};
use crate::store::gc::{GcStore, Purgeable};

/// Metric rows removed per statement (and transaction).
const METRIC_CHUNK: i64 = 50_000;

/// Tables that name an experiment without a cascading foreign key, emptied
/// of its rows before it goes (the rollups have no key at all).
const EXPERIMENT_ROWS: [&str; 7] = [
    "experiment_tags",
    "spans",
    "online_scoring_configs",
    "sql_trace_metric_daily_rollups",
    "sql_span_cost_daily_rollups",
    "sql_assessment_daily_rollups",
    "sql_trace_rollup_rebuild_queue",
];

fn purgeables(rows: Vec<Row>) -> Result<Vec<Purgeable>> {
    rows.iter()
        .map(|row| {
            Ok(Purgeable {
                id: row.try_get("id")?,
                artifact_location: row
                    .try_get::<Option<String>, _>("location")?
                    .unwrap_or_default(),
            })
        })
        .collect()
}

impl SqlStore {
    async fn purgeables(&self, sql: &str, params: Vec<db::Value>) -> Result<Vec<Purgeable>> {
        let query = params.into_iter().fold(db::query(sql), |q, p| q.bind(p));
        purgeables(query.fetch_all(&self.db).await?)
    }

    /// Deletes `table`'s rows of the runs `ids`, [`METRIC_CHUNK`] at a time,
    /// each chunk its own statement outside any transaction.
    async fn delete_in_chunks(&self, table: &str, ids: &[String]) -> Result<u64> {
        let address = match self.dialect {
            Dialect::Postgres => "ctid",
            Dialect::Sqlite => "rowid",
        };
        // PostgreSQL finds the rows by their tuple ids (a TID scan) only
        // from an array; `IN (subquery)` would scan the table.
        let (open, close) = match self.dialect {
            Dialect::Postgres => ("= ANY(ARRAY(", "))"),
            Dialect::Sqlite => ("IN (", ")"),
        };
        let sql = format!(
            "DELETE FROM {table} WHERE {address} {open}SELECT {address} FROM {table} \
             WHERE run_uuid IN ({}) LIMIT ${}{close}",
            in_list(ids.len(), 1),
            ids.len() + 1
        );
        let mut removed = 0;
        loop {
            let query = ids.iter().fold(db::query(&sql), |q, id| q.bind(id));
            let n = query.bind(METRIC_CHUNK).execute(&self.db).await?;
            removed += n;
            if n < METRIC_CHUNK as u64 {
                return Ok(removed);
            }
        }
    }
}

#[async_trait]
impl GcStore for SqlStore {
    async fn deleted_runs(&self, cutoff: i64, after: &str, limit: i64) -> Result<Vec<Purgeable>> {
        self.purgeables(
            "SELECT run_uuid AS id, artifact_uri AS location FROM runs \
             WHERE lifecycle_stage = $1 AND deleted_time <= $2 AND run_uuid > $3 \
             ORDER BY run_uuid LIMIT $4",
            vec![DELETED.into(), cutoff.into(), after.into(), limit.into()],
        )
        .await
    }

    async fn deleted_logged_models(
        &self,
        cutoff: i64,
        after: &str,
        limit: i64,
    ) -> Result<Vec<Purgeable>> {
        self.purgeables(
            "SELECT model_id AS id, artifact_location AS location FROM logged_models \
             WHERE lifecycle_stage = $1 AND last_updated_timestamp_ms <= $2 AND model_id > $3 \
             ORDER BY model_id LIMIT $4",
            vec![DELETED.into(), cutoff.into(), after.into(), limit.into()],
        )
        .await
    }

    async fn deleted_experiments(
        &self,
        cutoff: i64,
        after: i64,
        limit: i64,
    ) -> Result<Vec<Purgeable>> {
        self.purgeables(
            "SELECT CAST(experiment_id AS TEXT) AS id, artifact_location AS location \
             FROM experiments WHERE lifecycle_stage = $1 AND last_update_time <= $2 \
             AND experiment_id > $3 ORDER BY experiment_id LIMIT $4",
            vec![DELETED.into(), cutoff.into(), after.into(), limit.into()],
        )
        .await
    }

    async fn runs_of_experiment(
        &self,
        experiment_id: &str,
        after: &str,
        limit: i64,
    ) -> Result<Vec<Purgeable>> {
        self.purgeables(
            "SELECT run_uuid AS id, artifact_uri AS location FROM runs \
             WHERE experiment_id = $1 AND run_uuid > $2 ORDER BY run_uuid LIMIT $3",
            vec![
                parse_experiment_id(experiment_id)?.into(),
                after.into(),
                limit.into(),
            ],
        )
        .await
    }

    async fn logged_models_of_experiment(
        &self,
        experiment_id: &str,
        after: &str,
        limit: i64,
    ) -> Result<Vec<Purgeable>> {
        self.purgeables(
            "SELECT model_id AS id, artifact_location AS location FROM logged_models \
             WHERE experiment_id = $1 AND model_id > $2 ORDER BY model_id LIMIT $3",
            vec![
                parse_experiment_id(experiment_id)?.into(),
                after.into(),
                limit.into(),
            ],
        )
        .await
    }

    async fn purge_runs(&self, run_ids: &[String]) -> Result<u64> {
        if run_ids.is_empty() {
            return Ok(0);
        }
        let mut removed = self.delete_in_chunks("metrics", run_ids).await?;
        let list = in_list(run_ids.len(), 1);
        let statements = [
            format!("DELETE FROM latest_metrics WHERE run_uuid IN ({list})"),
            format!("DELETE FROM params WHERE run_uuid IN ({list})"),
            format!("DELETE FROM tags WHERE run_uuid IN ({list})"),
            format!(
                "DELETE FROM input_tags WHERE input_uuid IN (SELECT input_uuid FROM inputs \
                 WHERE destination_type = 'RUN' AND destination_id IN ({list}))"
            ),
            format!(
                "DELETE FROM inputs WHERE (destination_type = 'RUN' AND destination_id IN ({list})) \
                 OR (source_type IN ('RUN_INPUT', 'RUN_OUTPUT') AND source_id IN ({list}))"
            ),
            format!("DELETE FROM runs WHERE run_uuid IN ({list})"),
        ];
        let mut tx = self.db.begin().await?;
        for sql in &statements {
            let query = run_ids.iter().fold(db::query(sql), |q, id| q.bind(id));
            removed += query.execute(&mut tx).await?;
        }
        tx.commit().await?;
        Ok(removed)
    }

    async fn purge_logged_models(&self, model_ids: &[String]) -> Result<u64> {
        if model_ids.is_empty() {
            return Ok(0);
        }
        let list = in_list(model_ids.len(), 1);
        let mut removed = 0;
        let mut tx = self.db.begin().await?;
        for table in [
            "logged_model_metrics",
            "logged_model_params",
            "logged_model_tags",
            "logged_models",
        ] {
            let sql = format!("DELETE FROM {table} WHERE model_id IN ({list})");
            let query = model_ids.iter().fold(db::query(&sql), |q, id| q.bind(id));
            removed += query.execute(&mut tx).await?;
        }
        tx.commit().await?;
        Ok(removed)
    }

    async fn purge_experiment(&self, experiment_id: &str) -> Result<u64> {
        let id = parse_experiment_id(experiment_id)?;
        let mut removed = 0;
        let mut tx = self.db.begin().await?;
        for table in EXPERIMENT_ROWS {
            removed += db::query(&format!("DELETE FROM {table} WHERE experiment_id = $1"))
                .bind(id)
                .execute(&mut tx)
                .await?;
        }
        removed +=
            db::query("DELETE FROM experiments WHERE experiment_id = $1 AND lifecycle_stage = $2")
                .bind(id)
                .bind(DELETED)
                .execute(&mut tx)
                .await?;
        tx.commit().await?;
        Ok(removed)
    }
}
