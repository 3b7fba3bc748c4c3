//! Spans from OpenTelemetry instrumentations that do not speak MLflow
//! (OpenInference, the OTel GenAI conventions) get MLflow's attributes at
//! ingest, as `mlflow server` adds them: the span type, inputs and
//! outputs, token usage, model and provider. The stored span then shows
//! them, and the trace's record sums the usage.
//!
//! Only the two major conventions are translated; MLflow also knows
//! several framework-specific ones (Traceloop, Vercel AI, Langfuse, ...),
//! and prices spans from a model price table, which ferroflow does not.

use serde_json::Value as Json;

use crate::python::py_string;

/// One convention's attribute names.
struct Convention {
    kind: &'static str,
    span_type: fn(&str) -> Option<&'static str>,
    input_tokens: &'static str,
    output_tokens: &'static str,
    total_tokens: Option<&'static str>,
    cache_read: &'static str,
    cache_write: &'static [&'static str],
    inputs: &'static [&'static str],
    outputs: &'static [&'static str],
    models: &'static [&'static str],
    provider: &'static str,
}

const CONVENTIONS: [Convention; 2] = [
    Convention {
        kind: "openinference.span.kind",
        span_type: |kind| {
            [
                "TOOL",
                "CHAIN",
                "LLM",
                "RETRIEVER",
                "EMBEDDING",
                "AGENT",
                "RERANKER",
                "UNKNOWN",
                "GUARDRAIL",
                "EVALUATOR",
            ]
            .into_iter()
            .find(|k| *k == kind)
        },
        input_tokens: "llm.token_count.prompt",
        output_tokens: "llm.token_count.completion",
        total_tokens: Some("llm.token_count.total"),
        cache_read: "llm.token_count.prompt_details.cache_read",
        cache_write: &["llm.token_count.prompt_details.cache_write"],
        inputs: &["input.value"],
        outputs: &["output.value"],
        models: &[
            "llm.response.model_name",
            "llm.model_name",
            "llm.request.model_name",
            "embedding.model_name",
        ],
        provider: "llm.provider",
    },
    Convention {
        kind: "gen_ai.operation.name",
        span_type: |kind| match kind {
            "chat" => Some("CHAT_MODEL"),
            "create_agent" | "invoke_agent" => Some("AGENT"),
            "embeddings" => Some("EMBEDDING"),
            "execute_tool" => Some("TOOL"),
            "generate_content" | "text_completion" | "response" => Some("LLM"),
            _ => None,
        },
        input_tokens: "gen_ai.usage.input_tokens",
        output_tokens: "gen_ai.usage.output_tokens",
        // The GenAI conventions have no total: input + output.
        total_tokens: None,
        cache_read: "gen_ai.usage.cache_read.input_tokens",
        cache_write: &[
            "gen_ai.usage.cache_write.input_tokens",
            "gen_ai.usage.cache_creation.input_tokens",
        ],
        inputs: &["gen_ai.input.messages", "gen_ai.tool.call.arguments"],
        outputs: &["gen_ai.output.messages", "gen_ai.tool.call.result"],
        models: &["gen_ai.response.model", "gen_ai.request.model"],
        provider: "gen_ai.provider.name",
    },
];

const SPAN_TYPE: &str = "mlflow.spanType";
const INPUTS: &str = "mlflow.spanInputs";
const OUTPUTS: &str = "mlflow.spanOutputs";
const TOKEN_USAGE: &str = "mlflow.chat.tokenUsage";
const MODEL: &str = "mlflow.llm.model";
const PROVIDER: &str = "mlflow.llm.provider";

/// The span's attributes: names and stored (JSON) values, in order.
pub type Attributes<'a> = Vec<(&'a str, String)>;

fn get<'v>(attributes: &'v Attributes<'_>, key: &str) -> Option<&'v str> {
    attributes
        .iter()
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v.as_str())
        .filter(|v| !v.is_empty() && *v != "null" && *v != "\"\"")
}

/// A stored value as a string: JSON strings unquoted, others as written.
fn text(value: &str) -> String {
    match serde_json::from_str::<Json>(value) {
        Ok(Json::String(s)) => s,
        _ => value.to_string(),
    }
}

/// An integer attribute, sent as a number or as a string holding one.
fn int(value: Option<&str>) -> Option<i64> {
    match serde_json::from_str::<Json>(value?).ok()? {
        Json::Number(n) => n.as_i64(),
        Json::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Sets `key` where it is unset or (for the span type) `UNKNOWN`.
fn set(attributes: &mut Attributes<'_>, key: &'static str, value: String) {
    match attributes.iter_mut().find(|(k, _)| *k == key) {
        Some((_, old)) => *old = value,
        None => attributes.push((key, value)),
    }
}

fn first<'v>(attributes: &'v Attributes<'_>, keys: &[&str]) -> Option<&'v str> {
    keys.iter().find_map(|key| get(attributes, key))
}

pub fn translate(attributes: &mut Attributes<'_>) {
    let unknown = get(attributes, SPAN_TYPE).is_none_or(|t| text(t) == "UNKNOWN");
    if unknown {
        let kind = CONVENTIONS.iter().find_map(|c| {
            let kind = text(get(attributes, c.kind)?);
            (c.span_type)(&kind)
        });
        if let Some(kind) = kind {
            set(attributes, SPAN_TYPE, py_string(kind));
        }
    }
    for (target, keys) in [(INPUTS, 0), (OUTPUTS, 1)] {
        if get(attributes, target).is_some() {
            continue;
        }
        let value = CONVENTIONS
            .iter()
            .find_map(|c| first(attributes, if keys == 0 { c.inputs } else { c.outputs }));
        if let Some(value) = value.map(str::to_string) {
            set(attributes, target, value);
        }
    }
    if get(attributes, TOKEN_USAGE).is_none() {
        if let Some(usage) = CONVENTIONS.iter().find_map(|c| usage(attributes, c)) {
            set(attributes, TOKEN_USAGE, usage);
        }
    }
    if get(attributes, MODEL).is_none() {
        if let Some(model) = model_name(attributes) {
            set(attributes, MODEL, py_string(&model));
        }
    }
    if get(attributes, PROVIDER).is_none() {
        let provider = CONVENTIONS
            .iter()
            .find_map(|c| get(attributes, c.provider))
            .map(text);
        if let Some(provider) = provider {
            set(attributes, PROVIDER, py_string(&provider));
        }
    }
}

/// Token usage as MLflow writes it: the counts a convention gives, the
/// total as input + output when it gives none.
fn usage(attributes: &Attributes<'_>, c: &Convention) -> Option<String> {
    let input = int(get(attributes, c.input_tokens));
    let output = int(get(attributes, c.output_tokens));
    let total = c
        .total_tokens
        .and_then(|key| int(get(attributes, key)))
        .or_else(|| Some(input? + output?));
    if input.is_none() && output.is_none() && total.is_none() {
        return None;
    }
    let cache_read = int(get(attributes, c.cache_read));
    let cache_write = c.cache_write.iter().find_map(|k| int(get(attributes, k)));
    let parts: Vec<String> = [
        ("input_tokens", input),
        ("output_tokens", output),
        ("total_tokens", total),
        ("cache_read_input_tokens", cache_read),
        ("cache_creation_input_tokens", cache_write),
    ]
    .into_iter()
    .filter_map(|(key, value)| Some(format!("\"{key}\": {}", value?)))
    .collect();
    Some(format!("{{{}}}", parts.join(", ")))
}

/// The model a convention names, else a `model` field of the inputs or
/// outputs (a chat completion request or response).
fn model_name(attributes: &Attributes<'_>) -> Option<String> {
    if let Some(model) = CONVENTIONS.iter().find_map(|c| first(attributes, c.models)) {
        return Some(text(model));
    }
    [INPUTS, OUTPUTS].iter().find_map(|key| {
        let value = get(attributes, key)?;
        match value
            .trim_start_matches([' ', '\t', '\n', '\r'])
            .starts_with('"')
        {
            // Inputs sent as a string of JSON.
            true => model_field(&serde_json::from_str::<String>(value).ok()?),
            false => model_field(value),
        }
    })
}

/// The `model` string of a JSON object, read without building the rest of
/// it (a span's inputs and outputs can be large).
fn model_field(json: &str) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Model {
        model: Option<Json>,
    }
    if !json
        .trim_start_matches([' ', '\t', '\n', '\r'])
        .starts_with('{')
    {
        return None;
    }
    let model = match serde_json::from_str::<Model>(json) {
        Ok(object) => object.model,
        // A key given twice: the last one counts, as in a full parse.
        Err(_) => serde_json::from_str::<Json>(json)
            .ok()?
            .get("model")
            .cloned(),
    };
    model?.as_str().map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn genai_spans_get_mlflow_attributes() {
        let mut attributes: Attributes = vec![
            ("gen_ai.operation.name", "\"chat\"".into()),
            ("gen_ai.usage.input_tokens", "11".into()),
            ("gen_ai.usage.output_tokens", "4".into()),
            ("gen_ai.usage.cache_read.input_tokens", "3".into()),
            ("gen_ai.request.model", "\"gpt-4o\"".into()),
            ("gen_ai.input.messages", "[{\"role\": \"user\"}]".into()),
        ];
        translate(&mut attributes);
        assert_eq!(get(&attributes, SPAN_TYPE), Some("\"CHAT_MODEL\""));
        assert_eq!(
            get(&attributes, TOKEN_USAGE),
            Some(
                "{\"input_tokens\": 11, \"output_tokens\": 4, \"total_tokens\": 15, \
                 \"cache_read_input_tokens\": 3}"
            )
        );
        assert_eq!(get(&attributes, MODEL), Some("\"gpt-4o\""));
        assert_eq!(get(&attributes, INPUTS), Some("[{\"role\": \"user\"}]"));
    }

    #[test]
    fn openinference_counts_and_mlflow_own_attributes_win() {
        let mut attributes: Attributes = vec![
            ("mlflow.spanType", "\"RETRIEVER\"".into()),
            ("openinference.span.kind", "\"LLM\"".into()),
            ("llm.token_count.prompt", "60".into()),
            ("llm.token_count.completion", "\"30\"".into()),
            ("llm.token_count.total", "90".into()),
        ];
        translate(&mut attributes);
        assert_eq!(get(&attributes, SPAN_TYPE), Some("\"RETRIEVER\""));
        assert_eq!(
            get(&attributes, TOKEN_USAGE),
            Some("{\"input_tokens\": 60, \"output_tokens\": 30, \"total_tokens\": 90}")
        );
    }

    #[test]
    fn the_model_is_read_from_inputs_an_object_or_a_string_of_one() {
        let model_of = |inputs: &str| {
            let attributes: Attributes = vec![(INPUTS, inputs.to_string())];
            model_name(&attributes)
        };
        let object = r#"{"messages": [{"role": "user"}], "model": "gpt-4o", "n": 1}"#;
        assert_eq!(model_of(object).as_deref(), Some("gpt-4o"));
        assert_eq!(
            model_of(&crate::python::py_string(object)).as_deref(),
            Some("gpt-4o")
        );
        assert_eq!(
            model_of(r#"{"model": "a", "model": "b"}"#).as_deref(),
            Some("b")
        );
        for none in [
            r#"["model"]"#,
            r#"{"model": 5}"#,
            r#"{"other": 1}"#,
            "7",
            "{",
        ] {
            assert_eq!(model_of(none), None, "{none}");
        }
    }
}
