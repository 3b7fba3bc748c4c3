//! Renders registry searches (`registered-models/search`,
//! `model-versions/search`) to SQL over MLflow's registry tables, mirroring
//! MLflow's SQLAlchemy registry store
//! (mlflow/store/model_registry/sqlalchemy_store.py).
//!
//! Filters are parsed by `filter.rs` with [`filter::REGISTERED_MODELS`] and
//! [`filter::MODEL_VERSIONS`]; order_by keys are parsed here because the
//! registry orders on keys its filters do not know (`timestamp`, ...).

use super::filter::{self, Comparator, Comparison, EntityType, Value};
use super::sql::{compare, Binds};
use super::SqlQuery;
use crate::error::{MlflowError, Result};

/// The tag that marks prompts, which share the registry tables with models.
const IS_PROMPT_TAG: &str = "mlflow.prompt.is_prompt";
/// Deleted versions keep their row (and number) under this stage.
const STAGE_DELETED_INTERNAL: &str = "Deleted_Internal";

/// The columns every model-version read selects, table alias `v`.
pub const MODEL_VERSION_COLUMNS: &str = "v.name, v.version, v.creation_time, \
     v.last_updated_time, v.description, v.user_id, v.current_stage, v.source, v.run_id, \
     v.status, v.status_message, v.run_link, v.storage_location";

fn invalid(message: impl Into<String>) -> MlflowError {
    MlflowError::invalid_parameter(message)
}

/// A Python list repr of strings, as MLflow's messages print `order_by`.
fn python_list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| format!("'{s}'")).collect();
    format!("[{}]", quoted.join(", "))
}

/// `_parse_order_by_string`: `"<key> [ASC|DESC]"`, backticks or double quotes
/// around the key allowed. Returns the key and whether it sorts ascending.
fn parse_order_by_item(item: &str) -> Result<(String, bool)> {
    let text = item.replace('`', "\"");
    let mut tokens: Vec<String> = Vec::new();
    let mut current = String::new();
    let mut quote: Option<char> = None;
    let mut in_token = false;
    for c in text.chars() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => current.push(c),
            None if c == '"' || c == '\'' => {
                quote = Some(c);
                in_token = true;
            }
            None if c.is_whitespace() => {
                if in_token {
                    tokens.push(std::mem::take(&mut current));
                    in_token = false;
                }
            }
            None => {
                current.push(c);
                in_token = true;
            }
        }
    }
    if in_token {
        tokens.push(current);
    }
    let unparsable = || {
        invalid(format!(
            "Invalid order_by clause '{item}'. Could not be parsed."
        ))
    };
    if quote.is_some() {
        return Err(unparsable());
    }
    match tokens.as_slice() {
        [key] if !key.trim().is_empty() => Ok((key.trim().to_string(), true)),
        [key, direction] => match direction.to_ascii_lowercase().as_str() {
            "asc" => Ok((key.trim().to_string(), true)),
            "desc" => Ok((key.trim().to_string(), false)),
            _ => Err(invalid(format!(
                "Invalid ordering key in order_by clause '{item}'."
            ))),
        },
        _ => Err(unparsable()),
    }
}

/// `column DIR` terms for the given order_by, with MLflow's duplicate check;
/// `column_of` maps a key to its column or rejects it.
fn order_terms(
    order_by: &[String],
    column_of: impl Fn(&str) -> Result<&'static str>,
) -> Result<Vec<(&'static str, bool)>> {
    let mut terms: Vec<(&'static str, bool)> = Vec::new();
    for item in order_by {
        let (key, ascending) = parse_order_by_item(item)?;
        let column = column_of(&key)?;
        if terms.iter().any(|(c, _)| *c == column) {
            return Err(invalid(format!(
                "`order_by` contains duplicate fields: {}",
                python_list(order_by)
            )));
        }
        terms.push((column, ascending));
    }
    Ok(terms)
}

fn render_order(terms: &[(&str, bool)]) -> String {
    terms
        .iter()
        .map(|(column, ascending)| format!("{column} {}", if *ascending { "ASC" } else { "DESC" }))
        .collect::<Vec<_>>()
        .join(", ")
}

/// MLflow returns prompts only when the filter asks for them
/// (`tags.mlflow.prompt.is_prompt = 'true'` or `!= 'false'`); otherwise it
/// drops any condition on that tag and excludes prompts, so models without
/// the tag pass the client's default ``tag.`mlflow.prompt.is_prompt` != 'true'``.
fn is_querying_prompts(comparisons: &[Comparison]) -> bool {
    comparisons
        .iter()
        .find(|c| c.entity == EntityType::Tag && c.key == IS_PROMPT_TAG)
        .is_some_and(|c| match &c.value {
            Value::Str(v) => {
                (c.comparator == Comparator::Eq && v.eq_ignore_ascii_case("true"))
                    || (c.comparator == Comparator::NotEq && v.eq_ignore_ascii_case("false"))
            }
            _ => false,
        })
}

/// A tag condition: the row must exist and match (MLflow inner-joins the
/// matching tag rows), so `!=` does not pass entities without the tag.
fn tag_condition(table: &str, owner_match: &str, c: &Comparison, binds: &mut Binds) -> String {
    let key = binds.text(&c.key);
    let test = compare("t.value", c.comparator, &c.value, binds);
    format!("EXISTS (SELECT 1 FROM {table} t WHERE {owner_match} AND t.key = {key} AND {test})")
}

/// Builds `registered-models/search`:
/// `SELECT m.name FROM registered_models m WHERE m.workspace = $1 AND
/// <filter> ORDER BY <order_by>, name ASC LIMIT $ OFFSET $`.
///
/// Order keys: `name`, and `timestamp` or `last_updated_timestamp` (both the
/// last-updated time); a `name ASC` tie-break is added unless ordered on.
pub fn registered_models_search_query(
    workspace: &str,
    filter: &str,
    order_by: &[String],
    limit: i64,
    offset: i64,
) -> Result<SqlQuery> {
    let comparisons = filter::parse_filter(&filter::REGISTERED_MODELS, filter)?;
    let mut order = order_terms(order_by, |key| match key {
        "name" => Ok("m.name"),
        "timestamp" | "last_updated_timestamp" => Ok("m.last_updated_time"),
        _ => Err(invalid(format!(
            "Invalid order by key '{key}' specified. Valid keys are '{{'name', 'timestamp'}}'"
        ))),
    })?;
    if !order.iter().any(|(c, _)| *c == "m.name") {
        order.push(("m.name", true));
    }
    let mut binds = Binds::default();
    let workspace = binds.text(workspace);
    let mut conditions = vec![format!("m.workspace = {workspace}")];
    let prompts = is_querying_prompts(&comparisons);
    let owner = "t.workspace = m.workspace AND t.name = m.name";
    for c in &comparisons {
        conditions.push(match c.entity {
            EntityType::Attribute => compare("m.name", c.comparator, &c.value, &mut binds),
            EntityType::Tag if !prompts && c.key == IS_PROMPT_TAG => continue,
            EntityType::Tag => tag_condition("registered_model_tags", owner, c, &mut binds),
            other => {
                return Err(invalid(format!(
                    "Invalid token type: {}",
                    other.mlflow_name()
                )))
            }
        });
    }
    if !prompts {
        conditions.push(exclude_prompts("registered_model_tags", "m", &mut binds));
    }
    let sql = format!(
        "SELECT m.name FROM registered_models m WHERE {} ORDER BY {}",
        conditions.join(" AND "),
        render_order(&order)
    );
    Ok(binds.finish(sql, limit, offset))
}

/// `NOT EXISTS` a `mlflow.prompt.is_prompt = 'true'` tag on the entity's
/// model name (for versions: on any version of the same name, as MLflow's
/// anti-join groups version tags by name).
fn exclude_prompts(table: &str, alias: &str, binds: &mut Binds) -> String {
    let key = binds.text(IS_PROMPT_TAG);
    let value = binds.text("true");
    format!(
        "NOT EXISTS (SELECT 1 FROM {table} p WHERE p.workspace = {alias}.workspace \
         AND p.name = {alias}.name AND p.key = {key} AND p.value = {value})"
    )
}

/// Builds `model-versions/search`:
/// `SELECT <MODEL_VERSION_COLUMNS> FROM model_versions v WHERE v.workspace = $1
/// AND v.current_stage <> 'Deleted_Internal' AND <filter> ORDER BY ...`.
///
/// Default order `last_updated_timestamp DESC, name ASC, version_number DESC`;
/// `name ASC` and `version DESC` tie-breaks are added unless ordered on.
pub fn model_versions_search_query(
    workspace: &str,
    filter: &str,
    order_by: &[String],
    limit: i64,
    offset: i64,
) -> Result<SqlQuery> {
    let comparisons = filter::parse_filter(&filter::MODEL_VERSIONS, filter)?;
    let default_order = [
        "last_updated_timestamp DESC".to_string(),
        "name ASC".to_string(),
        "version_number DESC".to_string(),
    ];
    let order_by = if order_by.is_empty() {
        &default_order[..]
    } else {
        order_by
    };
    let mut order = order_terms(order_by, |key| {
        let key = key
            .strip_prefix("attributes.")
            .or_else(|| key.strip_prefix("attribute."))
            .unwrap_or(key);
        match key {
            "name" => Ok("v.name"),
            "version_number" => Ok("v.version"),
            "creation_timestamp" => Ok("v.creation_time"),
            "last_updated_timestamp" => Ok("v.last_updated_time"),
            _ => Err(invalid(format!(
                "Invalid order by key '{key}' specified. Valid keys are '{{'name', \
                 'version_number', 'creation_timestamp', 'last_updated_timestamp'}}'"
            ))),
        }
    })?;
    if !order.iter().any(|(c, _)| *c == "v.name") {
        order.push(("v.name", true));
    }
    if !order.iter().any(|(c, _)| *c == "v.version") {
        order.push(("v.version", false));
    }
    let mut binds = Binds::default();
    let workspace = binds.text(workspace);
    let deleted = binds.text(STAGE_DELETED_INTERNAL);
    let mut conditions = vec![
        format!("v.workspace = {workspace}"),
        format!("v.current_stage <> {deleted}"),
    ];
    let prompts = is_querying_prompts(&comparisons);
    let owner = "t.workspace = v.workspace AND t.name = v.name AND t.version = v.version";
    for c in &comparisons {
        conditions.push(match c.entity {
            EntityType::Attribute => {
                let column = match c.key.as_str() {
                    "name" => "v.name",
                    "run_id" => "v.run_id",
                    "source_path" => "v.source",
                    "version_number" => "v.version",
                    other => return Err(invalid(format!("Invalid attribute name: {other}"))),
                };
                compare(column, c.comparator, &c.value, &mut binds)
            }
            EntityType::Tag if !prompts && c.key == IS_PROMPT_TAG => continue,
            EntityType::Tag => tag_condition("model_version_tags", owner, c, &mut binds),
            other => {
                return Err(invalid(format!(
                    "Invalid token type: {}",
                    other.mlflow_name()
                )))
            }
        });
    }
    if !prompts {
        conditions.push(exclude_prompts("model_version_tags", "v", &mut binds));
    }
    let sql = format!(
        "SELECT {MODEL_VERSION_COLUMNS} FROM model_versions v WHERE {} ORDER BY {}",
        conditions.join(" AND "),
        render_order(&order)
    );
    Ok(binds.finish(sql, limit, offset))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::search::SqlValue;

    #[test]
    fn registered_models_exclude_prompts_by_default() {
        let q = registered_models_search_query(
            "default",
            "name LIKE 'a%' AND tag.`mlflow.prompt.is_prompt` != 'true'",
            &[],
            101,
            0,
        )
        .unwrap();
        assert!(q.sql.contains("NOT EXISTS"), "{}", q.sql);
        assert!(
            q.sql.ends_with("ORDER BY m.name ASC LIMIT $5 OFFSET $6"),
            "{}",
            q.sql
        );
        assert_eq!(q.binds[1], SqlValue::Text("a%".into()));
    }

    #[test]
    fn prompt_queries_keep_the_tag_condition() {
        let q = registered_models_search_query(
            "default",
            "tags.`mlflow.prompt.is_prompt` = 'true'",
            &[],
            10,
            0,
        )
        .unwrap();
        assert!(q
            .sql
            .contains("EXISTS (SELECT 1 FROM registered_model_tags t"));
        assert!(!q.sql.contains("NOT EXISTS"));
    }

    #[test]
    fn registry_order_by_keys() {
        let ok = registered_models_search_query(
            "default",
            "",
            &["timestamp DESC".into(), "`name`".into()],
            10,
            0,
        )
        .unwrap();
        assert!(ok
            .sql
            .contains("ORDER BY m.last_updated_time DESC, m.name ASC"));
        for bad in [
            vec!["creation_timestamp".to_string()],
            vec!["name".into(), "name DESC".into()],
            vec!["timestamp".into(), "last_updated_timestamp".into()],
            vec!["name sideways".into()],
            vec!["a b c".into()],
        ] {
            assert!(
                registered_models_search_query("default", "", &bad, 10, 0).is_err(),
                "{bad:?}"
            );
        }
        let mv = model_versions_search_query("default", "", &[], 10, 0).unwrap();
        assert!(mv
            .sql
            .contains("ORDER BY v.last_updated_time DESC, v.name ASC, v.version DESC"));
    }

    #[test]
    fn model_version_filters() {
        let q = model_versions_search_query(
            "default",
            "name IN ('a', 'b') AND version_number >= 2 AND run_id = 'r' AND tags.k != 'v'",
            &["version_number ASC".into()],
            10,
            0,
        )
        .unwrap();
        assert!(q.sql.contains("v.name IN ($3, $4)"), "{}", q.sql);
        assert!(q.sql.contains("v.version >= $5"), "{}", q.sql);
        assert!(
            q.sql.contains("ORDER BY v.version ASC, v.name ASC LIMIT"),
            "{}",
            q.sql
        );
        for bad in [
            "version_number = 1.5",
            "source_path IN ('a')",
            "tags.k IS NULL",
            "metrics.m > 1",
            "status = 'READY'",
        ] {
            assert!(
                model_versions_search_query("default", bad, &[], 10, 0).is_err(),
                "{bad}"
            );
        }
    }
}
