//! Trace filter tests: RLIKE, feedback and expectation values, issues,
//! prompts and full-text search, with MLflow's wording.

use super::tests::{assert_400, cmp, s};
use super::*;
use Comparator::*;
use EntityType::{Attribute, Expectation, Feedback, Issue, Metadata, Span, Tag};

#[test]
fn trace_filters_parse() {
    let cases: Vec<(&str, Vec<Comparison>)> = vec![
        (
            "tags.env RLIKE '^prod-(eu|us)$'",
            vec![cmp(Tag, "env", RLike, s("^prod-(eu|us)$"))],
        ),
        ("tags.env rlike 'x'", vec![cmp(Tag, "env", RLike, s("x"))]),
        (
            "metadata.tenant RLIKE 'G.*x'",
            vec![cmp(Metadata, "tenant", RLike, s("G.*x"))],
        ),
        (
            "name RLIKE 'a$'",
            vec![cmp(Attribute, "name", RLike, s("a$"))],
        ),
        (
            "span.attributes.mlflow.spanType RLIKE '^LLM$'",
            vec![cmp(Span, "attributes.mlflow.spanType", RLike, s("^LLM$"))],
        ),
        (
            "feedback.quality = 'good'",
            vec![cmp(Feedback, "quality", Eq, s("good"))],
        ),
        (
            "feedback.`quality` RLIKE '^\"good\"$'",
            vec![cmp(Feedback, "quality", RLike, s("^\"good\"$"))],
        ),
        (
            "feedback.score > 0.5",
            vec![cmp(Feedback, "score", Gt, Value::Float(0.5))],
        ),
        (
            "feedback.score <= 1",
            vec![cmp(Feedback, "score", LtEq, Value::Float(1.0))],
        ),
        (
            "feedback.a.b IS NULL",
            vec![cmp(Feedback, "a.b", IsNull, Value::Null)],
        ),
        (
            "expectation.answer IS NOT NULL",
            vec![cmp(Expectation, "answer", IsNotNull, Value::Null)],
        ),
        ("issue.id = 'iss-1'", vec![cmp(Issue, "id", Eq, s("iss-1"))]),
        (
            "prompt = 'greeting/1'",
            vec![cmp(Attribute, "prompt", Eq, s("greeting/1"))],
        ),
        (
            "trace.text LIKE '%q%'",
            vec![cmp(Span, "content", Like, s("%q%"))],
        ),
    ];
    for (input, expected) in cases {
        assert_eq!(parse_filter(&TRACES, input).unwrap(), expected, "{input}");
    }
}

#[test]
fn trace_filters_rejected() {
    let cases = [
        (
            "span.content RLIKE 'q'",
            "span.content comparator 'RLIKE' not one of",
        ),
        (
            "trace.text RLIKE 'q'",
            "span.content comparator 'RLIKE' not one of",
        ),
        ("span.content = 'q'", "span.content comparator '='"),
        // MLflow names the comparator; ferroflow types the value first, as for runs.
        (
            "trace.timestamp_ms RLIKE '1'",
            "numeric attribute: timestamp_ms",
        ),
        (
            "trace.timestamp_ms RLIKE 1",
            "Invalid comparator 'RLIKE' not one of",
        ),
        ("tags.env NOT RLIKE 'x'", "Invalid comparator 'NOT RLIKE'"),
        (
            "tags.env RLIKE '('",
            "Invalid regular expression '(' for RLIKE",
        ),
        ("span.name RLIKE 'a{2,1}'", "for RLIKE"),
        (
            "feedback.score = 0.9",
            "Expected a quoted string value for feedback (e.g. 'my-value'). Got value 0.9",
        ),
        (
            "feedback.score > '0.5'",
            "Expected a numeric value for feedback when using comparator '>'. Got value '0.5'",
        ),
        (
            "expectation.answer > 'X'",
            "Expected a numeric value for expectation when using comparator '>'",
        ),
        (
            "feedback.quality IN ('good')",
            "Expected a quoted string value for feedback (e.g. 'my-value'). Got value ('good')",
        ),
        ("feedback.quality = good", "not quoted"),
        ("feedback.`` = 'x'", "Assessment field name cannot be empty"),
        (
            "assessment.quality = 'good'",
            "Invalid entity type 'assessment'",
        ),
        ("feedback = 'good'", "Invalid attribute key 'feedback'"),
        ("issue.name = 'x'", "Invalid issue attribute 'name'"),
        ("issue.id != 'x'", "Invalid comparator '!='"),
        (
            "span.`attributes.` = 'x'",
            "Span attribute name cannot be empty",
        ),
        ("prompt IN ('a/1')", "support comparison with a list"),
    ];
    for (input, fragment) in cases {
        assert_400(parse_filter(&TRACES, input), input, fragment);
    }
}

#[test]
fn other_searches_know_no_rlike() {
    assert_400(
        parse_filter(&RUNS, "tags.a RLIKE 'x'"),
        "runs",
        "Invalid comparator 'RLIKE'",
    );
    assert_400(
        parse_filter(&RUNS, "feedback.a = 'x'"),
        "runs",
        "Invalid entity type 'feedback'",
    );
}
