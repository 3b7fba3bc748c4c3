//! `GET /api/3.0/ferroflow/audit`: the request's workspace's audit events
//! (writes and refusals), newest first, paged; for its managers.

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};

use super::wire::{Query, QueryFields};
use crate::app::AppState;
use crate::error::{ErrorCode, MlflowError, Result};
use crate::model::Workspace;
use crate::store::access::AuditEvent;

const DEFAULT_MAX_RESULTS: i64 = 100;
const MAX_RESULTS: i64 = 1000;

#[derive(Deserialize)]
pub struct ReadAudit {
    #[serde(default, deserialize_with = "super::wire::opt_i64")]
    max_results: Option<i64>,
    page_token: Option<String>,
}
impl QueryFields for ReadAudit {}

#[derive(Serialize)]
pub struct AuditRecord {
    id: String,
    #[serde(flatten)]
    event: AuditEvent,
}

#[derive(Serialize)]
pub struct ReadAuditResponse {
    events: Vec<AuditRecord>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_page_token: Option<String>,
}

pub async fn read(
    State(state): State<AppState>,
    ws: Workspace,
    Query(req): Query<ReadAudit>,
) -> Result<Json<ReadAuditResponse>> {
    if state.access.is_none() {
        return Err(MlflowError::new(
            ErrorCode::NotImplemented,
            "The audit log is kept when the server runs with `--auth token`",
        ));
    }
    let max_results = req.max_results.unwrap_or(DEFAULT_MAX_RESULTS);
    if !(1..=MAX_RESULTS).contains(&max_results) {
        return Err(MlflowError::invalid_parameter(format!(
            "Invalid value {max_results} for parameter 'max_results': it must be between 1 and \
             {MAX_RESULTS}"
        )));
    }
    let before = match req.page_token.as_deref().filter(|t| !t.is_empty()) {
        Some(token) => Some(
            token
                .parse::<i64>()
                .map_err(|_| MlflowError::invalid_parameter("Invalid page_token"))?,
        ),
        None => None,
    };
    let rows = state
        .store
        .read_audit(ws.name(), max_results, before)
        .await?;
    let next_page_token = (rows.len() as i64 == max_results)
        .then(|| rows.last().map(|(id, _)| id.to_string()))
        .flatten();
    let events = rows
        .into_iter()
        .map(|(id, event)| AuditRecord {
            id: id.to_string(),
            event,
        })
        .collect();
    Ok(Json(ReadAuditResponse {
        events,
        next_page_token,
    }))
}
