//! Spans that arrive over OTLP, in MLflow's `spans` table, and the trace
//! records they imply: a trace whose record the client has not sent yet
//! (or never will: a plain OpenTelemetry exporter) gets one from its spans.

use std::collections::{BTreeMap, HashSet};

use super::experiments::parse_experiment_id;
use super::{append_to_uri, bind_all, in_list, values_rows, SqlStore};
use crate::error::{MlflowError, Result};
use crate::model::Workspace;
use crate::store::db::{self, Tx};
use crate::store::traces::{keys, NewSpan};

/// Spans per statement: 10 parameters each, well under both databases' limits.
const SPANS_PER_STATEMENT: usize = 1000;

/// What the spans of one trace in a batch say about its record.
struct Implied {
    start_ms: i64,
    end_ms: Option<i64>,
    /// The root span's state, if the root is in the batch.
    state: Option<&'static str>,
}

fn implied(spans: &[&NewSpan]) -> Implied {
    let start_ns = spans.iter().map(|s| s.start_time_ns).min().unwrap_or(0);
    let end_ns = spans.iter().filter_map(|s| s.end_time_ns).max();
    let root = spans.iter().find(|s| s.parent_span_id.is_none());
    Implied {
        start_ms: start_ns / 1_000_000,
        end_ms: end_ns.map(|ns| ns / 1_000_000),
        // MLflow: an ERROR root makes an ERROR trace; OK and UNSET an OK one.
        state: root.map(|r| if r.status == "ERROR" { "ERROR" } else { "OK" }),
    }
}

pub(super) async fn log_spans(
    store: &SqlStore,
    ws: &Workspace,
    experiment_id: &str,
    spans: Vec<NewSpan>,
) -> Result<()> {
    if spans.is_empty() {
        return Ok(());
    }
    let mut by_trace: BTreeMap<&str, Vec<&NewSpan>> = BTreeMap::new();
    for span in &spans {
        by_trace.entry(&span.trace_id).or_default().push(span);
    }
    let trace_ids: Vec<String> = by_trace.keys().map(|id| id.to_string()).collect();
    let mut tx = store.db.begin().await?;
    let experiment = store.active_experiment(&mut tx, ws, experiment_id).await?;
    let experiment_id = parse_experiment_id(experiment_id)?;

    // Records for the traces that have none, in trace id order (a fixed
    // lock order for concurrent batches on PostgreSQL). A record made here
    // already holds what its spans imply; only the others need checking
    // (another workspace's?) and updating below.
    let sql = format!(
        "INSERT INTO trace_info (request_id, experiment_id, timestamp_ms, execution_time_ms, \
         status) VALUES {} ON CONFLICT (request_id) DO NOTHING RETURNING request_id",
        values_rows(by_trace.len(), 5, 1)
    );
    let mut query = db::query(&sql);
    for (trace_id, spans) in &by_trace {
        let implied = implied(spans);
        query = query
            .bind(*trace_id)
            .bind(experiment_id)
            .bind(implied.start_ms)
            .bind(implied.end_ms.map(|end| end - implied.start_ms))
            .bind(implied.state.unwrap_or("IN_PROGRESS"));
    }
    let created = query
        .fetch_all(&mut tx)
        .await?
        .iter()
        .map(|row| row.try_get::<String, _>("request_id"))
        .collect::<std::result::Result<HashSet<_>, _>>()?;
    let existing: Vec<String> = trace_ids
        .iter()
        .filter(|id| !created.contains(*id))
        .cloned()
        .collect();
    if !existing.is_empty() {
        owned_here(&mut tx, ws, &existing).await?;
    }

    // Where each trace's spans are: its artifact location (kept if the record
    // has one) and, now, the database.
    let root = experiment.artifact_location.as_deref().unwrap_or_default();
    let sql = format!(
        "INSERT INTO trace_tags (key, value, request_id) VALUES {} \
         ON CONFLICT (key, request_id) DO UPDATE SET value = excluded.value \
         WHERE trace_tags.key = $1",
        values_rows(2 * trace_ids.len(), 3, 2)
    );
    let mut query = db::query(&sql).bind(keys::SPANS_LOCATION);
    for trace_id in &trace_ids {
        let location = append_to_uri(root, &["traces", trace_id, "artifacts"]);
        query = query
            .bind(keys::ARTIFACT_LOCATION)
            .bind(location)
            .bind(trace_id)
            .bind(keys::SPANS_LOCATION)
            .bind(keys::TRACKING_STORE)
            .bind(trace_id);
    }
    query.execute(&mut tx).await?;

    for chunk in spans.chunks(SPANS_PER_STATEMENT) {
        let sql = format!(
            "INSERT INTO spans (trace_id, experiment_id, span_id, parent_span_id, name, type, \
             status, start_time_unix_nano, end_time_unix_nano, content) VALUES {} \
             ON CONFLICT (trace_id, span_id) DO UPDATE SET \
             parent_span_id = excluded.parent_span_id, name = excluded.name, \
             type = excluded.type, status = excluded.status, \
             start_time_unix_nano = excluded.start_time_unix_nano, \
             end_time_unix_nano = excluded.end_time_unix_nano, content = excluded.content",
            values_rows(chunk.len(), 10, 1)
        );
        let mut query = db::query(&sql);
        for span in chunk {
            query = query
                .bind(&span.trace_id)
                .bind(experiment_id)
                .bind(&span.span_id)
                .bind(span.parent_span_id.as_deref())
                .bind(&span.name)
                .bind(span.span_type.as_deref())
                .bind(&span.status)
                .bind(span.start_time_ns)
                .bind(span.end_time_ns)
                .bind(&span.content);
        }
        query.execute(&mut tx).await?;
    }

    // Until the client's own record finalizes it, a record follows all of
    // its spans: earliest start, latest end, the root's state.
    if existing.is_empty() {
        return Ok(tx.commit().await?);
    }
    let list = in_list(existing.len(), 2);
    let sql = format!(
        "UPDATE trace_info SET \
         timestamp_ms = (SELECT MIN(s.start_time_unix_nano) / 1000000 FROM spans s \
           WHERE s.trace_id = trace_info.request_id), \
         execution_time_ms = (SELECT MAX(s.end_time_unix_nano) / 1000000 \
           - MIN(s.start_time_unix_nano) / 1000000 FROM spans s \
           WHERE s.trace_id = trace_info.request_id), \
         status = COALESCE((SELECT CASE WHEN s.status = 'ERROR' THEN 'ERROR' ELSE 'OK' END \
           FROM spans s WHERE s.trace_id = trace_info.request_id \
           AND s.parent_span_id IS NULL LIMIT 1), 'IN_PROGRESS') \
         WHERE request_id IN ({list}) AND NOT EXISTS (SELECT 1 FROM trace_request_metadata m \
           WHERE m.request_id = trace_info.request_id AND m.key = $1)"
    );
    let mut query = db::query(&sql).bind(keys::INFO_FINALIZED);
    for trace_id in &existing {
        query = query.bind(trace_id);
    }
    query.execute(&mut tx).await?;
    Ok(tx.commit().await?)
}

/// Refuses spans for a trace id that a trace of another workspace holds.
async fn owned_here(tx: &mut Tx, ws: &Workspace, trace_ids: &[String]) -> Result<()> {
    let sql = format!(
        "SELECT ti.request_id FROM trace_info ti \
         JOIN experiments e ON e.experiment_id = ti.experiment_id \
         WHERE ti.request_id IN ({}) AND e.workspace = ${}",
        in_list(trace_ids.len(), 1),
        trace_ids.len() + 1
    );
    let here = bind_all(&sql, trace_ids)
        .bind(ws.name())
        .fetch_all(&mut *tx)
        .await?;
    if here.len() < trace_ids.len() {
        return Err(MlflowError::already_exists(
            "A trace with one of these trace ids already exists.",
        ));
    }
    Ok(())
}
