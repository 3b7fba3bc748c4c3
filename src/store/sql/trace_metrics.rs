//! `traces/metrics` in one aggregate statement: the view's rows (traces,
//! spans with their trace, valid assessments with their trace) in the
//! workspace's experiments, narrowed by the time range and the filters,
//! grouped by time bucket and dimensions. What MLflow computes per view
//! (which time a row has, which rows drop out) is explained in
//! `store::trace_metrics` and below.

use super::{bind_values, Dialect, SqlStore};
use crate::error::{MlflowError, Result};
use crate::model::Workspace;
use crate::search::SqlValue;
use crate::store::db;
use crate::store::trace_metrics::{Aggregation, DataPoint, MetricFilter, MetricQuery, MetricView};
use crate::store::traces::keys;

/// Where a metric's rows come from and which expressions it aggregates.
struct Source {
    from: &'static str,
    /// The aggregated value; rows where it is NULL drop out.
    value: String,
    /// The row's time for the range, in epoch ms.
    range_ms: &'static str,
    /// The row's time for bucketing, in epoch ms.
    bucket_ms: &'static str,
}

const TRACES: &str = "trace_info ti JOIN experiments e ON e.experiment_id = ti.experiment_id";
const SPANS: &str = "spans s JOIN trace_info ti ON ti.request_id = s.trace_id \
     JOIN experiments e ON e.experiment_id = ti.experiment_id";
const ASSESSMENTS: &str = "assessments a JOIN trace_info ti ON ti.request_id = a.trace_id \
     JOIN experiments e ON e.experiment_id = ti.experiment_id";
const SPAN_START_MS: &str = "(s.start_time_unix_nano / 1000000)";

fn source(query: &MetricQuery) -> Source {
    let metric = query.metric.as_str();
    let (from, value, range_ms, bucket_ms) = match (query.view, metric) {
        (MetricView::Traces, "trace_count") => (TRACES, "ti.request_id".into(), "", ""),
        (MetricView::Traces, "session_count") => (TRACES, "ti.session_id".into(), "", ""),
        (MetricView::Traces, "latency") => (TRACES, "ti.execution_time_ms".into(), "", ""),
        // The token columns are named as the metrics (validated before).
        (MetricView::Traces, tokens) => (TRACES, format!("ti.{tokens}"), "", ""),
        // Span counts and latencies take their range from the trace and
        // their bucket from the span's own start, as MLflow does.
        (MetricView::Spans, "span_count") => (SPANS, "s.span_id".into(), "", SPAN_START_MS),
        (MetricView::Spans, "latency") => (
            SPANS,
            "((s.end_time_unix_nano - s.start_time_unix_nano) / 1000000)".into(),
            "",
            SPAN_START_MS,
        ),
        // Costs: the span's start for both.
        (MetricView::Spans, cost) => (SPANS, format!("s.{cost}"), SPAN_START_MS, SPAN_START_MS),
        (MetricView::Assessments, "assessment_count") => {
            (ASSESSMENTS, "a.assessment_id".into(), "", "")
        }
        (MetricView::Assessments, _) => (ASSESSMENTS, "a.aggregate_value".into(), "", ""),
    };
    let or_trace_time = |ms: &'static str| if ms.is_empty() { "ti.timestamp_ms" } else { ms };
    Source {
        from,
        value,
        range_ms: or_trace_time(range_ms),
        bucket_ms: or_trace_time(bucket_ms),
    }
}

fn dimension_column(name: &str) -> &'static str {
    match name {
        "trace_name" => "ti.trace_name",
        "trace_status" => "ti.status",
        "span_name" => "s.name",
        "span_type" => "s.type",
        "span_status" => "s.status",
        "span_model_name" => "s.model_name",
        "span_model_provider" => "s.model_provider",
        "assessment_name" => "a.name",
        // The value as stored: its JSON text (`"x"`, `1.0`, `true`).
        _ => "a.value",
    }
}

/// Bound values and their `$N` placeholders.
#[derive(Default)]
struct Binds(Vec<SqlValue>);

impl Binds {
    fn push(&mut self, value: SqlValue) -> String {
        self.0.push(value);
        format!("${}", self.0.len())
    }

    fn text(&mut self, value: &str) -> String {
        self.push(SqlValue::Text(value.to_string()))
    }
}

fn filter_condition(filter: &MetricFilter, binds: &mut Binds) -> Result<String> {
    let exists = |table: &str, key: &str, value: &str, binds: &mut Binds| {
        format!(
            "EXISTS (SELECT 1 FROM {table} kv WHERE kv.request_id = ti.request_id \
             AND kv.key = {} AND kv.value = {})",
            binds.text(key),
            binds.text(value)
        )
    };
    Ok(match filter {
        MetricFilter::TraceStatus(value) => format!("ti.status = {}", binds.text(value)),
        MetricFilter::TraceTag { key, value } if key == keys::TRACE_NAME => {
            format!("ti.trace_name = {}", binds.text(value))
        }
        MetricFilter::TraceTag { key, value } => exists("trace_tags", key, value, binds),
        MetricFilter::TraceMetadata { key, value } if key == keys::SESSION => {
            format!("ti.session_id = {}", binds.text(value))
        }
        // A run's traces: made in it, or linked to it since.
        MetricFilter::TraceMetadata { key, value } if key == keys::SOURCE_RUN => {
            let made_in = exists("trace_request_metadata", key, value, binds);
            format!(
                "({made_in} OR EXISTS (SELECT 1 FROM entity_associations ea \
                 WHERE ea.source_type = {} AND ea.source_id = ti.request_id \
                 AND ea.destination_type = {} AND ea.destination_id = {}))",
                binds.text(crate::search::traces::ASSOCIATION_TRACE),
                binds.text(crate::search::traces::ASSOCIATION_RUN),
                binds.text(value)
            )
        }
        MetricFilter::TraceMetadata { key, .. }
            if key == keys::TOKEN_USAGE || key == keys::COST =>
        {
            return Err(MlflowError::invalid_parameter(format!(
                "Filtering trace metrics on metadata '{key}' is not supported by this server"
            )))
        }
        MetricFilter::TraceMetadata { key, value } => {
            exists("trace_request_metadata", key, value, binds)
        }
        MetricFilter::Span { column, value } => format!("s.{column} = {}", binds.text(value)),
        MetricFilter::Assessment { column, value } => {
            format!("a.{column} = {}", binds.text(value))
        }
    })
}

fn aggregate(
    dialect: Dialect,
    aggregation: Aggregation,
    query: &MetricQuery,
    value: &str,
) -> String {
    let expression = match aggregation {
        Aggregation::Count if query.metric == "session_count" => {
            format!("COUNT(DISTINCT {value})")
        }
        Aggregation::Count => format!("COUNT({value})"),
        Aggregation::Sum => format!("SUM({value})"),
        Aggregation::Avg => format!("AVG({value})"),
        Aggregation::Min => format!("MIN({value})"),
        Aggregation::Max => format!("MAX({value})"),
        // The fraction is a checked number in [0, 1], written as a literal
        // so that both spellings stay one expression.
        Aggregation::Percentile(p) => {
            let fraction = p / 100.0;
            match dialect {
                Dialect::Postgres => {
                    format!("percentile_cont({fraction:?}) WITHIN GROUP (ORDER BY {value})")
                }
                // The aggregate `sqlite.rs` registers on every connection.
                Dialect::Sqlite => format!("percentile_cont({value}, {fraction:?})"),
            }
        }
    };
    // SUM and AVG of integers are NUMERIC on PostgreSQL: answer doubles.
    match dialect {
        Dialect::Postgres => format!("CAST({expression} AS DOUBLE PRECISION)"),
        Dialect::Sqlite => format!("CAST({expression} AS REAL)"),
    }
}

pub(super) async fn query_trace_metrics(
    store: &SqlStore,
    ws: &Workspace,
    query: &MetricQuery,
) -> Result<Vec<DataPoint>> {
    let source = source(query);
    let mut binds = Binds::default();
    let mut groups = Vec::new();
    if let Some(seconds) = query.time_interval_seconds.filter(|s| *s > 0) {
        let width = seconds.saturating_mul(1000);
        groups.push(format!("(({}) / {width}) * {width}", source.bucket_ms));
    }
    let bucketed = !groups.is_empty();
    for dimension in &query.dimensions {
        groups.push(dimension_column(dimension).to_string());
    }

    let mut conditions = vec![format!("e.workspace = {}", binds.text(ws.name()))];
    let experiments: Vec<String> = query
        .experiment_ids
        .iter()
        .map(|id| binds.push(SqlValue::Int(*id)))
        .collect();
    conditions.push(match experiments.is_empty() {
        true => "1 = 0".into(),
        false => format!("ti.experiment_id IN ({})", experiments.join(", ")),
    });
    if query.view == MetricView::Assessments {
        conditions.push("a.valid = TRUE".into());
    }
    // Rows without the value, or without a dimension's value, drop out
    // (COUNT(DISTINCT) skips NULLs itself; a session count counts sessions).
    conditions.push(format!("{} IS NOT NULL", source.value));
    for dimension in &query.dimensions {
        conditions.push(format!("{} IS NOT NULL", dimension_column(dimension)));
    }
    if let Some(start) = query.start_time_ms {
        let start = binds.push(SqlValue::Int(start));
        conditions.push(format!("{} >= {start}", source.range_ms));
    }
    if let Some(end) = query.end_time_ms {
        let end = binds.push(SqlValue::Int(end));
        conditions.push(format!("{} <= {end}", source.range_ms));
    }
    for filter in &query.filters {
        conditions.push(filter_condition(filter, &mut binds)?);
    }

    let mut columns: Vec<String> = groups.clone();
    for aggregation in &query.aggregations {
        columns.push(aggregate(store.dialect, *aggregation, query, &source.value));
    }
    let positions: Vec<String> = (1..=groups.len()).map(|n| n.to_string()).collect();
    let mut sql = format!(
        "SELECT {} FROM {} WHERE {}",
        columns.join(", "),
        source.from,
        conditions.join(" AND ")
    );
    if !positions.is_empty() {
        sql.push_str(&format!(" GROUP BY {0} ORDER BY {0}", positions.join(", ")));
    }
    let limit = binds.push(SqlValue::Int(query.max_results.max(0)));
    sql.push_str(&format!(" LIMIT {limit}"));

    let rows = bind_values(db::query(&sql), &binds.0)
        .fetch_all(&store.db)
        .await?;
    let mut points = Vec::with_capacity(rows.len());
    for row in rows {
        let mut column = 0;
        let time_bucket_ms = match bucketed {
            true => {
                column += 1;
                Some(row.try_get::<i64, _>(0)?)
            }
            false => None,
        };
        let mut dimensions = Vec::with_capacity(query.dimensions.len());
        for name in &query.dimensions {
            dimensions.push((name.clone(), row.try_get::<String, _>(column)?));
            column += 1;
        }
        let mut values = Vec::with_capacity(query.aggregations.len());
        for aggregation in &query.aggregations {
            if let Some(value) = row.try_get::<Option<f64>, _>(column)? {
                values.push((aggregation.label(), value));
            }
            column += 1;
        }
        // A group whose every aggregate is NULL (AVG of no rows) is no point.
        if !values.is_empty() {
            points.push(DataPoint {
                time_bucket_ms,
                dimensions,
                values,
            });
        }
    }
    Ok(points)
}
