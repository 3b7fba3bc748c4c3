//! What a trace's record takes from its spans when they arrive over OTLP,
//! as MLflow's `log_spans` derives it: token usage and cost summed over the
//! span tree, the session and user, the root's tags and request/response
//! previews, and each span's model and cost columns.
//!
//! Attribute values are read as stored: JSON text. The MLflow client sends
//! dictionaries as OTLP maps (stored as JSON objects); other SDKs may send
//! them as JSON strings, so a string holding JSON is read through once more.

use std::collections::HashMap;

use serde_json::{Map, Value as Json};

use super::traces::{truncated, COST_COLUMNS, MAX_PREVIEW_LENGTH, TOKEN_COLUMNS};

/// Span attributes MLflow reads facts from.
pub mod attributes {
    pub const TOKEN_USAGE: &str = "mlflow.chat.tokenUsage";
    pub const COST: &str = "mlflow.llm.cost";
    pub const MODEL: &str = "mlflow.llm.model";
    pub const PROVIDER: &str = "mlflow.llm.provider";
    pub const INPUTS: &str = "mlflow.spanInputs";
    pub const OUTPUTS: &str = "mlflow.spanOutputs";
    /// OTel's session id, then the GenAI conversation id.
    pub const SESSION: [&str; 2] = ["session.id", "gen_ai.conversation.id"];
    pub const USER: &str = "user.id";
    /// Root attributes `mlflow.traceTag.<key>` are the trace's tags.
    pub const TRACE_TAG_PREFIX: &str = "mlflow.traceTag.";
}

/// `spans.model_name` / `model_provider` hold at most this many characters.
const MAX_MODEL_LENGTH: usize = 500;

/// What one span says about itself and its trace.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SpanFacts {
    pub usage: Option<Map<String, Json>>,
    pub cost: Option<Map<String, Json>>,
    pub model_name: Option<String>,
    pub model_provider: Option<String>,
    pub session_id: Option<String>,
    pub user_id: Option<String>,
    /// The root's `mlflow.traceTag.*` attributes, as trace tags.
    pub trace_tags: Vec<(String, String)>,
    /// The attributes of the OTLP resource the span came in, as trace tags
    /// (the root's own tags win over them).
    pub resource_tags: Vec<(String, String)>,
    pub inputs: Option<String>,
    pub outputs: Option<String>,
}

/// A stored attribute value, decoded: a JSON string holding JSON is read
/// through once more.
fn decoded(text: &str) -> Option<Json> {
    match serde_json::from_str::<Json>(text).ok()? {
        Json::String(inner) => match serde_json::from_str::<Json>(&inner) {
            Ok(value @ (Json::Object(_) | Json::Array(_))) => Some(value),
            _ => Some(Json::String(inner)),
        },
        other => Some(other),
    }
}

/// A decoded value as plain text: strings as they are, others as JSON.
fn plain(value: Json) -> String {
    match value {
        Json::String(s) => s,
        other => other.to_string(),
    }
}

fn object(text: Option<&str>) -> Option<Map<String, Json>> {
    match decoded(text?)? {
        Json::Object(map) => Some(map),
        _ => None,
    }
}

impl SpanFacts {
    /// The facts of a span whose attribute values (JSON text) `attribute`
    /// looks up; `root` spans also give the trace's tags and previews.
    pub fn read<'a>(attribute: impl Fn(&str) -> Option<&'a str>, root: bool) -> Self {
        let text = |key: &str| attribute(key).and_then(decoded).map(plain);
        let model = |key: &str| {
            text(key)
                .filter(|m| !m.is_empty())
                .map(|m| truncated(&m, MAX_MODEL_LENGTH))
        };
        SpanFacts {
            usage: object(attribute(attributes::TOKEN_USAGE)),
            cost: object(attribute(attributes::COST)),
            model_name: model(attributes::MODEL),
            model_provider: model(attributes::PROVIDER),
            session_id: attributes::SESSION
                .iter()
                .find_map(|key| text(key).filter(|s| !s.is_empty())),
            user_id: text(attributes::USER).filter(|u| !u.is_empty()),
            trace_tags: Vec::new(),
            resource_tags: Vec::new(),
            inputs: root
                .then(|| attribute(attributes::INPUTS))
                .flatten()
                .map(str::to_string),
            outputs: root
                .then(|| attribute(attributes::OUTPUTS))
                .flatten()
                .map(str::to_string),
        }
    }

    /// The facts of a stored span (its `spans.content`), for recomputing a
    /// trace's usage and cost over all of its spans.
    pub fn of_content(content: &str) -> Self {
        let Ok(Json::Object(span)) = serde_json::from_str::<Json>(content) else {
            return Self::default();
        };
        let Some(Json::Object(attrs)) = span.get("attributes") else {
            return Self::default();
        };
        Self::read(|key| attrs.get(key).and_then(Json::as_str), false)
    }

    /// The span's `input_cost`, `output_cost`, `total_cost`.
    pub fn cost_columns(&self) -> [Option<f64>; 3] {
        COST_COLUMNS.map(|key| self.cost.as_ref().and_then(|c| cost_value(c.get(key))))
    }
}

/// A token count as MLflow accepts one: an integer, an integral float, or
/// a string holding one.
pub fn token_count(value: Option<&Json>) -> Option<i64> {
    match value? {
        Json::Number(n) => n.as_i64().or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && f.abs() < 9.2e18)
                .map(|f| f as i64)
        }),
        Json::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// A cost as MLflow accepts one: a finite number (not a boolean).
pub fn cost_value(value: Option<&Json>) -> Option<f64> {
    value?.as_f64().filter(|v| v.is_finite())
}

/// One span of a trace's tree with the dictionary being summed.
pub struct Node<'a> {
    pub span_id: &'a str,
    pub parent_id: Option<&'a str>,
    pub data: Option<&'a Map<String, Json>>,
}

/// Sums `keys` over the spans that carry data and have no ancestor that
/// does: an agent span holding its children's total is counted once, not
/// on top of them (MLflow's rule). `None` when no span carries data.
fn sum_tree(nodes: &[Node<'_>], mut add: impl FnMut(&Map<String, Json>)) -> bool {
    let index: HashMap<&str, &Node> = nodes.iter().map(|n| (n.span_id, n)).collect();
    let mut found = false;
    for node in nodes {
        let Some(data) = node.data else { continue };
        let mut parent = node.parent_id;
        let mut covered = false;
        // Walk up; a cycle (bad input) ends after as many steps as nodes.
        for _ in 0..nodes.len() {
            match parent.and_then(|p| index.get(p)) {
                Some(ancestor) if ancestor.data.is_some() => {
                    covered = true;
                    break;
                }
                Some(ancestor) => parent = ancestor.parent_id,
                None => break,
            }
        }
        if !covered {
            add(data);
            found = true;
        }
    }
    found
}

/// The trace's token usage, one value per `TOKEN_COLUMNS` entry: input,
/// output and total always (0 when no span says), the cache counts only
/// when some span has them.
pub fn total_usage(nodes: &[Node<'_>]) -> Option<[Option<i64>; 6]> {
    let mut totals: [Option<i64>; 6] = [Some(0), Some(0), Some(0), None, None, None];
    let found = sum_tree(nodes, |usage| {
        for (total, key) in totals.iter_mut().zip(TOKEN_COLUMNS) {
            if let Some(count) = token_count(usage.get(key)) {
                *total = Some(total.unwrap_or(0).saturating_add(count));
            }
        }
    });
    found.then_some(totals)
}

/// The trace's cost, one value per `COST_COLUMNS` entry.
pub fn total_cost(nodes: &[Node<'_>]) -> Option<[Option<f64>; 3]> {
    let mut totals = [Some(0.0); 3];
    let found = sum_tree(nodes, |cost| {
        for (total, key) in totals.iter_mut().zip(COST_COLUMNS) {
            if let (Some(sum), Some(value)) = (total.as_mut(), cost_value(cost.get(key))) {
                *sum += value;
            }
        }
    });
    found.then_some(totals)
}

/// A request or response preview from the root's inputs or outputs: the
/// text of the last chat message of `role` when the value holds chat
/// messages, else the value's JSON text as stored; at most 1000 characters.
pub fn preview(value: &str, role: &str) -> String {
    let text = decoded(value)
        .as_ref()
        .and_then(messages)
        .and_then(|messages| {
            let last = messages
                .iter()
                .rev()
                .find(|m| m.get("role").and_then(Json::as_str) == Some(role))
                .or(messages.last())?;
            message_text(last)
        })
        .filter(|t| !t.is_empty());
    // Otherwise the value as stored (a plain string keeps its quotes).
    let text = text.unwrap_or_else(|| value.to_string());
    if text.chars().count() <= MAX_PREVIEW_LENGTH {
        return text;
    }
    let mut cut: String = text.chars().take(MAX_PREVIEW_LENGTH - 3).collect();
    cut.push_str("...");
    cut
}

fn is_message(item: &Json) -> bool {
    item.get("role").is_some() && item.get("content").is_some()
}

/// Chat messages in the shapes MLflow recognises: `messages`, a chat
/// completion's first choice, a Responses API `input`/`output`, or those
/// inside `request`.
fn messages(value: &Json) -> Option<Vec<&Json>> {
    let object = value.as_object()?;
    let list = |key: &str| -> Option<Vec<&Json>> {
        let items = object.get(key)?.as_array().filter(|a| !a.is_empty())?;
        Some(items.iter().filter(|i| is_message(i)).collect())
    };
    if let Some(found) = list("messages") {
        return Some(found);
    }
    let choice = object
        .get("choices")
        .and_then(Json::as_array)
        .and_then(|c| c.first())
        .and_then(|c| c.get("message"))
        .filter(|m| is_message(m));
    if let Some(message) = choice {
        return Some(vec![message]);
    }
    list("input")
        .or_else(|| list("output"))
        .or_else(|| messages(object.get("request")?))
        .filter(|m| !m.is_empty())
}

fn message_text(message: &Json) -> Option<String> {
    match message.get("content")? {
        Json::String(s) => Some(s.clone()),
        Json::Array(parts) => parts.iter().find_map(|part| match part {
            Json::String(s) => Some(s.clone()),
            Json::Object(p)
                if matches!(
                    p.get("type").and_then(Json::as_str),
                    Some("text" | "output_text")
                ) =>
            {
                p.get("text").and_then(Json::as_str).map(str::to_string)
            }
            _ => None,
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(value: Json) -> Map<String, Json> {
        value.as_object().unwrap().clone()
    }

    #[test]
    fn usage_counts_a_rollup_parent_once() {
        let parent = map(json!({"input_tokens": 100, "output_tokens": 50, "total_tokens": 150}));
        let child = map(json!({"input_tokens": 60, "output_tokens": 30, "total_tokens": 90}));
        let leaf = map(
            json!({"input_tokens": 7, "output_tokens": 3, "total_tokens": 10,
                              "cache_read_input_tokens": 2}),
        );
        let nodes = [
            Node {
                span_id: "root",
                parent_id: None,
                data: None,
            },
            Node {
                span_id: "a",
                parent_id: Some("root"),
                data: Some(&parent),
            },
            Node {
                span_id: "b",
                parent_id: Some("a"),
                data: Some(&child),
            },
            Node {
                span_id: "c",
                parent_id: Some("root"),
                data: Some(&leaf),
            },
        ];
        assert_eq!(
            total_usage(&nodes),
            Some([Some(107), Some(53), Some(160), Some(2), None, None])
        );
        let none = [Node {
            span_id: "x",
            parent_id: None,
            data: None,
        }];
        assert_eq!(total_usage(&none), None);
    }

    #[test]
    fn values_may_be_objects_or_json_strings() {
        let attrs: HashMap<&str, &str> = [
            ("mlflow.chat.tokenUsage", "{\"input_tokens\": 3}"),
            ("mlflow.llm.cost", "\"{\\\"total_cost\\\": 0.5}\""),
            ("session.id", "12345"),
            ("mlflow.llm.model", "\"gpt-4o\""),
        ]
        .into();
        let facts = SpanFacts::read(|k| attrs.get(k).copied(), false);
        assert_eq!(
            token_count(facts.usage.as_ref().unwrap().get("input_tokens")),
            Some(3)
        );
        assert_eq!(facts.cost_columns(), [None, None, Some(0.5)]);
        assert_eq!(facts.session_id.as_deref(), Some("12345"));
        assert_eq!(facts.model_name.as_deref(), Some("gpt-4o"));
    }

    #[test]
    fn token_counts_accept_integral_numbers_and_strings() {
        assert_eq!(token_count(Some(&json!(5))), Some(5));
        assert_eq!(token_count(Some(&json!("5"))), Some(5));
        assert_eq!(token_count(Some(&json!(2.0))), Some(2));
        assert_eq!(token_count(Some(&json!(2.5))), None);
        assert_eq!(token_count(Some(&json!(true))), None);
    }

    #[test]
    fn previews_take_the_last_message_of_the_role() {
        let inputs = r#"{"messages": [{"role": "system", "content": "be brief"},
                        {"role": "user", "content": "hi there"}]}"#;
        assert_eq!(preview(inputs, "user"), "hi there");
        let outputs = r#"{"choices": [{"message": {"role": "assistant", "content": "hello"}}]}"#;
        assert_eq!(preview(outputs, "assistant"), "hello");
        assert_eq!(preview(r#"{"q": "x"}"#, "user"), r#"{"q": "x"}"#);
        let long = format!("\"{}\"", "a".repeat(1200));
        let cut = preview(&long, "user");
        assert_eq!(cut.chars().count(), 1000);
        assert!(cut.ends_with("..."));
    }
}
