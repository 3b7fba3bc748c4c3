//! The rows one batch of spans writes: records for the traces that have
//! none, the traces' tags, the user a span names, and the spans; and the
//! rows a statement reads as a table of its own ([`execute_with_rows`]).
//!
//! SQLite runs a multi-row statement per table: it runs in-process, so a
//! statement costs no round trip. PostgreSQL runs one statement for all
//! four tables with each column's values bound as an array (`UNNEST`): its
//! text does not depend on how many rows there are, so a connection
//! prepares it once, and a batch costs one round trip instead of a prepare
//! and an execute per table, and no parsing of thousands of placeholders.

use std::collections::{BTreeMap, HashSet};

use super::spans::Implied;
use super::{append_to_uri, in_list, values_rows, Dialect};
use crate::error::{MlflowError, Result};
use crate::store::db::{self, Tx, Value};
use crate::store::traces::{keys, NewSpan, COST_COLUMNS, TOKEN_COLUMNS};

/// Placeholders per SQLite statement, well under its limit (32,766).
const MAX_SQLITE_PARAMS: usize = 15_000;

/// One batch: spans of one experiment and what they imply for their traces.
pub(super) struct Batch<'a> {
    pub experiment_id: i64,
    /// The experiment's artifact location, under which each trace's lies.
    pub artifact_root: Option<&'a str>,
    pub traces: &'a BTreeMap<&'a str, Implied>,
    pub spans: &'a [&'a NewSpan],
}

/// One table's insert: what a conflicting row does, and the rows.
struct Insert {
    table: &'static str,
    on_conflict: String,
    rows: Rows,
}

/// Rows of named, typed columns (a value per column each).
pub(super) struct Rows {
    pub columns: Vec<(&'static str, Kind)>,
    pub rows: Vec<Vec<Value>>,
}

/// A column's type, which its array has even when empty: a prepared
/// statement's parameter types must not change between batches.
#[derive(Clone, Copy)]
pub(super) enum Kind {
    Int,
    Real,
    Text,
}

impl Rows {
    fn column_names(&self) -> String {
        let names: Vec<&str> = self.columns.iter().map(|(name, _)| *name).collect();
        names.join(", ")
    }
}

pub(super) fn texts<'a>(
    names: &'a [&'static str],
) -> impl Iterator<Item = (&'static str, Kind)> + 'a {
    names.iter().map(|name| (*name, Kind::Text))
}

/// Runs `statement` once with `rows` as the table `v` before it
/// (`WITH v (columns) AS (...)`): a statement per batch, not per row. On
/// SQLite `v` is a `VALUES` list (several statements if the rows exceed
/// its placeholders); on PostgreSQL `UNNEST` of an array per column. The
/// statement itself takes no parameters.
pub(super) async fn execute_with_rows(
    tx: &mut Tx,
    dialect: Dialect,
    rows: Rows,
    statement: &str,
) -> Result<()> {
    let names = rows.column_names();
    let width = rows.columns.len();
    match dialect {
        Dialect::Sqlite => {
            let mut all = rows.rows.into_iter().peekable();
            while all.peek().is_some() {
                let chunk: Vec<Vec<Value>> = all.by_ref().take(MAX_SQLITE_PARAMS / width).collect();
                let sql = format!(
                    "WITH v ({names}) AS (VALUES {}) {statement}",
                    values_rows(chunk.len(), width, 1)
                );
                let mut query = db::query(&sql);
                for value in chunk.into_iter().flatten() {
                    query = query.bind(value);
                }
                query.execute(&mut *tx).await?;
            }
        }
        Dialect::Postgres => {
            let sql = format!(
                "WITH v ({names}) AS (SELECT * FROM UNNEST({})) {statement}",
                in_list(width, 1)
            );
            let mut query = db::query(&sql);
            for array in arrays_of("v", rows)? {
                query = query.bind(array);
            }
            query.execute(tx).await?;
        }
    }
    Ok(())
}

/// Writes the batch's rows; returns the ids of the traces whose records it
/// made (the others had one already).
pub(super) async fn insert(
    tx: &mut Tx,
    dialect: Dialect,
    batch: &Batch<'_>,
) -> Result<HashSet<String>> {
    let inserts = [
        trace_records(batch),
        trace_tags(batch),
        trace_users(batch),
        spans(batch),
    ];
    let created = match dialect {
        Dialect::Sqlite => insert_per_table(tx, inserts).await?,
        Dialect::Postgres => insert_as_arrays(tx, inserts).await?,
    };
    Ok(created.into_iter().collect())
}

/// A record for each trace, made from what its spans imply; a trace that
/// has one already keeps it (its id is not returned).
fn trace_records(batch: &Batch<'_>) -> Insert {
    let rows = batch
        .traces
        .iter()
        .map(|(trace_id, implied)| {
            let mut row: Vec<Value> = vec![
                (*trace_id).into(),
                batch.experiment_id.into(),
                implied.start_ms.into(),
                implied.end_ms.map(|end| end - implied.start_ms).into(),
                implied.state.unwrap_or("IN_PROGRESS").into(),
                implied.trace_name.as_deref().into(),
                implied.session_id.as_deref().into(),
                implied.request_preview.as_deref().into(),
                implied.response_preview.as_deref().into(),
            ];
            row.extend(implied.usage.unwrap_or_default().map(Value::from));
            row.extend(implied.cost.unwrap_or_default().map(Value::from));
            row
        })
        .collect();
    let columns = texts(&["request_id"])
        .chain([
            ("experiment_id", Kind::Int),
            ("timestamp_ms", Kind::Int),
            ("execution_time_ms", Kind::Int),
        ])
        .chain(texts(&[
            "status",
            "trace_name",
            "session_id",
            "request_preview",
            "response_preview",
        ]))
        .chain(TOKEN_COLUMNS.map(|c| (c, Kind::Int)))
        .chain(COST_COLUMNS.map(|c| (c, Kind::Real)))
        .collect();
    Insert {
        table: "trace_info",
        on_conflict: "ON CONFLICT (request_id) DO NOTHING RETURNING request_id".into(),
        rows: Rows { columns, rows },
    }
}

/// Where each trace's spans are (its artifact location, kept if the record
/// has one, and now the database), and the tags its spans carry; those
/// replace earlier values.
fn trace_tags(batch: &Batch<'_>) -> Insert {
    let mut rows = Vec::new();
    for (trace_id, implied) in batch.traces {
        let location = append_to_uri(
            batch.artifact_root.unwrap_or_default(),
            &["traces", trace_id, "artifacts"],
        );
        rows.push(vec![
            keys::ARTIFACT_LOCATION.into(),
            location.into(),
            (*trace_id).into(),
        ]);
        rows.push(vec![
            keys::SPANS_LOCATION.into(),
            keys::TRACKING_STORE.into(),
            (*trace_id).into(),
        ]);
        for (key, value) in &implied.tags {
            rows.push(vec![key.into(), value.into(), (*trace_id).into()]);
        }
    }
    Insert {
        table: "trace_tags",
        // A constant of ours, so it can be spelled in the text.
        on_conflict: format!(
            "ON CONFLICT (key, request_id) DO UPDATE SET value = excluded.value \
             WHERE trace_tags.key <> '{}'",
            keys::ARTIFACT_LOCATION
        ),
        rows: Rows {
            columns: texts(&["key", "value", "request_id"]).collect(),
            rows,
        },
    }
}

/// The user a span names (`user.id`), unless the trace has one.
fn trace_users(batch: &Batch<'_>) -> Insert {
    Insert {
        table: "trace_request_metadata",
        on_conflict: "ON CONFLICT (key, request_id) DO NOTHING".into(),
        rows: Rows {
            columns: texts(&["key", "value", "request_id"]).collect(),
            rows: batch
                .traces
                .iter()
                .filter_map(|(trace_id, t)| {
                    let user = t.user_id.as_deref()?;
                    Some(vec![keys::USER.into(), user.into(), (*trace_id).into()])
                })
                .collect(),
        },
    }
}

/// The spans; one sent again replaces the stored one.
fn spans(batch: &Batch<'_>) -> Insert {
    let rows = batch
        .spans
        .iter()
        .map(|span| {
            let mut row: Vec<Value> = vec![
                (&span.trace_id).into(),
                batch.experiment_id.into(),
                (&span.span_id).into(),
                span.parent_span_id.as_deref().into(),
                (&span.name).into(),
                span.span_type.as_deref().into(),
                (&span.status).into(),
                span.start_time_ns.into(),
                span.end_time_ns.into(),
                (&span.content).into(),
                span.facts.model_name.as_deref().into(),
                span.facts.model_provider.as_deref().into(),
            ];
            row.extend(span.facts.cost_columns().map(Value::from));
            row
        })
        .collect();
    let columns = texts(&["trace_id"])
        .chain([("experiment_id", Kind::Int)])
        .chain(texts(&[
            "span_id",
            "parent_span_id",
            "name",
            "type",
            "status",
        ]))
        .chain([
            ("start_time_unix_nano", Kind::Int),
            ("end_time_unix_nano", Kind::Int),
        ])
        .chain(texts(&["content", "model_name", "model_provider"]))
        .chain(COST_COLUMNS.map(|c| (c, Kind::Real)))
        .collect();
    Insert {
        table: "spans",
        on_conflict: "ON CONFLICT (trace_id, span_id) DO UPDATE SET \
             parent_span_id = excluded.parent_span_id, name = excluded.name, \
             type = excluded.type, status = excluded.status, \
             start_time_unix_nano = excluded.start_time_unix_nano, \
             end_time_unix_nano = excluded.end_time_unix_nano, content = excluded.content, \
             model_name = excluded.model_name, model_provider = excluded.model_provider, \
             input_cost = excluded.input_cost, output_cost = excluded.output_cost, \
             total_cost = excluded.total_cost"
            .into(),
        rows: Rows { columns, rows },
    }
}

/// SQLite: `INSERT ... VALUES (...), (...)` per table, in the order given
/// (foreign keys are checked per statement), each as few statements as
/// its placeholders allow.
async fn insert_per_table(tx: &mut Tx, inserts: [Insert; 4]) -> Result<Vec<String>> {
    let mut returned = Vec::new();
    for insert in inserts {
        let width = insert.rows.columns.len();
        let names = insert.rows.column_names();
        let mut rows = insert.rows.rows.into_iter().peekable();
        while rows.peek().is_some() {
            let chunk: Vec<Vec<Value>> = rows.by_ref().take(MAX_SQLITE_PARAMS / width).collect();
            let sql = format!(
                "INSERT INTO {} ({names}) VALUES {} {}",
                insert.table,
                values_rows(chunk.len(), width, 1),
                insert.on_conflict
            );
            let mut query = db::query(&sql);
            for value in chunk.into_iter().flatten() {
                query = query.bind(value);
            }
            for row in query.fetch_all(&mut *tx).await? {
                returned.push(row.try_get(0)?);
            }
        }
    }
    Ok(returned)
}

/// PostgreSQL: one statement, a data-modifying `WITH` per table, rows as
/// arrays. Foreign keys are checked at the statement's end, when the
/// records its spans and tags point at exist.
async fn insert_as_arrays(tx: &mut Tx, inserts: [Insert; 4]) -> Result<Vec<String>> {
    let mut sql = String::from("WITH ");
    let mut arrays = Vec::new();
    for (n, insert) in inserts.into_iter().enumerate() {
        if n > 0 {
            sql.push_str(", ");
        }
        sql.push_str(&format!(
            "t{n} AS (INSERT INTO {} ({}) SELECT * FROM UNNEST({}) {})",
            insert.table,
            insert.rows.column_names(),
            in_list(insert.rows.columns.len(), arrays.len() + 1),
            insert.on_conflict
        ));
        arrays.extend(arrays_of(insert.table, insert.rows)?);
    }
    // The first insert is the records', the one that returns ids.
    sql.push_str(" SELECT request_id FROM t0");
    let mut query = db::query(&sql);
    for array in arrays {
        query = query.bind(array);
    }
    query
        .fetch_all(tx)
        .await?
        .iter()
        .map(|row| Ok(row.try_get(0)?))
        .collect()
}

/// The rows as one array per column (`table` names them in an error).
fn arrays_of(table: &str, rows: Rows) -> Result<Vec<Value>> {
    let mut columns: Vec<Vec<Value>> = rows
        .columns
        .iter()
        .map(|_| Vec::with_capacity(rows.rows.len()))
        .collect();
    for row in rows.rows {
        for (column, value) in columns.iter_mut().zip(row) {
            column.push(value);
        }
    }
    rows.columns
        .iter()
        .zip(columns)
        .map(|((name, kind), values)| {
            let array = match kind {
                Kind::Int => same_kind(values, |v| match v {
                    Value::Int(v) => Some(v),
                    _ => None,
                })
                .map(Value::IntArray),
                Kind::Real => same_kind(values, |v| match v {
                    Value::Real(v) => Some(v),
                    _ => None,
                })
                .map(Value::RealArray),
                Kind::Text => same_kind(values, |v| match v {
                    Value::Text(v) => Some(v),
                    _ => None,
                })
                .map(Value::TextArray),
            };
            array.ok_or_else(|| {
                MlflowError::internal(format!("{table}.{name}: a value of another type"))
            })
        })
        .collect()
}

/// The values, if `unwrap` takes every one (each is of the column's kind).
fn same_kind<T>(
    values: Vec<Value>,
    unwrap: fn(Value) -> Option<Option<T>>,
) -> Option<Vec<Option<T>>> {
    values.into_iter().map(unwrap).collect()
}
