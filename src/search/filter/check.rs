//! Checking a raw comparison against a grammar: keys, comparators, value types.

use super::*;

#[derive(Clone, Copy, PartialEq)]
pub(super) enum KeyUse {
    Filter,
    OrderBy,
}

pub(super) fn part_text(part: &Part) -> String {
    match part.quote {
        Some(q) => format!("{q}{}{q}", part.text),
        None => part.text.clone(),
    }
}

/// Splits `<prefix>.<key>` (no prefix: attribute), strips the key's quotes,
/// resolves aliases and checks attribute and dataset keys.
pub(super) fn resolve_identifier(
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
            if key_use == KeyUse::Filter {
                if let Some(&(_, span_key)) = grammar.span_aliases.iter().find(|(a, _)| *a == key) {
                    return Ok((EntityType::Span, span_key.to_string()));
                }
            }
            let known = grammar
                .string_attributes
                .iter()
                .chain(grammar.numeric_attributes)
                .any(|a| *a == key);
            if !known {
                let span_aliases = match key_use {
                    KeyUse::Filter => grammar.span_aliases,
                    KeyUse::OrderBy => &[],
                };
                let valid = grammar
                    .string_attributes
                    .iter()
                    .chain(grammar.numeric_attributes)
                    .chain(aliases.iter().map(|(a, _)| a))
                    .chain(span_aliases.iter().map(|(a, _)| a));
                return Err(invalid(format!(
                    "Invalid attribute key '{key}' specified. Valid keys are '{{{}}}'",
                    quoted_list(valid)
                )));
            }
        }
        EntityType::Span if key == "attributes." => {
            return Err(invalid(
                "Span attribute name cannot be empty after 'attributes.'",
            ));
        }
        EntityType::Span
            if !grammar.span_keys.contains(&key.as_str()) && !key.starts_with("attributes.") =>
        {
            return Err(invalid(format!(
                "Invalid span attribute key '{key}'. Valid keys are '{{{}}}' and \
                 'attributes.<name>'",
                quoted_list(grammar.span_keys)
            )));
        }
        EntityType::Feedback | EntityType::Expectation if key.is_empty() => {
            return Err(invalid("Assessment field name cannot be empty"));
        }
        EntityType::Issue if key != "id" => {
            return Err(invalid(format!(
                "Invalid issue attribute '{key}'. Supported attributes: id"
            )));
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

pub(super) fn check_comparison(grammar: &Grammar, raw: RawComparison<'_>) -> Result<Comparison> {
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
    if matches!(entity, EntityType::Feedback | EntityType::Expectation) {
        check_assessment_value(entity, &raw.comparator, &raw.value)?;
    }
    let numeric_attribute =
        entity == EntityType::Attribute && grammar.numeric_attributes.contains(&key.as_str());
    let value = typed_value(grammar, entity, &key, numeric_attribute, &raw.value)?;
    let allowed = allowed_comparators(grammar, entity, &key, numeric_attribute);
    let comparator = Comparator::from_text(&raw.comparator)
        .filter(|c| allowed.contains(c))
        .ok_or_else(|| {
            let allowed = quoted_list(allowed.iter().map(|c| c.as_str()));
            invalid(match entity {
                EntityType::Span => format!(
                    "span.{key} comparator '{}' not one of '{{{allowed}}}'",
                    raw.comparator
                ),
                _ => format!(
                    "Invalid comparator '{}' not one of '{{{allowed}}}'",
                    raw.comparator
                ),
            })
        })?;
    if let (Comparator::RLike, Value::Str(pattern)) = (comparator, &value) {
        crate::search::rlike::check(pattern)?;
    }
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

pub(super) fn allowed_comparators(
    grammar: &Grammar,
    entity: EntityType,
    key: &str,
    numeric_attribute: bool,
) -> &'static [Comparator] {
    match entity {
        EntityType::Metric => grammar.metric_comparators,
        EntityType::Param => grammar.param_comparators,
        EntityType::Tag => grammar.tag_comparators,
        EntityType::Metadata => grammar.metadata_comparators,
        EntityType::Span => grammar
            .span_key_comparators
            .iter()
            .find(|(k, _)| *k == key)
            .map_or(grammar.span_comparators, |&(_, c)| c),
        EntityType::Feedback | EntityType::Expectation => grammar.assessment_comparators,
        EntityType::Issue => grammar.issue_comparators,
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

pub(super) fn not_quoted(text: &str) -> MlflowError {
    invalid(format!(
        "Parameter value is either not quoted or unidentified quote types used for string \
         value {text}. Use either single or double quotes."
    ))
}

pub(super) fn number(text: &str, float: bool) -> Value {
    match (float, text.parse::<i64>()) {
        (false, Ok(i)) => Value::Int(i),
        // Past i64 MLflow's Python int would still compare; a float comes closest.
        _ => Value::Float(text.parse().unwrap_or(f64::NAN)),
    }
}

pub(super) fn list_strings(items: &ListItems, text: &str) -> Result<Vec<String>> {
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

pub(super) fn parse_integer_id(key: &str, value: &str) -> Result<i64> {
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
pub(super) fn typed_value(
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
        EntityType::Param | EntityType::Tag | EntityType::Metadata | EntityType::Issue => match raw
        {
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
        // Checked against the comparator already (`check_assessment_value`).
        EntityType::Feedback | EntityType::Expectation => match raw {
            RawValue::Quoted(s) => Ok(Value::Str(s.clone())),
            RawValue::Bare(text) => Err(not_quoted(text)),
            // MLflow compares with `float(value)`.
            RawValue::Number { text, .. } => Ok(Value::Float(text.parse().unwrap_or(f64::NAN))),
            _ => Err(invalid(format!(
                "Expected a quoted string value or numeric value for {} (e.g. 'my-value' or \
                 0.8). Got value {}",
                entity.mlflow_name(),
                raw.text()
            ))),
        },
        EntityType::Dataset | EntityType::Span => match raw {
            RawValue::Quoted(s) => Ok(Value::Str(s.clone())),
            RawValue::Bare(text) => Err(not_quoted(text)),
            RawValue::List { text, items } => Ok(Value::StrList(list_strings(items, text)?)),
            _ => Err(invalid(format!(
                "Expected a quoted string value for {} attributes. Got value {}",
                entity.mlflow_name(),
                raw.text()
            ))),
        },
    }
}

/// Feedback and expectation values are typed by their comparator:
/// `<`, `<=`, `>`, `>=` take an unquoted number, the others a quoted string
/// (`SearchTraceUtils._validate_assessment_comparison_value`). A bare word
/// passes here as a string and is refused as unquoted after.
fn check_assessment_value(entity: EntityType, comparator: &str, raw: &RawValue<'_>) -> Result<()> {
    let numeric = matches!(comparator, "<" | "<=" | ">" | ">=");
    let fits = match raw {
        RawValue::Quoted(_) | RawValue::Bare(_) => !numeric,
        RawValue::Number { .. } => numeric,
        _ => false,
    };
    if fits {
        return Ok(());
    }
    let name = entity.mlflow_name();
    Err(invalid(if numeric {
        format!(
            "Expected a numeric value for {name} when using comparator '{comparator}'. Got \
             value {}",
            raw.text()
        )
    } else {
        format!(
            "Expected a quoted string value for {name} (e.g. 'my-value'). Got value {}",
            raw.text()
        )
    }))
}
