//! MLflow's search language, parsed: filter strings become a list of
//! [`Comparison`]s and order_by items become [`OrderKey`]s.
//!
//! filter.rs has no SQL. It knows MLflow's grammar (mlflow/utils/search_utils.py)
//! and which keys, comparators and value types each search accepts, described
//! as data in a [`Grammar`] ([`RUNS`], [`EXPERIMENTS`], [`LOGGED_MODELS`],
//! [`REGISTERED_MODELS`], [`MODEL_VERSIONS`]). `sql.rs` renders the result.
//! Every error is a 400 INVALID_PARAMETER_VALUE worded as MLflow words it.

use crate::error::{MlflowError, Result};

mod check;
mod grammar;
mod lex;
mod parse;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod trace_tests;

use check::*;
pub use grammar::*;
use lex::*;
use parse::*;

/// What a comparison's left-hand side names: MLflow's identifier types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EntityType {
    /// A column of the searched entity (`status`, `start_time`, `name`, ...).
    Attribute,
    Metric,
    Param,
    Tag,
    Dataset,
    /// A trace's request metadata (`metadata.<key>`).
    Metadata,
    /// A column or attribute of any span of a trace (`span.<key>`).
    Span,
    /// The value of a trace's feedback of that name (`feedback.<name>`).
    Feedback,
    /// The value of a trace's expectation of that name (`expectation.<name>`).
    Expectation,
    /// An issue reference on a trace (`issue.id`).
    Issue,
}

impl EntityType {
    /// The canonical name MLflow uses in its messages.
    pub fn mlflow_name(self) -> &'static str {
        match self {
            Self::Attribute => "attribute",
            Self::Metric => "metric",
            Self::Param => "parameter",
            Self::Tag => "tag",
            Self::Dataset => "dataset",
            Self::Metadata => "request_metadata",
            Self::Span => "span",
            Self::Feedback => "feedback",
            Self::Expectation => "expectation",
            Self::Issue => "issue",
        }
    }
}

/// A comparison operator of the search language.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comparator {
    Eq,
    NotEq,
    Lt,
    LtEq,
    Gt,
    GtEq,
    /// Case-sensitive SQL pattern (`%`, `_`).
    Like,
    /// Case-insensitive SQL pattern.
    ILike,
    /// Case-sensitive regular expression, unanchored (trace search only).
    RLike,
    In,
    NotIn,
    IsNull,
    IsNotNull,
}

impl Comparator {
    const ALL: [Comparator; 13] = [
        Self::Eq,
        Self::NotEq,
        Self::Lt,
        Self::LtEq,
        Self::Gt,
        Self::GtEq,
        Self::Like,
        Self::ILike,
        Self::RLike,
        Self::In,
        Self::NotIn,
        Self::IsNull,
        Self::IsNotNull,
    ];

    /// The comparator as written in a filter (upper case for keywords).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Eq => "=",
            Self::NotEq => "!=",
            Self::Lt => "<",
            Self::LtEq => "<=",
            Self::Gt => ">",
            Self::GtEq => ">=",
            Self::Like => "LIKE",
            Self::ILike => "ILIKE",
            Self::RLike => "RLIKE",
            Self::In => "IN",
            Self::NotIn => "NOT IN",
            Self::IsNull => "IS NULL",
            Self::IsNotNull => "IS NOT NULL",
        }
    }

    fn from_text(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == text)
    }
}

/// The right-hand side of a comparison, already typed for its key.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// No value: `IS NULL` / `IS NOT NULL`.
    Null,
    Str(String),
    Int(i64),
    Float(f64),
    StrList(Vec<String>),
    /// A list of quoted ids that the grammar stores as integers (`experiment_id IN ('1')`).
    IntList(Vec<i64>),
}

/// One `<identifier> <comparator> <value>` term of an AND-joined filter.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    pub entity: EntityType,
    /// The key with quotes removed and attribute aliases resolved
    /// (`created` is `start_time`, `Run Name` is `run_name`).
    pub key: String,
    pub comparator: Comparator,
    pub value: Value,
}

/// One parsed order_by item: `"<identifier> [ASC|DESC]"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderKey {
    pub entity: EntityType,
    /// As in [`Comparison::key`].
    pub key: String,
    pub ascending: bool,
}

fn invalid(message: impl Into<String>) -> MlflowError {
    MlflowError::invalid_parameter(message)
}

fn invalid_clause(text: &str) -> MlflowError {
    invalid(format!("Invalid clause(s) in filter string: '{text}'"))
}

fn quoted_list<T: AsRef<str>>(items: impl IntoIterator<Item = T>) -> String {
    items
        .into_iter()
        .map(|s| format!("'{}'", s.as_ref()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The most comparisons one filter may hold. Each becomes a join or a
/// subquery: thousands would exceed SQLite's expression depth (a 500) and
/// keep PostgreSQL's planner busy for minutes, while people and the UI write
/// a handful.
const MAX_COMPARISONS: usize = 100;

/// Parses a filter string into its AND-joined comparisons.
///
/// An empty or whitespace-only filter has no comparisons. Like MLflow (which
/// only rejects tokens that are neither comparisons nor `AND`), stray `AND`s
/// are ignored; `OR`, parentheses and anything else are rejected.
pub fn parse_filter(grammar: &Grammar, filter: &str) -> Result<Vec<Comparison>> {
    if filter.trim().is_empty() {
        return Ok(Vec::new());
    }
    let tokens = lex(filter);
    if tokens.iter().any(|t| t.kind == Kind::Semicolon) {
        return Err(invalid(format!(
            "Search filter contained multiple expression '{filter}'. Provide AND-ed expression list."
        )));
    }
    let mut parser = Parser {
        src: filter,
        tokens: &tokens,
        pos: 0,
    };
    // MLflow rejects malformed clauses before it looks at any key, so all the
    // syntax is checked first and the keys and values after.
    let mut raw = Vec::new();
    loop {
        while parser.peek().is_some_and(|t| t.is_word("AND")) {
            parser.pos += 1;
        }
        if parser.peek().is_none() {
            break;
        }
        if raw.len() == MAX_COMPARISONS {
            return Err(invalid(format!(
                "Invalid filter string: more than {MAX_COMPARISONS} comparisons. Narrow the \
                 search with fewer, or with IN lists."
            )));
        }
        raw.push(parser.comparison()?);
    }
    raw.into_iter()
        .map(|r| check_comparison(grammar, r))
        .collect()
}

/// Parses order_by items, each `"<identifier> [ASC|DESC]"` (ASC by default).
pub fn parse_order_by(grammar: &Grammar, order_by: &[String]) -> Result<Vec<OrderKey>> {
    let mut keys: Vec<OrderKey> = Vec::with_capacity(order_by.len());
    for item in order_by {
        let key = parse_order_by_item(grammar, item)?;
        if grammar.reject_duplicate_order_by
            && keys
                .iter()
                .any(|k| k.entity == key.entity && k.key == key.key)
        {
            return Err(invalid(format!(
                "`order_by` contains duplicate fields: [{}]",
                quoted_list(order_by)
            )));
        }
        keys.push(key);
    }
    Ok(keys)
}

fn parse_order_by_item(grammar: &Grammar, item: &str) -> Result<OrderKey> {
    let unparsable = || {
        invalid(format!(
            "Invalid order_by clause '{item}'. Could not be parsed."
        ))
    };
    let tokens = lex(item);
    let (parts, ascending) = match tokens.as_slice() {
        [Token {
            kind: Kind::Ident(parts),
            ..
        }] => (parts, true),
        [Token {
            kind: Kind::Ident(parts),
            ..
        }, direction] => {
            let ascending = if direction.is_word("ASC") {
                true
            } else if direction.is_word("DESC") {
                false
            } else if matches!(direction.kind, Kind::Ident(_)) {
                return Err(invalid(format!(
                    "Invalid ordering key in order_by clause '{item}'."
                )));
            } else {
                return Err(unparsable());
            };
            (parts, ascending)
        }
        _ => return Err(unparsable()),
    };
    let (entity, key) = resolve_identifier(grammar, parts, KeyUse::OrderBy)?;
    if !grammar.order_by_entities.contains(&entity) {
        return Err(invalid(format!(
            "Invalid order_by entity: {}",
            entity.mlflow_name()
        )));
    }
    Ok(OrderKey {
        entity,
        key,
        ascending,
    })
}
