//! Each searchable entity's grammar as data: its identifiers, keys,
//! comparators and value types (mlflow/utils/search_utils.py).

use super::*;

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
    /// Span columns a `span.<key>` may name (besides `attributes.<name>`).
    pub span_keys: &'static [&'static str],
    /// Attribute keys that name a span key in filters (`text` is `span.content`).
    pub span_aliases: &'static [(&'static str, &'static str)],
    /// Entities that accept `IS NULL` / `IS NOT NULL`, and how the error names them.
    pub null_check_entities: &'static [EntityType],
    pub null_check_label: &'static str,
    pub metric_comparators: &'static [Comparator],
    pub param_comparators: &'static [Comparator],
    pub tag_comparators: &'static [Comparator],
    pub string_attribute_comparators: &'static [Comparator],
    pub numeric_attribute_comparators: &'static [Comparator],
    pub dataset_comparators: &'static [Comparator],
    pub metadata_comparators: &'static [Comparator],
    pub span_comparators: &'static [Comparator],
    /// Per-span-key comparator sets that replace `span_comparators`.
    pub span_key_comparators: &'static [(&'static str, &'static [Comparator])],
    /// `feedback.<name>` and `expectation.<name>`.
    pub assessment_comparators: &'static [Comparator],
    /// `issue.id`.
    pub issue_comparators: &'static [Comparator],
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
    span_keys: &[],
    span_aliases: &[],
    null_check_entities: &[EntityType::Tag, EntityType::Param],
    null_check_label: "tags and params",
    metric_comparators: NUMERIC_COMPARATORS,
    param_comparators: KEY_VALUE_COMPARATORS,
    tag_comparators: KEY_VALUE_COMPARATORS,
    string_attribute_comparators: STRING_COMPARATORS,
    numeric_attribute_comparators: NUMERIC_COMPARATORS,
    dataset_comparators: STRING_COMPARATORS,
    metadata_comparators: &[],
    span_comparators: &[],
    span_key_comparators: &[],
    assessment_comparators: &[],
    issue_comparators: &[],
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
    span_keys: &[],
    span_aliases: &[],
    null_check_entities: &[EntityType::Tag],
    null_check_label: "tags",
    metric_comparators: &[],
    param_comparators: &[],
    tag_comparators: KEY_VALUE_COMPARATORS,
    string_attribute_comparators: STRING_COMPARATORS,
    numeric_attribute_comparators: NUMERIC_COMPARATORS,
    dataset_comparators: &[],
    metadata_comparators: &[],
    span_comparators: &[],
    span_key_comparators: &[],
    assessment_comparators: &[],
    issue_comparators: &[],
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
    span_keys: &[],
    span_aliases: &[],
    null_check_entities: &[],
    null_check_label: "nothing in a logged model search",
    metric_comparators: NUMERIC_COMPARATORS,
    param_comparators: KEY_VALUE_STRING_COMPARATORS,
    tag_comparators: KEY_VALUE_STRING_COMPARATORS,
    string_attribute_comparators: STRING_COMPARATORS,
    numeric_attribute_comparators: NUMERIC_COMPARATORS,
    dataset_comparators: &[],
    metadata_comparators: &[],
    span_comparators: &[],
    span_key_comparators: &[],
    assessment_comparators: &[],
    issue_comparators: &[],
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
    span_keys: &[],
    span_aliases: &[],
    null_check_entities: &[],
    null_check_label: "tags and params",
    metric_comparators: &[],
    param_comparators: &[],
    tag_comparators: REGISTRY_TAG_COMPARATORS,
    string_attribute_comparators: STRING_COMPARATORS,
    numeric_attribute_comparators: NUMERIC_COMPARATORS,
    dataset_comparators: &[],
    metadata_comparators: &[],
    span_comparators: &[],
    span_key_comparators: &[],
    assessment_comparators: &[],
    issue_comparators: &[],
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
    span_keys: &[],
    span_aliases: &[],
    null_check_entities: &[],
    null_check_label: "tags and params",
    metric_comparators: &[],
    param_comparators: &[],
    tag_comparators: REGISTRY_TAG_COMPARATORS,
    string_attribute_comparators: STRING_COMPARATORS,
    numeric_attribute_comparators: NUMERIC_COMPARATORS,
    dataset_comparators: &[],
    metadata_comparators: &[],
    span_comparators: &[],
    span_key_comparators: &[],
    assessment_comparators: &[],
    issue_comparators: &[],
    attribute_comparators: &[],
    order_by_entities: &[EntityType::Attribute],
    reject_duplicate_order_by: true,
};

/// Trace search adds RLIKE to the string comparators (SearchTraceUtils).
const TRACE_STRING_COMPARATORS: &[Comparator] = &[
    Comparator::Eq,
    Comparator::NotEq,
    Comparator::Like,
    Comparator::ILike,
    Comparator::RLike,
    Comparator::In,
    Comparator::NotIn,
];
const TRACE_KEY_VALUE_COMPARATORS: &[Comparator] = &[
    Comparator::Eq,
    Comparator::NotEq,
    Comparator::Like,
    Comparator::ILike,
    Comparator::RLike,
    Comparator::IsNull,
    Comparator::IsNotNull,
];
/// Feedback and expectation values: strings, numbers (`<` ... `>=`) and presence.
const ASSESSMENT_COMPARATORS: &[Comparator] = &[
    Comparator::Eq,
    Comparator::NotEq,
    Comparator::Lt,
    Comparator::LtEq,
    Comparator::Gt,
    Comparator::GtEq,
    Comparator::Like,
    Comparator::ILike,
    Comparator::RLike,
    Comparator::IsNull,
    Comparator::IsNotNull,
];

/// `traces/search` (SearchTraceUtils). `name`, `run_id` and `prompt` are
/// attributes here but MLflow keeps them in the trace name column, the
/// `mlflow.sourceRun` metadata and prompt links; the renderer maps them.
pub static TRACES: Grammar = Grammar {
    prefixes: &[
        ("attribute", EntityType::Attribute),
        ("attributes", EntityType::Attribute),
        ("trace", EntityType::Attribute),
        ("tag", EntityType::Tag),
        ("tags", EntityType::Tag),
        ("request_metadata", EntityType::Metadata),
        ("metadata", EntityType::Metadata),
        ("span", EntityType::Span),
        ("feedback", EntityType::Feedback),
        ("expectation", EntityType::Expectation),
        ("issue", EntityType::Issue),
    ],
    prefixes_hint: "['attribute', 'tag', 'request_metadata', 'span', 'feedback', \
                    'expectation', 'issue']",
    string_attributes: &[
        "request_id",
        "status",
        "client_request_id",
        "name",
        "run_id",
        "experiment_id",
        "prompt",
    ],
    numeric_attributes: &["timestamp_ms", "execution_time_ms", "end_time_ms"],
    filter_aliases: &[
        ("timestamp", "timestamp_ms"),
        ("execution_time", "execution_time_ms"),
        ("end_time", "end_time_ms"),
    ],
    order_by_aliases: &[
        ("timestamp", "timestamp_ms"),
        ("execution_time", "execution_time_ms"),
        ("end_time", "end_time_ms"),
    ],
    // `name` and `run_id` are a tag and a metadata key underneath: no lists.
    list_attributes: &["status", "request_id", "client_request_id"],
    integer_attributes: &[],
    integer_only_numeric_attributes: false,
    dataset_keys: &[],
    span_keys: &["name", "type", "status", "content"],
    // MLflow's full-text search key.
    span_aliases: &[("text", "content")],
    null_check_entities: &[
        EntityType::Tag,
        EntityType::Metadata,
        EntityType::Feedback,
        EntityType::Expectation,
    ],
    null_check_label: "tags, metadata, feedback and expectations",
    metric_comparators: &[],
    param_comparators: &[],
    tag_comparators: TRACE_KEY_VALUE_COMPARATORS,
    string_attribute_comparators: TRACE_STRING_COMPARATORS,
    numeric_attribute_comparators: NUMERIC_COMPARATORS,
    dataset_comparators: &[],
    metadata_comparators: TRACE_KEY_VALUE_COMPARATORS,
    span_comparators: TRACE_STRING_COMPARATORS,
    // Full-text search over the span's JSON has patterns only, no regex.
    span_key_comparators: &[("content", &[Comparator::Like, Comparator::ILike])],
    assessment_comparators: ASSESSMENT_COMPARATORS,
    issue_comparators: &[Comparator::Eq],
    attribute_comparators: &[],
    order_by_entities: &[EntityType::Attribute, EntityType::Tag, EntityType::Metadata],
    reject_duplicate_order_by: true,
};
