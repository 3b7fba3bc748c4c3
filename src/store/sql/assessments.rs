//! Assessments of traces (feedback and expectations) over MLflow's
//! `assessments` table, with MLflow's override semantics: a new assessment
//! that overrides another marks it invalid, and deleting it restores it.

use std::collections::BTreeMap;

use serde_json::Value as Json;

use super::SqlStore;
use crate::error::{MlflowError, Result};
use crate::model::{now_millis, Workspace};
use crate::store::db::{self, Row, Tx, UniqueViolation};
use crate::store::traces::{trace_not_found, Assessment, AssessmentKind, AssessmentUpdate};

pub(super) const ASSESSMENT_COLUMNS: &str = "a.assessment_id, a.trace_id, a.name, \
     a.assessment_type, a.value, a.error, a.created_timestamp, a.last_updated_timestamp, \
     a.source_type, a.source_id, a.run_id, a.span_id, a.rationale, a.overrides, a.valid, \
     a.assessment_metadata";

pub(super) fn assessment_from_row(row: &Row) -> Result<Assessment> {
    let kind: String = row.try_get("assessment_type")?;
    let metadata: Option<String> = row.try_get("assessment_metadata")?;
    Ok(Assessment {
        assessment_id: row.try_get("assessment_id")?,
        trace_id: row.try_get("trace_id")?,
        name: row.try_get("name")?,
        // Issue references (MLflow's third kind) are not served; they read as feedback.
        kind: AssessmentKind::parse(&kind).unwrap_or_default(),
        value: row.try_get("value")?,
        error: row.try_get("error")?,
        source_type: row.try_get("source_type")?,
        source_id: row.try_get("source_id")?,
        span_id: row.try_get("span_id")?,
        run_id: row.try_get("run_id")?,
        rationale: row.try_get("rationale")?,
        metadata: metadata.and_then(|m| serde_json::from_str(&m).ok()),
        overrides: row.try_get("overrides")?,
        valid: row.try_get("valid")?,
        create_time: row.try_get("created_timestamp")?,
        last_update_time: row.try_get("last_updated_timestamp")?,
    })
}

/// The number MLflow's analytics aggregate a value as, and whether the
/// value itself is numeric (`assessment_aggregate`).
fn aggregate(value_json: &str) -> (Option<f64>, bool) {
    match serde_json::from_str::<Json>(value_json) {
        Ok(Json::Bool(b)) => (Some(if b { 1.0 } else { 0.0 }), false),
        Ok(Json::Number(n)) => match n.as_f64().filter(|v| v.is_finite()) {
            Some(v) => (Some(v), true),
            None => (None, false),
        },
        Ok(Json::String(s)) => match s.trim().to_lowercase().as_str() {
            "yes" => (Some(1.0), false),
            "no" => (Some(0.0), false),
            _ => (None, false),
        },
        _ => (None, false),
    }
}

fn metadata_json(metadata: &Option<BTreeMap<String, String>>) -> Option<String> {
    metadata
        .as_ref()
        .filter(|m| !m.is_empty())
        .map(|m| serde_json::to_string(m).unwrap_or_default())
}

fn assessment_not_found(trace_id: &str, assessment_id: &str) -> MlflowError {
    MlflowError::not_found(format!(
        "Assessment with ID '{assessment_id}' not found for trace '{trace_id}'"
    ))
}

/// The trace's experiment and time, which MLflow copies onto its assessments.
async fn trace_row(tx: &mut Tx, ws: &Workspace, trace_id: &str) -> Result<(i64, i64)> {
    let row = db::query(
        "SELECT ti.experiment_id, ti.timestamp_ms FROM trace_info ti \
         JOIN experiments e ON e.experiment_id = ti.experiment_id \
         WHERE ti.request_id = $1 AND e.workspace = $2",
    )
    .bind(trace_id)
    .bind(ws.name())
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(|| trace_not_found(trace_id))?;
    Ok((row.try_get("experiment_id")?, row.try_get("timestamp_ms")?))
}

pub(super) async fn create(
    store: &SqlStore,
    ws: &Workspace,
    mut a: Assessment,
) -> Result<Assessment> {
    let mut tx = store.db.begin().await?;
    let (experiment_id, trace_time) = trace_row(&mut tx, ws, &a.trace_id).await?;
    if let Some(overridden) = &a.overrides {
        let changed = db::query(
            "UPDATE assessments SET valid = $1 WHERE trace_id = $2 AND assessment_id = $3",
        )
        .bind(false)
        .bind(&a.trace_id)
        .bind(overridden)
        .execute(&mut tx)
        .await?;
        if changed == 0 {
            return Err(assessment_not_found(&a.trace_id, overridden));
        }
    }
    if a.assessment_id.is_empty() {
        a.assessment_id = format!("a-{}", uuid::Uuid::new_v4().simple());
    }
    let now = now_millis();
    if a.create_time == 0 {
        a.create_time = now;
    }
    if a.last_update_time == 0 {
        a.last_update_time = now;
    }
    let (aggregate_value, is_numeric) = aggregate(&a.value);
    let id = a.assessment_id.clone();
    db::query(
        "INSERT INTO assessments (assessment_id, trace_id, name, assessment_type, value, error, \
         created_timestamp, last_updated_timestamp, source_type, source_id, run_id, span_id, \
         rationale, overrides, valid, assessment_metadata, experiment_id, trace_timestamp_ms, \
         aggregate_value, is_numeric_value) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, \
         $18, $19, $20)",
    )
    .bind(&a.assessment_id)
    .bind(&a.trace_id)
    .bind(&a.name)
    .bind(a.kind.as_str())
    .bind(&a.value)
    .bind(a.error.as_deref())
    .bind(a.create_time)
    .bind(a.last_update_time)
    .bind(&a.source_type)
    .bind(a.source_id.as_deref())
    .bind(a.run_id.as_deref())
    .bind(a.span_id.as_deref())
    .bind(a.rationale.as_deref())
    .bind(a.overrides.as_deref())
    .bind(true)
    .bind(metadata_json(&a.metadata))
    .bind(experiment_id)
    .bind(trace_time)
    .bind(aggregate_value)
    .bind(is_numeric)
    .execute(&mut tx)
    .await
    .or_conflict(|| {
        MlflowError::already_exists(format!("Assessment with ID '{id}' already exists."))
    })?;
    tx.commit().await?;
    get(store, ws, &a.trace_id, &a.assessment_id).await
}

pub(super) async fn get(
    store: &SqlStore,
    ws: &Workspace,
    trace_id: &str,
    assessment_id: &str,
) -> Result<Assessment> {
    let sql = format!(
        "SELECT {ASSESSMENT_COLUMNS} FROM assessments a \
         JOIN trace_info ti ON ti.request_id = a.trace_id \
         JOIN experiments e ON e.experiment_id = ti.experiment_id \
         WHERE a.trace_id = $1 AND a.assessment_id = $2 AND e.workspace = $3"
    );
    let row = db::query(&sql)
        .bind(trace_id)
        .bind(assessment_id)
        .bind(ws.name())
        .fetch_optional(&store.db)
        .await?;
    match row {
        Some(row) => assessment_from_row(&row),
        None => {
            store.trace_experiment(&store.db, ws, trace_id).await?;
            Err(assessment_not_found(trace_id, assessment_id))
        }
    }
}

/// Changes what the update names; the source, span and kind are immutable,
/// metadata is merged, `last_update_time` is now.
pub(super) async fn update(
    store: &SqlStore,
    ws: &Workspace,
    trace_id: &str,
    assessment_id: &str,
    update: AssessmentUpdate,
) -> Result<Assessment> {
    let mut a = get(store, ws, trace_id, assessment_id).await?;
    if let Some((kind, value, error)) = update.value {
        if kind != a.kind {
            return Err(MlflowError::invalid_parameter(match kind {
                AssessmentKind::Expectation => {
                    "Cannot update expectation value on a Feedback assessment."
                }
                AssessmentKind::Feedback => {
                    "Cannot update feedback value on an Expectation assessment."
                }
            }));
        }
        a.value = value;
        if kind == AssessmentKind::Feedback {
            a.error = error;
        }
    }
    if let Some(name) = update.name {
        a.name = name;
    }
    if let Some(rationale) = update.rationale {
        // Expectations carry no rationale.
        if a.kind == AssessmentKind::Feedback {
            a.rationale = Some(rationale);
        }
    }
    if let Some(metadata) = update.metadata {
        a.metadata
            .get_or_insert_with(BTreeMap::new)
            .extend(metadata);
    }
    a.last_update_time = now_millis();
    let (aggregate_value, is_numeric) = aggregate(&a.value);
    db::query(
        "UPDATE assessments SET name = $1, value = $2, error = $3, last_updated_timestamp = $4, \
         rationale = $5, assessment_metadata = $6, aggregate_value = $7, is_numeric_value = $8 \
         WHERE trace_id = $9 AND assessment_id = $10",
    )
    .bind(&a.name)
    .bind(&a.value)
    .bind(a.error.as_deref())
    .bind(a.last_update_time)
    .bind(a.rationale.as_deref())
    .bind(metadata_json(&a.metadata))
    .bind(aggregate_value)
    .bind(is_numeric)
    .bind(trace_id)
    .bind(assessment_id)
    .execute(&store.db)
    .await?;
    Ok(a)
}

/// Idempotent: deleting an assessment that is gone succeeds.
pub(super) async fn delete(
    store: &SqlStore,
    ws: &Workspace,
    trace_id: &str,
    assessment_id: &str,
) -> Result<()> {
    let mut tx = store.db.begin().await?;
    trace_row(&mut tx, ws, trace_id).await?;
    let row =
        db::query("SELECT overrides FROM assessments WHERE trace_id = $1 AND assessment_id = $2")
            .bind(trace_id)
            .bind(assessment_id)
            .fetch_optional(&mut tx)
            .await?;
    let Some(row) = row else {
        return Ok(());
    };
    if let Some(overridden) = row.try_get::<Option<String>, _>("overrides")? {
        db::query("UPDATE assessments SET valid = $1 WHERE trace_id = $2 AND assessment_id = $3")
            .bind(true)
            .bind(trace_id)
            .bind(overridden)
            .execute(&mut tx)
            .await?;
    }
    db::query("DELETE FROM assessments WHERE trace_id = $1 AND assessment_id = $2")
        .bind(trace_id)
        .bind(assessment_id)
        .execute(&mut tx)
        .await?;
    Ok(tx.commit().await?)
}

#[cfg(test)]
mod tests {
    use super::aggregate;

    #[test]
    fn values_aggregate_as_mlflow_counts_them() {
        assert_eq!(aggregate("true"), (Some(1.0), false));
        assert_eq!(aggregate("0.5"), (Some(0.5), true));
        assert_eq!(aggregate("\" Yes \""), (Some(1.0), false));
        assert_eq!(aggregate("{\"a\": 1}"), (None, false));
    }
}
