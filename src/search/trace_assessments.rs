//! Trace search over assessments: `feedback.<name>`, `expectation.<name>`
//! and `issue.id`, rendered over MLflow's `assessments` table as its SQL
//! store does (`_get_filter_clauses_for_search_traces`). Parsing, and the
//! value each comparator takes, belong to `filter`.
//!
//! Left out: MLflow also lets an assessment logged on a session (metadata
//! holding `"mlflow.trace.session":`) match every trace of that session.
//! ferroflow does not log session-scoped assessments, so only the trace's
//! own rows count.

use super::filter::{Comparator, Comparison, EntityType, Value};
use super::sql::{compare, Binds};
use crate::python::py_ascii_string;

/// `assessments.assessment_type` of an issue reference.
const ISSUE: &str = "issue";

/// `[NOT] EXISTS` a valid assessment of the trace with this kind and name
/// whose value passes the comparison. An overridden assessment is no longer
/// valid and stops matching; its override matches instead. As in MLflow,
/// `!=` needs such an assessment: a trace without one matches neither `=`
/// nor `!=`.
pub(super) fn assessment_condition(c: &Comparison, binds: &mut Binds) -> String {
    let kind = binds.text(match c.entity {
        EntityType::Expectation => "expectation",
        _ => "feedback",
    });
    let name = binds.text(&c.key);
    let head = format!(
        "EXISTS (SELECT 1 FROM assessments a WHERE a.trace_id = ti.request_id \
         AND a.assessment_type = {kind} AND a.name = {name} AND a.valid = TRUE"
    );
    let test = match (c.comparator, &c.value) {
        (Comparator::IsNull, _) => return format!("NOT {head})"),
        (Comparator::IsNotNull, _) => return format!("{head})"),
        (Comparator::Eq | Comparator::NotEq, Value::Str(text)) => {
            let matches = json_text_equals(text, binds);
            if c.comparator == Comparator::Eq {
                matches
            } else {
                format!("NOT {matches}")
            }
        }
        // Only numbers have a numeric value: not booleans ("yes"/"no" and
        // booleans get an aggregate for analytics but are not numeric).
        (Comparator::Lt | Comparator::LtEq | Comparator::Gt | Comparator::GtEq, _) => format!(
            "a.is_numeric_value = TRUE AND {}",
            compare("a.aggregate_value", c.comparator, &c.value, binds)
        ),
        // LIKE, ILIKE and RLIKE read the stored JSON text, quotes and all:
        // `LIKE 'go%'` does not match the string "good", `'%go%'` does.
        _ => compare("a.value", c.comparator, &c.value, binds),
    };
    format!("{head} AND {test})")
}

/// The stored value is JSON text (`"good"`, `0.9`, `true`, `{"k": "v"}`), so
/// a filter value matches as written (numbers, booleans, objects) or as a JSON
/// string (`'good'` is `"good"`), spelled as Python's `json.dumps` spells it:
/// non-ASCII escaped (`"g\u00f6"`). A non-ASCII string also matches its
/// unescaped spelling, in case a writer kept the characters as they are.
fn json_text_equals(text: &str, binds: &mut Binds) -> String {
    let escaped = py_ascii_string(text);
    let mut spellings = vec![text.to_string(), escaped];
    if !text.is_ascii() {
        spellings.push(serde_json::Value::String(text.to_string()).to_string());
    }
    let tests: Vec<String> = spellings
        .iter()
        .map(|s| format!("a.value = {}", binds.text(s)))
        .collect();
    format!("({})", tests.join(" OR "))
}

/// `issue.id = 'x'`: the trace has an issue reference to `x` (its name).
/// MLflow does not ask for `valid` here.
pub(super) fn issue_condition(c: &Comparison, binds: &mut Binds) -> String {
    let kind = binds.text(ISSUE);
    let id = binds.value(&c.value);
    format!(
        "EXISTS (SELECT 1 FROM assessments a WHERE a.trace_id = ti.request_id \
         AND a.assessment_type = {kind} AND a.name = {id})"
    )
}
