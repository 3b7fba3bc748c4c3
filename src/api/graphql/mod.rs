//! `/graphql`: the part of MLflow's GraphQL API its web UI queries
//! (`mlflowGetExperiment`, `mlflowGetRun`, `mlflowSearchRuns`,
//! `mlflowGetMetricHistoryBulkInterval`), in the request's workspace. HTTP
//! only, no SQL: resolvers call the store like the REST handlers do.
//!
//! The exchange is MLflow's (`_graphql` in mlflow/server/handlers.py): a JSON
//! `{query, variables, operationName}`, answered 200 with
//! `{"data": ..., "errors": [<message>, ...] | null}` whatever went wrong in
//! the query. A request that is not such an object (a batch, a body that is
//! not JSON, no query) is refused with MLflow's 400 JSON error; MLflow answers
//! those with an HTML 500.
//!
//! `types.rs` declares MLflow's types, `resolvers.rs` fills them, `limits.rs`
//! holds MLflow's depth, selection, alias and root-field limits.

mod limits;
mod resolvers;
mod types;

use std::borrow::Cow;
use std::sync::LazyLock;

use async_graphql::parser::types::Directive;
use async_graphql::registry::{__DirectiveLocation, MetaDirective, MetaInputValue, Registry};
use async_graphql::{
    ContextDirective, CustomDirective, CustomDirectiveFactory, EmptyMutation, EmptySubscription,
    Schema, ServerError, ServerResult, Variables,
};
use axum::extract::{Request, State};
use axum::Json;
use serde::Serialize;
use serde_json::{Map, Value};

use super::wire;
use crate::app::AppState;
use crate::error::{MlflowError, Result};
use crate::model::Workspace;
use limits::Limits;
use resolvers::{Query, Scope};

type MlflowSchema = Schema<Query, EmptyMutation, EmptySubscription>;

/// Built once: the schema holds no state, each request brings its scope.
static SCHEMA: LazyLock<MlflowSchema> = LazyLock::new(|| {
    Schema::build(Query, EmptyMutation, EmptySubscription)
        .directive(Component)
        .finish()
});

/// `@component(name: String!)` on a query or mutation: the UI names the
/// component that sent an operation (a Databricks convention); MLflow
/// declares it and does nothing with it, nor does ferroflow.
struct Component;

impl CustomDirectiveFactory for Component {
    fn name(&self) -> Cow<'static, str> {
        "component".into()
    }

    fn register(&self, registry: &mut Registry) {
        let name = MetaInputValue {
            name: "name".into(),
            description: None,
            ty: "String!".into(),
            deprecation: Default::default(),
            default_value: None,
            visible: None,
            inaccessible: false,
            tags: Vec::new(),
            is_secret: false,
            directive_invocations: Vec::new(),
        };
        registry.add_directive(MetaDirective {
            name: "component".into(),
            description: None,
            locations: vec![__DirectiveLocation::QUERY, __DirectiveLocation::MUTATION],
            args: [("name".to_string(), name)].into(),
            is_repeatable: false,
            visible: None,
            composable: None,
        });
    }

    /// Only called for a directive on a field, which validation refuses
    /// (the directive's locations are operations).
    fn create(
        &self,
        _ctx: &ContextDirective<'_>,
        _directive: &Directive,
    ) -> ServerResult<Box<dyn CustomDirective>> {
        Err(ServerError::new(
            "Directive \"component\" may only be used on operations",
            None,
        ))
    }
}

/// A GraphQL request as MLflow reads it.
struct GraphqlRequest {
    query: String,
    variables: Option<Value>,
    operation_name: Option<String>,
}

/// MLflow's answer: `errors` holds messages only, and is null when empty.
#[derive(Serialize)]
pub struct Answer {
    data: async_graphql::Value,
    errors: Option<Vec<String>>,
}

impl Answer {
    fn failed(message: String) -> Self {
        Self {
            data: async_graphql::Value::Null,
            errors: Some(vec![message]),
        }
    }
}

/// `POST /graphql`.
pub async fn post(
    State(state): State<AppState>,
    ws: Workspace,
    req: Request,
) -> Result<Json<Answer>> {
    let content_type = wire::check_content_type(&req);
    // Read even when refused, so the client's keep-alive connection survives.
    let body = wire::read_body(req, &state).await?;
    content_type?;
    let request = parse_body(&body)?;
    Ok(Json(execute(&state, ws, request).await))
}

/// `GET /graphql`: the request in the query string (`variables` as JSON
/// text), or, when there is none, in a JSON body, which is all MLflow reads.
pub async fn get(
    State(state): State<AppState>,
    ws: Workspace,
    req: Request,
) -> Result<Json<Answer>> {
    let request = match req.uri().query().filter(|q| !q.is_empty()) {
        Some(query) => {
            let fields = url::form_urlencoded::parse(query.as_bytes())
                .map(|(key, value)| (key.into_owned(), Value::String(value.into_owned())))
                .collect();
            parse_request(fields)?
        }
        None => parse_body(&wire::read_body(req, &state).await?)?,
    };
    Ok(Json(execute(&state, ws, request).await))
}

fn parse_body(body: &[u8]) -> Result<GraphqlRequest> {
    let body = body.trim_ascii();
    if body.is_empty() {
        return Err(MlflowError::missing_parameter("query"));
    }
    let value = serde_json::from_slice(body).map_err(|err| {
        MlflowError::invalid_parameter(format!("Malformed JSON request body: {err}"))
    })?;
    match value {
        Value::Object(fields) => parse_request(fields),
        Value::Array(_) => Err(MlflowError::invalid_parameter(
            "Batched GraphQL requests are not supported: send one \
             {\"query\", \"variables\", \"operationName\"} object per request.",
        )),
        _ => Err(MlflowError::invalid_parameter(
            "Malformed JSON request body: expected a JSON object",
        )),
    }
}

fn parse_request(mut fields: Map<String, Value>) -> Result<GraphqlRequest> {
    let query = match fields.remove("query") {
        Some(Value::String(query)) => query,
        None | Some(Value::Null) => return Err(MlflowError::missing_parameter("query")),
        Some(_) => return Err(invalid("query", "a string")),
    };
    let variables = match fields.remove("variables") {
        None | Some(Value::Null) => None,
        Some(variables @ Value::Object(_)) => Some(variables),
        // The query-string form carries them as JSON text.
        Some(Value::String(text)) => match serde_json::from_str(&text) {
            Ok(variables @ Value::Object(_)) => Some(variables),
            Ok(Value::Null) => None,
            _ => return Err(invalid("variables", "a JSON object")),
        },
        Some(_) => return Err(invalid("variables", "a JSON object")),
    };
    let operation_name = match fields.remove("operationName") {
        None | Some(Value::Null) => None,
        Some(Value::String(name)) => Some(name).filter(|name| !name.is_empty()),
        Some(_) => return Err(invalid("operationName", "a string")),
    };
    Ok(GraphqlRequest {
        query,
        variables,
        operation_name,
    })
}

fn invalid(field: &str, expected: &str) -> MlflowError {
    MlflowError::invalid_parameter(format!("Invalid value for '{field}': expected {expected}"))
}

/// A parse error in one line: pest's message spans several, with a
/// drawing of the spot.
fn syntax_error(err: async_graphql::parser::Error) -> String {
    match err {
        async_graphql::parser::Error::Syntax { message, start, .. } => {
            let reason = message.lines().last().unwrap_or_default();
            let reason = reason.trim().trim_start_matches("= ");
            format!(
                "Syntax Error: {reason} at line {}, column {}.",
                start.line, start.column
            )
        }
        other => other.to_string(),
    }
}

/// Parses, applies MLflow's limits, then validates and runs the operation.
async fn execute(state: &AppState, ws: Workspace, req: GraphqlRequest) -> Answer {
    let document = match async_graphql::parser::parse_query(&req.query) {
        Ok(document) => document,
        Err(err) => return Answer::failed(syntax_error(err)),
    };
    if let Err(message) = limits::check(&document, Limits::from_env()) {
        return Answer::failed(message);
    }
    let scope = Scope {
        store: state.store.clone(),
        ws,
    };
    let mut request = async_graphql::Request::new(req.query)
        .variables(Variables::from_json(req.variables.unwrap_or_default()))
        .data(scope);
    if let Some(name) = req.operation_name {
        request = request.operation_name(name);
    }
    request.set_parsed_query(document);
    let response = SCHEMA.execute(request).await;
    let errors = (!response.errors.is_empty())
        .then(|| response.errors.into_iter().map(|err| err.message).collect());
    Answer {
        data: response.data,
        errors,
    }
}
