//! Assessments of traces (`/api/3.0/mlflow/traces/{id}/assessments`):
//! feedback and expectations as MLflow's protobuf JSON carries them.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::{parse_timestamp, timestamp};
use crate::api::wire::{self, required, ExactBody};
use crate::app::AppState;
use crate::error::{MlflowError, Result};
use crate::model::Workspace;
use crate::python::py_json;
use crate::store::traces::{Assessment, AssessmentKind, AssessmentUpdate};

/// Parses stored JSON text back to a value (it was written as JSON).
fn stored_json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or(Value::Null)
}
/// MLflow's `Assessment` as JSON. Expectations that are not a plain scalar
/// travel as JSON text (`serialized_value`), as MLflow sends them.
pub(super) fn assessment_json(a: &Assessment) -> Value {
    let mut out = Map::new();
    out.insert("assessment_id".into(), json!(a.assessment_id));
    out.insert("assessment_name".into(), json!(a.name));
    out.insert("trace_id".into(), json!(a.trace_id));
    if let Some(span_id) = &a.span_id {
        out.insert("span_id".into(), json!(span_id));
    }
    let mut source = json!({"source_type": a.source_type});
    if let Some(id) = &a.source_id {
        source["source_id"] = json!(id);
    }
    out.insert("source".into(), source);
    out.insert("create_time".into(), timestamp(a.create_time));
    out.insert("last_update_time".into(), timestamp(a.last_update_time));
    let value = stored_json(&a.value);
    match a.kind {
        AssessmentKind::Feedback => {
            let mut feedback = json!({"value": value});
            if let Some(error) = &a.error {
                feedback["error"] = stored_json(error);
            }
            out.insert("feedback".into(), feedback);
        }
        AssessmentKind::Expectation => {
            let expectation = match value {
                Value::Bool(_) | Value::Number(_) | Value::String(_) => json!({"value": value}),
                other => json!({"serialized_value": {
                    "serialization_format": "JSON_FORMAT",
                    "value": other.to_string(),
                }}),
            };
            out.insert("expectation".into(), expectation);
        }
    }
    if let Some(rationale) = &a.rationale {
        out.insert("rationale".into(), json!(rationale));
    }
    if let Some(metadata) = a.metadata.as_ref().filter(|m| !m.is_empty()) {
        out.insert("metadata".into(), json!(metadata));
    }
    if let Some(overrides) = &a.overrides {
        out.insert("overrides".into(), json!(overrides));
    }
    out.insert("valid".into(), json!(a.valid));
    Value::Object(out)
}

#[derive(Deserialize, Default)]
struct Source {
    source_type: Option<String>,
    source_id: Option<String>,
}

#[derive(Deserialize)]
struct FeedbackMessage {
    #[serde(default)]
    value: Value,
    error: Option<Value>,
}

#[derive(Deserialize)]
struct SerializedValue {
    serialization_format: Option<String>,
    value: Option<String>,
}

#[derive(Deserialize)]
struct ExpectationMessage {
    value: Option<Value>,
    serialized_value: Option<SerializedValue>,
}

#[derive(Deserialize, Default)]
pub struct AssessmentMessage {
    assessment_id: Option<String>,
    assessment_name: Option<String>,
    span_id: Option<String>,
    source: Option<Source>,
    create_time: Option<String>,
    last_update_time: Option<String>,
    feedback: Option<FeedbackMessage>,
    expectation: Option<ExpectationMessage>,
    rationale: Option<String>,
    metadata: Option<BTreeMap<String, String>>,
    overrides: Option<String>,
    run_id: Option<String>,
}

/// The kind, the value as JSON text and (feedback) the error as JSON text.
type AssessmentValue = (AssessmentKind, String, Option<String>);

fn feedback_value(feedback: FeedbackMessage) -> AssessmentValue {
    let error = feedback
        .error
        .filter(|e| !e.is_null())
        .map(|e| py_json(&e, false));
    // MLflow stores the value as Python dumps it; numbers came through a
    // protobuf `Value`, so they are floats.
    (
        AssessmentKind::Feedback,
        py_json(&feedback.value, true),
        error,
    )
}

fn expectation_value(expectation: ExpectationMessage) -> Result<AssessmentValue> {
    let value = match (expectation.serialized_value, expectation.value) {
        (Some(serialized), _) => {
            let format = serialized.serialization_format.unwrap_or_default();
            if format != "JSON_FORMAT" {
                return Err(MlflowError::invalid_parameter(format!(
                    "Unknown serialization format: {format}. Only JSON_FORMAT is supported."
                )));
            }
            let text = serialized.value.unwrap_or_default();
            let parsed: Value = serde_json::from_str(&text).map_err(|_| {
                MlflowError::invalid_parameter("The expectation's serialized value is not JSON")
            })?;
            py_json(&parsed, false)
        }
        (None, value) => py_json(&value.unwrap_or(Value::Null), true),
    };
    Ok((AssessmentKind::Expectation, value, None))
}

fn no_value() -> MlflowError {
    MlflowError::invalid_parameter(
        "Assessment must have either feedback, expectation, or issue value",
    )
}

impl AssessmentMessage {
    fn into_assessment(self, trace_id: String) -> Result<Assessment> {
        let (kind, value, error) = match (self.feedback, self.expectation) {
            (Some(feedback), _) => feedback_value(feedback),
            (None, Some(expectation)) => expectation_value(expectation)?,
            (None, None) => return Err(no_value()),
        };
        let source = self.source.unwrap_or_default();
        let time = |field: &str, text: Option<String>| -> Result<i64> {
            text.map_or(Ok(0), |t| parse_timestamp(field, &t))
        };
        Ok(Assessment {
            assessment_id: self.assessment_id.unwrap_or_default(),
            trace_id,
            name: required(self.assessment_name, "assessment.assessment_name")?,
            kind,
            value,
            error,
            source_type: source
                .source_type
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| "SOURCE_TYPE_UNSPECIFIED".into()),
            source_id: source.source_id,
            span_id: self.span_id.filter(|s| !s.is_empty()),
            run_id: self.run_id.filter(|s| !s.is_empty()),
            rationale: self.rationale,
            metadata: self.metadata,
            overrides: self.overrides.filter(|s| !s.is_empty()),
            valid: true,
            create_time: time("create_time", self.create_time)?,
            last_update_time: time("last_update_time", self.last_update_time)?,
        })
    }
}

#[derive(Deserialize)]
pub struct CreateAssessment {
    assessment: Option<AssessmentMessage>,
}

/// `POST /api/3.0/mlflow/traces/{trace_id}/assessments`.
pub async fn create_assessment(
    State(state): State<AppState>,
    ws: Workspace,
    Path(trace_id): Path<String>,
    ExactBody(req): ExactBody<CreateAssessment>,
) -> Result<Json<Value>> {
    let message = req
        .assessment
        .ok_or_else(|| MlflowError::missing_parameter("assessment"))?;
    let assessment = message.into_assessment(trace_id)?;
    let created = state.store.create_assessment(&ws, assessment).await?;
    Ok(Json(json!({"assessment": assessment_json(&created)})))
}

/// `GET /api/3.0/mlflow/traces/{trace_id}/assessments/{assessment_id}`.
pub async fn get_assessment(
    State(state): State<AppState>,
    ws: Workspace,
    Path((trace_id, assessment_id)): Path<(String, String)>,
) -> Result<Json<Value>> {
    let assessment = state
        .store
        .get_assessment(&ws, &trace_id, &assessment_id)
        .await?;
    Ok(Json(json!({"assessment": assessment_json(&assessment)})))
}

#[derive(Deserialize)]
pub struct UpdateAssessment {
    assessment: Option<AssessmentMessage>,
    /// A protobuf FieldMask: comma-separated lowerCamel field names.
    update_mask: Option<String>,
}

/// `PATCH /api/3.0/mlflow/traces/{trace_id}/assessments/{assessment_id}`:
/// changes the fields the update mask names.
pub async fn update_assessment(
    State(state): State<AppState>,
    ws: Workspace,
    Path((trace_id, assessment_id)): Path<(String, String)>,
    ExactBody(req): ExactBody<UpdateAssessment>,
) -> Result<Json<Value>> {
    let mut message = req
        .assessment
        .ok_or_else(|| MlflowError::missing_parameter("assessment"))?;
    let mask = required(req.update_mask, "update_mask")?;
    let mut update = AssessmentUpdate::default();
    for path in mask.split(',').map(str::trim) {
        match wire::to_snake_case(path).as_str() {
            "assessment_name" => update.name = message.assessment_name.take(),
            "feedback" => {
                let feedback = message.feedback.take().ok_or_else(no_value)?;
                update.value = Some(feedback_value(feedback));
            }
            "expectation" => {
                let expectation = message.expectation.take().ok_or_else(no_value)?;
                update.value = Some(expectation_value(expectation)?);
            }
            "rationale" => update.rationale = Some(message.rationale.take().unwrap_or_default()),
            "metadata" => update.metadata = Some(message.metadata.take().unwrap_or_default()),
            _ => {}
        }
    }
    let updated = state
        .store
        .update_assessment(&ws, &trace_id, &assessment_id, update)
        .await?;
    Ok(Json(json!({"assessment": assessment_json(&updated)})))
}

/// `DELETE /api/3.0/mlflow/traces/{trace_id}/assessments/{assessment_id}`.
pub async fn delete_assessment(
    State(state): State<AppState>,
    ws: Workspace,
    Path((trace_id, assessment_id)): Path<(String, String)>,
) -> Result<Json<Value>> {
    state
        .store
        .delete_assessment(&ws, &trace_id, &assessment_id)
        .await?;
    Ok(Json(json!({})))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expectations_that_are_not_scalars_travel_serialized() {
        let a = Assessment {
            kind: AssessmentKind::Expectation,
            value: "{\"a\":[1,2]}".into(),
            ..Assessment::default()
        };
        let out = assessment_json(&a);
        assert_eq!(
            out["expectation"]["serialized_value"]["value"],
            json!("{\"a\":[1,2]}")
        );
        let scalar = Assessment {
            kind: AssessmentKind::Expectation,
            value: "42".into(),
            ..Assessment::default()
        };
        assert_eq!(assessment_json(&scalar)["expectation"]["value"], json!(42));
    }
}
