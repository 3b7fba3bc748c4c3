//! Parser tests: MLflow's accepted and refused filters, with its wording.

use super::*;
use crate::error::ErrorCode;
use Comparator::*;
use EntityType::{Attribute, Dataset, Metric, Param, Tag};

pub(super) fn cmp(
    entity: EntityType,
    key: &str,
    comparator: Comparator,
    value: Value,
) -> Comparison {
    Comparison {
        entity,
        key: key.to_string(),
        comparator,
        value,
    }
}

pub(super) fn s(v: &str) -> Value {
    Value::Str(v.to_string())
}

fn strs(items: &[&str]) -> Value {
    Value::StrList(items.iter().map(|s| s.to_string()).collect())
}

pub(super) fn assert_400<T: std::fmt::Debug>(result: Result<T>, input: &str, fragment: &str) {
    let err = result.expect_err(input);
    assert_eq!(err.code, ErrorCode::InvalidParameterValue, "{input}");
    assert!(
        err.message.contains(fragment),
        "{input}: message {:?} lacks {fragment:?}",
        err.message
    );
}

#[test]
fn runs_filters_parse() {
    let cases: Vec<(&str, Vec<Comparison>)> = vec![
        ("", vec![]),
        ("   \t\n", vec![]),
        (
            "metrics.acc > 0.5",
            vec![cmp(Metric, "acc", Gt, Value::Float(0.5))],
        ),
        (
            "metric.acc>=1",
            vec![cmp(Metric, "acc", GtEq, Value::Float(1.0))],
        ),
        (
            "metrics.a < -1.5e3",
            vec![cmp(Metric, "a", Lt, Value::Float(-1500.0))],
        ),
        (
            "metrics.a <= .5",
            vec![cmp(Metric, "a", LtEq, Value::Float(0.5))],
        ),
        (
            "metrics.a != 1.",
            vec![cmp(Metric, "a", NotEq, Value::Float(1.0))],
        ),
        (
            "metrics.\"a b\" = 2",
            vec![cmp(Metric, "a b", Eq, Value::Float(2.0))],
        ),
        (
            "metrics.`a b` = 2",
            vec![cmp(Metric, "a b", Eq, Value::Float(2.0))],
        ),
        ("params.lr = '0.1'", vec![cmp(Param, "lr", Eq, s("0.1"))]),
        ("param.lr = \"0.1\"", vec![cmp(Param, "lr", Eq, s("0.1"))]),
        ("parameter.lr != 'x'", vec![cmp(Param, "lr", NotEq, s("x"))]),
        (
            "parameters.lr like 'x%'",
            vec![cmp(Param, "lr", Like, s("x%"))],
        ),
        (
            "params.a.b ILIKE '%X'",
            vec![cmp(Param, "a.b", ILike, s("%X"))],
        ),
        (
            "params.p IS NULL",
            vec![cmp(Param, "p", IsNull, Value::Null)],
        ),
        (
            "params.p is not null",
            vec![cmp(Param, "p", IsNotNull, Value::Null)],
        ),
        (
            "tags.`mlflow.user` = 'alice'",
            vec![cmp(Tag, "mlflow.user", Eq, s("alice"))],
        ),
        ("tag.\"a b\" = 'x'", vec![cmp(Tag, "a b", Eq, s("x"))]),
        ("`tags`.t = 'x'", vec![cmp(Tag, "t", Eq, s("x"))]),
        // MLflow keeps the text between the quotes as written.
        ("tags.t = 'it''s'", vec![cmp(Tag, "t", Eq, s("it''s"))]),
        ("tags.t = 'a AND b'", vec![cmp(Tag, "t", Eq, s("a AND b"))]),
        (
            "status = 'FINISHED'",
            vec![cmp(Attribute, "status", Eq, s("FINISHED"))],
        ),
        (
            "attribute.status = 'x'",
            vec![cmp(Attribute, "status", Eq, s("x"))],
        ),
        (
            "attributes.user_id LIKE 'a%'",
            vec![cmp(Attribute, "user_id", Like, s("a%"))],
        ),
        (
            "attr.artifact_uri != 'x'",
            vec![cmp(Attribute, "artifact_uri", NotEq, s("x"))],
        ),
        (
            "run.run_name = 'x'",
            vec![cmp(Attribute, "run_name", Eq, s("x"))],
        ),
        (
            "`run name` = 'x'",
            vec![cmp(Attribute, "run_name", Eq, s("x"))],
        ),
        (
            "\"Run name\" = 'x'",
            vec![cmp(Attribute, "run_name", Eq, s("x"))],
        ),
        (
            "attributes.`Run Name` ILIKE 'X'",
            vec![cmp(Attribute, "run_name", ILike, s("X"))],
        ),
        (
            "start_time >= 5",
            vec![cmp(Attribute, "start_time", GtEq, Value::Int(5))],
        ),
        (
            "end_time < 5.5",
            vec![cmp(Attribute, "end_time", Lt, Value::Float(5.5))],
        ),
        (
            "created > 5",
            vec![cmp(Attribute, "start_time", Gt, Value::Int(5))],
        ),
        (
            "attributes.Created = 5",
            vec![cmp(Attribute, "start_time", Eq, Value::Int(5))],
        ),
        (
            "run_id IN ('a', \"b\")",
            vec![cmp(Attribute, "run_id", In, strs(&["a", "b"]))],
        ),
        (
            "run_id not in ('a',)",
            vec![cmp(Attribute, "run_id", NotIn, strs(&["a"]))],
        ),
        (
            "datasets.name = 'train'",
            vec![cmp(Dataset, "name", Eq, s("train"))],
        ),
        (
            "dataset.digest IN ('a','b')",
            vec![cmp(Dataset, "digest", In, strs(&["a", "b"]))],
        ),
        (
            "datasets.context LIKE 'tr%'",
            vec![cmp(Dataset, "context", Like, s("tr%"))],
        ),
        (
            "metrics.a > 1 and params.p = 'x' AND tags.t != 'y'",
            vec![
                cmp(Metric, "a", Gt, Value::Float(1.0)),
                cmp(Param, "p", Eq, s("x")),
                cmp(Tag, "t", NotEq, s("y")),
            ],
        ),
        // MLflow only rejects tokens that are neither comparisons nor AND.
        (
            "metrics.a > 1 AND",
            vec![cmp(Metric, "a", Gt, Value::Float(1.0))],
        ),
        (
            "AND AND metrics.a > 1",
            vec![cmp(Metric, "a", Gt, Value::Float(1.0))],
        ),
        (
            "metrics.a > 1 metrics.b < 2",
            vec![
                cmp(Metric, "a", Gt, Value::Float(1.0)),
                cmp(Metric, "b", Lt, Value::Float(2.0)),
            ],
        ),
    ];
    for (input, expected) in cases {
        let parsed = parse_filter(&RUNS, input).unwrap_or_else(|e| panic!("{input}: {e}"));
        assert_eq!(parsed, expected, "{input}");
    }
}

#[test]
fn runs_filters_rejected() {
    let cases = [
        (
            "metrics.a > 1 OR params.p = 'x'",
            "Invalid clause(s) in filter string: 'OR'",
        ),
        (
            "(metrics.a > 1)",
            "Invalid clause(s) in filter string: '(metrics.a > 1)'",
        ),
        ("metrics.a > 1 AND (params.p = 'x')", "Invalid clause(s)"),
        (
            "metrics.a",
            "Invalid clause(s) in filter string: 'metrics.a'",
        ),
        ("metrics.a >", "Invalid clause(s)"),
        ("tags.t = 'x", "Invalid clause(s)"),
        ("params.p IS 'x'", "Invalid clause(s)"),
        ("run_id IN 'a'", "Invalid clause(s)"),
        ("run_id NOT 'a'", "Invalid clause(s)"),
        ("metrics.a > +1", "Invalid clause(s)"),
        ("metrics.a-b > 1", "Invalid clause(s)"),
        (
            "params.p = 'x'; params.q = 'y'",
            "Search filter contained multiple expression",
        ),
        ("foo.a = 'x'", "Invalid entity type 'foo'"),
        (
            "experiment_id = '1'",
            "Invalid attribute key 'experiment_id'",
        ),
        ("bogus = 'x'", "Invalid attribute key 'bogus' specified"),
        ("datasets.foo = 'x'", "Invalid dataset key 'foo'"),
        (
            "metrics.a > '1'",
            "Expected numeric value type for metric. Found '1'",
        ),
        ("metrics.a = abc", "Expected numeric value type for metric"),
        ("metrics.a LIKE 1", "Invalid comparator 'LIKE' not one of"),
        ("metrics.a <> 1", "Invalid comparator '<>'"),
        ("metrics.a == 1", "Invalid comparator '=='"),
        (
            "metrics.a IS NULL",
            "IS NULL / IS NOT NULL is only supported for tags and params",
        ),
        (
            "status IS NOT NULL",
            "only supported for tags and params, not for 'attribute'",
        ),
        (
            "params.p = 1",
            "Expected a quoted string value for parameter",
        ),
        ("tags.t = x", "Parameter value is either not quoted"),
        ("tags.t = `x`", "Parameter value is either not quoted"),
        ("params.p > 'x'", "Invalid comparator '>'"),
        ("params.p NOT LIKE 'x'", "Invalid comparator 'NOT LIKE'"),
        ("tags.t IN ('x')", "Expected a quoted string value for tag"),
        (
            "status IN ('a')",
            "Only ['run_id'] attributes support comparison with a list",
        ),
        (
            "status = 5",
            "Expected a quoted string value for attributes",
        ),
        ("status > 'a'", "Invalid comparator '>'"),
        (
            "start_time = '5'",
            "Expected numeric value type for numeric attribute: start_time",
        ),
        ("start_time LIKE 5", "Invalid comparator 'LIKE'"),
        (
            "run_id IN ()",
            "expected a non-empty list of string values, but got empty list",
        ),
        ("run_id IN (1, 2)", "but got different type in list: (1, 2)"),
        ("run_id IN ('a' 'b')", "ill-formed list"),
        ("run_id IN ('a',,)", "ill-formed list"),
        ("run_id = ('a')", "IN and NOT IN take a list"),
        ("datasets.name > 'a'", "Invalid comparator '>'"),
        (
            "datasets.name = 1",
            "Expected a quoted string value for dataset attributes",
        ),
    ];
    for (input, fragment) in cases {
        assert_400(parse_filter(&RUNS, input), input, fragment);
    }
}

#[test]
fn experiments_filters_parse() {
    let cases: Vec<(&str, Vec<Comparison>)> = vec![
        ("name = 'x'", vec![cmp(Attribute, "name", Eq, s("x"))]),
        (
            "attributes.name LIKE 'x%'",
            vec![cmp(Attribute, "name", Like, s("x%"))],
        ),
        (
            "`name` ILIKE 'X'",
            vec![cmp(Attribute, "name", ILike, s("X"))],
        ),
        (
            "experiment_id = '3'",
            vec![cmp(Attribute, "experiment_id", Eq, Value::Int(3))],
        ),
        (
            "experiment_id NOT IN ('1', '2')",
            vec![cmp(
                Attribute,
                "experiment_id",
                NotIn,
                Value::IntList(vec![1, 2]),
            )],
        ),
        (
            "creation_time > 5",
            vec![cmp(Attribute, "creation_time", Gt, Value::Int(5))],
        ),
        (
            "last_update_time <= 7",
            vec![cmp(Attribute, "last_update_time", LtEq, Value::Int(7))],
        ),
        ("tags.`a.b` != 'x'", vec![cmp(Tag, "a.b", NotEq, s("x"))]),
        ("tag.t IS NULL", vec![cmp(Tag, "t", IsNull, Value::Null)]),
    ];
    for (input, expected) in cases {
        let parsed = parse_filter(&EXPERIMENTS, input).unwrap_or_else(|e| panic!("{input}: {e}"));
        assert_eq!(parsed, expected, "{input}");
    }
}

#[test]
fn experiments_filters_rejected() {
    let cases = [
        ("params.p = 'x'", "Invalid entity type 'params'"),
        ("attr.name = 'x'", "Invalid entity type 'attr'"),
        ("start_time > 1", "Invalid attribute key 'start_time'"),
        (
            "name IS NULL",
            "only supported for tags, not for 'attribute' 'name'",
        ),
        (
            "experiment_id = 1",
            "Expected a quoted string value for attributes",
        ),
        ("experiment_id IN ('a')", "Invalid experiment ID 'a'"),
        ("experiment_id LIKE '1'", "Invalid comparator 'LIKE'"),
        (
            "name IN ('a')",
            "Only ['experiment_id'] attributes support comparison",
        ),
        ("name > 'a'", "Invalid comparator '>'"),
        (
            "creation_time > 5.5",
            "Invalid value for numeric attribute 'creation_time'",
        ),
        (
            "creation_time > '5'",
            "Expected numeric value type for numeric attribute",
        ),
        ("tags.t > 'x'", "Invalid comparator '>'"),
        (
            "name = 'a' OR name = 'b'",
            "Invalid clause(s) in filter string: 'OR'",
        ),
    ];
    for (input, fragment) in cases {
        assert_400(parse_filter(&EXPERIMENTS, input), input, fragment);
    }
}

fn order(entity: EntityType, key: &str, ascending: bool) -> OrderKey {
    OrderKey {
        entity,
        key: key.to_string(),
        ascending,
    }
}

#[test]
fn order_by_parses() {
    let cases = [
        ("start_time", order(Attribute, "start_time", true)),
        ("start_time DESC", order(Attribute, "start_time", false)),
        ("  end_time asc ", order(Attribute, "end_time", true)),
        ("created desc", order(Attribute, "start_time", false)),
        ("metrics.`a b` DESC", order(Metric, "a b", false)),
        ("metric.\"a b\" ASC", order(Metric, "a b", true)),
        ("metrics.a.b", order(Metric, "a.b", true)),
        ("params.p", order(Param, "p", true)),
        (
            "tags.`mlflow.runName` DESC",
            order(Tag, "mlflow.runName", false),
        ),
        ("attributes.run_id", order(Attribute, "run_id", true)),
        ("run_name", order(Attribute, "run_name", true)),
    ];
    for (input, expected) in cases {
        let parsed =
            parse_order_by(&RUNS, &[input.to_string()]).unwrap_or_else(|e| panic!("{input}: {e}"));
        assert_eq!(parsed, vec![expected], "{input}");
    }
    let parsed = parse_order_by(&EXPERIMENTS, &["name DESC".into(), "name".into()]).unwrap();
    assert_eq!(
        parsed,
        vec![
            order(Attribute, "name", false),
            order(Attribute, "name", true)
        ],
        "experiments accept a repeated field, as MLflow does"
    );
}

#[test]
fn order_by_rejected() {
    let cases: [(&[&str], &str); 12] = [
        (&[""], "Invalid order_by clause ''. Could not be parsed."),
        (&["start_time DESC ASC"], "Could not be parsed"),
        (&["start_time,end_time"], "Could not be parsed"),
        (
            &["start_time UP"],
            "Invalid ordering key in order_by clause 'start_time UP'.",
        ),
        (&["bogus"], "Invalid attribute key 'bogus'"),
        (&["`run name`"], "Invalid attribute key 'run name'"),
        (&["foo.bar"], "Invalid entity type 'foo'"),
        (&["datasets.name"], "Invalid order_by entity: dataset"),
        (
            &["start_time", "start_time DESC"],
            "`order_by` contains duplicate fields",
        ),
        (
            &["created", "start_time"],
            "`order_by` contains duplicate fields",
        ),
        (
            &["metrics.a", "metric.a DESC"],
            "`order_by` contains duplicate fields",
        ),
        (&["tags.t; DROP TABLE runs"], "Could not be parsed"),
    ];
    for (input, fragment) in cases {
        let items: Vec<String> = input.iter().map(|s| s.to_string()).collect();
        assert_400(parse_order_by(&RUNS, &items), &items.join(" | "), fragment);
    }
    let cases = [
        ("tags.t", "Invalid order_by entity: tag"),
        ("start_time", "Invalid attribute key 'start_time'"),
    ];
    for (input, fragment) in cases {
        assert_400(
            parse_order_by(&EXPERIMENTS, &[input.to_string()]),
            input,
            fragment,
        );
    }
}
