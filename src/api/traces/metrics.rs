//! `POST /api/3.0/mlflow/traces/metrics` (QueryTraceMetrics): the numbers
//! behind the experiment overview's charts (trace counts and errors,
//! latency percentiles, token usage, costs by model, tool calls, feedback).

use axum::extract::State;
use axum::Json;
use chrono::{DateTime, SecondsFormat};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::api::wire::{self, Body};
use crate::app::AppState;
use crate::error::{MlflowError, Result};
use crate::model::Workspace;
use crate::store::trace_metrics::{
    Aggregation, DataPoint, MetricFilter, MetricQuery, MetricView, DEFAULT_MAX_RESULTS,
};

#[derive(Deserialize)]
pub struct AggregationMessage {
    #[serde(default, deserialize_with = "wire::opt_enum")]
    aggregation_type: Option<String>,
    percentile_value: Option<f64>,
}

#[derive(Deserialize)]
pub struct QueryTraceMetrics {
    experiment_ids: Option<Vec<String>>,
    #[serde(default, deserialize_with = "wire::opt_enum")]
    view_type: Option<String>,
    metric_name: Option<String>,
    aggregations: Option<Vec<AggregationMessage>>,
    #[serde(default)]
    dimensions: Vec<String>,
    #[serde(default)]
    filters: Vec<String>,
    #[serde(default, deserialize_with = "wire::opt_i64")]
    time_interval_seconds: Option<i64>,
    #[serde(default, deserialize_with = "wire::opt_i64")]
    start_time_ms: Option<i64>,
    #[serde(default, deserialize_with = "wire::opt_i64")]
    end_time_ms: Option<i64>,
    #[serde(default, deserialize_with = "wire::opt_i64")]
    max_results: Option<i64>,
}

/// MLflow's message for a required field that is absent.
fn missing(name: &str) -> MlflowError {
    MlflowError::invalid_parameter(format!(
        "Missing value for required parameter '{name}'. \
         See the API docs for more information about request parameters."
    ))
}

impl QueryTraceMetrics {
    fn into_query(self) -> Result<MetricQuery> {
        let experiment_ids = self
            .experiment_ids
            .ok_or_else(|| missing("experiment_ids"))?;
        let view = MetricView::parse(&self.view_type.ok_or_else(|| missing("view_type"))?)?;
        let metric = self.metric_name.ok_or_else(|| missing("metric_name"))?;
        let aggregations = self
            .aggregations
            .ok_or_else(|| missing("aggregations"))?
            .into_iter()
            .map(|a| {
                let kind = a.aggregation_type.unwrap_or_else(|| "COUNT".into());
                Aggregation::parse(&kind, a.percentile_value)
            })
            .collect::<Result<Vec<_>>>()?;
        let mut query = MetricQuery {
            experiment_ids: experiment_ids
                .iter()
                .map(|id| {
                    id.parse().map_err(|_| {
                        MlflowError::invalid_parameter(format!(
                            "Invalid experiment ID '{id}'. Experiment ID must be a valid integer."
                        ))
                    })
                })
                .collect::<Result<_>>()?,
            view,
            metric,
            aggregations,
            dimensions: self.dimensions,
            filters: Vec::new(),
            // 0 means no buckets, as in MLflow.
            time_interval_seconds: self.time_interval_seconds.filter(|s| *s != 0),
            start_time_ms: self.start_time_ms,
            end_time_ms: self.end_time_ms,
            max_results: self.max_results.unwrap_or(DEFAULT_MAX_RESULTS),
        };
        // The metric is checked before the filters, as MLflow does.
        query.validate()?;
        for text in &self.filters {
            let filter = MetricFilter::parse(text)?;
            filter.check_view(query.view)?;
            query.filters.push(filter);
        }
        Ok(query)
    }
}

/// A bucket's start as MLflow prints it: Python's `isoformat()` in UTC.
fn time_bucket(ms: i64) -> String {
    DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(SecondsFormat::AutoSi, false))
        .unwrap_or_default()
}

fn point_json(metric: &str, point: DataPoint) -> Value {
    let mut out = Map::new();
    out.insert("metric_name".into(), json!(metric));
    let mut dimensions = Map::new();
    if let Some(ms) = point.time_bucket_ms {
        dimensions.insert("time_bucket".into(), json!(time_bucket(ms)));
    }
    for (name, value) in point.dimensions {
        dimensions.insert(name, json!(value));
    }
    if !dimensions.is_empty() {
        out.insert("dimensions".into(), Value::Object(dimensions));
    }
    let values: Map<String, Value> = point
        .values
        .into_iter()
        .map(|(label, value)| (label, json!(value)))
        .collect();
    out.insert("values".into(), Value::Object(values));
    Value::Object(out)
}

/// `POST /api/3.0/mlflow/traces/metrics`. MLflow never pages these:
/// `max_results` truncates and no `next_page_token` is given.
pub async fn query_trace_metrics(
    State(state): State<AppState>,
    ws: Workspace,
    Body(req): Body<QueryTraceMetrics>,
) -> Result<Json<Value>> {
    let query = req.into_query()?;
    let points = state.store.query_trace_metrics(&ws, &query).await?;
    let mut out = Map::new();
    if !points.is_empty() {
        let points = points
            .into_iter()
            .map(|p| point_json(&query.metric, p))
            .collect();
        out.insert("data_points".into(), Value::Array(points));
    }
    Ok(Json(Value::Object(out)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_print_as_python_isoformat() {
        assert_eq!(time_bucket(1_740_790_800_000), "2025-03-01T01:00:00+00:00");
    }
}
