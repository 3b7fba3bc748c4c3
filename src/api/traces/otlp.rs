//! `POST /v1/traces`: OTLP/HTTP trace export (protobuf or OTLP JSON,
//! optionally gzip), as MLflow 3's server takes it from the MLflow client
//! (client ≥ 3.4 against a server ≥ 3.4) and from any OpenTelemetry SDK.
//! The experiment comes in the `x-mlflow-experiment-id` header.
//!
//! Each span is stored as MLflow stores it: its `Span.to_dict()` as JSON
//! text, attribute values JSON-encoded, written with Python's `json.dumps`
//! spacing so that the stored text is what `mlflow server` would have
//! stored (span attribute filters match on it, and the client compares
//! spans by it).

use std::io::Read;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue};
use opentelemetry_proto::tonic::trace::v1::{status::StatusCode, Span};
use prost::Message;

use super::translate;
use crate::api::wire;
use crate::app::AppState;
use crate::error::{MlflowError, Result};
use crate::model::Workspace;
use crate::python::{py_float, py_string};
use crate::store::span_facts::{attributes as span_attributes, SpanFacts};
use crate::store::traces::NewSpan;

/// The experiment the spans go to, as the MLflow client sends it.
const EXPERIMENT_HEADER: &str = "x-mlflow-experiment-id";
/// The run the finished traces are linked to, when sent.
const RUN_HEADER: &str = "x-mlflow-run-id";
/// The most a compressed body may inflate to: a gzip bomb is refused, not
/// held. (The compressed body itself is bounded by the route's body limit.)
pub const MAX_INFLATED: u64 = 64 * 1024 * 1024;
const REQUEST_ID_ATTRIBUTE: &str = "mlflow.traceRequestId";
const SPAN_TYPE_ATTRIBUTE: &str = "mlflow.spanType";

fn invalid(message: impl Into<String>) -> MlflowError {
    MlflowError::invalid_parameter(message)
}

/// The request body, inflated when `Content-Encoding` says gzip.
fn inflate(headers: &HeaderMap, body: Bytes) -> Result<Vec<u8>> {
    match wire::first_header(headers, "content-encoding").map(str::to_ascii_lowercase) {
        None => Ok(body.to_vec()),
        Some(encoding) if encoding == "identity" => Ok(body.to_vec()),
        Some(encoding) if encoding == "gzip" => {
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(&body[..])
                .take(MAX_INFLATED + 1)
                .read_to_end(&mut out)
                .map_err(|_| invalid("Invalid OpenTelemetry format: the gzip body is corrupt"))?;
            if out.len() as u64 > MAX_INFLATED {
                return Err(invalid(format!(
                    "The OTLP request inflates past {MAX_INFLATED} bytes"
                )));
            }
            Ok(out)
        }
        Some(encoding) => Err(invalid(format!(
            "Unsupported Content-Encoding: {encoding}. Expected gzip"
        ))),
    }
}

fn decode(headers: &HeaderMap, body: &[u8]) -> Result<ExportTraceServiceRequest> {
    let content_type = wire::first_header(headers, "content-type").unwrap_or_default();
    let media = content_type.split(';').next().unwrap_or_default().trim();
    let request = match media {
        "application/x-protobuf" => ExportTraceServiceRequest::decode(body).ok(),
        // OTLP's JSON (hex ids, lowerCamel names), which the OTel crate reads.
        "application/json" => serde_json::from_slice(body).ok(),
        _ => {
            return Err(invalid(format!(
                "Invalid Content-Type: {content_type}. Expected: application/x-protobuf or \
                 application/json"
            )))
        }
    };
    let request = request.ok_or_else(|| invalid("Invalid OpenTelemetry format"))?;
    if request.resource_spans.is_empty() {
        return Err(invalid("Invalid OpenTelemetry format - no spans found"));
    }
    Ok(request)
}

/// `POST /v1/traces`.
pub async fn export(
    State(state): State<AppState>,
    ws: Workspace,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response> {
    let experiment_id = wire::first_header(&headers, EXPERIMENT_HEADER)
        .ok_or_else(|| MlflowError::missing_parameter(EXPERIMENT_HEADER))?
        .to_string();
    let request = decode(&headers, &inflate(&headers, body)?)?;
    let mut spans = Vec::new();
    for resource in &request.resource_spans {
        let tags = resource_tags(
            resource
                .resource
                .as_ref()
                .map_or(&[][..], |r| &r.attributes),
        );
        for scope in &resource.scope_spans {
            for span in &scope.spans {
                let mut span = mlflow_span(span)?;
                span.facts.resource_tags.clone_from(&tags);
                spans.push(span);
            }
        }
    }
    let finished: Vec<String> = spans
        .iter()
        .filter(|s| s.parent_span_id.is_none())
        .map(|s| s.trace_id.clone())
        .collect();
    state.store.log_spans(&ws, &experiment_id, spans).await?;
    if let Some(run_id) = wire::first_header(&headers, RUN_HEADER) {
        if !finished.is_empty() {
            // As in MLflow: a link that fails does not fail the export.
            if let Err(err) = state.store.link_traces_to_run(&ws, &finished, run_id).await {
                tracing::warn!(error = %err, "could not link exported traces to their run");
            }
        }
    }
    // An empty ExportTraceServiceResponse.
    Ok((
        [(header::CONTENT_TYPE, "application/x-protobuf")],
        Bytes::new(),
    )
        .into_response())
}

/// An id of the expected width, as lowercase hex.
fn hex_id(bytes: &[u8], width: usize, what: &str) -> Result<String> {
    if bytes.len() != width {
        return Err(invalid(format!(
            "Cannot convert OpenTelemetry span to MLflow span: {what} must be {width} bytes"
        )));
    }
    // Into a buffer: `hex::encode` builds its string a char at a time.
    let mut hex = vec![0; width * 2];
    hex::encode_to_slice(bytes, &mut hex).map_err(|err| MlflowError::internal(err.to_string()))?;
    String::from_utf8(hex).map_err(|err| MlflowError::internal(err.to_string()))
}

/// One OTLP span as MLflow stores it.
fn mlflow_span(span: &Span) -> Result<NewSpan> {
    let trace_hex = hex_id(&span.trace_id, 16, "trace_id")?;
    let span_hex = hex_id(&span.span_id, 8, "span_id")?;
    let parent = match span.parent_span_id.is_empty() {
        true => None,
        false => Some(hex_id(&span.parent_span_id, 8, "parent_span_id")?),
    };
    let trace_id = format!("tr-{trace_hex}");
    let code = span.status.as_ref().map_or(0, |s| s.code);
    let (status, status_name) = match StatusCode::try_from(code) {
        Ok(StatusCode::Ok) => ("OK", "STATUS_CODE_OK"),
        Ok(StatusCode::Error) => ("ERROR", "STATUS_CODE_ERROR"),
        _ => ("UNSET", "STATUS_CODE_UNSET"),
    };
    let message = span.status.as_ref().map_or("", |s| s.message.as_str());
    let nanos = |value: u64, what: &str| {
        i64::try_from(value).map_err(|_| {
            invalid(format!(
                "Cannot convert OpenTelemetry span to MLflow span: {what} is past 2^63"
            ))
        })
    };
    let start = nanos(span.start_time_unix_nano, "start_time_unix_nano")?;
    let end = match span.end_time_unix_nano {
        0 => None,
        end => Some(nanos(end, "end_time_unix_nano")?),
    };

    // Attribute values are stored JSON-encoded; the request id is the one
    // derived from the OTel trace id (MLflow does not trust a sent one).
    let mut attributes: Vec<(&str, String)> = span
        .attributes
        .iter()
        .map(|kv| (kv.key.as_str(), attribute_value(kv.value.as_ref())))
        .collect();
    let request_id = py_string(&trace_id);
    match attributes
        .iter_mut()
        .find(|(k, _)| *k == REQUEST_ID_ATTRIBUTE)
    {
        Some((_, value)) => *value = request_id,
        None => attributes.push((REQUEST_ID_ATTRIBUTE, request_id)),
    }
    translate::translate(&mut attributes);
    let span_type = attributes
        .iter()
        .find(|(k, _)| *k == SPAN_TYPE_ATTRIBUTE)
        .and_then(|(_, v)| serde_json::from_str::<String>(v).ok());

    // Room for the attributes as escaped JSON text (quotes get a backslash).
    let attributes_len: usize = attributes
        .iter()
        .map(|(k, v)| k.len() + v.len() * 5 / 4)
        .sum();
    let mut content = String::with_capacity(512 + span.name.len() + attributes_len);
    content.push_str("{\"trace_id\": ");
    content.push_str(&py_string(&STANDARD.encode(&span.trace_id)));
    content.push_str(", \"span_id\": ");
    content.push_str(&py_string(&STANDARD.encode(&span.span_id)));
    content.push_str(", \"parent_span_id\": ");
    match span.parent_span_id.is_empty() {
        true => content.push_str("null"),
        false => content.push_str(&py_string(&STANDARD.encode(&span.parent_span_id))),
    }
    content.push_str(", \"name\": ");
    content.push_str(&py_string(&span.name));
    content.push_str(&format!(
        ", \"start_time_unix_nano\": {start}, \"end_time_unix_nano\": "
    ));
    match end {
        Some(end) => content.push_str(&end.to_string()),
        None => content.push_str("null"),
    }
    content.push_str(", \"events\": [");
    for (i, event) in span.events.iter().enumerate() {
        if i > 0 {
            content.push_str(", ");
        }
        content.push_str("{\"name\": ");
        content.push_str(&py_string(&event.name));
        content.push_str(&format!(
            ", \"time_unix_nano\": {}, \"attributes\": ",
            event.time_unix_nano
        ));
        push_object(&mut content, &event.attributes);
        content.push('}');
    }
    content.push_str("], \"status\": {\"code\": \"");
    content.push_str(status_name);
    content.push_str("\", \"message\": ");
    content.push_str(&py_string(message));
    content.push_str("}, \"attributes\": {");
    for (i, (key, value)) in attributes.iter().enumerate() {
        if i > 0 {
            content.push_str(", ");
        }
        content.push_str(&py_string(key));
        content.push_str(": ");
        content.push_str(&py_string(value));
    }
    content.push_str("}, \"links\": []}");

    let attribute = |key: &str| {
        attributes
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.as_str())
    };
    let root = parent.is_none();
    let mut facts = SpanFacts::read(attribute, root);
    if root {
        facts.trace_tags = attributes
            .iter()
            .filter_map(|(key, value)| {
                let tag = key.strip_prefix(span_attributes::TRACE_TAG_PREFIX)?;
                Some((tag.to_string(), tag_text(value)))
            })
            .collect();
    }

    Ok(NewSpan {
        facts,
        trace_id,
        span_id: span_hex,
        parent_span_id: parent,
        name: span.name.clone(),
        span_type,
        status: status.into(),
        start_time_ns: start,
        end_time_ns: end,
        content,
    })
}

/// A tag's text from a stored (JSON) attribute value: strings unquoted,
/// other values as their JSON.
fn tag_text(value: &str) -> String {
    match serde_json::from_str::<serde_json::Value>(value) {
        Ok(serde_json::Value::String(s)) => s,
        _ => value.to_string(),
    }
}

/// The trace tags an OTLP resource implies: its attributes, except the
/// SDK's own (`telemetry.sdk.*`) and MLflow's (`mlflow.*`).
fn resource_tags(attributes: &[KeyValue]) -> Vec<(String, String)> {
    attributes
        .iter()
        .filter(|kv| !kv.key.starts_with("telemetry.sdk.") && !kv.key.starts_with("mlflow."))
        .filter(|kv| !kv.key.is_empty())
        .map(|kv| (kv.key.clone(), tag_text(&dumps(kv.value.as_ref()))))
        .collect()
}

// ---------------------------------------------------------------------------
// Python's `json.dumps` (default separators, `ensure_ascii=False`), by hand:
// MLflow stores the text it prints, and readers compare against it.
// ---------------------------------------------------------------------------

/// A span attribute's stored value: dumped as below, except a string that
/// already holds JSON text of a string, object or array, which MLflow
/// keeps as sent rather than encoding it twice (`sanitize_attributes`).
fn attribute_value(value: Option<&AnyValue>) -> String {
    if let Some(Any::StringValue(text)) = value.and_then(|v| v.value.as_ref()) {
        // A JSON text's first character says its type; its validity is
        // checked without building it (inputs and outputs are large).
        let json_text = text.trim_start_matches([' ', '\t', '\n', '\r']);
        if json_text.starts_with(['"', '{', '['])
            && serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok()
        {
            return text.clone();
        }
    }
    dumps(value)
}

/// An attribute value decoded and dumped as MLflow does
/// (`dump_span_attribute_value(_decode_otel_proto_anyvalue(v))`).
fn dumps(value: Option<&AnyValue>) -> String {
    let mut out = String::new();
    push_value(&mut out, value.and_then(|v| v.value.as_ref()));
    out
}

fn push_value(out: &mut String, value: Option<&Any>) {
    match value {
        None => out.push_str("null"),
        Some(Any::StringValue(s)) => out.push_str(&py_string(s)),
        Some(Any::BoolValue(b)) => out.push_str(if *b { "true" } else { "false" }),
        Some(Any::IntValue(n)) => out.push_str(&n.to_string()),
        Some(Any::DoubleValue(f)) => out.push_str(&py_float(*f)),
        Some(Any::ArrayValue(array)) => {
            out.push('[');
            for (i, item) in array.values.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                push_value(out, item.value.as_ref());
            }
            out.push(']');
        }
        Some(Any::KvlistValue(list)) => push_object(out, &list.values),
        // Bytes have no JSON form; MLflow's encoder falls back to text.
        Some(Any::BytesValue(bytes)) => out.push_str(&py_string(&String::from_utf8_lossy(bytes))),
        Some(_) => out.push_str("null"),
    }
}

fn push_object(out: &mut String, entries: &[KeyValue]) {
    out.push('{');
    for (i, kv) in entries.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        out.push_str(&py_string(&kv.key));
        out.push_str(": ");
        push_value(out, kv.value.as_ref().and_then(|v| v.value.as_ref()));
    }
    out.push('}');
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::common::v1::{ArrayValue, KeyValueList};
    use opentelemetry_proto::tonic::trace::v1::Status;

    fn kv(key: &str, value: Any) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: Some(AnyValue { value: Some(value) }),
            ..KeyValue::default()
        }
    }

    #[test]
    fn a_span_is_stored_as_mlflow_writes_it() {
        let span = Span {
            trace_id: vec![0; 15].into_iter().chain([1]).collect(),
            span_id: vec![0, 0, 0, 0, 0, 0, 0, 2],
            name: "plan".into(),
            start_time_unix_nano: 5,
            end_time_unix_nano: 9,
            status: Some(Status {
                code: StatusCode::Ok as i32,
                message: String::new(),
            }),
            attributes: vec![
                kv("mlflow.spanType", Any::StringValue("LLM".into())),
                kv(
                    "inputs",
                    Any::KvlistValue(KeyValueList {
                        values: vec![
                            kv("q", Any::StringValue("héllo".into())),
                            kv(
                                "n",
                                Any::ArrayValue(ArrayValue {
                                    values: vec![AnyValue {
                                        value: Some(Any::IntValue(1)),
                                    }],
                                }),
                            ),
                        ],
                    }),
                ),
            ],
            ..Span::default()
        };
        let stored = mlflow_span(&span).unwrap();
        assert_eq!(stored.trace_id, "tr-00000000000000000000000000000001");
        assert_eq!(stored.span_type.as_deref(), Some("LLM"));
        assert_eq!(stored.parent_span_id, None);
        assert_eq!(
            stored.content,
            "{\"trace_id\": \"AAAAAAAAAAAAAAAAAAAAAQ==\", \"span_id\": \"AAAAAAAAAAI=\", \
             \"parent_span_id\": null, \"name\": \"plan\", \"start_time_unix_nano\": 5, \
             \"end_time_unix_nano\": 9, \"events\": [], \"status\": {\"code\": \"STATUS_CODE_OK\", \
             \"message\": \"\"}, \"attributes\": {\"mlflow.spanType\": \"\\\"LLM\\\"\", \
             \"inputs\": \"{\\\"q\\\": \\\"héllo\\\", \\\"n\\\": [1]}\", \
             \"mlflow.traceRequestId\": \"\\\"tr-00000000000000000000000000000001\\\"\"}, \
             \"links\": []}"
        );
        let bad = Span {
            trace_id: vec![1; 3],
            ..span.clone()
        };
        assert!(mlflow_span(&bad).is_err());
        let far = Span {
            end_time_unix_nano: u64::MAX,
            ..span
        };
        assert!(mlflow_span(&far).is_err());
    }
}
