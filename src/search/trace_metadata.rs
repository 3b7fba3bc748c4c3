//! Trace search on the reserved metadata `mlflow.trace.tokenUsage` and
//! `mlflow.trace.cost`, which MLflow (and ferroflow) keep as numeric
//! `trace_info` columns and hand back as canonical `json.dumps` text
//! (`get_trace_analytics_metadata_filter` in MLflow's `trace_analytics.py`).

use super::filter::{Comparator, Comparison};
use super::sql::Binds;
use super::SqlValue;
use crate::error::{MlflowError, Result};
use crate::python::py_float;
use crate::store::traces::{keys, COST_COLUMNS, TOKEN_COLUMNS};

/// Whether `key` is one of the metadata keys kept in columns.
pub(super) fn is_reserved(key: &str) -> bool {
    key == keys::TOKEN_USAGE || key == keys::COST
}

/// `IS [NOT] NULL` asks whether any of the key's columns is set. `=` matches
/// only the exact text the server hands back (keys in column order, Python's
/// spacing and float spelling), column by column; a compact or reordered
/// spelling matches nothing. `!=` is "present and not equal".
pub(super) fn reserved_metadata_condition(c: &Comparison, binds: &mut Binds) -> Result<String> {
    let tokens = c.key == keys::TOKEN_USAGE;
    let columns: &[&str] = if tokens {
        &TOKEN_COLUMNS
    } else {
        &COST_COLUMNS
    };
    let present = columns
        .iter()
        .map(|column| format!("ti.{column} IS NOT NULL"))
        .collect::<Vec<_>>()
        .join(" OR ");
    let present = format!("({present})");
    let value = match (c.comparator, &c.value) {
        (Comparator::IsNull, _) => return Ok(format!("NOT {present}")),
        (Comparator::IsNotNull, _) => return Ok(present),
        (Comparator::Eq | Comparator::NotEq, super::filter::Value::Str(value)) => value,
        (other, _) => {
            return Err(MlflowError::invalid_parameter(format!(
                "Comparator '{}' is not supported for reserved metadata '{}'. Only '=', '!=', \
                 'IS NULL', and 'IS NOT NULL' are supported.",
                other.as_str(),
                c.key
            )))
        }
    };
    let equal = match canonical_columns(columns, tokens, value) {
        Some(set) => {
            let terms: Vec<String> = columns
                .iter()
                .map(|column| match set.iter().find(|(name, _)| name == column) {
                    Some((_, v)) => format!("ti.{column} = {}", binds.push(v.clone())),
                    None => format!("ti.{column} IS NULL"),
                })
                .collect();
            format!("({})", terms.join(" AND "))
        }
        None => "1 = 0".to_string(),
    };
    Ok(match c.comparator {
        Comparator::Eq => equal,
        _ => format!("({present} AND NOT {equal})"),
    })
}

/// The column values `value` stands for, if it is the canonical text of a
/// non-empty set of them: re-printed in column order it must read the same.
/// Anything MLflow would normalize (a string count, `2.0` tokens, an unknown
/// key, other spacing) prints differently and so matches nothing, as there.
fn canonical_columns(
    columns: &[&'static str],
    tokens: bool,
    value: &str,
) -> Option<Vec<(&'static str, SqlValue)>> {
    let serde_json::Value::Object(map) = serde_json::from_str(value).ok()? else {
        return None;
    };
    let mut set = Vec::new();
    let mut printed = Vec::new();
    for &column in columns {
        let Some(number) = map.get(column).and_then(|v| v.as_number()) else {
            continue;
        };
        let (bound, text) = if tokens {
            let n = number.as_i64()?;
            (SqlValue::Int(n), n.to_string())
        } else {
            let f = number.as_f64().filter(|f| f.is_finite())?;
            (SqlValue::Float(f), py_float(f))
        };
        set.push((column, bound));
        printed.push(format!("\"{column}\": {text}"));
    }
    let canonical = format!("{{{}}}", printed.join(", "));
    (!set.is_empty() && canonical == value).then_some(set)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_canonical_spelling_names_column_values() {
        let tokens = |v: &str| canonical_columns(&TOKEN_COLUMNS, true, v).map(|s| s.len());
        assert_eq!(
            tokens(r#"{"input_tokens": 17, "output_tokens": 12, "total_tokens": 30}"#),
            Some(3)
        );
        for other in [
            r#"{"input_tokens":17,"output_tokens":12,"total_tokens":30}"#,
            r#"{"output_tokens": 12, "input_tokens": 17}"#,
            r#"{"input_tokens": 2.0}"#,
            r#"{"input_tokens": "2"}"#,
            r#"{"input_tokens": 2, "foo": 1}"#,
            "{}",
            "[1]",
        ] {
            assert_eq!(tokens(other), None, "{other}");
        }
        let costs = |v: &str| canonical_columns(&COST_COLUMNS, false, v).map(|s| s.len());
        assert_eq!(
            costs(r#"{"input_cost": 1e-05, "output_cost": 0.99999, "total_cost": 1.0}"#),
            Some(3)
        );
        assert_eq!(costs(r#"{"total_cost": 1}"#), None);
        assert_eq!(costs(r#"{"total_cost": 0.00001}"#), None);
    }
}
