//! RLIKE, the regular-expression comparator of trace search: the one
//! compiler that both checks a filter's pattern and evaluates it on SQLite,
//! and the one SQL spelling both databases run. Nothing here runs SQL.
//!
//! MLflow renders RLIKE as `~` on PostgreSQL and as `REGEXP` on SQLite
//! (Python's `re.search`, registered on each connection). Our search SQL is
//! one text for both databases, so RLIKE is spelled
//! `regexp_match(value, pattern) IS NOT NULL`: PostgreSQL's own function
//! (since 10: the engine and flags of `~`, NULL when nothing matches), and on
//! SQLite a function of that name that `store/sqlite.rs` registers over
//! [`compile`].

use regex::{Regex, RegexBuilder};

use crate::error::{MlflowError, Result};

/// The SQL function RLIKE renders to; SQLite's is registered under this name.
pub const SQL_FUNCTION: &str = "regexp_match";

/// The most memory one compiled pattern may take. A filter is user input and
/// SQLite compiles it inside the server, so nested repetitions like
/// `(a{1000}){1000}` must be a 400 rather than hundreds of megabytes; real
/// patterns take a few KiB.
const SIZE_LIMIT: usize = 1 << 20;

/// Compiles a pattern as RLIKE reads it: case-sensitive, and unanchored
/// because callers ask `is_match` (a search, like Python's `re.search`).
pub fn compile(pattern: &str) -> std::result::Result<Regex, regex::Error> {
    RegexBuilder::new(pattern).size_limit(SIZE_LIMIT).build()
}

/// A pattern that does not compile is a 400 on both databases. MLflow differs
/// per database: on SQLite such a pattern matches nothing, on PostgreSQL it
/// is a 400 BAD_REQUEST that quotes the driver's error and the SQL. Checking
/// first also keeps PostgreSQL from seeing most bad patterns; the dialects
/// differ at the edges (lookaround and backreferences are PostgreSQL-only,
/// `(?P<name>)` and `\p{..}` ours only).
pub fn check(pattern: &str) -> Result<()> {
    compile(pattern).map(drop).map_err(|err| {
        MlflowError::invalid_parameter(format!(
            "Invalid regular expression '{pattern}' for RLIKE: {}",
            reason(&err)
        ))
    })
}

/// The cause alone: the syntax error's last line, without its caret diagram.
fn reason(err: &regex::Error) -> String {
    match err {
        regex::Error::Syntax(text) => text
            .lines()
            .last()
            .unwrap_or_default()
            .trim_start_matches("error: ")
            .to_string(),
        regex::Error::CompiledTooBig(limit) => {
            format!("the pattern compiles to more than {limit} bytes")
        }
        other => other.to_string(),
    }
}

/// `column RLIKE pattern`, where `pattern` is a bound placeholder.
pub fn sql(column: &str, pattern: &str) -> String {
    format!("{SQL_FUNCTION}({column}, {pattern}) IS NOT NULL")
}

/// The pattern over a span's JSON content that `span.attributes.<name> RLIKE
/// pattern` becomes. Attribute values are stored JSON-encoded inside that
/// JSON, so a string attribute reads `"<name>": "\"<value>\""`; as in
/// MLflow, a leading `^` anchors at the start of the value and a trailing `$`
/// at its end.
///
/// Two deliberate differences from MLflow's rewrite, which pastes the pattern
/// after `"<name>": "\\".*`: the gap before an unanchored pattern stays inside
/// the attribute's value (MLflow's `.*` runs on through the rest of the span,
/// so `HAI` could match another attribute), and the pattern is grouped, so an
/// alternation (`a|b`) stays about this attribute too. The name is escaped:
/// its dots are literal.
pub fn span_attribute_pattern(name: &str, pattern: &str) -> String {
    let (gap, rest) = match pattern.strip_prefix('^') {
        Some(rest) => ("", rest),
        None => (r#"(?:[^"\\]|\\.)*"#, pattern),
    };
    let (inner, end) = match rest.strip_suffix('$') {
        Some(inner) if !ends_in_escape(inner) => (inner, r#"\\""#),
        _ => (rest, ""),
    };
    format!(r#""{}": "\\"{gap}(?:{inner}){end}"#, regex::escape(name))
}

/// Whether a `$` after `text` is escaped (an odd run of backslashes before it).
fn ends_in_escape(text: &str) -> bool {
    text.bytes().rev().take_while(|&b| b == b'\\').count() % 2 == 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_search_case_sensitively_without_anchors() {
        let re = compile("prod-(eu|us)").unwrap();
        assert!(re.is_match("x-prod-eu-1"));
        assert!(!re.is_match("PROD-EU"));
        assert!(!compile("^eu").unwrap().is_match("prod-eu"));
    }

    #[test]
    fn a_bad_or_huge_pattern_is_an_invalid_parameter() {
        for bad in ["(", "a{2,1}", "(a{1000}){1000}"] {
            let err = check(bad).unwrap_err();
            assert_eq!(
                err.code,
                crate::error::ErrorCode::InvalidParameterValue,
                "{bad}"
            );
            assert!(!err.message.contains('\n'), "{}", err.message);
        }
        check("^tr-[0-9a-f]{32}$").unwrap();
    }

    #[test]
    fn span_attribute_patterns_look_inside_the_encoded_value() {
        let content =
            r#"{"name": "b", "attributes": {"mlflow.spanType": "\"LLM\"", "x": "\"CHAIN\""}}"#;
        let matches = |p: &str| {
            compile(&span_attribute_pattern("mlflow.spanType", p))
                .unwrap()
                .is_match(content)
        };
        assert!(matches("^LLM$"));
        assert!(matches("LL"));
        assert!(matches("M$"));
        assert!(!matches("^LL$"));
        assert!(!matches("^L$"));
        assert!(!matches("HAI"), "another attribute's value");
        assert!(!matches("HAI|zzz"), "an alternation stays inside the value");
        assert!(!matches(r"M\$"), "an escaped dollar is a dollar");
        assert!(!compile(&span_attribute_pattern("mlflow.spanType", "."))
            .unwrap()
            .is_match(r#""mlflowXspanType": "\"LLM\"""#));
    }
}
