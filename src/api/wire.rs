//! Request parsing with the leniency of MLflow's protobuf JSON parser.
//!
//! MLflow accepts snake_case or lowerCamel field names (not both at once),
//! int64 as numbers or numeric strings, doubles as `"NaN"`/`"Infinity"`,
//! booleans as `True`/`False` in query strings, a JSON body on DELETE and
//! PATCH, and a GET's fields from the query string (repeated keys for lists).
//! The extractors here turn all of that into typed request structs; every
//! failure is an MLflow-shaped 400.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, Method};
use serde::de::{DeserializeOwned, Deserializer, Error as _};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::error::{MlflowError, Result};
use crate::model::Tag;

mod snake_case;

pub(crate) use snake_case::to_snake_case;
use snake_case::SnakeCase;

/// A request message read from a JSON body (POST/PATCH/DELETE).
pub struct Body<T>(pub T);

/// A request message whose maps carry user keys (trace metadata and tags,
/// assessment values): read from a JSON body with its names as sent, since
/// converting lowerCamel names would rewrite keys like `mlflow.sourceRun`.
/// The MLflow client sends these messages with snake_case names.
pub struct ExactBody<T>(pub T);

/// A request message read from the query string of a GET, or from its JSON
/// body when the query string is empty (as MLflow does).
pub struct Query<T>(pub T);

/// Fields of a GET request that are lists; every other repeated query key
/// keeps its first value.
pub trait QueryFields {
    const REPEATED: &'static [&'static str] = &[];
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = MlflowError;

    async fn from_request(req: Request, state: &S) -> Result<Self> {
        let content_type = match req.method() == Method::POST || req.method() == Method::PUT {
            true => Some(check_content_type(&req)),
            false => None,
        };
        // The body is read even when the request is refused: answering with
        // it unread makes the server drop a keep-alive connection the client
        // is about to reuse.
        let bytes = read_body(req, state).await?;
        content_type.transpose()?;
        Ok(Body(parse_message(&bytes)?))
    }
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ExactBody<T> {
    type Rejection = MlflowError;

    async fn from_request(req: Request, state: &S) -> Result<Self> {
        let content_type = match req.method() == Method::POST || req.method() == Method::PUT {
            true => Some(check_content_type(&req)),
            false => None,
        };
        let bytes = read_body(req, state).await?;
        content_type.transpose()?;
        let body = bytes.trim_ascii();
        let body = if body.is_empty() { &b"{}"[..] } else { body };
        let message = serde_json::from_slice(body).map_err(malformed)?;
        if holds_nul_escape(body) {
            return Err(nul_refused("the request body"));
        }
        Ok(ExactBody(message))
    }
}

impl<S: Send + Sync, T: DeserializeOwned + QueryFields> FromRequest<S> for Query<T> {
    type Rejection = MlflowError;

    async fn from_request(req: Request, state: &S) -> Result<Self> {
        match req.uri().query().filter(|q| !q.is_empty()) {
            Some(query) => {
                let value = query_to_json(query, T::REPEATED)?;
                Ok(Query(from_value(value)?))
            }
            None => {
                let bytes = read_body(req, state).await?;
                Ok(Query(parse_message(&bytes)?))
            }
        }
    }
}

/// A request message read from the query string alone, leaving the body to
/// the handler (an upload's file).
pub struct QueryOnly<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + QueryFields> FromRequestParts<S> for QueryOnly<T> {
    type Rejection = MlflowError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self> {
        let query = parts.uri.query().unwrap_or_default();
        Ok(QueryOnly(from_value(query_to_json(query, T::REPEATED)?)?))
    }
}

pub(crate) fn check_content_type(req: &Request) -> Result<()> {
    let Some(content_type) = req.headers().get(header::CONTENT_TYPE) else {
        return Err(MlflowError::invalid_parameter(
            "Bad Request. Content-Type header is missing.",
        ));
    };
    let mime = content_type
        .to_str()
        .unwrap_or_default()
        .split(';')
        .next()
        .unwrap_or_default()
        .trim();
    if !mime.eq_ignore_ascii_case("application/json") {
        return Err(MlflowError::invalid_parameter(format!(
            "Bad Request. Content-Type must be one of ['application/json'], got '{mime}'."
        )));
    }
    Ok(())
}

pub(crate) async fn read_body<S: Send + Sync>(req: Request, state: &S) -> Result<Bytes> {
    // The size limit is the router's `DefaultBodyLimit`.
    Bytes::from_request(req, state).await.map_err(|err| {
        MlflowError::invalid_parameter(format!("Could not read request body: {err}"))
    })
}

/// Parses a JSON request body into its message: empty means `{}`, and a JSON
/// string holding JSON (double-encoded, which MLflow accepts) is decoded once
/// more. lowerCamel names are converted while parsing ([`SnakeCase`]);
/// spelling one field both ways is an error, as in protobuf's parser.
pub fn parse_message<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    let body = bytes.trim_ascii();
    match body.first() {
        None => from_value(Value::Object(Map::new())),
        Some(b'"') => {
            let inner: String = serde_json::from_slice(body).map_err(malformed)?;
            let inner = inner.trim_ascii();
            if inner.starts_with('"') {
                return Err(MlflowError::invalid_parameter(
                    "Malformed JSON request body: expected a JSON object",
                ));
            }
            parse_message(inner.as_bytes())
        }
        Some(_) => {
            let mut json = serde_json::Deserializer::from_slice(body);
            let message = match T::deserialize(SnakeCase(&mut json)) {
                Ok(message) => message,
                // Valid JSON with a field of the wrong type: said as MLflow says it.
                Err(err) if err.is_data() && !is_about_fields(&err) => {
                    return Err(match serde_json::from_slice::<Value>(body) {
                        Ok(value) => wrong_type::<T>(value).unwrap_or_else(|| malformed(err)),
                        Err(_) => malformed(err),
                    })
                }
                Err(err) => return Err(malformed(err)),
            };
            json.end().map_err(malformed)?;
            if holds_nul_escape(body) {
                return Err(nul_refused("the request body"));
            }
            Ok(message)
        }
    }
}

/// Whether valid JSON text holds a NUL (`\u0000`) in a string. Every
/// backslash in valid JSON starts an escape, so stepping over each escape's
/// first character tells `\u0000` from an escaped backslash before `u0000`.
fn holds_nul_escape(json: &[u8]) -> bool {
    let mut from = 0;
    while let Some(at) = json[from..].iter().position(|&b| b == b'\\') {
        let escape = from + at + 1;
        if json[escape..].starts_with(b"u0000") {
            return true;
        }
        from = (escape + 1).min(json.len());
    }
    false
}

/// NUL characters are refused in every string a client sends: PostgreSQL
/// cannot store one (it would be a 500), and on SQLite they would cut names
/// short in C code and in other clients.
pub fn nul_refused(place: &str) -> MlflowError {
    MlflowError::invalid_parameter(format!(
        "Invalid value: {place} holds a NUL (\\u0000) character, which no field may contain"
    ))
}

/// The refusal of a request whose path or query holds an encoded NUL
/// (`%00`), before any handler decodes it (see [`nul_refused`]).
pub fn nul_in_url(uri: &axum::http::Uri) -> Option<MlflowError> {
    uri.path_and_query()
        .is_some_and(|p| p.as_str().as_bytes().windows(3).any(|w| w == b"%00"))
        .then(|| nul_refused("the request URL"))
}

/// A duplicate or missing field, rather than a value of the wrong type.
fn is_about_fields(err: &serde_json::Error) -> bool {
    let message = err.to_string();
    message.starts_with("duplicate field") || message.starts_with("missing field")
}

fn malformed(err: serde_json::Error) -> MlflowError {
    MlflowError::invalid_parameter(format!("Malformed JSON request body: {err}"))
}

fn from_value<T: DeserializeOwned>(value: Value) -> Result<T> {
    T::deserialize(SnakeCase(&value)).map_err(|err| {
        wrong_type::<T>(value.clone())
            .unwrap_or_else(|| MlflowError::invalid_parameter(format!("Invalid request: {err}")))
    })
}

/// MLflow's message for a parameter of the wrong type (its request schema
/// check): `Invalid value 123 for parameter 'name' supplied:  Hint: Value
/// was of type 'int'. See the API docs ...`, naming the top-level parameter
/// and its value as sent, with Python's name for the JSON type. Runs only
/// after parsing failed, so the hot path pays nothing for it.
fn wrong_type<T: DeserializeOwned>(message: Value) -> Option<MlflowError> {
    let err = serde_path_to_error::deserialize::<_, T>(SnakeCase(&message)).err()?;
    let fields = message.as_object()?;
    let (param, value) = match err.path().iter().next() {
        Some(serde_path_to_error::Segment::Map { key }) => fields
            .iter()
            .find(|(sent, _)| snake_case::to_snake_case(sent) == *key)
            .map(|(_, value)| (key.clone(), value))?,
        // Through `#[serde(flatten)]` the path is lost: the culprit is the
        // field without which the message parses.
        _ => fields.iter().find_map(|(key, value)| {
            let mut without = fields.clone();
            without.remove(key);
            T::deserialize(SnakeCase(&Value::Object(without)))
                .is_ok()
                .then(|| (snake_case::to_snake_case(key), value))
        })?,
    };
    let python_type = match value {
        Value::Null => "NoneType",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "float",
        Value::Number(_) => "int",
        Value::String(_) => "str",
        Value::Array(_) => "list",
        Value::Object(_) => "dict",
    };
    Some(MlflowError::invalid_parameter(format!(
        "Invalid value {value} for parameter '{param}' supplied:  Hint: Value was of type \
         '{python_type}'. See the API docs for more information about request parameters."
    )))
}

/// Query pairs as a JSON object of strings; `repeated` fields become lists.
/// Escapes that decode to invalid UTF-8 are refused (`form_urlencoded`
/// would turn them into U+FFFD and look that up).
fn query_to_json(query: &str, repeated: &[&str]) -> Result<Value> {
    if percent_encoding::percent_decode_str(query)
        .decode_utf8()
        .is_err()
    {
        return Err(MlflowError::invalid_parameter(
            "Invalid value: the query string is not valid UTF-8 once percent-decoded",
        ));
    }
    let mut map = Map::new();
    for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
        let key = to_snake_case(&key);
        if repeated.contains(&key.as_str()) {
            let entry = map.entry(key).or_insert_with(|| Value::Array(Vec::new()));
            if let Value::Array(items) = entry {
                items.push(Value::String(value.into_owned()));
            }
        } else if !map.contains_key(&key) {
            map.insert(key, Value::String(value.into_owned()));
        }
    }
    Ok(Value::Object(map))
}

/// The floats that are whole i64 values: [-2^63, 2^63).
const I64_LOW: f64 = -9_223_372_036_854_775_808.0;
const I64_HIGH: f64 = 9_223_372_036_854_775_808.0;

/// An int64 field: a JSON number or a numeric string; null means absent.
pub fn opt_i64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_i64()
            // A whole float within the column's range (`as` would saturate
            // 2^63 and 1e30 into i64::MAX: stored wrongly, not refused).
            .or_else(|| {
                n.as_f64()
                    .filter(|f| f.fract() == 0.0 && (I64_LOW..I64_HIGH).contains(f))
                    .map(|f| f as i64)
            })
            .map(Some)
            .ok_or_else(|| D::Error::custom(format!("expected an integer, got {n}"))),
        Some(Value::String(s)) => s
            .trim()
            .parse::<i64>()
            .map(Some)
            .map_err(|_| D::Error::custom(format!("expected an integer, got '{s}'"))),
        Some(other) => Err(D::Error::custom(format!(
            "expected an integer, got {other}"
        ))),
    }
}

/// A double field: a number, a numeric string, or `"NaN"`/`"Infinity"`/`"-Infinity"`.
pub fn opt_f64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => Ok(n.as_f64()),
        Some(Value::String(s)) => match s.trim() {
            "NaN" | "nan" => Ok(Some(f64::NAN)),
            "Infinity" | "inf" => Ok(Some(f64::INFINITY)),
            "-Infinity" | "-inf" => Ok(Some(f64::NEG_INFINITY)),
            other => other
                .parse::<f64>()
                .map(Some)
                .map_err(|_| D::Error::custom(format!("expected a number, got '{s}'"))),
        },
        Some(other) => Err(D::Error::custom(format!("expected a number, got {other}"))),
    }
}

/// A bool field: JSON booleans, or `true`/`false` in any case (the Python
/// client sends `True`/`False` in query strings).
pub fn opt_bool<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(b)),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => Ok(Some(true)),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => Ok(Some(false)),
        Some(other) => Err(D::Error::custom(format!("Invalid boolean value {other}"))),
    }
}

/// An enum field given by name or number, read as its string form.
pub fn opt_enum<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(other) => Err(D::Error::custom(format!(
            "expected an enum value, got {other}"
        ))),
    }
}

/// A `{key, value}` message (tags, params) as sent; `value` may be absent.
#[derive(Debug, Deserialize)]
pub struct KeyValue {
    key: Option<String>,
    value: Option<String>,
}

/// Turns a repeated `{key, value}` field into tags; a missing key is the
/// error MLflow gives, naming the item (`tags[2].key`).
pub fn key_values(items: Vec<KeyValue>, field: &str) -> Result<Vec<Tag>> {
    items
        .into_iter()
        .enumerate()
        .map(|(i, item)| {
            Ok(Tag {
                key: required(item.key, &format!("{field}[{i}].key"))?,
                value: item.value.unwrap_or_default(),
            })
        })
        .collect()
}

/// The first value of a header a proxy may have appended to
/// (`X-Forwarded-Host: a, b` → `a`); `None` when absent or blank.
pub fn first_header<'a>(headers: &'a axum::http::HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

/// The value of a required field: absent, `null` and `""` all count as missing.
pub fn required(value: Option<String>, name: &str) -> Result<String> {
    value
        .filter(|v| !v.is_empty())
        .ok_or_else(|| MlflowError::missing_parameter(name))
}

/// `run_id`, falling back to the legacy `run_uuid` that clients also send.
pub fn run_id(run_id: Option<String>, run_uuid: Option<String>) -> Result<String> {
    required(run_id.filter(|v| !v.is_empty()).or(run_uuid), "run_id")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    struct Sample {
        run_id: Option<String>,
        #[serde(default, deserialize_with = "opt_i64")]
        timestamp: Option<i64>,
        #[serde(default, deserialize_with = "opt_f64")]
        value: Option<f64>,
        #[serde(default, deserialize_with = "opt_bool")]
        flag: Option<bool>,
        #[serde(default)]
        ids: Vec<String>,
    }

    impl QueryFields for Sample {
        const REPEATED: &'static [&'static str] = &["ids"];
    }

    #[test]
    fn a_nul_in_any_string_of_the_body_is_refused() {
        for body in [
            r#"{"run_id": "a\u0000b"}"#,
            r#"{"ids": ["x", "\u0000"]}"#,
            r#"{"run_id": "\\\u0000"}"#,
            r#""{\"run_id\": \"\\u0000\"}""#,
        ] {
            let err = parse_message::<Sample>(body.as_bytes()).unwrap_err();
            assert!(err.message.contains("NUL"), "{body}: {}", err.message);
        }
    }

    #[test]
    fn an_escaped_backslash_before_u0000_is_no_nul() {
        let sample: Sample = parse_message(br#"{"run_id": "C:\\u0000"}"#).unwrap();
        assert_eq!(sample.run_id.as_deref(), Some("C:\\u0000"));
        assert!(!holds_nul_escape(br#"{"a": "\\"}"#));
        assert!(holds_nul_escape(br#"{"a": "\u0000"}"#));
    }

    #[test]
    fn camel_case_numeric_strings_and_nan_are_accepted() {
        let s: Sample =
            parse_message(br#"{"runId":"r","timestamp":"5","value":"NaN","flag":true}"#).unwrap();
        assert_eq!(s.run_id.as_deref(), Some("r"));
        assert_eq!(s.timestamp, Some(5));
        assert!(s.value.unwrap().is_nan());
        assert_eq!(s.flag, Some(true));
    }

    #[test]
    fn both_spellings_of_a_field_are_rejected() {
        let err = parse_message::<Sample>(br#"{"run_id":"a","runId":"b"}"#).unwrap_err();
        assert!(err.message.contains("duplicate field"), "{}", err.message);
    }

    #[test]
    fn empty_and_double_encoded_bodies() {
        let s: Sample = parse_message(b"").unwrap();
        assert!(s.run_id.is_none());
        let s: Sample = parse_message(br#""{\"run_id\": \"x\"}""#).unwrap();
        assert_eq!(s.run_id.as_deref(), Some("x"));
    }

    #[test]
    fn wrong_types_and_malformed_json_are_400() {
        for body in [
            &br#"{"timestamp": "abc"}"#[..],
            br#"{"value": true}"#,
            br#"{"run_id": 5}"#,
            br#"{"#,
            b"[1,2]",
        ] {
            let err = parse_message::<Sample>(body).unwrap_err();
            assert_eq!(err.code, crate::error::ErrorCode::InvalidParameterValue);
        }
    }

    #[test]
    fn query_strings_keep_first_scalar_and_collect_lists() {
        let value =
            query_to_json("runId=a&runId=b&ids=1&ids=2&flag=True", Sample::REPEATED).unwrap();
        let s: Sample = from_value(value).unwrap();
        assert_eq!(s.run_id.as_deref(), Some("a"));
        assert_eq!(s.ids, vec!["1", "2"]);
        assert_eq!(s.flag, Some(true));
        let bad = query_to_json("flag=yes", &[]).unwrap();
        assert!(from_value::<Sample>(bad).is_err());
    }
}
