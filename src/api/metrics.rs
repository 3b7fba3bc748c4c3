//! `/mlflow/metrics/*`: metric history reads. HTTP only, no SQL.

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};

use super::wire::{self, required, Query, QueryFields};
use crate::app::AppState;
use crate::error::{MlflowError, Result};
use crate::model::{Metric, Workspace};
use crate::store::HistoryInterval;

/// MLflow's limits for the bulk-interval endpoint.
const MAX_RUNS_BULK_INTERVAL: usize = 100;
const MAX_RESULTS_BULK_INTERVAL: i64 = 2500;

#[derive(Deserialize)]
pub struct GetHistory {
    run_id: Option<String>,
    run_uuid: Option<String>,
    metric_key: Option<String>,
    #[serde(default, deserialize_with = "wire::opt_i64")]
    max_results: Option<i64>,
    page_token: Option<String>,
}
impl QueryFields for GetHistory {}

#[derive(Serialize)]
pub struct MetricsResponse {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    metrics: Vec<Metric>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_page_token: Option<String>,
}

pub async fn get_history(
    State(state): State<AppState>,
    ws: Workspace,
    Query(req): Query<GetHistory>,
) -> Result<Json<MetricsResponse>> {
    let run_id = wire::run_id(req.run_id, req.run_uuid)?;
    let key = required(req.metric_key, "metric_key")?;
    if let Some(max) = req.max_results {
        if max <= 0 {
            return Err(MlflowError::invalid_parameter(format!(
                "Invalid value {max} for parameter 'max_results' supplied. It must be a positive integer"
            )));
        }
    }
    let page = state
        .store
        .get_metric_history(
            &ws,
            &run_id,
            &key,
            req.max_results,
            req.page_token.as_deref().filter(|t| !t.is_empty()),
        )
        .await?;
    Ok(Json(MetricsResponse {
        metrics: page.items,
        next_page_token: page.next_page_token,
    }))
}

#[derive(Deserialize)]
pub struct GetHistoryBulkInterval {
    #[serde(default)]
    run_ids: Vec<String>,
    metric_key: Option<String>,
    #[serde(default, deserialize_with = "wire::opt_i64")]
    start_step: Option<i64>,
    #[serde(default, deserialize_with = "wire::opt_i64")]
    end_step: Option<i64>,
    #[serde(default, deserialize_with = "wire::opt_i64")]
    max_results: Option<i64>,
}
impl QueryFields for GetHistoryBulkInterval {
    const REPEATED: &'static [&'static str] = &["run_ids"];
}

pub async fn get_history_bulk_interval(
    State(state): State<AppState>,
    ws: Workspace,
    Query(req): Query<GetHistoryBulkInterval>,
) -> Result<Json<MetricsResponse>> {
    let query = history_interval(
        req.run_ids,
        req.metric_key,
        req.start_step,
        req.end_step,
        req.max_results,
    )?;
    let metrics = state
        .store
        .get_metric_history_bulk_interval(&ws, &query)
        .await?;
    Ok(Json(MetricsResponse {
        metrics,
        next_page_token: None,
    }))
}

/// MLflow's rules for a bulk-interval request (the REST handler's schema and
/// `get_metric_history_bulk_interval_impl`); GraphQL's resolver shares them.
pub(super) fn history_interval(
    run_ids: Vec<String>,
    metric_key: Option<String>,
    start_step: Option<i64>,
    end_step: Option<i64>,
    max_results: Option<i64>,
) -> Result<HistoryInterval> {
    if run_ids.is_empty() {
        return Err(MlflowError::missing_parameter("run_ids"));
    }
    if run_ids.len() > MAX_RUNS_BULK_INTERVAL {
        return Err(MlflowError::invalid_parameter(format!(
            "GetMetricHistoryBulkInterval request must specify at most \
             {MAX_RUNS_BULK_INTERVAL} run_ids. Received {} run_ids.",
            run_ids.len()
        )));
    }
    let metric_key = required(metric_key, "metric_key")?;
    let steps = match (start_step, end_step) {
        (None, None) => None,
        (Some(start), Some(end)) if start <= end => Some((start, end)),
        (Some(start), Some(end)) => {
            return Err(MlflowError::invalid_parameter(format!(
                "end_step must be greater than start_step. Found start_step={start} and end_step={end}."
            )))
        }
        _ => {
            return Err(MlflowError::invalid_parameter(
                "If either start step or end step are specified, both must be specified.",
            ))
        }
    };
    let max_results = max_results.unwrap_or(MAX_RESULTS_BULK_INTERVAL);
    if !(1..=MAX_RESULTS_BULK_INTERVAL).contains(&max_results) {
        return Err(MlflowError::invalid_parameter(format!(
            "max_results must be between 1 and {MAX_RESULTS_BULK_INTERVAL}."
        )));
    }
    Ok(HistoryInterval {
        run_ids,
        metric_key,
        steps,
        max_results,
    })
}

/// MLflow's limits for the (UI-only) bulk endpoint.
const MAX_RUNS_BULK: usize = 100;
const MAX_RESULTS_BULK: i64 = 25_000;

#[derive(Deserialize)]
pub struct GetHistoryBulk {
    #[serde(default)]
    run_id: Vec<String>,
    metric_key: Option<String>,
    #[serde(default, deserialize_with = "wire::opt_i64")]
    max_results: Option<i64>,
}
impl QueryFields for GetHistoryBulk {
    const REPEATED: &'static [&'static str] = &["run_id"];
}

/// `GET /ajax-api/2.0/mlflow/metrics/get-history-bulk?run_id=..&run_id=..`:
/// one metric's history for up to 100 runs, each with its `run_id`, runs in
/// id order, at most `max_results` points in all (MLflow's ajax-only call).
pub async fn get_history_bulk(
    State(state): State<AppState>,
    ws: Workspace,
    Query(req): Query<GetHistoryBulk>,
) -> Result<Json<MetricsResponse>> {
    if req.run_id.is_empty() {
        return Err(MlflowError::invalid_parameter(
            "GetMetricHistoryBulk request must specify at least one run_id.",
        ));
    }
    if req.run_id.len() > MAX_RUNS_BULK {
        return Err(MlflowError::invalid_parameter(format!(
            "GetMetricHistoryBulk request cannot specify more than {MAX_RUNS_BULK} run_ids. \
             Received {} run_ids.",
            req.run_id.len()
        )));
    }
    let key = req.metric_key.ok_or_else(|| {
        MlflowError::invalid_parameter("GetMetricHistoryBulk request must specify a metric_key.")
    })?;
    let max_results = req
        .max_results
        .unwrap_or(MAX_RESULTS_BULK)
        .clamp(0, MAX_RESULTS_BULK);
    let mut run_ids = req.run_id;
    run_ids.sort();
    let mut metrics = Vec::new();
    for run_id in run_ids {
        let remaining = max_results - metrics.len() as i64;
        if remaining <= 0 {
            break;
        }
        let page = state
            .store
            .get_metric_history(&ws, &run_id, &key, Some(remaining), None)
            .await?;
        metrics.extend(page.items.into_iter().map(|metric| Metric {
            run_id: Some(run_id.clone()),
            ..metric
        }));
    }
    Ok(Json(MetricsResponse {
        metrics,
        next_page_token: None,
    }))
}
