//! Python's printing of JSON values (`json.dumps` with its default
//! separators and `ensure_ascii=False`, floats as `repr`), written by hand:
//! MLflow stores and compares the text Python prints, so ferroflow prints
//! the same text where a client or `mlflow server` reads it back.

/// A string as `json.dumps` writes it: serde_json escapes the same
/// characters the same way (`\"`, `\\`, `\n`, `\u001f`), non-ASCII as is.
pub fn py_string(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_default()
}

/// A float as Python's `repr`: shortest round trip, `.0` on whole numbers,
/// exponent form below 1e-4 and from 1e16 (`1e-05`, `1.5e+16`).
pub fn py_float(value: f64) -> String {
    if value.is_nan() {
        return "NaN".into();
    }
    if value.is_infinite() {
        return if value > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    let magnitude = value.abs();
    if magnitude != 0.0 && !(1e-4..1e16).contains(&magnitude) {
        let scientific = format!("{value:e}");
        let (mantissa, exponent) = scientific.split_once('e').unwrap_or((&scientific, "0"));
        let exponent: i32 = exponent.parse().unwrap_or(0);
        let sign = if exponent < 0 { '-' } else { '+' };
        return format!("{mantissa}e{sign}{:02}", exponent.abs());
    }
    let plain = value.to_string();
    if plain.contains('.') {
        plain
    } else {
        format!("{plain}.0")
    }
}

/// A string as `json.dumps` writes it by default (`ensure_ascii=True`):
/// DEL and non-ASCII characters as `\uXXXX` escapes, UTF-16 surrogate
/// pairs above the Basic Multilingual Plane.
pub fn py_ascii_string(text: &str) -> String {
    let json = py_string(text);
    if json.bytes().all(|b| b < 0x7f) {
        return json;
    }
    let mut out = String::with_capacity(json.len() + 16);
    for c in json.chars() {
        if c.is_ascii() && c != '\x7f' {
            out.push(c);
            continue;
        }
        let mut units = [0u16; 2];
        for unit in c.encode_utf16(&mut units) {
            out.push_str(&format!("\\u{unit:04x}"));
        }
    }
    out
}

/// A JSON value as `json.dumps` writes it by default (`{"k": [1, 2]}`,
/// non-ASCII escaped). Numbers that came through a protobuf `Value` are
/// doubles in Python, so with `doubles` every number prints as a float
/// (`5.0`).
pub fn py_json(value: &serde_json::Value, doubles: bool) -> String {
    let mut out = String::new();
    push_json(&mut out, value, doubles);
    out
}

fn push_json(out: &mut String, value: &serde_json::Value, doubles: bool) {
    use serde_json::Value;
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) if !doubles => out.push_str(&i.to_string()),
            (_, Some(f)) if doubles || n.is_f64() => out.push_str(&py_float(f)),
            _ => out.push_str(&n.to_string()),
        },
        Value::String(s) => out.push_str(&py_ascii_string(s)),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                push_json(out, item, doubles);
            }
            out.push(']');
        }
        Value::Object(map) => {
            out.push('{');
            for (i, (key, item)) in map.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str(&py_ascii_string(key));
                out.push_str(": ");
                push_json(out, item, doubles);
            }
            out.push('}');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_print_as_python_repr() {
        for (value, text) in [
            (0.25, "0.25"),
            (1.0, "1.0"),
            (-3.0, "-3.0"),
            (0.0, "0.0"),
            (1e-5, "1e-05"),
            (1.5e16, "1.5e+16"),
            (1e15, "1000000000000000.0"),
            (0.0001, "0.0001"),
            (123.456, "123.456"),
        ] {
            assert_eq!(py_float(value), text, "{value}");
        }
    }

    #[test]
    fn json_prints_with_python_spacing() {
        let value = serde_json::json!({"k": [1, 2.5, "x"], "b": null});
        assert_eq!(
            py_json(&value, false),
            "{\"b\": null, \"k\": [1, 2.5, \"x\"]}"
        );
        assert_eq!(py_json(&serde_json::json!(5), true), "5.0");
        assert_eq!(
            py_json(&serde_json::json!("gö😀"), false),
            "\"g\\u00f6\\ud83d\\ude00\""
        );
        let tag = serde_json::json!([{"name": "m é", "version": 2}]);
        assert_eq!(
            py_json(&tag, false),
            r#"[{"name": "m \u00e9", "version": 2}]"#
        );
        assert_eq!(py_ascii_string("a\u{7f}"), "\"a\\u007f\"");
    }
}
