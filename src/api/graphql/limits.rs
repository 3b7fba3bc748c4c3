//! MLflow's safety limits on a GraphQL document, checked after parsing and
//! before validation (mlflow/server/graphql/graphql_no_batching.py): at most
//! 10 levels of selection sets, 1,000 selections in all, and by default 10
//! root fields and 10 aliases in one selection set
//! (`MLFLOW_SERVER_GRAPHQL_MAX_ROOT_FIELDS`, `MLFLOW_SERVER_GRAPHQL_MAX_ALIASES`).
//! Fragments count where they are spread, merged into the level that spreads
//! them, as MLflow counts them; the messages are MLflow's.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::LazyLock;

use async_graphql::parser::types::{
    DocumentOperations, ExecutableDocument, Field, FragmentDefinition, Selection, SelectionSet,
};
use async_graphql::{Name, Positioned};

const MAX_DEPTH: usize = 10;
const MAX_SELECTIONS: usize = 1000;
const ROOT_FIELDS_ENV: &str = "MLFLOW_SERVER_GRAPHQL_MAX_ROOT_FIELDS";
const ALIASES_ENV: &str = "MLFLOW_SERVER_GRAPHQL_MAX_ALIASES";
const DEFAULT_MAX: usize = 10;

/// The limits MLflow reads from its environment.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_root_fields: usize,
    pub max_aliases: usize,
}

impl Limits {
    /// Read once per process; an unreadable value keeps the default (MLflow
    /// would fail every GraphQL request instead).
    pub fn from_env() -> &'static Limits {
        static LIMITS: LazyLock<Limits> = LazyLock::new(|| Limits {
            max_root_fields: env_limit(ROOT_FIELDS_ENV),
            max_aliases: env_limit(ALIASES_ENV),
        });
        &LIMITS
    }
}

fn env_limit(name: &str) -> usize {
    let Ok(value) = std::env::var(name) else {
        return DEFAULT_MAX;
    };
    value.trim().parse().unwrap_or_else(|_| {
        tracing::warn!(%name, %value, "not a count; using the default {DEFAULT_MAX}");
        DEFAULT_MAX
    })
}

/// `Err(message)` when the document exceeds a limit. Depth and the selection
/// count are checked while walking, so the first one met wins; the root
/// field and alias counts after the walk, root fields first.
pub fn check(doc: &ExecutableDocument, limits: &Limits) -> Result<(), String> {
    let (root_fields, max_aliases) = scan(doc)?;
    let exceeded = |limit: usize, got: usize, what: &str, env: &str| {
        format!(
            "GraphQL queries should have at most {limit} {what}, got {got} {what}. \
             To increase the limit, set the {env} environment variable."
        )
    };
    if root_fields > limits.max_root_fields {
        return Err(exceeded(
            limits.max_root_fields,
            root_fields,
            "root fields",
            ROOT_FIELDS_ENV,
        ));
    }
    if max_aliases > limits.max_aliases {
        return Err(exceeded(
            limits.max_aliases,
            max_aliases,
            "aliases",
            ALIASES_ENV,
        ));
    }
    Ok(())
}

/// Walks every operation in document order (fragment definitions only where
/// spread): the root fields of all operations, and the most aliases in one
/// selection set.
fn scan(doc: &ExecutableDocument) -> Result<(usize, usize), String> {
    let mut operations: Vec<_> = match &doc.operations {
        DocumentOperations::Single(operation) => vec![operation],
        DocumentOperations::Multiple(operations) => operations.values().collect(),
    };
    operations.sort_by_key(|operation| (operation.pos.line, operation.pos.column));

    let (mut root_fields, mut max_aliases, mut selections) = (0, 0, 0);
    for operation in operations {
        // Depth-first, as MLflow's stack pops, so the same limit trips first.
        let mut stack = vec![(&operation.node.selection_set, 1)];
        while let Some((selection_set, depth)) = stack.pop() {
            if depth > MAX_DEPTH {
                return Err(format!("Query exceeds maximum depth of {MAX_DEPTH}"));
            }
            let (fields, aliases) = level(selection_set, &doc.fragments);
            for field in fields {
                if depth == 1 {
                    root_fields += 1;
                }
                if !field.selection_set.node.items.is_empty() {
                    stack.push((&field.selection_set, depth + 1));
                }
                selections += 1;
                if selections > MAX_SELECTIONS {
                    return Err(format!(
                        "Query exceeds maximum total selections of {MAX_SELECTIONS}"
                    ));
                }
            }
            max_aliases = max_aliases.max(aliases);
        }
    }
    Ok((root_fields, max_aliases))
}

/// The fields of one level, with inline fragments and spread fragments merged
/// in (each fragment once per level), and how many of them carry an alias.
fn level<'a>(
    selection_set: &'a Positioned<SelectionSet>,
    fragments: &'a HashMap<Name, Positioned<FragmentDefinition>>,
) -> (Vec<&'a Field>, usize) {
    let mut fields = Vec::new();
    let mut aliases = 0;
    let mut spread = HashSet::new();
    let mut pending: VecDeque<_> = selection_set.node.items.iter().collect();
    while let Some(selection) = pending.pop_front() {
        match &selection.node {
            Selection::Field(field) => {
                aliases += usize::from(field.node.alias.is_some());
                fields.push(&field.node);
            }
            Selection::InlineFragment(fragment) => {
                pending.extend(&fragment.node.selection_set.node.items);
            }
            Selection::FragmentSpread(spread_node) => {
                let name = &spread_node.node.fragment_name.node;
                if spread.insert(name) {
                    if let Some(fragment) = fragments.get(name) {
                        pending.extend(&fragment.node.selection_set.node.items);
                    }
                }
            }
        }
    }
    (fields, aliases)
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_graphql::parser::parse_query;

    const DEFAULTS: Limits = Limits {
        max_root_fields: 10,
        max_aliases: 10,
    };

    fn checked(query: &str) -> Result<(), String> {
        check(&parse_query(query).unwrap(), &DEFAULTS)
    }

    /// `{ a { a { ... } } }` with `levels` selection sets.
    fn nested(levels: usize) -> String {
        format!("{}{}", "{ a ".repeat(levels), "}".repeat(levels))
    }

    #[test]
    fn ten_levels_pass_eleven_do_not() {
        assert_eq!(checked(&nested(10)), Ok(()));
        assert_eq!(
            checked(&nested(11)).unwrap_err(),
            "Query exceeds maximum depth of 10"
        );
    }

    #[test]
    fn selections_count_every_field_and_each_use_of_a_fragment() {
        let fields = |n: usize| vec!["f"; n].join(" ");
        assert_eq!(checked(&format!("{{ a {{ {} }} }}", fields(999))), Ok(()));
        assert_eq!(
            checked(&format!("{{ a {{ {} }} }}", fields(1000))).unwrap_err(),
            "Query exceeds maximum total selections of 1000"
        );
        // 3 x (1 + 400) fields through one fragment spread three times.
        let spread = format!(
            "{{ a {{ ...F }} b {{ ...F }} c {{ ...F }} }} fragment F on T {{ {} }}",
            fields(400)
        );
        assert!(checked(&spread).is_err());
    }

    #[test]
    fn root_fields_and_aliases_have_mlflows_messages() {
        let roots = |n: usize| format!("{{ {} }}", vec!["__typename"; n].join(" "));
        assert_eq!(checked(&roots(10)), Ok(()));
        assert_eq!(
            checked(&roots(11)).unwrap_err(),
            "GraphQL queries should have at most 10 root fields, got 11 root fields. To increase \
             the limit, set the MLFLOW_SERVER_GRAPHQL_MAX_ROOT_FIELDS environment variable."
        );
        // Aliases split over a field, an inline fragment and a fragment
        // spread at one level add up.
        let aliased = |n: usize, prefix: &str| {
            (0..n)
                .map(|i| format!("{prefix}{i}: f"))
                .collect::<Vec<_>>()
                .join(" ")
        };
        let split = format!(
            "{{ r {{ {} ... on T {{ {} }} ...F }} }} fragment F on T {{ {} }}",
            aliased(4, "a"),
            aliased(4, "b"),
            aliased(3, "c")
        );
        assert_eq!(
            checked(&split).unwrap_err(),
            "GraphQL queries should have at most 10 aliases, got 11 aliases. To increase the \
             limit, set the MLFLOW_SERVER_GRAPHQL_MAX_ALIASES environment variable."
        );
        let limits = Limits {
            max_aliases: 11,
            ..DEFAULTS
        };
        assert_eq!(check(&parse_query(&split).unwrap(), &limits), Ok(()));
    }

    #[test]
    fn root_fields_of_every_operation_count() {
        let query = "query A { a b c d e f } query B { a b c d e }";
        assert!(checked(query).unwrap_err().contains("got 11 root fields"));
    }

    #[test]
    fn a_fragment_spreading_itself_stops_at_the_depth_limit() {
        let query = "{ a { ...F } } fragment F on T { b { ...F } }";
        assert_eq!(
            checked(query).unwrap_err(),
            "Query exceeds maximum depth of 10"
        );
    }
}
