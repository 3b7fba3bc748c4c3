//! Trace metrics (`traces/metrics`, MLflow's `QueryTraceMetrics`): counts,
//! latencies, token usage, span costs and assessment values over a set of
//! experiments, grouped by dimensions and time buckets. The web UI's
//! experiment overview charts are drawn from these. This module holds the
//! query, MLflow's validation tables and the filter grammar; the SQL is in
//! `sql/trace_metrics.rs`.

use crate::error::{MlflowError, Result};
use crate::python::py_float;

/// What rows a metric is computed over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricView {
    Traces,
    Spans,
    Assessments,
}

impl MetricView {
    pub fn parse(name: &str) -> Result<Self> {
        match name {
            "TRACES" | "1" => Ok(Self::Traces),
            "SPANS" | "2" => Ok(Self::Spans),
            "ASSESSMENTS" | "3" => Ok(Self::Assessments),
            other => Err(MlflowError::invalid_parameter(format!(
                "Invalid value {other} for parameter 'view_type' supplied."
            ))),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Traces => "TRACES",
            Self::Spans => "SPANS",
            Self::Assessments => "ASSESSMENTS",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Aggregation {
    Count,
    Sum,
    Avg,
    Min,
    Max,
    /// A percentile in [0, 100], interpolated linearly between neighbours.
    Percentile(f64),
}

impl Aggregation {
    /// An aggregation as sent: its type and, for `PERCENTILE` only, its value.
    pub fn parse(kind: &str, percentile: Option<f64>) -> Result<Self> {
        let aggregation = match kind {
            "COUNT" | "1" => Self::Count,
            "SUM" | "2" => Self::Sum,
            "AVG" | "3" => Self::Avg,
            "PERCENTILE" | "4" => match percentile {
                None => {
                    return Err(MlflowError::invalid_parameter(
                        "Percentile value is required for PERCENTILE aggregation",
                    ))
                }
                Some(p) if !(0.0..=100.0).contains(&p) => {
                    return Err(MlflowError::invalid_parameter(format!(
                        "Percentile value must be between 0 and 100, got {}",
                        py_float(p)
                    )))
                }
                Some(p) => Self::Percentile(p),
            },
            "MIN" | "5" => Self::Min,
            "MAX" | "6" => Self::Max,
            other => {
                return Err(MlflowError::invalid_parameter(format!(
                    "Invalid value {other} for parameter 'aggregation_type' supplied."
                )))
            }
        };
        if percentile.is_some() && !matches!(aggregation, Self::Percentile(_)) {
            return Err(MlflowError::invalid_parameter(format!(
                "Percentile value is only allowed for PERCENTILE aggregation type, got {}",
                aggregation.type_name()
            )));
        }
        Ok(aggregation)
    }

    fn type_name(self) -> &'static str {
        match self {
            Self::Count => "COUNT",
            Self::Sum => "SUM",
            Self::Avg => "AVG",
            Self::Min => "MIN",
            Self::Max => "MAX",
            Self::Percentile(_) => "PERCENTILE",
        }
    }

    /// The key of the value in a data point: the type, or `P50.0` (MLflow
    /// prints the percentile as a Python float; the UI looks it up so).
    pub fn label(self) -> String {
        match self {
            Self::Percentile(p) => format!("P{}", py_float(p)),
            other => other.type_name().to_string(),
        }
    }
}

/// One `traces/metrics` request, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricQuery {
    pub experiment_ids: Vec<i64>,
    pub view: MetricView,
    pub metric: String,
    pub aggregations: Vec<Aggregation>,
    pub dimensions: Vec<String>,
    pub filters: Vec<MetricFilter>,
    /// Bucket width; rows are grouped by epoch-aligned buckets of it.
    pub time_interval_seconds: Option<i64>,
    /// Inclusive bounds on the row's time.
    pub start_time_ms: Option<i64>,
    pub end_time_ms: Option<i64>,
    pub max_results: i64,
}

/// MLflow's default (and only) page: `max_results` truncates, nothing pages.
pub const DEFAULT_MAX_RESULTS: i64 = 1000;

/// One group of a metric's answer.
#[derive(Debug, Clone, PartialEq)]
pub struct DataPoint {
    /// The bucket's start (epoch ms), when bucketed.
    pub time_bucket_ms: Option<i64>,
    /// Requested dimensions and the group's values, in request order.
    pub dimensions: Vec<(String, String)>,
    /// Labels (`COUNT`, `P50.0`) and values; aggregates of no rows left out.
    pub values: Vec<(String, f64)>,
}

/// The metrics of each view, with the aggregations and dimensions each
/// allows, in MLflow's order (its error messages list them).
struct MetricRule {
    name: &'static str,
    aggregations: &'static [&'static str],
    dimensions: &'static [&'static str],
}

const TRACE_DIMENSIONS: &[&str] = &["trace_name", "trace_status"];
const NUMERIC: &[&str] = &["AVG", "MAX", "MIN", "PERCENTILE", "SUM"];
const LATENCY: &[&str] = &["AVG", "MAX", "MIN", "PERCENTILE"];
const MODEL_DIMENSIONS: &[&str] = &["span_model_name", "span_model_provider"];

const TRACE_METRICS: &[MetricRule] = &[
    MetricRule {
        name: "trace_count",
        aggregations: &["COUNT"],
        dimensions: TRACE_DIMENSIONS,
    },
    MetricRule {
        name: "session_count",
        aggregations: &["COUNT"],
        dimensions: &[],
    },
    MetricRule {
        name: "latency",
        aggregations: LATENCY,
        dimensions: &["trace_name"],
    },
    MetricRule {
        name: "input_tokens",
        aggregations: NUMERIC,
        dimensions: &["trace_name"],
    },
    MetricRule {
        name: "output_tokens",
        aggregations: NUMERIC,
        dimensions: &["trace_name"],
    },
    MetricRule {
        name: "total_tokens",
        aggregations: NUMERIC,
        dimensions: &["trace_name"],
    },
    MetricRule {
        name: "cache_read_input_tokens",
        aggregations: NUMERIC,
        dimensions: &["trace_name"],
    },
    MetricRule {
        name: "cache_creation_input_tokens",
        aggregations: NUMERIC,
        dimensions: &["trace_name"],
    },
];

const SPAN_METRICS: &[MetricRule] = &[
    MetricRule {
        name: "span_count",
        aggregations: &["COUNT"],
        dimensions: &[
            "span_model_name",
            "span_model_provider",
            "span_name",
            "span_status",
            "span_type",
        ],
    },
    MetricRule {
        name: "latency",
        aggregations: LATENCY,
        dimensions: &["span_name", "span_status"],
    },
    MetricRule {
        name: "input_cost",
        aggregations: NUMERIC,
        dimensions: MODEL_DIMENSIONS,
    },
    MetricRule {
        name: "output_cost",
        aggregations: NUMERIC,
        dimensions: MODEL_DIMENSIONS,
    },
    MetricRule {
        name: "total_cost",
        aggregations: NUMERIC,
        dimensions: MODEL_DIMENSIONS,
    },
];

const ASSESSMENT_METRICS: &[MetricRule] = &[
    MetricRule {
        name: "assessment_count",
        aggregations: &["COUNT"],
        dimensions: &["assessment_name", "assessment_value"],
    },
    MetricRule {
        name: "assessment_value",
        aggregations: LATENCY,
        dimensions: &["assessment_name"],
    },
];

/// A Python list of strings as MLflow's messages print it: `['a', 'b']`.
fn py_list<'a>(items: impl IntoIterator<Item = &'a str>) -> String {
    let quoted: Vec<String> = items.into_iter().map(|i| format!("'{i}'")).collect();
    format!("[{}]", quoted.join(", "))
}

impl MetricQuery {
    /// MLflow's checks, in its order: the metric, its aggregations, its
    /// dimensions, then the time range a bucketing needs. (Filters are
    /// checked as they are parsed, after these.)
    pub fn validate(&self) -> Result<()> {
        let rules = match self.view {
            MetricView::Traces => TRACE_METRICS,
            MetricView::Spans => SPAN_METRICS,
            MetricView::Assessments => ASSESSMENT_METRICS,
        };
        let rule = rules
            .iter()
            .find(|r| r.name == self.metric)
            .ok_or_else(|| {
                MlflowError::invalid_parameter(format!(
                    "metric_name must be one of {}, got '{}'",
                    py_list(rules.iter().map(|r| r.name)),
                    self.metric
                ))
            })?;
        if self.aggregations.is_empty() {
            return Err(MlflowError::invalid_parameter(
                "At least one aggregation is required",
            ));
        }
        let mut bad: Vec<&str> = self
            .aggregations
            .iter()
            .map(|a| a.type_name())
            .filter(|name| !rule.aggregations.contains(name))
            .collect();
        if !bad.is_empty() {
            bad.sort_unstable();
            bad.dedup();
            return Err(MlflowError::invalid_parameter(format!(
                "Found invalid aggregation_type(s): {}. Supported aggregation types: {}",
                py_list(bad),
                py_list(rule.aggregations.iter().copied())
            )));
        }
        let mut bad: Vec<&str> = self
            .dimensions
            .iter()
            .map(String::as_str)
            .filter(|d| !rule.dimensions.contains(d))
            .collect();
        if !bad.is_empty() {
            bad.sort_unstable();
            bad.dedup();
            return Err(MlflowError::invalid_parameter(format!(
                "Found invalid dimension(s): {}. Supported dimensions: {}",
                py_list(bad),
                py_list(rule.dimensions.iter().copied())
            )));
        }
        if self.time_interval_seconds.is_some()
            && (self.start_time_ms.is_none() || self.end_time_ms.is_none())
        {
            return Err(MlflowError::invalid_parameter(
                "start_time_ms and end_time_ms are required if time_interval_seconds is set",
            ));
        }
        if self.time_interval_seconds.is_some_and(|s| s < 0) {
            return Err(MlflowError::invalid_parameter(
                "time_interval_seconds must be positive",
            ));
        }
        Ok(())
    }
}

/// One element of `filters`: `<view>.<entity>[.<key>] = "<value>"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetricFilter {
    TraceStatus(String),
    TraceTag {
        key: String,
        value: String,
    },
    TraceMetadata {
        key: String,
        value: String,
    },
    /// `span.name`, `span.status` or `span.type`: the `spans` column.
    Span {
        column: &'static str,
        value: String,
    },
    /// `assessment.name` or `assessment.type`.
    Assessment {
        column: &'static str,
        value: String,
    },
}

fn invalid(message: impl Into<String>) -> MlflowError {
    MlflowError::invalid_parameter(message)
}

impl MetricFilter {
    /// Parses one filter. MLflow takes exactly one `=` comparison per
    /// element (the elements are ANDed).
    pub fn parse(text: &str) -> Result<Self> {
        let text = text.trim();
        if text.is_empty() {
            return Err(invalid(format!(
                "Invalid filter: '{text}'. Expected one filter clause."
            )));
        }
        let (lhs, rest) = split_identifier(text);
        let rest = rest.trim_start();
        let (comparator, value) = split_comparator(rest);
        if comparator.is_empty() {
            return Err(invalid(format!(
                "Invalid clause(s) in filter string: {text}"
            )));
        }
        if comparator != "=" {
            return Err(invalid(format!(
                "Invalid comparator: '{comparator}', only '=' operator is supported"
            )));
        }
        let value = quoted_value(value)?;

        let (view, entity_and_key) = lhs.split_once('.').unwrap_or((lhs, ""));
        let (entity, key) = match entity_and_key.split_once('.') {
            Some((entity, key)) => (entity, Some(key.trim_matches('`').to_string())),
            None => (entity_and_key, None),
        };
        let keyless = |name: &str| match &key {
            None => Ok(()),
            Some(_) => Err(invalid(format!(
                "Filtering by {name} does not require a key, use '{view}.{name}' instead"
            ))),
        };
        let keyed = |name: &str| {
            key.clone().filter(|k| !k.is_empty()).ok_or_else(|| {
                invalid(format!(
                    "Filtering by {name} requires a key, e.g. '{view}.{name}.<key> = <value>'"
                ))
            })
        };
        match (view, entity) {
            ("trace", "status") => keyless("status").map(|()| Self::TraceStatus(value)),
            ("trace", "tag") => Ok(Self::TraceTag {
                key: keyed("tag")?,
                value,
            }),
            ("trace", "metadata") => Ok(Self::TraceMetadata {
                key: keyed("metadata")?,
                value,
            }),
            ("trace", other) => Err(invalid(format!(
                "Invalid entity '{other}' specified for view type 'trace'. \
                 Valid entities are ['status', 'tag', 'metadata']"
            ))),
            ("span", name @ ("name" | "status" | "type")) => {
                keyless(name)?;
                let column = match name {
                    "name" => "name",
                    "status" => "status",
                    _ => "type",
                };
                Ok(Self::Span { column, value })
            }
            ("span", other) => Err(invalid(format!(
                "Invalid entity '{other}' specified for view type 'span'. \
                 Valid entities are ['name', 'status', 'type']"
            ))),
            ("assessment", name @ ("name" | "type")) => {
                keyless(name)?;
                let column = if name == "name" {
                    "name"
                } else {
                    "assessment_type"
                };
                Ok(Self::Assessment { column, value })
            }
            ("assessment", other) => Err(invalid(format!(
                "Invalid entity '{other}' specified for view type 'assessment'. \
                 Valid entities are ['name', 'type']"
            ))),
            (other, _) => Err(invalid(format!(
                "Invalid view type '{other}'. Valid values are ['trace', 'span', 'assessment']"
            ))),
        }
    }

    /// Span filters need the spans view, assessment filters the assessments view.
    pub fn check_view(&self, view: MetricView) -> Result<()> {
        let (needs, name) = match self {
            Self::Span { .. } => (MetricView::Spans, "span"),
            Self::Assessment { .. } => (MetricView::Assessments, "assessment"),
            _ => return Ok(()),
        };
        if view == needs {
            return Ok(());
        }
        Err(invalid(format!(
            "Filtering by {name} is only supported for {} view type, got {}",
            needs.name(),
            view.name()
        )))
    }
}

/// The left-hand side (letters, digits, `_`, `.`, and back-quoted parts)
/// and what follows it.
fn split_identifier(text: &str) -> (&str, &str) {
    let mut quoted = false;
    for (i, c) in text.char_indices() {
        match c {
            '`' => quoted = !quoted,
            _ if quoted => {}
            c if c.is_alphanumeric() || c == '_' || c == '.' || c == '-' => {}
            _ => return (&text[..i], &text[i..]),
        }
    }
    (text, "")
}

fn split_comparator(text: &str) -> (&str, &str) {
    let end = text
        .char_indices()
        .find(|(_, c)| !matches!(c, '=' | '!' | '<' | '>'))
        .map_or(text.len(), |(i, _)| i);
    if end > 0 {
        return (&text[..end], &text[end..]);
    }
    // A word comparator (LIKE, IN) is refused like `!=`.
    let word_end = text.find(char::is_whitespace).unwrap_or(text.len());
    match text[..word_end].to_ascii_uppercase().as_str() {
        "LIKE" | "ILIKE" | "RLIKE" | "IN" | "NOT" | "IS" => (&text[..word_end], &text[word_end..]),
        _ => ("", text),
    }
}

/// A value in single or double quotes, alone: `"x" AND ...` is refused.
fn quoted_value(text: &str) -> Result<String> {
    let text = text.trim();
    let quote = text.chars().next().filter(|c| *c == '"' || *c == '\'');
    let Some(quote) = quote else {
        let word = text.split_whitespace().next().unwrap_or_default();
        return Err(invalid(format!(
            "Parameter value is either not quoted or unidentified quote types used for \
             string value {word}. Use either single or double quotes."
        )));
    };
    let body = &text[1..];
    let Some(close) = body.find(quote) else {
        return Err(invalid(format!(
            "Invalid clause(s) in filter string: {text}"
        )));
    };
    let rest = body[close + 1..].trim();
    if !rest.is_empty() {
        let word = rest.split_whitespace().next().unwrap_or_default();
        return Err(invalid(format!(
            "Invalid clause(s) in filter string: {}",
            word.to_ascii_uppercase()
        )));
    }
    Ok(body[..close].to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(view: MetricView, metric: &str) -> MetricQuery {
        MetricQuery {
            experiment_ids: vec![1],
            view,
            metric: metric.into(),
            aggregations: vec![Aggregation::Count],
            dimensions: vec![],
            filters: vec![],
            time_interval_seconds: None,
            start_time_ms: None,
            end_time_ms: None,
            max_results: DEFAULT_MAX_RESULTS,
        }
    }

    #[test]
    fn percentile_labels_print_as_python_floats() {
        assert_eq!(Aggregation::Percentile(50.0).label(), "P50.0");
        assert_eq!(Aggregation::Percentile(99.9).label(), "P99.9");
        assert_eq!(Aggregation::Count.label(), "COUNT");
    }

    #[test]
    fn bad_percentiles_are_client_errors() {
        assert!(Aggregation::parse("PERCENTILE", None).is_err());
        assert!(Aggregation::parse("PERCENTILE", Some(150.0)).is_err());
        assert!(Aggregation::parse("AVG", Some(50.0)).is_err());
        assert_eq!(
            Aggregation::parse("PERCENTILE", Some(90.0)).unwrap(),
            Aggregation::Percentile(90.0)
        );
    }

    #[test]
    fn validation_names_what_is_allowed_as_mlflow_does() {
        let err = query(MetricView::Traces, "bogus").validate().unwrap_err();
        assert!(err
            .message
            .starts_with("metric_name must be one of ['trace_count'"));
        let mut q = query(MetricView::Traces, "latency");
        let err = q.validate().unwrap_err();
        assert_eq!(
            err.message,
            "Found invalid aggregation_type(s): ['COUNT']. \
             Supported aggregation types: ['AVG', 'MAX', 'MIN', 'PERCENTILE']"
        );
        q.aggregations = vec![Aggregation::Avg];
        q.dimensions = vec!["span_name".into()];
        assert_eq!(
            q.validate().unwrap_err().message,
            "Found invalid dimension(s): ['span_name']. Supported dimensions: ['trace_name']"
        );
        let mut q = query(MetricView::Traces, "trace_count");
        q.time_interval_seconds = Some(60);
        assert!(q.validate().is_err());
    }

    #[test]
    fn filters_parse_to_one_equality() {
        assert_eq!(
            MetricFilter::parse("trace.status = \"ERROR\"").unwrap(),
            MetricFilter::TraceStatus("ERROR".into())
        );
        assert_eq!(
            MetricFilter::parse("trace.metadata.`mlflow.trace.user` = 'u'").unwrap(),
            MetricFilter::TraceMetadata {
                key: "mlflow.trace.user".into(),
                value: "u".into()
            }
        );
        assert_eq!(
            MetricFilter::parse("trace.metadata.mlflow.sourceRun = \"r\"").unwrap(),
            MetricFilter::TraceMetadata {
                key: "mlflow.sourceRun".into(),
                value: "r".into()
            }
        );
        assert_eq!(
            MetricFilter::parse("span.type = \"TOOL\"").unwrap(),
            MetricFilter::Span {
                column: "type",
                value: "TOOL".into()
            }
        );
    }

    #[test]
    fn malformed_filters_say_what_is_wrong() {
        let message = |f: &str| MetricFilter::parse(f).unwrap_err().message;
        assert_eq!(
            message("trace.status != \"OK\""),
            "Invalid comparator: '!=', only '=' operator is supported"
        );
        assert_eq!(
            message("trace.status = \"OK\" AND trace.status = \"OK\""),
            "Invalid clause(s) in filter string: AND"
        );
        assert_eq!(
            message(""),
            "Invalid filter: ''. Expected one filter clause."
        );
        assert!(message("trace.status = OK").contains("not quoted"));
        assert_eq!(
            message("trace.tag = \"x\""),
            "Filtering by tag requires a key, e.g. 'trace.tag.<key> = <value>'"
        );
        assert_eq!(
            message("trace.status.x = \"x\""),
            "Filtering by status does not require a key, use 'trace.status' instead"
        );
        assert!(message("foo.bar = \"x\"").starts_with("Invalid view type 'foo'"));
        assert!(message("trace.status").starts_with("Invalid clause(s)"));
    }
}
