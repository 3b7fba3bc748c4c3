//! `logged-models/search`: its filter (the [`LOGGED_MODELS`] grammar), its
//! order_by objects and its page token, rendered to SQL over MLflow's
//! `logged_models` tables like MLflow's SQL store does
//! (`_apply_filter_string_datasets_search_logged_models`,
//! `_apply_order_by_search_logged_models`).

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde::{Deserialize, Serialize};

use super::filter::{self, Comparison, EntityType, Value, LOGGED_MODELS};
use super::sql::{compare, nulls_last, Binds};
use super::{SqlQuery, SqlValue};
use crate::error::{MlflowError, Result};
use crate::model::LoggedModelStatus;

/// One `order_by` object of the request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoggedModelOrder {
    pub field_name: String,
    pub ascending: bool,
    pub dataset_name: Option<String>,
    pub dataset_digest: Option<String>,
}

/// One `datasets` entry: metric comparisons count only metrics of these datasets.
#[derive(Debug, Clone, PartialEq)]
pub struct DatasetFilter {
    pub dataset_name: String,
    pub dataset_digest: Option<String>,
}

/// Default page size when the request sets none (MLflow's store default).
pub const DEFAULT_MAX_RESULTS: i64 = 100;

/// Logged-model columns `order_by` may name, after MLflow's aliases.
fn order_column(field: &str) -> Option<&'static str> {
    Some(match field {
        "creation_time" | "creation_timestamp" | "creation_timestamp_ms" => {
            "lm.creation_timestamp_ms"
        }
        "last_updated_timestamp" | "last_updated_timestamp_ms" => "lm.last_updated_timestamp_ms",
        "model_id" => "lm.model_id",
        "experiment_id" => "lm.experiment_id",
        "name" => "lm.name",
        "artifact_location" => "lm.artifact_location",
        "status" => "lm.status",
        "lifecycle_stage" => "lm.lifecycle_stage",
        "model_type" => "lm.model_type",
        "source_run_id" => "lm.source_run_id",
        "status_message" => "lm.status_message",
        _ => return None,
    })
}

/// The column a filter attribute compares, after the grammar resolved aliases.
fn filter_column(key: &str) -> &'static str {
    match key {
        "name" => "lm.name",
        "model_id" => "lm.model_id",
        "model_type" => "lm.model_type",
        "status" => "lm.status",
        "source_run_id" => "lm.source_run_id",
        "experiment_id" => "lm.experiment_id",
        "creation_timestamp_ms" => "lm.creation_timestamp_ms",
        _ => "lm.last_updated_timestamp_ms",
    }
}

/// `status` is stored as its proto number; filters name it (`'READY'`).
fn status_value(value: &Value) -> Result<Value> {
    let number = |name: &str| {
        LoggedModelStatus::parse(name)
            .map(LoggedModelStatus::number)
            .ok_or_else(|| {
                MlflowError::invalid_parameter(format!("Invalid logged model status: '{name}'"))
            })
    };
    Ok(match value {
        Value::Str(name) => Value::Int(number(name)?),
        Value::StrList(names) => {
            Value::IntList(names.iter().map(|n| number(n)).collect::<Result<_>>()?)
        }
        other => other.clone(),
    })
}

/// `(dataset_name = $ AND dataset_digest = $) OR ...` over `alias`'s metrics.
fn dataset_condition(alias: &str, datasets: &[DatasetFilter], binds: &mut Binds) -> Option<String> {
    let terms: Vec<String> = datasets
        .iter()
        .map(|d| {
            let name = binds.text(&d.dataset_name);
            match &d.dataset_digest {
                Some(digest) => {
                    let digest = binds.text(digest);
                    format!("({alias}.dataset_name = {name} AND {alias}.dataset_digest = {digest})")
                }
                None => format!("{alias}.dataset_name = {name}"),
            }
        })
        .collect();
    (!terms.is_empty()).then(|| format!("({})", terms.join(" OR ")))
}

fn condition(c: &Comparison, datasets: &[DatasetFilter], binds: &mut Binds) -> Result<String> {
    let key_value = |table: &str, key_column: &str, value_column: &str, binds: &mut Binds| {
        let key = binds.text(&c.key);
        let test = compare(&format!("x.{value_column}"), c.comparator, &c.value, binds);
        format!(
            "EXISTS (SELECT 1 FROM {table} x WHERE x.model_id = lm.model_id \
             AND x.{key_column} = {key} AND {test})"
        )
    };
    Ok(match c.entity {
        EntityType::Attribute if c.key == "status" => {
            compare("lm.status", c.comparator, &status_value(&c.value)?, binds)
        }
        EntityType::Attribute => compare(filter_column(&c.key), c.comparator, &c.value, binds),
        EntityType::Param => key_value("logged_model_params", "param_key", "param_value", binds),
        EntityType::Tag => key_value("logged_model_tags", "tag_key", "tag_value", binds),
        EntityType::Metric => {
            let mut sql = key_value("logged_model_metrics", "metric_name", "metric_value", binds);
            if let Some(datasets) = dataset_condition("x", datasets, binds) {
                sql.insert_str(sql.len() - 1, &format!(" AND {datasets}"));
            }
            sql
        }
        other @ (EntityType::Dataset
        | EntityType::Metadata
        | EntityType::Span
        | EntityType::Feedback
        | EntityType::Expectation
        | EntityType::Issue) => {
            return Err(MlflowError::invalid_parameter(format!(
                "Invalid entity type '{}' for a logged model search",
                other.mlflow_name()
            )))
        }
    })
}

/// A `LEFT JOIN` of each model's latest value of a metric (by timestamp, then
/// step, then run id, as MLflow picks it) and the sort terms on it.
fn metric_order(
    key: &str,
    order: &LoggedModelOrder,
    alias: &str,
    sql: &mut String,
    binds: &mut Binds,
) -> String {
    let name = binds.text(key);
    let mut narrow = String::new();
    if let Some(dataset) = &order.dataset_name {
        narrow.push_str(&format!(" AND dataset_name = {}", binds.text(dataset)));
    }
    if let Some(digest) = &order.dataset_digest {
        narrow.push_str(&format!(" AND dataset_digest = {}", binds.text(digest)));
    }
    sql.push_str(&format!(
        " LEFT JOIN (SELECT model_id, metric_value FROM (SELECT model_id, metric_value, \
         ROW_NUMBER() OVER (PARTITION BY model_id ORDER BY metric_timestamp_ms DESC, \
         metric_step DESC, run_id ASC) AS rn FROM logged_model_metrics \
         WHERE metric_name = {name}{narrow}) ranked WHERE rn = 1) {alias} \
         ON {alias}.model_id = lm.model_id"
    ));
    nulls_last(&format!("{alias}.metric_value"), order.ascending)
}

/// Builds the search: the ids of the page's models, in order.
///
/// Only active models of the given experiments in `workspace` are searched.
/// The caller passes `limit = max_results + 1` to learn whether more follow.
pub fn logged_models_search_query(
    workspace: &str,
    experiment_ids: &[i64],
    filter: &str,
    datasets: &[DatasetFilter],
    order_by: &[LoggedModelOrder],
    limit: i64,
    offset: i64,
) -> Result<SqlQuery> {
    let comparisons = filter::parse_filter(&LOGGED_MODELS, filter)?;
    let mut binds = Binds::default();
    let workspace = binds.text(workspace);
    let mut sql = format!(
        "SELECT lm.model_id FROM logged_models lm JOIN experiments e \
         ON e.experiment_id = lm.experiment_id AND e.workspace = {workspace}"
    );

    let mut order_terms = Vec::new();
    let (mut has_creation, mut has_model_id) = (false, false);
    for (i, order) in order_by.iter().enumerate() {
        let field = order.field_name.as_str();
        match field.split_once('.') {
            None => {
                let column = order_column(field).ok_or_else(|| {
                    MlflowError::invalid_parameter(format!("Invalid order by field name: {field}"))
                })?;
                has_creation |= column == "lm.creation_timestamp_ms";
                has_model_id |= column == "lm.model_id";
                order_terms.push(nulls_last(column, order.ascending));
            }
            Some(("metrics", key)) => {
                let alias = format!("o{i}");
                order_terms.push(metric_order(key, order, &alias, &mut sql, &mut binds));
            }
            Some(_) => {
                return Err(MlflowError::invalid_parameter(format!(
                    "Invalid order by field name: {field}. Only metrics are supported."
                )))
            }
        }
    }
    if !has_creation {
        order_terms.push("lm.creation_timestamp_ms DESC".into());
    }
    if !has_model_id {
        order_terms.push("lm.model_id ASC".into());
    }

    let mut conditions = vec![
        binds.in_list(
            "lm.experiment_id",
            experiment_ids.iter().map(|&id| SqlValue::Int(id)),
        ),
        "lm.lifecycle_stage <> 'deleted'".to_string(),
    ];
    for comparison in &comparisons {
        conditions.push(condition(comparison, datasets, &mut binds)?);
    }
    // Datasets without a metric filter: models with any metric on those datasets.
    let metric_filtered = comparisons.iter().any(|c| c.entity == EntityType::Metric);
    if !metric_filtered {
        if let Some(datasets) = dataset_condition("x", datasets, &mut binds) {
            conditions.push(format!(
                "EXISTS (SELECT 1 FROM logged_model_metrics x WHERE x.model_id = lm.model_id \
                 AND {datasets})"
            ));
        }
    }
    sql.push_str(&format!(
        " WHERE {} ORDER BY {}",
        conditions.join(" AND "),
        order_terms.join(", ")
    ));
    Ok(binds.finish(sql, limit, offset))
}

/// The page token of this search: MLflow's base64 JSON, which also carries
/// the request it belongs to, so a token is refused for another search.
#[derive(Debug, Serialize, Deserialize)]
pub struct PageToken {
    pub experiment_ids: Vec<String>,
    pub filter_string: Option<String>,
    pub order_by: Option<Vec<LoggedModelOrder>>,
    pub offset: i64,
}

impl PageToken {
    pub fn encode(&self) -> String {
        STANDARD.encode(serde_json::to_vec(self).unwrap_or_default())
    }

    /// The offset a token asks for, after checking it belongs to this search.
    pub fn offset_for(token: Option<&str>, search: &PageToken) -> Result<i64> {
        let Some(token) = token.filter(|t| !t.is_empty()) else {
            return Ok(0);
        };
        let invalid = || MlflowError::invalid_parameter(format!("Invalid page token: {token}"));
        let bytes = STANDARD.decode(token).map_err(|_| invalid())?;
        let decoded: PageToken = serde_json::from_slice(&bytes).map_err(|_| invalid())?;
        let mismatch = |what: &str| {
            MlflowError::invalid_parameter(format!(
                "{what} in the page token do not match the requested {}",
                what.to_lowercase()
            ))
        };
        if decoded.experiment_ids != search.experiment_ids {
            return Err(mismatch("Experiment IDs"));
        }
        if decoded.filter_string != search.filter_string {
            return Err(mismatch("Filter string"));
        }
        if decoded.order_by != search.order_by {
            return Err(mismatch("Order by"));
        }
        if decoded.offset < 0 {
            return Err(invalid());
        }
        Ok(decoded.offset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order(field: &str, ascending: bool) -> LoggedModelOrder {
        LoggedModelOrder {
            field_name: field.into(),
            ascending,
            dataset_name: None,
            dataset_digest: None,
        }
    }

    #[test]
    fn default_order_is_newest_first_then_id() {
        let q = logged_models_search_query("default", &[1], "", &[], &[], 11, 0).unwrap();
        assert!(q.sql.ends_with(
            "ORDER BY lm.creation_timestamp_ms DESC, lm.model_id ASC LIMIT $3 OFFSET $4"
        ));
    }

    #[test]
    fn filters_bind_every_value() {
        let q = logged_models_search_query(
            "default",
            &[1, 2],
            "name = 'model' AND metrics.acc > 0.5 AND status = 'READY' AND tags.`a b` != 'x'",
            &[],
            &[order("metrics.acc", false)],
            11,
            0,
        )
        .unwrap();
        assert!(!q.sql.contains("'model'") && !q.sql.contains("acc"));
        assert!(q.binds.contains(&SqlValue::Int(2)), "status is its number");
        assert!(q.binds.contains(&SqlValue::Text("a b".into())));
    }

    #[test]
    fn bad_fields_are_400s() {
        for (filter, orders) in [
            ("", vec![order("params.a", true)]),
            ("", vec![order("no_such_column", true)]),
            ("status = 'SHINY'", vec![]),
            ("metrics.a = 'x'", vec![]),
            ("name IS NULL", vec![]),
        ] {
            let err = logged_models_search_query("default", &[1], filter, &[], &orders, 1, 0)
                .unwrap_err();
            assert_eq!(
                err.code,
                crate::error::ErrorCode::InvalidParameterValue,
                "{filter}"
            );
        }
    }

    #[test]
    fn tokens_belong_to_their_search() {
        let search = PageToken {
            experiment_ids: vec!["1".into()],
            filter_string: Some("name = 'a'".into()),
            order_by: None,
            offset: 0,
        };
        let token = PageToken {
            offset: 5,
            ..PageToken {
                experiment_ids: search.experiment_ids.clone(),
                filter_string: search.filter_string.clone(),
                order_by: None,
                offset: 0,
            }
        }
        .encode();
        assert_eq!(PageToken::offset_for(Some(&token), &search).unwrap(), 5);
        let other = PageToken {
            filter_string: None,
            ..search
        };
        assert!(PageToken::offset_for(Some(&token), &other).is_err());
        assert!(PageToken::offset_for(Some("???"), &other).is_err());
    }
}
