//! Whole traces (record and spans) for spans kept in the database, as MLflow
//! 3 stores what arrives over OTLP: `traces/get` and `traces/batchGet`
//! answer MLflow's `Trace` message, whose spans are OpenTelemetry protobuf
//! spans in JSON. The stored form is MLflow's span dictionary (attribute
//! values as JSON text), so each span is turned into the OTel shape here, by
//! hand: it is a JSON-to-JSON reshaping that no OTel crate offers.

use axum::extract::State;
use axum::Json;
use serde::de::{MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::trace_info_v3;
use crate::api::wire::{required, Query, QueryFields};
use crate::app::AppState;
use crate::error::{MlflowError, Result};
use crate::model::Workspace;

/// JSON as written, objects in their order: span inputs and outputs are
/// dictionaries whose key order the client reproduces, and `serde_json`'s
/// map sorts keys.
enum Ordered {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    Str(String),
    Array(Vec<Ordered>),
    Object(Vec<(String, Ordered)>),
}

impl<'de> Deserialize<'de> for Ordered {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> Visitor<'de> for Visit {
            type Value = Ordered;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("JSON")
            }
            fn visit_unit<E>(self) -> Result<Ordered, E> {
                Ok(Ordered::Null)
            }
            fn visit_bool<E>(self, b: bool) -> Result<Ordered, E> {
                Ok(Ordered::Bool(b))
            }
            fn visit_i64<E>(self, n: i64) -> Result<Ordered, E> {
                Ok(Ordered::Int(n))
            }
            fn visit_u64<E>(self, n: u64) -> Result<Ordered, E> {
                Ok(Ordered::UInt(n))
            }
            fn visit_f64<E>(self, n: f64) -> Result<Ordered, E> {
                Ok(Ordered::Float(n))
            }
            fn visit_str<E>(self, s: &str) -> Result<Ordered, E> {
                Ok(Ordered::Str(s.to_string()))
            }
            fn visit_string<E>(self, s: String) -> Result<Ordered, E> {
                Ok(Ordered::Str(s))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Ordered, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element()? {
                    items.push(item);
                }
                Ok(Ordered::Array(items))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Ordered, A::Error> {
                let mut entries = Vec::new();
                while let Some(entry) = map.next_entry()? {
                    entries.push(entry);
                }
                Ok(Ordered::Object(entries))
            }
        }
        d.deserialize_any(Visit)
    }
}

impl Ordered {
    fn parse(text: &str) -> Option<Self> {
        serde_json::from_str(text).ok()
    }

    fn get(&self, key: &str) -> Option<&Ordered> {
        match self {
            Self::Object(entries) => entries.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    fn entries(&self) -> &[(String, Ordered)] {
        match self {
            Self::Object(entries) => entries,
            _ => &[],
        }
    }

    fn items(&self) -> &[Ordered] {
        match self {
            Self::Array(items) => items,
            _ => &[],
        }
    }

    fn as_str(&self) -> Option<&str> {
        match self {
            Self::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The value as plain JSON (object keys then sort, which is fine where
    /// order carries no meaning: ids, times, names).
    fn plain(&self) -> Value {
        match self {
            Self::Null => Value::Null,
            Self::Bool(b) => json!(b),
            Self::Int(n) => json!(n),
            Self::UInt(n) => json!(n),
            Self::Float(n) => json!(n),
            Self::Str(s) => json!(s),
            Self::Array(items) => Value::Array(items.iter().map(Self::plain).collect()),
            Self::Object(entries) => Value::Object(
                entries
                    .iter()
                    .map(|(k, v)| (k.clone(), v.plain()))
                    .collect(),
            ),
        }
    }

    /// The value as an OTel `AnyValue` in protobuf JSON.
    fn any_value(&self) -> Value {
        match self {
            Self::Null => json!({}),
            Self::Bool(b) => json!({"bool_value": b}),
            Self::Int(n) => json!({"int_value": n}),
            Self::UInt(n) => json!({"int_value": n}),
            Self::Float(n) => json!({"double_value": n}),
            Self::Str(s) => json!({"string_value": s}),
            Self::Array(items) => {
                let values: Vec<Value> = items.iter().map(Self::any_value).collect();
                json!({"array_value": {"values": values}})
            }
            Self::Object(entries) => {
                json!({"kvlist_value": {"values": key_values(entries, false)}})
            }
        }
    }
}

/// OTel `KeyValue`s. MLflow keeps span attributes as JSON text (decoded
/// here, as MLflow decodes them before it builds the proto); event
/// attributes are plain values.
fn key_values(entries: &[(String, Ordered)], json_text: bool) -> Vec<Value> {
    entries
        .iter()
        .map(|(key, value)| {
            let decoded = match value {
                Ordered::Str(text) if json_text => Ordered::parse(text),
                _ => None,
            };
            let value = decoded.as_ref().unwrap_or(value).any_value();
            json!({"key": key, "value": value})
        })
        .collect()
}

/// One stored span (MLflow's `Span.to_dict()`) as an OTel protobuf span.
fn otel_span(content: &str) -> Result<Value> {
    let span = Ordered::parse(content)
        .filter(|s| matches!(s, Ordered::Object(_)))
        .ok_or_else(|| MlflowError::internal("a stored span is not a JSON object"))?;
    let mut out = Map::new();
    for field in [
        "trace_id",
        "span_id",
        "parent_span_id",
        "name",
        "start_time_unix_nano",
        "end_time_unix_nano",
    ] {
        if let Some(value) = span.get(field).filter(|v| !matches!(v, Ordered::Null)) {
            out.insert(field.into(), value.plain());
        }
    }
    let attributes = span.get("attributes").map_or(&[][..], Ordered::entries);
    out.insert(
        "attributes".into(),
        Value::Array(key_values(attributes, true)),
    );
    let events: Vec<Value> = span
        .get("events")
        .map_or(&[][..], Ordered::items)
        .iter()
        .map(|event| {
            let attributes = event.get("attributes").map_or(&[][..], Ordered::entries);
            json!({
                "name": event.get("name").map_or(Value::Null, Ordered::plain),
                "time_unix_nano": event.get("time_unix_nano").map_or(json!(0), Ordered::plain),
                "attributes": key_values(attributes, false),
            })
        })
        .collect();
    out.insert("events".into(), Value::Array(events));
    let mut status = Map::new();
    if let Some(code) = span
        .get("status")
        .and_then(|s| s.get("code"))
        .and_then(Ordered::as_str)
    {
        status.insert("code".into(), json!(code));
    }
    let message = span
        .get("status")
        .and_then(|s| s.get("message"))
        .and_then(Ordered::as_str);
    if let Some(message) = message.filter(|m| !m.is_empty()) {
        status.insert("message".into(), json!(message));
    }
    out.insert("status".into(), Value::Object(status));
    Ok(Value::Object(out))
}

/// The whole traces of these ids that exist here, in the order asked.
async fn whole_traces(state: &AppState, ws: &Workspace, ids: &[String]) -> Result<Vec<Value>> {
    let (infos, mut spans) = tokio::try_join!(
        state.store.batch_get_trace_infos(ws, ids),
        state.store.trace_spans(ws, ids),
    )?;
    infos
        .iter()
        .map(|info| {
            let contents = spans.remove(&info.trace_id).unwrap_or_default();
            let spans = contents
                .iter()
                .map(|c| otel_span(c))
                .collect::<Result<Vec<_>>>()?;
            Ok(json!({"trace_info": trace_info_v3(info), "spans": spans}))
        })
        .collect()
}

#[derive(Deserialize)]
pub struct GetTrace {
    /// (`allow_partial` is not read: the spans here are what there is.)
    trace_id: Option<String>,
}
impl QueryFields for GetTrace {}

/// `GET /api/3.0/mlflow/traces/get?trace_id=`: the record and its spans.
pub async fn get_trace(
    State(state): State<AppState>,
    ws: Workspace,
    Query(req): Query<GetTrace>,
) -> Result<Json<Value>> {
    let trace_id = required(req.trace_id, "trace_id")?;
    let trace = whole_traces(&state, &ws, std::slice::from_ref(&trace_id))
        .await?
        .pop()
        .ok_or_else(|| MlflowError::not_found(format!("Trace with ID {trace_id} is not found.")))?;
    Ok(Json(json!({ "trace": trace })))
}

#[derive(Deserialize)]
pub struct BatchGetTraces {
    #[serde(default)]
    trace_ids: Vec<String>,
}
impl QueryFields for BatchGetTraces {
    const REPEATED: &'static [&'static str] = &["trace_ids"];
}

/// `GET /api/3.0/mlflow/traces/batchGet?trace_ids=..`: whole traces; ids
/// that name nothing here are left out.
pub async fn batch_get_traces(
    State(state): State<AppState>,
    ws: Workspace,
    Query(req): Query<BatchGetTraces>,
) -> Result<Json<Value>> {
    if req.trace_ids.is_empty() {
        return Err(MlflowError::missing_parameter("trace_ids"));
    }
    let traces = whole_traces(&state, &ws, &req.trace_ids).await?;
    let mut out = Map::new();
    if !traces.is_empty() {
        out.insert("traces".into(), Value::Array(traces));
    }
    Ok(Json(Value::Object(out)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_span_reads_as_an_otel_span() {
        let content = r#"{"trace_id": "AAAAAAAAAAAAAAAAAAAAAQ==", "span_id": "AAAAAAAAAAI=",
            "parent_span_id": null, "name": "chat", "start_time_unix_nano": 1,
            "end_time_unix_nano": 2, "events": [{"name": "exception", "time_unix_nano": 2,
            "attributes": {"exception.message": "boom"}}],
            "status": {"code": "STATUS_CODE_ERROR", "message": "boom"},
            "attributes": {"mlflow.spanType": "\"LLM\"", "n": "3", "x": "1.5", "ok": "true",
            "inputs": "{\"q\": [1, \"a\"]}", "raw": "not json"}}"#;
        let span = otel_span(content).unwrap();
        assert!(span.get("parent_span_id").is_none());
        assert_eq!(
            span["status"],
            json!({"code": "STATUS_CODE_ERROR", "message": "boom"})
        );
        let attribute = |key: &str| {
            span["attributes"]
                .as_array()
                .unwrap()
                .iter()
                .find(|a| a["key"] == key)
                .unwrap()["value"]
                .clone()
        };
        assert_eq!(attribute("mlflow.spanType"), json!({"string_value": "LLM"}));
        assert_eq!(attribute("n"), json!({"int_value": 3}));
        assert_eq!(attribute("x"), json!({"double_value": 1.5}));
        assert_eq!(attribute("ok"), json!({"bool_value": true}));
        assert_eq!(attribute("raw"), json!({"string_value": "not json"}));
        assert_eq!(
            attribute("inputs"),
            json!({"kvlist_value": {"values": [{"key": "q", "value": {"array_value": {"values": [
                {"int_value": 1}, {"string_value": "a"}]}}}]}})
        );
        assert_eq!(
            span["events"][0]["attributes"][0],
            json!({"key": "exception.message", "value": {"string_value": "boom"}})
        );
    }
}
