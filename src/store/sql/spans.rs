//! Spans that arrive over OTLP, in MLflow's `spans` table, and the trace
//! records they imply: a trace whose record the client has not sent yet
//! (or never will: a plain OpenTelemetry exporter) gets one from its spans,
//! with the usage, cost, session, tags and previews they carry
//! (`store::span_facts`).

use std::collections::{BTreeMap, HashMap, HashSet};

use super::experiments::parse_experiment_id;
use super::span_rows::{self, texts, Batch, Kind, Rows};
use super::{bind_all, in_list, Dialect, SqlStore};
use crate::error::{MlflowError, Result};
use crate::model::Workspace;
use crate::store::db::{self, Tx, Value};
use crate::store::span_facts::{self, preview, Node, SpanFacts};
use crate::store::traces::{
    keys, truncated, NewSpan, COST_COLUMNS, MAX_SESSION_ID_LENGTH, MAX_STORED_VALUE_LENGTH,
    MAX_TAG_KEY_LENGTH, MAX_TRACE_NAME_LENGTH, TOKEN_COLUMNS,
};

/// What the spans of one trace in a batch say about its record.
#[derive(Default)]
pub(super) struct Implied {
    pub(super) start_ms: i64,
    pub(super) end_ms: Option<i64>,
    /// The root span's state, if the root is in the batch.
    pub(super) state: Option<&'static str>,
    pub(super) usage: Option<[Option<i64>; 6]>,
    pub(super) cost: Option<[Option<f64>; 3]>,
    pub(super) session_id: Option<String>,
    pub(super) user_id: Option<String>,
    pub(super) trace_name: Option<String>,
    /// Tags from the spans' resource and the root's `mlflow.traceTag.*`.
    pub(super) tags: BTreeMap<String, String>,
    pub(super) request_preview: Option<String>,
    pub(super) response_preview: Option<String>,
}

impl Implied {
    /// Whether a trace that already has a record needs it updated beyond
    /// its times and state.
    fn has_facts(&self) -> bool {
        self.usage.is_some()
            || self.cost.is_some()
            || self.session_id.is_some()
            || self.trace_name.is_some()
            || self.request_preview.is_some()
            || self.response_preview.is_some()
    }
}

fn nodes<'a>(
    spans: &'a [&NewSpan],
    pick: fn(&SpanFacts) -> Option<&serde_json::Map<String, serde_json::Value>>,
) -> Vec<Node<'a>> {
    spans
        .iter()
        .map(|s| Node {
            span_id: &s.span_id,
            parent_id: s.parent_span_id.as_deref(),
            data: pick(&s.facts),
        })
        .collect()
}

fn implied(spans: &[&NewSpan]) -> Result<Implied> {
    let start_ns = spans.iter().map(|s| s.start_time_ns).min().unwrap_or(0);
    let end_ns = spans.iter().filter_map(|s| s.end_time_ns).max();
    let root = spans.iter().find(|s| s.parent_span_id.is_none());
    let first = |pick: fn(&SpanFacts) -> Option<&String>| {
        spans.iter().find_map(|s| pick(&s.facts)).cloned()
    };
    let session_id = first(|f| f.session_id.as_ref());
    if session_id
        .as_ref()
        .is_some_and(|s| s.chars().count() > MAX_SESSION_ID_LENGTH)
    {
        return Err(MlflowError::invalid_parameter(format!(
            "'Session ID' exceeds the maximum length of {MAX_SESSION_ID_LENGTH} characters"
        )));
    }
    let mut tags = BTreeMap::new();
    let resource = spans.iter().find(|s| !s.facts.resource_tags.is_empty());
    let own = root
        .map(|r| r.facts.trace_tags.as_slice())
        .unwrap_or_default();
    for (key, value) in resource
        .map(|s| s.facts.resource_tags.as_slice())
        .unwrap_or_default()
        .iter()
        .chain(own)
    {
        // Tags that cannot be stored, or that the server owns, are skipped.
        if key.is_empty()
            || key.chars().count() > MAX_TAG_KEY_LENGTH
            || keys::SERVER_OWNED.contains(&key.as_str())
        {
            continue;
        }
        tags.insert(key.clone(), truncated(value, MAX_STORED_VALUE_LENGTH));
    }
    let trace_name = tags.remove(keys::TRACE_NAME);
    if trace_name
        .as_ref()
        .is_some_and(|n| n.chars().count() > MAX_TRACE_NAME_LENGTH)
    {
        return Err(MlflowError::invalid_parameter(format!(
            "'Trace name' exceeds the maximum length of {MAX_TRACE_NAME_LENGTH} characters"
        )));
    }
    let root_facts = root.map(|r| &r.facts);
    Ok(Implied {
        start_ms: start_ns / 1_000_000,
        end_ms: end_ns.map(|ns| ns / 1_000_000),
        // MLflow: an ERROR root makes an ERROR trace; OK and UNSET an OK one.
        state: root.map(|r| if r.status == "ERROR" { "ERROR" } else { "OK" }),
        usage: span_facts::total_usage(&nodes(spans, |f| f.usage.as_ref())),
        cost: span_facts::total_cost(&nodes(spans, |f| f.cost.as_ref())),
        session_id,
        user_id: first(|f| f.user_id.as_ref()),
        trace_name,
        tags,
        request_preview: root_facts
            .and_then(|f| f.inputs.as_deref())
            .map(|v| preview(v, "user")),
        response_preview: root_facts
            .and_then(|f| f.outputs.as_deref())
            .map(|v| preview(v, "assistant")),
    })
}

/// Writes one export's spans (or several exports' to the same experiment
/// of one workspace) in the caller's transaction.
pub(super) async fn write_spans_to(
    tx: &mut Tx,
    store: &SqlStore,
    ws: &Workspace,
    experiment_id: &str,
    spans: &[&NewSpan],
) -> Result<()> {
    if spans.is_empty() {
        return Ok(());
    }
    // A span sent twice: the later one stands (one statement cannot write
    // a row twice).
    let mut seen = HashSet::new();
    let mut spans: Vec<&NewSpan> = spans
        .iter()
        .rev()
        .filter(|s| seen.insert((s.trace_id.as_str(), s.span_id.as_str())))
        .copied()
        .collect();
    spans.reverse();

    let mut by_trace: BTreeMap<&str, Vec<&NewSpan>> = BTreeMap::new();
    for span in &spans {
        by_trace.entry(&span.trace_id).or_default().push(span);
    }
    let mut traces: BTreeMap<&str, Implied> = BTreeMap::new();
    for (trace_id, spans) in &by_trace {
        traces.insert(trace_id, implied(spans)?);
    }
    let experiment = store.active_experiment(&mut *tx, ws, experiment_id).await?;
    let experiment_id = parse_experiment_id(experiment_id)?;

    // Records for the traces that have none, in trace id order (a fixed
    // lock order for concurrent batches on PostgreSQL), with the tags and
    // spans. A record made here already holds what its spans imply; only
    // the others need checking (another workspace's? then all of this is
    // rolled back) and updating below.
    let created = span_rows::insert(
        tx,
        store.dialect,
        &Batch {
            experiment_id,
            artifact_root: experiment.artifact_location.as_deref(),
            traces: &traces,
            spans: &spans,
        },
    )
    .await?;
    let existing: Vec<&str> = traces
        .keys()
        .copied()
        .filter(|id| !created.contains(*id))
        .collect();
    if existing.is_empty() {
        return Ok(());
    }
    owned_here(tx, ws, &existing).await?;
    update_times(tx, &existing).await?;
    let with_facts: Vec<&str> = existing
        .iter()
        .copied()
        .filter(|id| traces[id].has_facts())
        .collect();
    update_facts(tx, store.dialect, &with_facts, &traces).await
}

/// Until the client's own record finalizes it, a record follows all of
/// its spans: earliest start, latest end, the root's state.
async fn update_times(tx: &mut Tx, existing: &[&str]) -> Result<()> {
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
    for trace_id in existing {
        query = query.bind(*trace_id);
    }
    query.execute(tx).await?;
    Ok(())
}

/// A stored trace's session, previews and name where it has none (the
/// name always), and its usage and cost summed again over all of its
/// spans (stored and new: a resent span is not counted twice, a parent
/// that arrives after its children replaces their sum) unless the client's
/// own record gave them. One statement for all the batch's traces.
async fn update_facts(
    tx: &mut Tx,
    dialect: Dialect,
    trace_ids: &[&str],
    traces: &BTreeMap<&str, Implied>,
) -> Result<()> {
    if trace_ids.is_empty() {
        return Ok(());
    }
    let summed = totals_over_stored_spans(tx, trace_ids, traces).await?;
    let rows = trace_ids
        .iter()
        .map(|trace_id| {
            let implied = &traces[trace_id];
            let (usage, cost) = summed.get(trace_id).copied().unwrap_or_default();
            let mut row: Vec<Value> = vec![
                (*trace_id).into(),
                implied.session_id.as_deref().into(),
                implied.request_preview.as_deref().into(),
                implied.response_preview.as_deref().into(),
                implied.trace_name.as_deref().into(),
            ];
            row.extend(usage.unwrap_or_default().map(Value::from));
            row.extend(cost.unwrap_or_default().map(Value::from));
            row
        })
        .collect();
    let columns = texts(&[
        "request_id",
        "session_id",
        "request_preview",
        "response_preview",
        "trace_name",
    ])
    .chain(TOKEN_COLUMNS.map(|c| (c, Kind::Int)))
    .chain(COST_COLUMNS.map(|c| (c, Kind::Real)))
    .collect();
    // Usage and cost the client's record gave stay.
    let kept = |columns: &[&str]| {
        let any: Vec<String> = columns
            .iter()
            .map(|c| format!("trace_info.{c} IS NOT NULL"))
            .collect();
        format!(
            "(EXISTS (SELECT 1 FROM trace_request_metadata m \
             WHERE m.request_id = trace_info.request_id AND m.key = '{}') AND ({}))",
            keys::INFO_FINALIZED,
            any.join(" OR ")
        )
    };
    let (keep_tokens, keep_costs) = (kept(&TOKEN_COLUMNS), kept(&COST_COLUMNS));
    let mut sets = vec![
        "session_id = COALESCE(trace_info.session_id, v.session_id)".to_string(),
        "request_preview = COALESCE(trace_info.request_preview, v.request_preview)".into(),
        "response_preview = COALESCE(trace_info.response_preview, v.response_preview)".into(),
        "trace_name = COALESCE(v.trace_name, trace_info.trace_name)".into(),
    ];
    for column in TOKEN_COLUMNS {
        sets.push(format!(
            "{column} = CASE WHEN {keep_tokens} THEN trace_info.{column} \
             ELSE COALESCE(v.{column}, trace_info.{column}) END"
        ));
    }
    for column in COST_COLUMNS {
        sets.push(format!(
            "{column} = CASE WHEN {keep_costs} THEN trace_info.{column} \
             ELSE COALESCE(v.{column}, trace_info.{column}) END"
        ));
    }
    let statement = format!(
        "UPDATE trace_info SET {} FROM v WHERE trace_info.request_id = v.request_id",
        sets.join(", ")
    );
    span_rows::execute_with_rows(tx, dialect, Rows { columns, rows }, &statement).await
}

type Totals = (Option<[Option<i64>; 6]>, Option<[Option<f64>; 3]>);

/// Usage and cost over every stored span of the traces whose batch brought
/// any (the batch's spans are stored by now).
async fn totals_over_stored_spans<'a>(
    tx: &mut Tx,
    trace_ids: &[&'a str],
    traces: &BTreeMap<&str, Implied>,
) -> Result<HashMap<&'a str, Totals>> {
    let ids: Vec<String> = trace_ids
        .iter()
        .filter(|id| traces[*id].usage.is_some() || traces[*id].cost.is_some())
        .map(|id| id.to_string())
        .collect();
    let mut out = HashMap::new();
    if ids.is_empty() {
        return Ok(out);
    }
    let sql = format!(
        "SELECT trace_id, span_id, parent_span_id, content FROM spans WHERE trace_id IN ({})",
        in_list(ids.len(), 1)
    );
    let rows = bind_all(&sql, &ids).fetch_all(&mut *tx).await?;
    let mut stored: HashMap<String, Vec<NewSpan>> = HashMap::new();
    for row in rows {
        let content: String = row.try_get("content")?;
        let span = NewSpan {
            span_id: row.try_get("span_id")?,
            parent_span_id: row.try_get("parent_span_id")?,
            facts: SpanFacts::of_content(&content),
            ..NewSpan::default()
        };
        stored
            .entry(row.try_get("trace_id")?)
            .or_default()
            .push(span);
    }
    for id in trace_ids {
        if let Some(spans) = stored.get(*id) {
            let spans: Vec<&NewSpan> = spans.iter().collect();
            out.insert(
                *id,
                (
                    span_facts::total_usage(&nodes(&spans, |f| f.usage.as_ref())),
                    span_facts::total_cost(&nodes(&spans, |f| f.cost.as_ref())),
                ),
            );
        }
    }
    Ok(out)
}

/// Refuses spans for a trace id that a trace of another workspace holds.
async fn owned_here(tx: &mut Tx, ws: &Workspace, trace_ids: &[&str]) -> Result<()> {
    let sql = format!(
        "SELECT ti.request_id FROM trace_info ti \
         JOIN experiments e ON e.experiment_id = ti.experiment_id \
         WHERE ti.request_id IN ({}) AND e.workspace = ${}",
        in_list(trace_ids.len(), 1),
        trace_ids.len() + 1
    );
    let mut query = db::query(&sql);
    for id in trace_ids {
        query = query.bind(*id);
    }
    let here = query.bind(ws.name()).fetch_all(&mut *tx).await?;
    if here.len() < trace_ids.len() {
        return Err(MlflowError::already_exists(
            "A trace with one of these trace ids already exists.",
        ));
    }
    Ok(())
}
