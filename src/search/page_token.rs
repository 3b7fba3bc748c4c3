//! Search page tokens: MLflow's offset token, base64 of the JSON `{"offset": N}`.
//!
//! Clients treat tokens as opaque, but MLflow's exact form is kept so tokens
//! from either server decode the same. No SQL and no HTTP here.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde_json::Value as Json;

use crate::error::{MlflowError, Result};

/// The token for the page starting at `offset`, exactly as MLflow writes it
/// (`json.dumps` puts a space after the colon): offset 1 is `eyJvZmZzZXQiOiAxfQ==`.
pub fn encode(offset: i64) -> String {
    STANDARD.encode(format!("{{\"offset\": {offset}}}"))
}

/// The offset a request's `page_token` asks for: 0 when absent or empty.
///
/// Anything else that is not a token [`encode`] could have made is a 400
/// "Invalid page token, ...". Mirrors MLflow, which also rejects offset 0
/// (it never issues it) and accepts the offset as a numeric string.
pub fn decode(token: Option<&str>) -> Result<i64> {
    let Some(token) = token.filter(|t| !t.is_empty()) else {
        return Ok(0);
    };
    let bytes = STANDARD.decode(token).map_err(|_| {
        MlflowError::invalid_parameter("Invalid page token, could not base64-decode")
    })?;
    let parsed: Json = serde_json::from_slice(&bytes).map_err(|_| {
        MlflowError::invalid_parameter(format!(
            "Invalid page token, decoded value={}",
            String::from_utf8_lossy(&bytes)
        ))
    })?;
    let invalid_parsed =
        || MlflowError::invalid_parameter(format!("Invalid page token, parsed value={parsed}"));
    let offset = match parsed.get("offset") {
        Some(Json::Number(n)) => n.as_i64(),
        Some(Json::String(s)) if !s.is_empty() => Some(s.trim().parse::<i64>().map_err(|_| {
            MlflowError::invalid_parameter(format!("Invalid page token, not stringable {s}"))
        })?),
        _ => None,
    };
    match offset {
        Some(offset) if offset > 0 => Ok(offset),
        _ => Err(invalid_parsed()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;

    #[test]
    fn encodes_like_mlflow() {
        assert_eq!(encode(1), "eyJvZmZzZXQiOiAxfQ==");
        assert_eq!(encode(12345), "eyJvZmZzZXQiOiAxMjM0NX0=");
    }

    #[test]
    fn round_trips_and_defaults_to_zero() {
        for offset in [1, 2, 1000, 50_001, i64::MAX] {
            assert_eq!(decode(Some(&encode(offset))).unwrap(), offset);
        }
        assert_eq!(decode(None).unwrap(), 0);
        assert_eq!(decode(Some("")).unwrap(), 0);
        // {"offset": "7"}: MLflow int()s the value, so a string works too.
        assert_eq!(decode(Some("eyJvZmZzZXQiOiAiNyJ9")).unwrap(), 7);
    }

    #[test]
    fn rejects_garbage_with_400() {
        let cases = [
            ("garbage!", "could not base64-decode"),
            ("eyJvZmZzZXQiOiAxfQ", "could not base64-decode"), // padding missing
            ("bm90IGpzb24=", "decoded value=not json"),
            ("e30=", "parsed value={}"),                  // {}
            ("NQ==", "parsed value=5"),                   // 5
            ("eyJvZmZzZXQiOiAwfQ==", "parsed value="),    // offset 0
            ("eyJvZmZzZXQiOiAtMX0=", "parsed value="),    // offset -1
            ("eyJvZmZzZXQiOiAieCJ9", "not stringable x"), // offset "x"
            ("eyJvZmZzZXQiOiAxLjV9", "parsed value="),    // offset 1.5
        ];
        for (token, fragment) in cases {
            let err = decode(Some(token)).unwrap_err();
            assert_eq!(err.code, ErrorCode::InvalidParameterValue, "{token}");
            assert!(
                err.message.starts_with("Invalid page token"),
                "{token}: {}",
                err.message
            );
            assert!(err.message.contains(fragment), "{token}: {}", err.message);
        }
    }
}
