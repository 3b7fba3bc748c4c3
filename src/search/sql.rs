//! Renders parsed searches to SQL over MLflow's own schema, mirroring the
//! queries of MLflow's SQLAlchemy store (mlflow/store/tracking/sqlalchemy_store.py).
//!
//! Every user value, keys included, is a bound `$N` parameter; only fixed
//! column names and keywords are written into the text. The text is the same
//! for PostgreSQL and SQLite: no `ILIKE`, no dialect switches. Parsing and its
//! errors belong to `filter.rs`.

use super::filter::{self, Comparator, Comparison, EntityType, OrderKey, Value};
use super::{SqlQuery, SqlValue, ViewType};
use crate::error::{MlflowError, Result};

/// The run tag MLflow filters `run_name` through.
const RUN_NAME_TAG: &str = "mlflow.runName";
/// The input tag holding a dataset input's context (`datasets.context`).
const DATASET_CONTEXT_TAG: &str = "mlflow.data.context";

/// The bound values of a query under construction; each push returns its placeholder.
#[derive(Default)]
pub(super) struct Binds(Vec<SqlValue>);

impl Binds {
    pub(super) fn push(&mut self, value: SqlValue) -> String {
        self.0.push(value);
        format!("${}", self.0.len())
    }

    pub(super) fn text(&mut self, text: &str) -> String {
        self.push(SqlValue::Text(text.to_string()))
    }

    pub(super) fn int(&mut self, value: i64) -> String {
        self.push(SqlValue::Int(value))
    }

    /// Placeholders for a filter value: one, or a comma-separated list.
    pub(super) fn value(&mut self, value: &Value) -> String {
        match value {
            Value::Null => "NULL".to_string(),
            Value::Str(s) => self.text(s),
            Value::Int(i) => self.int(*i),
            Value::Float(f) => self.push(SqlValue::Float(*f)),
            Value::StrList(items) => {
                let placeholders: Vec<_> = items.iter().map(|s| self.text(s)).collect();
                placeholders.join(", ")
            }
            Value::IntList(items) => {
                let placeholders: Vec<_> = items.iter().map(|&i| self.int(i)).collect();
                placeholders.join(", ")
            }
        }
    }

    /// `column IN ($a, $b)` for fixed values; an empty set matches nothing.
    pub(super) fn in_list(
        &mut self,
        column: &str,
        values: impl IntoIterator<Item = SqlValue>,
    ) -> String {
        let placeholders: Vec<_> = values.into_iter().map(|v| self.push(v)).collect();
        if placeholders.is_empty() {
            "1 = 0".to_string()
        } else {
            format!("{column} IN ({})", placeholders.join(", "))
        }
    }

    fn lifecycle(&mut self, column: &str, view: ViewType) -> String {
        let stages = view.lifecycle_stages().iter();
        self.in_list(column, stages.map(|s| SqlValue::Text(s.to_string())))
    }

    pub(super) fn finish(mut self, mut sql: String, limit: i64, offset: i64) -> SqlQuery {
        let limit = self.int(limit);
        let offset = self.int(offset);
        sql.push_str(&format!(" LIMIT {limit} OFFSET {offset}"));
        SqlQuery { sql, binds: self.0 }
    }
}

/// `column <comparator> value`. LIKE is case-sensitive on both databases (the
/// SQLite pool sets `case_sensitive_like`); ILIKE lowers both sides.
pub(super) fn compare(
    column: &str,
    comparator: Comparator,
    value: &Value,
    binds: &mut Binds,
) -> String {
    let operator = match comparator {
        Comparator::Eq => "=",
        Comparator::NotEq => "<>",
        Comparator::Lt => "<",
        Comparator::LtEq => "<=",
        Comparator::Gt => ">",
        Comparator::GtEq => ">=",
        Comparator::Like => "LIKE",
        Comparator::ILike => return format!("LOWER({column}) LIKE LOWER({})", binds.value(value)),
        Comparator::RLike => return super::rlike::sql(column, &binds.value(value)),
        Comparator::In => return format!("{column} IN ({})", binds.value(value)),
        Comparator::NotIn => return format!("{column} NOT IN ({})", binds.value(value)),
        Comparator::IsNull => return format!("{column} IS NULL"),
        Comparator::IsNotNull => return format!("{column} IS NOT NULL"),
    };
    format!("{column} {operator} {}", binds.value(value))
}

/// The sort term for one key: rows without a value last in both directions,
/// as MLflow orders them. Spelled `NULLS LAST` (both databases know it) rather
/// than MLflow's `CASE WHEN ... IS NULL` so an index in that order can serve it.
pub(super) fn nulls_last(column: &str, ascending: bool) -> String {
    let direction = if ascending { "ASC" } else { "DESC" };
    format!("{column} {direction} NULLS LAST")
}

fn unsupported(what: &str, key: &str) -> MlflowError {
    MlflowError::invalid_parameter(format!("Invalid {what} '{key}' for this search"))
}

/// The `runs` column of a run attribute (SqlRun.get_attribute_name).
fn run_column(key: &str) -> Result<&'static str> {
    Ok(match key {
        "run_id" => "r.run_uuid",
        "run_name" => "r.name",
        "status" => "r.status",
        "user_id" => "r.user_id",
        "artifact_uri" => "r.artifact_uri",
        "start_time" => "r.start_time",
        "end_time" => "r.end_time",
        _ => return Err(unsupported("attribute key", key)),
    })
}

/// Builds the runs/search query:
/// `SELECT r.run_uuid FROM runs r ... WHERE r.experiment_id IN (...) AND
/// <lifecycle per view> AND <filter> ORDER BY <order_by, then start_time DESC
/// unless ordered on, then run_uuid> LIMIT $ OFFSET $`.
///
/// The caller passes `limit = max_results + 1` to learn whether a next page
/// exists, and validates `max_results` itself.
pub fn runs_search_query(
    experiment_ids: &[i64],
    view: ViewType,
    filter: &str,
    order_by: &[String],
    limit: i64,
    offset: i64,
) -> Result<SqlQuery> {
    let comparisons = filter::parse_filter(&filter::RUNS, filter)?;
    let order = filter::parse_order_by(&filter::RUNS, order_by)?;
    let mut binds = Binds::default();
    let mut sql = String::from("SELECT r.run_uuid FROM runs r");

    // Order keys on metrics, params and tags are LEFT JOINs (at most one row
    // per run and key), so runs lacking the key stay in the result.
    let mut order_terms = Vec::new();
    for (i, key) in order.iter().enumerate() {
        order_terms.extend(run_order_terms(
            key,
            &format!("o{i}"),
            &mut sql,
            &mut binds,
        )?);
    }
    // MLflow's tie-breaks: start_time DESC unless already ordered on, then run_uuid.
    if !order
        .iter()
        .any(|k| k.entity == EntityType::Attribute && k.key == "start_time")
    {
        order_terms.push(nulls_last("r.start_time", false));
    }
    order_terms.push("r.run_uuid ASC".to_string());

    let mut conditions = vec![
        binds.in_list(
            "r.experiment_id",
            experiment_ids.iter().map(|&id| SqlValue::Int(id)),
        ),
        binds.lifecycle("r.lifecycle_stage", view),
    ];
    for comparison in &comparisons {
        conditions.push(run_condition(comparison, &mut binds)?);
    }
    sql.push_str(&format!(
        " WHERE {} ORDER BY {}",
        conditions.join(" AND "),
        order_terms.join(", ")
    ));
    Ok(binds.finish(sql, limit, offset))
}

fn run_order_terms(
    key: &OrderKey,
    alias: &str,
    sql: &mut String,
    binds: &mut Binds,
) -> Result<Vec<String>> {
    let table = match key.entity {
        EntityType::Attribute => return Ok(vec![nulls_last(run_column(&key.key)?, key.ascending)]),
        EntityType::Metric => "latest_metrics",
        EntityType::Param => "params",
        EntityType::Tag => "tags",
        other => return Err(unsupported("order_by entity", other.mlflow_name())),
    };
    let key_param = binds.text(&key.key);
    sql.push_str(&format!(
        " LEFT JOIN {table} {alias} ON {alias}.run_uuid = r.run_uuid AND {alias}.key = {key_param}"
    ));
    let value = nulls_last(&format!("{alias}.value"), key.ascending);
    if key.entity == EntityType::Metric {
        // MLflow: NaN (stored as 0 with is_nan) after real values, missing last.
        let rank = format!(
            "CASE WHEN {alias}.run_uuid IS NULL THEN 2 WHEN {alias}.is_nan = TRUE THEN 1 ELSE 0 END"
        );
        return Ok(vec![rank, value]);
    }
    Ok(vec![value])
}

fn run_condition(c: &Comparison, binds: &mut Binds) -> Result<String> {
    let key_value = |table: &str, alias: &str, key: &str, binds: &mut Binds| {
        let key = binds.text(key);
        let test = compare(&format!("{alias}.value"), c.comparator, &c.value, binds);
        format!(
            "EXISTS (SELECT 1 FROM {table} {alias} WHERE {alias}.run_uuid = r.run_uuid \
             AND {alias}.key = {key} AND {test})"
        )
    };
    Ok(match c.entity {
        // MLflow filters run_name through the mlflow.runName tag, because the
        // name column is empty for runs logged by MLflow <= 1.29.
        EntityType::Attribute if c.key == "run_name" => key_value("tags", "t", RUN_NAME_TAG, binds),
        EntityType::Attribute => compare(run_column(&c.key)?, c.comparator, &c.value, binds),
        // A param or tag filter needs the row: `!=` does not match runs without
        // the key (MLflow inner-joins the filtered rows).
        EntityType::Param | EntityType::Tag => {
            let (table, alias) = if c.entity == EntityType::Param {
                ("params", "p")
            } else {
                ("tags", "t")
            };
            match c.comparator {
                Comparator::IsNull | Comparator::IsNotNull => {
                    let key = binds.text(&c.key);
                    let not = if c.comparator == Comparator::IsNull {
                        "NOT "
                    } else {
                        ""
                    };
                    format!(
                        "{not}EXISTS (SELECT 1 FROM {table} {alias} WHERE \
                         {alias}.run_uuid = r.run_uuid AND {alias}.key = {key})"
                    )
                }
                _ => key_value(table, alias, &c.key, binds),
            }
        }
        EntityType::Metric => {
            let key = binds.text(&c.key);
            let test = compare("m.value", c.comparator, &c.value, binds);
            // NaN is stored as value 0 with is_nan: every comparison with NaN is
            // false except `!=`, so the placeholder 0 never matches (MLflow does the same).
            let test = if c.comparator == Comparator::NotEq {
                format!("({test} OR m.is_nan = TRUE)")
            } else {
                format!("{test} AND m.is_nan = FALSE")
            };
            format!(
                "EXISTS (SELECT 1 FROM latest_metrics m WHERE m.run_uuid = r.run_uuid \
                 AND m.key = {key} AND {test})"
            )
        }
        EntityType::Metadata
        | EntityType::Span
        | EntityType::Feedback
        | EntityType::Expectation
        | EntityType::Issue => return Err(unsupported("entity type", c.entity.mlflow_name())),
        // True when any of the run's dataset inputs matches.
        EntityType::Dataset => {
            let source_type = binds.text("DATASET");
            let destination_type = binds.text("RUN");
            let (join, test) = match c.key.as_str() {
                "context" => {
                    let tag = binds.text(DATASET_CONTEXT_TAG);
                    let test = compare("it.value", c.comparator, &c.value, binds);
                    (
                        " JOIN input_tags it ON it.input_uuid = i.input_uuid",
                        format!("it.name = {tag} AND {test}"),
                    )
                }
                "name" => ("", compare("d.name", c.comparator, &c.value, binds)),
                "digest" => ("", compare("d.digest", c.comparator, &c.value, binds)),
                other => return Err(unsupported("dataset key", other)),
            };
            format!(
                "EXISTS (SELECT 1 FROM inputs i JOIN datasets d ON d.dataset_uuid = i.source_id{join} \
                 WHERE i.destination_id = r.run_uuid AND i.source_type = {source_type} \
                 AND i.destination_type = {destination_type} AND {test})"
            )
        }
    })
}

/// The `experiments` column of an experiment attribute.
fn experiment_column(key: &str) -> Result<&'static str> {
    Ok(match key {
        "experiment_id" => "e.experiment_id",
        "name" => "e.name",
        "creation_time" => "e.creation_time",
        "last_update_time" => "e.last_update_time",
        _ => return Err(unsupported("attribute key", key)),
    })
}

/// An experiment's row as experiments/search selects it (tags are read apart).
pub const EXPERIMENT_COLUMNS: &str = "e.experiment_id, e.name, e.artifact_location, \
     e.lifecycle_stage, e.creation_time, e.last_update_time, e.workspace";

/// Builds the experiments/search query:
/// `SELECT <EXPERIMENT_COLUMNS> FROM experiments e WHERE e.workspace = $1 AND
/// <lifecycle per view> AND <filter> ORDER BY ... LIMIT $ OFFSET $`.
///
/// Order: the given keys then `experiment_id DESC` unless ordered on, or by
/// default `creation_time DESC, experiment_id ASC` (MLflow's
/// `_get_search_experiments_order_by_clauses`).
pub fn experiments_search_query(
    workspace: &str,
    view: ViewType,
    filter: &str,
    order_by: &[String],
    limit: i64,
    offset: i64,
) -> Result<SqlQuery> {
    let comparisons = filter::parse_filter(&filter::EXPERIMENTS, filter)?;
    let mut order = filter::parse_order_by(&filter::EXPERIMENTS, order_by)?;
    if order.is_empty() {
        order = vec![
            OrderKey {
                entity: EntityType::Attribute,
                key: "creation_time".to_string(),
                ascending: false,
            },
            OrderKey {
                entity: EntityType::Attribute,
                key: "experiment_id".to_string(),
                ascending: true,
            },
        ];
    }
    if !order.iter().any(|k| k.key == "experiment_id") {
        order.push(OrderKey {
            entity: EntityType::Attribute,
            key: "experiment_id".to_string(),
            ascending: false,
        });
    }

    let mut binds = Binds::default();
    let workspace = binds.text(workspace);
    let mut conditions = vec![
        format!("e.workspace = {workspace}"),
        binds.lifecycle("e.lifecycle_stage", view),
    ];
    for c in &comparisons {
        conditions.push(match c.entity {
            EntityType::Attribute => compare(
                experiment_column(&c.key)?,
                c.comparator,
                &c.value,
                &mut binds,
            ),
            EntityType::Tag => experiment_tag_condition(c, &mut binds),
            other => return Err(unsupported("entity type", other.mlflow_name())),
        });
    }
    let mut order_terms = Vec::new();
    for key in &order {
        order_terms.push(nulls_last(experiment_column(&key.key)?, key.ascending));
    }
    let sql = format!(
        "SELECT {EXPERIMENT_COLUMNS} FROM experiments e WHERE {} ORDER BY {}",
        conditions.join(" AND "),
        order_terms.join(", ")
    );
    Ok(binds.finish(sql, limit, offset))
}

/// Like run tags: `!=` needs the tag to exist (MLflow joins the matching rows).
fn experiment_tag_condition(c: &Comparison, binds: &mut Binds) -> String {
    let key = binds.text(&c.key);
    let head = format!(
        "EXISTS (SELECT 1 FROM experiment_tags t WHERE t.experiment_id = e.experiment_id \
         AND t.key = {key}"
    );
    match c.comparator {
        Comparator::IsNull => format!("NOT {head})"),
        Comparator::IsNotNull => format!("{head})"),
        _ => format!(
            "{head} AND {})",
            compare("t.value", c.comparator, &c.value, binds)
        ),
    }
}
