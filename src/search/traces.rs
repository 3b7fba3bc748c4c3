//! `traces/search`: its filter (the [`TRACES`] grammar) and order_by,
//! rendered to SQL over MLflow's trace tables as MLflow's SQL store does
//! (`_get_filter_clauses_for_search_traces`,
//! `_get_orderby_clauses_for_search_traces`).
//!
//! The query selects trace ids only; the store loads the records of a page.

use super::filter::{self, Comparator, Comparison, EntityType, OrderKey, Value, TRACES};
use super::sql::{compare, nulls_last, Binds};
use super::trace_assessments::{assessment_condition, issue_condition};
use super::trace_metadata::{is_reserved, reserved_metadata_condition};
use super::{rlike, SqlQuery};
use crate::error::{MlflowError, Result};
use crate::store::traces::keys;

/// MLflow's `entity_associations` types of a trace linked to a run or to a
/// prompt version (whose id is `"<name>/<version>"`).
pub const ASSOCIATION_TRACE: &str = "trace";
pub const ASSOCIATION_RUN: &str = "run";
pub const ASSOCIATION_PROMPT_VERSION: &str = "prompt_version";

/// The tag the client sets on a trace linked to prompts; MLflow filters it
/// as `prompt`, through the links.
const LINKED_PROMPTS: &str = "mlflow.linkedPrompts";

/// The `trace_info` column (or expression) of an attribute key.
fn attribute_column(key: &str) -> Result<&'static str> {
    Ok(match key {
        "request_id" => "ti.request_id",
        "experiment_id" => "ti.experiment_id",
        "status" => "ti.status",
        "client_request_id" => "ti.client_request_id",
        "name" => "ti.trace_name",
        "timestamp_ms" => "ti.timestamp_ms",
        "execution_time_ms" => "ti.execution_time_ms",
        "end_time_ms" => "(ti.timestamp_ms + COALESCE(ti.execution_time_ms, 0))",
        other => {
            return Err(MlflowError::invalid_parameter(format!(
                "Invalid attribute key '{other}' for a trace search"
            )))
        }
    })
}

/// `[NOT] EXISTS` a key/value row of the trace (tags or metadata).
fn key_value(table: &str, c: &Comparison, binds: &mut Binds) -> String {
    let key = binds.text(&c.key);
    let head = format!(
        "EXISTS (SELECT 1 FROM {table} kv WHERE kv.request_id = ti.request_id AND kv.key = {key}"
    );
    match c.comparator {
        Comparator::IsNull => format!("NOT {head})"),
        Comparator::IsNotNull => format!("{head})"),
        _ => format!(
            "{head} AND {})",
            compare("kv.value", c.comparator, &c.value, binds)
        ),
    }
}

/// `run_id = X` matches a trace made in the run or linked to it since.
fn in_run(run_id: &Value, binds: &mut Binds) -> String {
    let key = binds.text(keys::SOURCE_RUN);
    let made_in = format!(
        "EXISTS (SELECT 1 FROM trace_request_metadata kv WHERE kv.request_id = ti.request_id \
         AND kv.key = {key} AND kv.value = {})",
        binds.value(run_id)
    );
    let source_type = binds.text(ASSOCIATION_TRACE);
    let destination_type = binds.text(ASSOCIATION_RUN);
    let linked = format!(
        "EXISTS (SELECT 1 FROM entity_associations a WHERE a.source_type = {source_type} \
         AND a.source_id = ti.request_id AND a.destination_type = {destination_type} \
         AND a.destination_id = {})",
        binds.value(run_id)
    );
    format!("({made_in} OR {linked})")
}

/// `prompt = 'name/version'`: the trace is linked to that prompt version.
fn linked_prompt(c: &Comparison, binds: &mut Binds) -> Result<String> {
    if c.comparator != Comparator::Eq {
        return Err(MlflowError::invalid_parameter(format!(
            "Invalid comparator '{}' for prompts filter. Only '=' is supported with format: \
             prompt = \"name/version\"",
            c.comparator.as_str()
        )));
    }
    // `=` always carries one string; anything else reads as no version.
    let prompt_version = match &c.value {
        Value::Str(v) => v.as_str(),
        _ => "",
    };
    if prompt_version.matches('/').count() != 1 {
        return Err(MlflowError::invalid_parameter(format!(
            "Invalid prompts filter value '{prompt_version}'. Expected format: prompt = \
             \"name/version\""
        )));
    }
    let source_type = binds.text(ASSOCIATION_TRACE);
    let destination_type = binds.text(ASSOCIATION_PROMPT_VERSION);
    let id = binds.text(prompt_version);
    Ok(format!(
        "EXISTS (SELECT 1 FROM entity_associations a WHERE a.source_type = {source_type} \
         AND a.source_id = ti.request_id AND a.destination_type = {destination_type} \
         AND a.destination_id = {id})"
    ))
}

/// A span column, or (`attributes.<name>`) a pattern over the span's JSON
/// content, true when any span of the trace matches.
fn span_condition(c: &Comparison, binds: &mut Binds) -> String {
    let test = match c.key.strip_prefix("attributes.") {
        Some(name) => {
            let pattern = match (&c.value, c.comparator) {
                (Value::Str(value), Comparator::RLike) => {
                    Value::Str(rlike::span_attribute_pattern(name, value))
                }
                // MLflow matches the attribute in the span's JSON content:
                // `"<name>"` followed by the pattern.
                (Value::Str(value), _) => Value::Str(format!("%\"{name}\"{value}%")),
                (other, _) => other.clone(),
            };
            compare("s.content", c.comparator, &pattern, binds)
        }
        None => compare(&format!("s.{}", c.key), c.comparator, &c.value, binds),
    };
    format!("EXISTS (SELECT 1 FROM spans s WHERE s.trace_id = ti.request_id AND {test})")
}

fn condition(c: &Comparison, binds: &mut Binds) -> Result<String> {
    Ok(match c.entity {
        EntityType::Attribute if c.key == "prompt" => linked_prompt(c, binds)?,
        EntityType::Tag if c.key == LINKED_PROMPTS => linked_prompt(c, binds)?,
        EntityType::Attribute if c.key == "run_id" => match c.comparator {
            Comparator::Eq => in_run(&c.value, binds),
            _ => key_value(
                "trace_request_metadata",
                &Comparison {
                    key: keys::SOURCE_RUN.into(),
                    ..c.clone()
                },
                binds,
            ),
        },
        EntityType::Attribute => compare(attribute_column(&c.key)?, c.comparator, &c.value, binds),
        // The trace name lives in its own column.
        EntityType::Tag if c.key == keys::TRACE_NAME => {
            compare("ti.trace_name", c.comparator, &c.value, binds)
        }
        EntityType::Tag => key_value("trace_tags", c, binds),
        // Like `run_id =`: linked traces count as the run's too.
        EntityType::Metadata if c.key == keys::SOURCE_RUN && c.comparator == Comparator::Eq => {
            in_run(&c.value, binds)
        }
        EntityType::Metadata if c.key == keys::SESSION => {
            compare("ti.session_id", c.comparator, &c.value, binds)
        }
        EntityType::Metadata if is_reserved(&c.key) => reserved_metadata_condition(c, binds)?,
        EntityType::Metadata => key_value("trace_request_metadata", c, binds),
        EntityType::Span => span_condition(c, binds),
        EntityType::Feedback | EntityType::Expectation => assessment_condition(c, binds),
        EntityType::Issue => issue_condition(c, binds),
        other => {
            return Err(MlflowError::invalid_parameter(format!(
                "Invalid entity type '{}' for a trace search",
                other.mlflow_name()
            )))
        }
    })
}

/// The sort terms of one order_by key, joining what it sorts on.
fn order_terms(key: &OrderKey, n: usize, joins: &mut String, binds: &mut Binds) -> Result<String> {
    let (table, name) = match key.entity {
        EntityType::Attribute if key.key == "run_id" => {
            ("trace_request_metadata", keys::SOURCE_RUN)
        }
        EntityType::Attribute => return Ok(nulls_last(attribute_column(&key.key)?, key.ascending)),
        EntityType::Tag if key.key == keys::TRACE_NAME => {
            return Ok(nulls_last("ti.trace_name", key.ascending))
        }
        EntityType::Metadata if key.key == keys::SESSION => {
            return Ok(nulls_last("ti.session_id", key.ascending))
        }
        EntityType::Metadata if is_reserved(&key.key) => {
            return Err(MlflowError::invalid_parameter(format!(
                "Ordering by reserved metadata '{}' is not supported because it is \
                 represented by multiple columns.",
                key.key
            )))
        }
        EntityType::Tag => ("trace_tags", key.key.as_str()),
        _ => ("trace_request_metadata", key.key.as_str()),
    };
    let alias = format!("o{n}");
    let name = binds.text(name);
    joins.push_str(&format!(
        " LEFT JOIN {table} {alias} ON {alias}.request_id = ti.request_id AND {alias}.key = {name}"
    ));
    Ok(nulls_last(&format!("{alias}.value"), key.ascending))
}

/// `SELECT ti.request_id FROM trace_info ti JOIN experiments e ... WHERE
/// e.workspace = $1 AND ti.experiment_id IN (...) AND <filter> ORDER BY
/// <order_by>, timestamp_ms DESC, request_id LIMIT $ OFFSET $`.
pub fn traces_search_query(
    workspace: &str,
    experiment_ids: &[i64],
    filter: &str,
    order_by: &[String],
    limit: i64,
    offset: i64,
) -> Result<SqlQuery> {
    let comparisons = filter::parse_filter(&TRACES, filter)?;
    let order = filter::parse_order_by(&TRACES, order_by)?;
    let mut binds = Binds::default();
    let workspace = binds.text(workspace);
    let experiments = binds.in_list(
        "ti.experiment_id",
        experiment_ids.iter().map(|&id| super::SqlValue::Int(id)),
    );
    let mut joins = String::new();
    let mut terms = Vec::with_capacity(order.len() + 2);
    for (n, key) in order.iter().enumerate() {
        terms.push(order_terms(key, n, &mut joins, &mut binds)?);
    }
    let ordered_on = |name: &str| {
        order
            .iter()
            .any(|k| k.entity == EntityType::Attribute && k.key == name)
    };
    if !ordered_on("timestamp_ms") {
        terms.push("ti.timestamp_ms DESC".into());
    }
    if !ordered_on("request_id") {
        terms.push("ti.request_id ASC".into());
    }
    let mut conditions = vec![format!("e.workspace = {workspace}"), experiments];
    for c in &comparisons {
        conditions.push(condition(c, &mut binds)?);
    }
    let sql = format!(
        "SELECT ti.request_id FROM trace_info ti \
         JOIN experiments e ON e.experiment_id = ti.experiment_id{joins} \
         WHERE {} ORDER BY {}",
        conditions.join(" AND "),
        terms.join(", ")
    );
    Ok(binds.finish(sql, limit, offset))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::search::SqlValue;

    fn render(filter: &str, order_by: &[&str]) -> Result<SqlQuery> {
        let order_by: Vec<String> = order_by.iter().map(|s| s.to_string()).collect();
        traces_search_query("default", &[1, 2], filter, &order_by, 10, 0)
    }

    #[test]
    fn the_default_order_is_newest_first_then_id() {
        let q = render("", &[]).unwrap();
        assert!(q
            .sql
            .ends_with("ORDER BY ti.timestamp_ms DESC, ti.request_id ASC LIMIT $4 OFFSET $5"));
    }

    #[test]
    fn name_and_run_id_map_to_where_mlflow_keeps_them() {
        let q = render("trace.name = 'chat' AND run_id = 'abc'", &[]).unwrap();
        assert!(q.sql.contains("ti.trace_name = $4"));
        assert!(q.sql.contains("entity_associations"));
        let q = render("tags.`mlflow.traceName` LIKE 'c%'", &[]).unwrap();
        assert!(q.sql.contains("ti.trace_name LIKE"));
    }

    #[test]
    fn order_by_a_tag_joins_it_and_keeps_the_tie_break() {
        let q = render("", &["tags.k DESC", "timestamp ASC"]).unwrap();
        assert!(q.sql.contains("LEFT JOIN trace_tags o0"));
        assert!(q.sql.contains(
            "ORDER BY o0.value DESC NULLS LAST, ti.timestamp_ms ASC NULLS LAST, ti.request_id ASC"
        ));
    }

    #[test]
    fn rlike_renders_one_spelling_for_both_databases() {
        let q = render(
            "tags.env RLIKE '^prod' AND metadata.`mlflow.trace.session` RLIKE 's'",
            &[],
        )
        .unwrap();
        assert!(
            q.sql.contains("regexp_match(kv.value, $5) IS NOT NULL"),
            "{}",
            q.sql
        );
        assert!(q
            .sql
            .contains("regexp_match(ti.session_id, $6) IS NOT NULL"));
        let q = render("span.attributes.mlflow.spanType RLIKE '^LLM$'", &[]).unwrap();
        assert!(q.sql.contains("regexp_match(s.content, $4)"), "{}", q.sql);
        assert_eq!(
            q.binds[3],
            SqlValue::Text(r#""mlflow\.spanType": "\\"(?:LLM)\\""#.into())
        );
    }

    #[test]
    fn feedback_matches_valid_assessments_by_json_text_or_number() {
        let texts = |q: &SqlQuery| -> Vec<String> {
            q.binds
                .iter()
                .filter_map(|b| match b {
                    SqlValue::Text(t) => Some(t.clone()),
                    _ => None,
                })
                .collect()
        };
        let q = render("feedback.quality = 'good'", &[]).unwrap();
        assert!(q.sql.contains(
            "EXISTS (SELECT 1 FROM assessments a WHERE a.trace_id = ti.request_id \
             AND a.assessment_type = $4 AND a.name = $5 AND a.valid = TRUE \
             AND (a.value = $6 OR a.value = $7))"
        ));
        assert_eq!(texts(&q)[1..], ["feedback", "quality", "good", "\"good\""]);
        // json.dumps escapes non-ASCII; the unescaped spelling matches too.
        let q = render("feedback.quality = 'gööd'", &[]).unwrap();
        assert!(q
            .sql
            .contains("(a.value = $6 OR a.value = $7 OR a.value = $8))"));
        assert_eq!(texts(&q)[3..], ["gööd", r#""g\u00f6\u00f6d""#, r#""gööd""#]);
        let q = render("expectation.answer != 'X'", &[]).unwrap();
        assert!(q.sql.contains("AND NOT (a.value = $6 OR a.value = $7))"));
        let q = render("feedback.score >= 0.5", &[]).unwrap();
        assert!(q
            .sql
            .contains("AND a.is_numeric_value = TRUE AND a.aggregate_value >= $6)"));
        assert_eq!(q.binds[5], SqlValue::Float(0.5));
        let q = render("feedback.quality IS NULL", &[]).unwrap();
        assert!(q.sql.contains("NOT EXISTS (SELECT 1 FROM assessments a"));
        let q = render("feedback.quality LIKE '%go%'", &[]).unwrap();
        assert!(q.sql.contains("a.valid = TRUE AND a.value LIKE $6)"));
    }

    #[test]
    fn prompts_match_links_to_one_version() {
        let q = render("prompt = 'greeting/1'", &[]).unwrap();
        assert!(q
            .sql
            .contains("a.destination_type = $5 AND a.destination_id = $6"));
        assert_eq!(q.binds[4], SqlValue::Text("prompt_version".into()));
        for (bad, message) in [
            (
                "prompt LIKE 'greeting/%'",
                "Invalid comparator 'LIKE' for prompts filter.",
            ),
            (
                "prompt != 'greeting/1'",
                "Invalid comparator '!=' for prompts filter.",
            ),
            (
                "prompt = 'greeting'",
                "Invalid prompts filter value 'greeting'.",
            ),
            ("prompt = 'a/b/c'", "Invalid prompts filter value 'a/b/c'."),
            (
                "tags.`mlflow.linkedPrompts` IS NULL",
                "Invalid comparator 'IS NULL' for prompts",
            ),
        ] {
            let err = render(bad, &[]).unwrap_err();
            assert!(err.message.starts_with(message), "{bad}: {}", err.message);
        }
    }

    #[test]
    fn reserved_metadata_compares_columns() {
        let q = render("metadata.`mlflow.trace.tokenUsage` IS NULL", &[]).unwrap();
        assert!(q.sql.contains("NOT (ti.input_tokens IS NOT NULL OR"));
        let usage = r#"{"input_tokens": 3, "total_tokens": 7}"#;
        let q = render(
            &format!("metadata.`mlflow.trace.tokenUsage` = '{usage}'"),
            &[],
        )
        .unwrap();
        assert!(q.sql.contains(
            "(ti.input_tokens = $4 AND ti.output_tokens IS NULL AND ti.total_tokens = $5 AND"
        ));
        let q = render(
            "metadata.`mlflow.trace.cost` != '{\"total_cost\":1.0}'",
            &[],
        )
        .unwrap();
        assert!(q.sql.contains("IS NOT NULL) AND NOT 1 = 0)"), "{}", q.sql);
        let err = render("metadata.`mlflow.trace.cost` RLIKE '0'", &[]).unwrap_err();
        assert!(err.message.starts_with(
            "Comparator 'RLIKE' is not supported for reserved metadata 'mlflow.trace.cost'."
        ));
    }

    #[test]
    fn bad_filters_are_invalid_parameters() {
        for bad in [
            "status = OK",
            "trace.bogus = 'x'",
            "span.bogus = 'x'",
            "metrics.m > 1",
            "timestamp_ms > 'x'",
        ] {
            let err = render(bad, &[]).unwrap_err();
            assert_eq!(
                err.code,
                crate::error::ErrorCode::InvalidParameterValue,
                "{bad}"
            );
        }
    }
}
