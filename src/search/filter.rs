//! MLflow's search language, parsed: filter strings become a list of
//! [`Comparison`]s and order_by items become [`OrderKey`]s.
//!
//! filter.rs has no SQL. It knows MLflow's grammar (mlflow/utils/search_utils.py)
//! and which keys, comparators and value types each search accepts, described
//! as data in a [`Grammar`] ([`RUNS`], [`EXPERIMENTS`], [`LOGGED_MODELS`],
//! [`REGISTERED_MODELS`], [`MODEL_VERSIONS`]). `sql.rs` renders the result.
//! Every error is a 400 INVALID_PARAMETER_VALUE worded as MLflow words it.

use crate::error::{MlflowError, Result};

/// What a comparison's left-hand side names: MLflow's identifier types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EntityType {
    /// A column of the searched entity (`status`, `start_time`, `name`, ...).
    Attribute,
    Metric,
    Param,
    Tag,
    Dataset,
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
    In,
    NotIn,
    IsNull,
    IsNotNull,
}

impl Comparator {
    const ALL: [Comparator; 12] = [
        Self::Eq,
        Self::NotEq,
        Self::Lt,
        Self::LtEq,
        Self::Gt,
        Self::GtEq,
        Self::Like,
        Self::ILike,
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

/// The search language of one MLflow entity kind: which identifiers, keys,
/// comparators and values its filters and order_by accept.
#[derive(Debug)]
pub struct Grammar {
    /// Accepted `<prefix>.` spellings; an identifier without a prefix is an attribute.
    pub prefixes: &'static [(&'static str, EntityType)],
    /// How the "Invalid entity type" message lists the valid prefixes.
    pub prefixes_hint: &'static str,
    pub string_attributes: &'static [&'static str],
    pub numeric_attributes: &'static [&'static str],
    /// Alternative attribute names accepted in filters, with the attribute each means.
    pub filter_aliases: &'static [(&'static str, &'static str)],
    /// Alternative attribute names accepted in order_by.
    pub order_by_aliases: &'static [(&'static str, &'static str)],
    /// String attributes that accept `IN` / `NOT IN` lists.
    pub list_attributes: &'static [&'static str],
    /// String attributes whose (quoted) values are integer ids, bound as integers.
    pub integer_attributes: &'static [&'static str],
    /// Whether numeric attributes reject fractional values (experiments do, runs don't).
    pub integer_only_numeric_attributes: bool,
    pub dataset_keys: &'static [&'static str],
    /// Entities that accept `IS NULL` / `IS NOT NULL`, and how the error names them.
    pub null_check_entities: &'static [EntityType],
    pub null_check_label: &'static str,
    pub metric_comparators: &'static [Comparator],
    pub param_comparators: &'static [Comparator],
    pub tag_comparators: &'static [Comparator],
    pub string_attribute_comparators: &'static [Comparator],
    pub numeric_attribute_comparators: &'static [Comparator],
    pub dataset_comparators: &'static [Comparator],
    /// Per-attribute comparator sets that replace the string/numeric default.
    pub attribute_comparators: &'static [(&'static str, &'static [Comparator])],
    /// Entities order_by may name.
    pub order_by_entities: &'static [EntityType],
    /// MLflow's runs search rejects the same field twice in order_by; experiments don't.
    pub reject_duplicate_order_by: bool,
}

const NUMERIC_COMPARATORS: &[Comparator] = &[
    Comparator::Eq,
    Comparator::NotEq,
    Comparator::Lt,
    Comparator::LtEq,
    Comparator::Gt,
    Comparator::GtEq,
];
const STRING_COMPARATORS: &[Comparator] = &[
    Comparator::Eq,
    Comparator::NotEq,
    Comparator::Like,
    Comparator::ILike,
    Comparator::In,
    Comparator::NotIn,
];
const KEY_VALUE_COMPARATORS: &[Comparator] = &[
    Comparator::Eq,
    Comparator::NotEq,
    Comparator::Like,
    Comparator::ILike,
    Comparator::IsNull,
    Comparator::IsNotNull,
];

/// Param and tag comparators of the logged-model search (no lists, no NULL tests).
const KEY_VALUE_STRING_COMPARATORS: &[Comparator] = &[
    Comparator::Eq,
    Comparator::NotEq,
    Comparator::Like,
    Comparator::ILike,
];

/// `runs/search` (SearchUtils).
pub static RUNS: Grammar = Grammar {
    prefixes: &[
        ("metric", EntityType::Metric),
        ("metrics", EntityType::Metric),
        ("param", EntityType::Param),
        ("params", EntityType::Param),
        ("parameter", EntityType::Param),
        ("parameters", EntityType::Param),
        ("tag", EntityType::Tag),
        ("tags", EntityType::Tag),
        ("attribute", EntityType::Attribute),
        ("attributes", EntityType::Attribute),
        ("attr", EntityType::Attribute),
        ("run", EntityType::Attribute),
        ("dataset", EntityType::Dataset),
        ("datasets", EntityType::Dataset),
    ],
    prefixes_hint: "['metric', 'parameter', 'tag', 'attribute', 'dataset']",
    string_attributes: &["run_id", "run_name", "status", "user_id", "artifact_uri"],
    numeric_attributes: &["start_time", "end_time"],
    filter_aliases: &[
        ("created", "start_time"),
        ("Created", "start_time"),
        ("run name", "run_name"),
        ("Run name", "run_name"),
        ("Run Name", "run_name"),
    ],
    // MLflow's orderable keys take the `created` aliases but not the run-name ones.
    order_by_aliases: &[("created", "start_time"), ("Created", "start_time")],
    list_attributes: &["run_id"],
    integer_attributes: &[],
    integer_only_numeric_attributes: false,
    dataset_keys: &["name", "digest", "context"],
    null_check_entities: &[EntityType::Tag, EntityType::Param],
    null_check_label: "tags and params",
    metric_comparators: NUMERIC_COMPARATORS,
    param_comparators: KEY_VALUE_COMPARATORS,
    tag_comparators: KEY_VALUE_COMPARATORS,
    string_attribute_comparators: STRING_COMPARATORS,
    numeric_attribute_comparators: NUMERIC_COMPARATORS,
    dataset_comparators: STRING_COMPARATORS,
    attribute_comparators: &[],
    order_by_entities: &[
        EntityType::Attribute,
        EntityType::Metric,
        EntityType::Param,
        EntityType::Tag,
    ],
    reject_duplicate_order_by: true,
};

/// `experiments/search` (SearchExperimentsUtils and the SQL store's checks).
pub static EXPERIMENTS: Grammar = Grammar {
    prefixes: &[
        ("attribute", EntityType::Attribute),
        ("attributes", EntityType::Attribute),
        ("tag", EntityType::Tag),
        ("tags", EntityType::Tag),
    ],
    prefixes_hint: "('attribute', 'attributes', 'tag', 'tags')",
    string_attributes: &["name", "experiment_id"],
    numeric_attributes: &["creation_time", "last_update_time"],
    filter_aliases: &[],
    order_by_aliases: &[],
    list_attributes: &["experiment_id"],
    integer_attributes: &["experiment_id"],
    integer_only_numeric_attributes: true,
    dataset_keys: &[],
    null_check_entities: &[EntityType::Tag],
    null_check_label: "tags",
    metric_comparators: &[],
    param_comparators: &[],
    tag_comparators: KEY_VALUE_COMPARATORS,
    string_attribute_comparators: STRING_COMPARATORS,
    numeric_attribute_comparators: NUMERIC_COMPARATORS,
    dataset_comparators: &[],
    // The SQL store narrows these: experiment_id is a nominal id, name has no list form.
    attribute_comparators: &[
        (
            "experiment_id",
            &[
                Comparator::Eq,
                Comparator::NotEq,
                Comparator::In,
                Comparator::NotIn,
            ],
        ),
        (
            "name",
            &[
                Comparator::Eq,
                Comparator::NotEq,
                Comparator::Like,
                Comparator::ILike,
            ],
        ),
    ],
    order_by_entities: &[EntityType::Attribute],
    reject_duplicate_order_by: false,
};

/// `logged-models/search` (mlflow/utils/search_logged_model_utils.py). Its
/// order_by is a list of objects, parsed in `search::logged_models`.
pub static LOGGED_MODELS: Grammar = Grammar {
    prefixes: &[
        ("attributes", EntityType::Attribute),
        ("metrics", EntityType::Metric),
        ("params", EntityType::Param),
        ("tags", EntityType::Tag),
    ],
    prefixes_hint: "['attributes', 'metrics', 'params', 'tags']",
    string_attributes: &[
        "name",
        "model_id",
        "model_type",
        "status",
        "source_run_id",
        "experiment_id",
    ],
    numeric_attributes: &["creation_timestamp_ms", "last_updated_timestamp_ms"],
    filter_aliases: &[
        ("creation_time", "creation_timestamp_ms"),
        ("creation_timestamp", "creation_timestamp_ms"),
        ("last_updated_time", "last_updated_timestamp_ms"),
        ("last_updated_timestamp", "last_updated_timestamp_ms"),
    ],
    order_by_aliases: &[],
    list_attributes: &["name", "model_id", "model_type", "status", "source_run_id"],
    integer_attributes: &["experiment_id"],
    integer_only_numeric_attributes: false,
    dataset_keys: &[],
    null_check_entities: &[],
    null_check_label: "nothing in a logged model search",
    metric_comparators: NUMERIC_COMPARATORS,
    param_comparators: KEY_VALUE_STRING_COMPARATORS,
    tag_comparators: KEY_VALUE_STRING_COMPARATORS,
    string_attribute_comparators: STRING_COMPARATORS,
    numeric_attribute_comparators: NUMERIC_COMPARATORS,
    dataset_comparators: &[],
    attribute_comparators: &[("experiment_id", &[Comparator::Eq, Comparator::NotEq])],
    order_by_entities: &[],
    reject_duplicate_order_by: false,
};

const REGISTRY_TAG_COMPARATORS: &[Comparator] = &[
    Comparator::Eq,
    Comparator::NotEq,
    Comparator::Like,
    Comparator::ILike,
];

/// `registered-models/search` filters (SearchModelUtils): `name` and tags.
/// Its order_by keys differ from the filter keys, so `search::registry`
/// parses them itself.
pub static REGISTERED_MODELS: Grammar = Grammar {
    prefixes: &[
        ("attribute", EntityType::Attribute),
        ("tag", EntityType::Tag),
        ("tags", EntityType::Tag),
    ],
    prefixes_hint: "('attribute', 'tag', 'tags')",
    string_attributes: &["name"],
    numeric_attributes: &[],
    filter_aliases: &[],
    order_by_aliases: &[],
    list_attributes: &["name"],
    integer_attributes: &[],
    integer_only_numeric_attributes: true,
    dataset_keys: &[],
    null_check_entities: &[],
    null_check_label: "tags and params",
    metric_comparators: &[],
    param_comparators: &[],
    tag_comparators: REGISTRY_TAG_COMPARATORS,
    string_attribute_comparators: STRING_COMPARATORS,
    numeric_attribute_comparators: NUMERIC_COMPARATORS,
    dataset_comparators: &[],
    attribute_comparators: &[],
    order_by_entities: &[EntityType::Attribute],
    reject_duplicate_order_by: true,
};

/// `model-versions/search` filters (SearchModelVersionUtils): `name`,
/// `run_id` (both with lists), `source_path`, the integer `version_number`,
/// and tags.
pub static MODEL_VERSIONS: Grammar = Grammar {
    prefixes: &[
        ("attribute", EntityType::Attribute),
        ("tag", EntityType::Tag),
        ("tags", EntityType::Tag),
    ],
    prefixes_hint: "('attribute', 'tag', 'tags')",
    string_attributes: &["name", "run_id", "source_path"],
    numeric_attributes: &["version_number"],
    filter_aliases: &[],
    order_by_aliases: &[],
    list_attributes: &["name", "run_id"],
    integer_attributes: &[],
    integer_only_numeric_attributes: true,
    dataset_keys: &[],
    null_check_entities: &[],
    null_check_label: "tags and params",
    metric_comparators: &[],
    param_comparators: &[],
    tag_comparators: REGISTRY_TAG_COMPARATORS,
    string_attribute_comparators: STRING_COMPARATORS,
    numeric_attribute_comparators: NUMERIC_COMPARATORS,
    dataset_comparators: &[],
    attribute_comparators: &[],
    order_by_entities: &[EntityType::Attribute],
    reject_duplicate_order_by: true,
};

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

// ---------------------------------------------------------------------------
// Lexing. The token shapes follow sqlparse's, which MLflow's parser is built on.
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq)]
enum Kind {
    /// A dotted identifier: `metrics.acc`, ``tags.`a.b` ``, `"run name"`, or a keyword.
    Ident(Vec<Part>),
    /// A single-quoted string.
    Str,
    Number {
        float: bool,
    },
    /// A run of comparison characters (`=`, `!=`, `<>`, ...).
    Op,
    LParen,
    RParen,
    Comma,
    Semicolon,
    /// Anything else, including an unterminated quote (which runs to the end).
    Other,
}

#[derive(Debug, Clone, PartialEq)]
struct Part {
    text: String,
    /// The quote character around `text` (`"` or `` ` ``), if any.
    quote: Option<char>,
}

#[derive(Debug, Clone)]
struct Token {
    kind: Kind,
    start: usize,
    end: usize,
}

impl Token {
    /// An unquoted one-part identifier equal to `word`, ignoring case.
    fn is_word(&self, word: &str) -> bool {
        self.word().is_some_and(|w| w.eq_ignore_ascii_case(word))
    }

    fn word(&self) -> Option<&str> {
        match &self.kind {
            Kind::Ident(parts) if parts.len() == 1 && parts[0].quote.is_none() => {
                Some(&parts[0].text)
            }
            _ => None,
        }
    }
}

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

fn char_at(src: &str, i: usize) -> Option<char> {
    src.get(i..).and_then(|s| s.chars().next())
}

fn count_digits(src: &str, i: usize) -> usize {
    src.get(i..)
        .map_or(0, |s| s.bytes().take_while(u8::is_ascii_digit).count())
}

/// The end of a quoted run starting at `start`; a doubled quote (and, for
/// `'` and `"`, a backslash-escaped one) stays inside. `None` if unterminated.
fn scan_quoted(src: &str, start: usize, quote: u8) -> Option<usize> {
    let bytes = src.as_bytes();
    let mut i = start + 1;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'\\' && quote != b'`' && bytes.get(i + 1) == Some(&quote) {
            i += 2;
        } else if b == quote {
            if bytes.get(i + 1) == Some(&quote) {
                i += 2;
            } else {
                return Some(i + 1);
            }
        } else {
            i += 1;
        }
    }
    None
}

/// sqlparse's number literals: `-?\d+(\.\d+)?E-?\d+`, then `-?(\d+\.\d*|\.\d+)`
/// and `-?\d+`, the last two not directly followed by a letter or `_`.
fn scan_number(src: &str, start: usize) -> Option<(usize, bool)> {
    let bytes = src.as_bytes();
    let at = |i: usize| bytes.get(i).copied();
    let mut i = start;
    if at(i) == Some(b'-') {
        i += 1;
    }
    let int_digits = count_digits(src, i);
    let not_word_after =
        |end: usize| !char_at(src, end).is_some_and(|c| c.is_alphabetic() || c == '_');
    if int_digits > 0 {
        let mut j = i + int_digits;
        if at(j) == Some(b'.') && count_digits(src, j + 1) > 0 {
            j += 1 + count_digits(src, j + 1);
        }
        if matches!(at(j), Some(b'e' | b'E')) {
            let mut k = j + 1;
            if at(k) == Some(b'-') {
                k += 1;
            }
            let exp_digits = count_digits(src, k);
            if exp_digits > 0 {
                return Some((k + exp_digits, true));
            }
        }
    }
    let int_end = i + int_digits;
    if int_digits > 0 && at(int_end) == Some(b'.') {
        let end = int_end + 1 + count_digits(src, int_end + 1);
        return not_word_after(end).then_some((end, true));
    }
    if int_digits == 0 && at(i) == Some(b'.') && count_digits(src, i + 1) > 0 {
        let end = i + 1 + count_digits(src, i + 1);
        return not_word_after(end).then_some((end, true));
    }
    (int_digits > 0 && not_word_after(int_end)).then_some((int_end, false))
}

/// One identifier part at `i`: a word, or a `"`- or `` ` ``-quoted name.
fn scan_part(src: &str, i: usize) -> Option<(Part, usize)> {
    let c = char_at(src, i)?;
    if c == '"' || c == '`' {
        let end = scan_quoted(src, i, c as u8)?;
        let text = src[i + 1..end - 1].to_string();
        return Some((
            Part {
                text,
                quote: Some(c),
            },
            end,
        ));
    }
    if !is_word_char(c) {
        return None;
    }
    let len: usize = src[i..]
        .chars()
        .take_while(|&c| is_word_char(c) || c == '$' || c == '#')
        .map(char::len_utf8)
        .sum();
    let text = src[i..i + len].to_string();
    Some((Part { text, quote: None }, i + len))
}

fn scan_ident(src: &str, start: usize) -> Option<(Vec<Part>, usize)> {
    let (first, mut end) = scan_part(src, start)?;
    let mut parts = vec![first];
    while char_at(src, end) == Some('.') {
        match scan_part(src, end + 1) {
            Some((part, next)) => {
                parts.push(part);
                end = next;
            }
            None => break,
        }
    }
    Some((parts, end))
}

fn lex(src: &str) -> Vec<Token> {
    let mut tokens = Vec::new();
    let mut i = 0;
    while let Some(c) = char_at(src, i) {
        if c.is_whitespace() {
            i += c.len_utf8();
            continue;
        }
        let start = i;
        let (kind, end) = if let Some((end, float)) = (c.is_ascii_digit() || c == '-' || c == '.')
            .then(|| scan_number(src, i))
            .flatten()
        {
            (Kind::Number { float }, end)
        } else if c == '\'' {
            match scan_quoted(src, i, b'\'') {
                Some(end) => (Kind::Str, end),
                None => (Kind::Other, src.len()),
            }
        } else if c == '"' || c == '`' || is_word_char(c) {
            match scan_ident(src, i) {
                Some((parts, end)) => (Kind::Ident(parts), end),
                None => (Kind::Other, src.len()),
            }
        } else if "<>=!~".contains(c) {
            let len = src[i..]
                .bytes()
                .take_while(|b| b"<>=!~".contains(b))
                .count();
            (Kind::Op, i + len)
        } else {
            let kind = match c {
                '(' => Kind::LParen,
                ')' => Kind::RParen,
                ',' => Kind::Comma,
                ';' => Kind::Semicolon,
                _ => Kind::Other,
            };
            (kind, i + c.len_utf8())
        };
        tokens.push(Token { kind, start, end });
        i = end;
    }
    tokens
}

// ---------------------------------------------------------------------------
// Parsing: syntax first, into raw comparisons; keys and values are checked after.
// ---------------------------------------------------------------------------

/// A comparison as written, before the grammar has looked at it.
struct RawComparison<'a> {
    /// The whole comparison's text, for messages.
    text: &'a str,
    ident: Vec<Part>,
    /// Upper-cased, keywords single-spaced (`NOT IN`, `IS NOT NULL`).
    comparator: String,
    value: RawValue<'a>,
}

enum RawValue<'a> {
    None,
    /// A `'...'` or `"..."` literal, quotes removed (MLflow does not unescape).
    Quoted(String),
    /// An unquoted or backtick-quoted word where a value belongs.
    Bare(&'a str),
    Number {
        text: &'a str,
        float: bool,
    },
    List {
        text: &'a str,
        items: ListItems,
    },
}

enum ListItems {
    Strings(Vec<String>),
    Empty,
    NotStrings,
    IllFormed,
}

impl RawValue<'_> {
    fn text(&self) -> String {
        match self {
            Self::None => String::new(),
            Self::Quoted(s) => format!("'{s}'"),
            Self::Bare(t) | Self::Number { text: t, .. } | Self::List { text: t, .. } => {
                t.to_string()
            }
        }
    }
}

struct Parser<'a> {
    src: &'a str,
    tokens: &'a [Token],
    pos: usize,
}

const RESERVED: &[&str] = &[
    "AND", "OR", "NOT", "IN", "IS", "NULL", "LIKE", "ILIKE", "RLIKE",
];

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<&'a Token> {
        self.tokens.get(self.pos)
    }

    fn next(&mut self) -> Option<&'a Token> {
        let token = self.tokens.get(self.pos);
        self.pos += token.is_some() as usize;
        token
    }

    /// The text of the clause from `start` through the current token, for errors.
    fn clause_error(&self, start: usize) -> MlflowError {
        let end = self
            .tokens
            .get(self.pos.saturating_sub(1))
            .map_or(self.src.len(), |t| t.end)
            .max(start);
        invalid_clause(self.src[start..end].trim())
    }

    /// The end of the parenthesised group opening at token `open`.
    fn group_end(&self, open: usize) -> (usize, usize) {
        let mut depth = 0usize;
        for (i, token) in self.tokens.iter().enumerate().skip(open) {
            match token.kind {
                Kind::LParen => depth += 1,
                Kind::RParen => {
                    depth -= 1;
                    if depth == 0 {
                        return (i + 1, token.end);
                    }
                }
                _ => {}
            }
        }
        (self.tokens.len(), self.src.len())
    }

    fn comparison(&mut self) -> Result<RawComparison<'a>> {
        let first = self.next().expect("caller checked for a token");
        let start = first.start;
        let ident = match &first.kind {
            Kind::Ident(parts)
                if !first
                    .word()
                    .is_some_and(|w| RESERVED.iter().any(|r| r.eq_ignore_ascii_case(w))) =>
            {
                parts.clone()
            }
            // MLflow names a parenthesised group whole: '(metrics.a > 1)'.
            Kind::LParen => {
                let (next, end) = self.group_end(self.pos - 1);
                self.pos = next;
                return Err(invalid_clause(&self.src[start..end]));
            }
            _ => return Err(self.clause_error(start)),
        };
        let comparator = self.comparator(start)?;
        let value = match comparator.as_str() {
            "IS NULL" | "IS NOT NULL" => RawValue::None,
            "IN" | "NOT IN" => match self.peek() {
                Some(t) if t.kind == Kind::LParen => self.list(),
                _ => {
                    self.pos += 1;
                    return Err(self.clause_error(start));
                }
            },
            _ => self.value(start)?,
        };
        let end = self.tokens[self.pos - 1].end;
        Ok(RawComparison {
            text: &self.src[start..end],
            ident,
            comparator,
            value,
        })
    }

    fn comparator(&mut self, start: usize) -> Result<String> {
        let Some(token) = self.next() else {
            return Err(self.clause_error(start));
        };
        if token.kind == Kind::Op {
            return Ok(self.src[token.start..token.end].to_string());
        }
        let word = token.word().map(str::to_ascii_uppercase);
        let follow = |parser: &mut Self, allowed: &[&str]| -> Result<String> {
            match parser.next().and_then(Token::word) {
                Some(w) if allowed.iter().any(|a| a.eq_ignore_ascii_case(w)) => {
                    Ok(w.to_ascii_uppercase())
                }
                _ => Err(parser.clause_error(start)),
            }
        };
        match word.as_deref() {
            Some(w @ ("LIKE" | "ILIKE" | "RLIKE" | "IN")) => Ok(w.to_string()),
            Some("NOT") => Ok(format!(
                "NOT {}",
                follow(self, &["LIKE", "ILIKE", "RLIKE", "IN"])?
            )),
            Some("IS") => match follow(self, &["NULL", "NOT"])?.as_str() {
                "NULL" => Ok("IS NULL".to_string()),
                _ => {
                    follow(self, &["NULL"])?;
                    Ok("IS NOT NULL".to_string())
                }
            },
            _ => Err(self.clause_error(start)),
        }
    }

    fn value(&mut self, start: usize) -> Result<RawValue<'a>> {
        let Some(token) = self.peek() else {
            return Err(self.clause_error(start));
        };
        let text = &self.src[token.start..token.end];
        let value = match &token.kind {
            Kind::Str => RawValue::Quoted(text[1..text.len() - 1].to_string()),
            Kind::Ident(parts) if parts.len() == 1 && parts[0].quote == Some('"') => {
                RawValue::Quoted(parts[0].text.clone())
            }
            Kind::Ident(_) => RawValue::Bare(text),
            Kind::Number { float } => RawValue::Number {
                text,
                float: *float,
            },
            Kind::LParen => return Ok(self.list()),
            _ => {
                self.pos += 1;
                return Err(self.clause_error(start));
            }
        };
        self.pos += 1;
        Ok(value)
    }

    /// A parenthesised list at the current token. Its shape is judged later,
    /// after the key, because MLflow reports a key that takes no list first.
    fn list(&mut self) -> RawValue<'a> {
        let open = self.pos;
        let (next, end) = self.group_end(open);
        let text = &self.src[self.tokens[open].start..end];
        let inner = &self.tokens[open + 1..next.saturating_sub(1).max(open + 1)];
        self.pos = next;
        let closed = self
            .tokens
            .get(next - 1)
            .is_some_and(|t| t.kind == Kind::RParen);
        let mut strings = Vec::new();
        let mut items = if closed {
            None
        } else {
            Some(ListItems::IllFormed)
        };
        let mut expect_item = true;
        for token in inner {
            if items.is_some() {
                break;
            }
            let token_text = &self.src[token.start..token.end];
            match (&token.kind, expect_item) {
                (Kind::Comma, false) => expect_item = true,
                (Kind::Str, true) => {
                    strings.push(token_text[1..token_text.len() - 1].to_string());
                    expect_item = false;
                }
                (Kind::Ident(parts), true) if parts.len() == 1 && parts[0].quote == Some('"') => {
                    strings.push(parts[0].text.clone());
                    expect_item = false;
                }
                (Kind::Number { .. }, true) => {
                    items = Some(ListItems::NotStrings);
                }
                _ => items = Some(ListItems::IllFormed),
            }
        }
        let items = items.unwrap_or(if strings.is_empty() {
            ListItems::Empty
        } else {
            ListItems::Strings(strings)
        });
        RawValue::List { text, items }
    }
}

// ---------------------------------------------------------------------------
// Checking a raw comparison against a grammar.
// ---------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq)]
enum KeyUse {
    Filter,
    OrderBy,
}

fn part_text(part: &Part) -> String {
    match part.quote {
        Some(q) => format!("{q}{}{q}", part.text),
        None => part.text.clone(),
    }
}

/// Splits `<prefix>.<key>` (no prefix: attribute), strips the key's quotes,
/// resolves aliases and checks attribute and dataset keys.
fn resolve_identifier(
    grammar: &Grammar,
    parts: &[Part],
    key_use: KeyUse,
) -> Result<(EntityType, String)> {
    let (entity, key) = match parts {
        [only] => (EntityType::Attribute, only.text.clone()),
        [prefix, rest @ ..] => {
            let entity = grammar
                .prefixes
                .iter()
                .find(|(p, _)| *p == prefix.text)
                .map(|&(_, e)| e)
                .ok_or_else(|| {
                    invalid(format!(
                        "Invalid entity type '{}'. Valid values are {}",
                        prefix.text, grammar.prefixes_hint
                    ))
                })?;
            // `params.a.b` means key `a.b`; a single quoted part loses its quotes.
            let key = match rest {
                [one] => one.text.clone(),
                _ => rest.iter().map(part_text).collect::<Vec<_>>().join("."),
            };
            (entity, key)
        }
        [] => unreachable!("an identifier has at least one part"),
    };
    match entity {
        EntityType::Attribute => {
            let aliases = match key_use {
                KeyUse::Filter => grammar.filter_aliases,
                KeyUse::OrderBy => grammar.order_by_aliases,
            };
            if let Some(&(_, canonical)) = aliases.iter().find(|(a, _)| *a == key) {
                return Ok((entity, canonical.to_string()));
            }
            let known = grammar
                .string_attributes
                .iter()
                .chain(grammar.numeric_attributes)
                .any(|a| *a == key);
            if !known {
                let valid = grammar
                    .string_attributes
                    .iter()
                    .chain(grammar.numeric_attributes)
                    .chain(aliases.iter().map(|(a, _)| a));
                return Err(invalid(format!(
                    "Invalid attribute key '{key}' specified. Valid keys are '{{{}}}'",
                    quoted_list(valid)
                )));
            }
        }
        EntityType::Dataset if !grammar.dataset_keys.contains(&key.as_str()) => {
            return Err(invalid(format!(
                "Invalid dataset key '{key}' specified. Valid keys are '{{{}}}'",
                quoted_list(grammar.dataset_keys)
            )));
        }
        _ => {}
    }
    Ok((entity, key))
}

fn check_comparison(grammar: &Grammar, raw: RawComparison<'_>) -> Result<Comparison> {
    let (entity, key) = resolve_identifier(grammar, &raw.ident, KeyUse::Filter)?;
    if raw.comparator == "IS NULL" || raw.comparator == "IS NOT NULL" {
        if !grammar.null_check_entities.contains(&entity) {
            return Err(invalid(format!(
                "IS NULL / IS NOT NULL is only supported for {}, not for '{}' '{key}'",
                grammar.null_check_label,
                entity.mlflow_name()
            )));
        }
        let comparator = if raw.comparator == "IS NULL" {
            Comparator::IsNull
        } else {
            Comparator::IsNotNull
        };
        return Ok(Comparison {
            entity,
            key,
            comparator,
            value: Value::Null,
        });
    }
    // MLflow types the value before it checks the comparator.
    let numeric_attribute =
        entity == EntityType::Attribute && grammar.numeric_attributes.contains(&key.as_str());
    let value = typed_value(grammar, entity, &key, numeric_attribute, &raw.value)?;
    let allowed = allowed_comparators(grammar, entity, &key, numeric_attribute);
    let comparator = Comparator::from_text(&raw.comparator)
        .filter(|c| allowed.contains(c))
        .ok_or_else(|| {
            invalid(format!(
                "Invalid comparator '{}' not one of '{{{}}}'",
                raw.comparator,
                quoted_list(allowed.iter().map(|c| c.as_str()))
            ))
        })?;
    let is_list = matches!(value, Value::StrList(_) | Value::IntList(_));
    if is_list != matches!(comparator, Comparator::In | Comparator::NotIn) {
        return Err(invalid(format!(
            "Invalid comparison clause '{}': IN and NOT IN take a list of quoted \
             string values, other comparators a single value",
            raw.text
        )));
    }
    Ok(Comparison {
        entity,
        key,
        comparator,
        value,
    })
}

fn allowed_comparators(
    grammar: &Grammar,
    entity: EntityType,
    key: &str,
    numeric_attribute: bool,
) -> &'static [Comparator] {
    match entity {
        EntityType::Metric => grammar.metric_comparators,
        EntityType::Param => grammar.param_comparators,
        EntityType::Tag => grammar.tag_comparators,
        EntityType::Dataset => grammar.dataset_comparators,
        EntityType::Attribute => grammar
            .attribute_comparators
            .iter()
            .find(|(k, _)| *k == key)
            .map(|&(_, c)| c)
            .unwrap_or(if numeric_attribute {
                grammar.numeric_attribute_comparators
            } else {
                grammar.string_attribute_comparators
            }),
    }
}

fn not_quoted(text: &str) -> MlflowError {
    invalid(format!(
        "Parameter value is either not quoted or unidentified quote types used for string \
         value {text}. Use either single or double quotes."
    ))
}

fn number(text: &str, float: bool) -> Value {
    match (float, text.parse::<i64>()) {
        (false, Ok(i)) => Value::Int(i),
        // Past i64 MLflow's Python int would still compare; a float comes closest.
        _ => Value::Float(text.parse().unwrap_or(f64::NAN)),
    }
}

fn list_strings(items: &ListItems, text: &str) -> Result<Vec<String>> {
    match items {
        ListItems::Strings(s) => Ok(s.clone()),
        ListItems::Empty => Err(invalid(
            "While parsing a list in the query, expected a non-empty list of string values, \
             but got empty list",
        )),
        ListItems::NotStrings => Err(invalid(format!(
            "While parsing a list in the query, expected string value, punctuation, or \
             whitespace, but got different type in list: {text}"
        ))),
        ListItems::IllFormed => Err(invalid(
            "While parsing a list in the query, expected a non-empty list of string values, \
             but got ill-formed list.",
        )),
    }
}

fn parse_integer_id(key: &str, value: &str) -> Result<i64> {
    value.trim().parse().map_err(|_| {
        if key == "experiment_id" {
            invalid(format!(
                "Invalid experiment ID '{value}'. Experiment ID must be a valid integer."
            ))
        } else {
            invalid(format!(
                "Invalid value '{value}' for '{key}': must be an integer."
            ))
        }
    })
}

/// Types the value for its key, with MLflow's checks and messages
/// (`SearchUtils._get_value`, plus the experiments store's integer checks).
fn typed_value(
    grammar: &Grammar,
    entity: EntityType,
    key: &str,
    numeric_attribute: bool,
    raw: &RawValue<'_>,
) -> Result<Value> {
    match entity {
        EntityType::Metric => match raw {
            // Metric values are compared as floats (MLflow: float(value)).
            RawValue::Number { text, .. } => Ok(Value::Float(text.parse().unwrap_or(f64::NAN))),
            _ => Err(invalid(format!(
                "Expected numeric value type for metric. Found {}",
                raw.text()
            ))),
        },
        EntityType::Param | EntityType::Tag => match raw {
            RawValue::Quoted(s) => Ok(Value::Str(s.clone())),
            RawValue::Bare(text) => Err(not_quoted(text)),
            _ => Err(invalid(format!(
                "Expected a quoted string value for {} (e.g. 'my-value'). Got value {}",
                entity.mlflow_name(),
                raw.text()
            ))),
        },
        EntityType::Attribute if numeric_attribute => match raw {
            RawValue::Number { text, float } => {
                let value = number(text, *float);
                if grammar.integer_only_numeric_attributes && matches!(value, Value::Float(_)) {
                    return Err(invalid(format!(
                        "Invalid value for numeric attribute '{key}': '{text}'"
                    )));
                }
                Ok(value)
            }
            _ => Err(invalid(format!(
                "Expected numeric value type for numeric attribute: {key}. Found {}",
                raw.text()
            ))),
        },
        EntityType::Attribute => {
            let integer = grammar.integer_attributes.contains(&key);
            match raw {
                RawValue::Quoted(s) if integer => Ok(Value::Int(parse_integer_id(key, s)?)),
                RawValue::Quoted(s) => Ok(Value::Str(s.clone())),
                RawValue::Bare(text) => Err(not_quoted(text)),
                RawValue::List { text, items } => {
                    if !grammar.list_attributes.contains(&key) {
                        return Err(invalid(format!(
                            "Only [{}] attributes support comparison with a list of quoted \
                             string values.",
                            quoted_list(grammar.list_attributes)
                        )));
                    }
                    let strings = list_strings(items, text)?;
                    if integer {
                        let ids = strings.iter().map(|s| parse_integer_id(key, s));
                        Ok(Value::IntList(ids.collect::<Result<_>>()?))
                    } else {
                        Ok(Value::StrList(strings))
                    }
                }
                _ => Err(invalid(format!(
                    "Expected a quoted string value for attributes. Got value {}",
                    raw.text()
                ))),
            }
        }
        EntityType::Dataset => match raw {
            RawValue::Quoted(s) => Ok(Value::Str(s.clone())),
            RawValue::Bare(text) => Err(not_quoted(text)),
            RawValue::List { text, items } => Ok(Value::StrList(list_strings(items, text)?)),
            _ => Err(invalid(format!(
                "Expected a quoted string value for dataset attributes. Got value {}",
                raw.text()
            ))),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;
    use Comparator::*;
    use EntityType::{Attribute, Dataset, Metric, Param, Tag};

    fn cmp(entity: EntityType, key: &str, comparator: Comparator, value: Value) -> Comparison {
        Comparison {
            entity,
            key: key.to_string(),
            comparator,
            value,
        }
    }

    fn s(v: &str) -> Value {
        Value::Str(v.to_string())
    }

    fn strs(items: &[&str]) -> Value {
        Value::StrList(items.iter().map(|s| s.to_string()).collect())
    }

    fn assert_400<T: std::fmt::Debug>(result: Result<T>, input: &str, fragment: &str) {
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
            let parsed =
                parse_filter(&EXPERIMENTS, input).unwrap_or_else(|e| panic!("{input}: {e}"));
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
            let parsed = parse_order_by(&RUNS, &[input.to_string()])
                .unwrap_or_else(|e| panic!("{input}: {e}"));
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
}
