//! The root fields the web UI queries and the two fields MLflow adds to a
//! run. Each calls the store as its REST counterpart does, with the REST
//! handler's validation; no SQL here.
//!
//! A store error fails only its field: the field is null and the error's
//! message joins the response's `errors`, as MLflow's resolvers raise it
//! (`apiError` stays null there too).
//!
//! Resolvers carry `//` comments: a doc comment would become the field's
//! description in the schema, where MLflow's has none.

use std::future::Future;
use std::sync::Arc;

use async_graphql::{ComplexObject, Context, Object, ServerError};

use super::types::{
    strings, MlflowExperiment, MlflowGetExperimentInput, MlflowGetExperimentResponse,
    MlflowGetMetricHistoryBulkIntervalInput, MlflowGetMetricHistoryBulkIntervalResponse,
    MlflowGetRunInput, MlflowGetRunResponse, MlflowModelVersion, MlflowRunExtension,
    MlflowSearchRunsInput, MlflowSearchRunsResponse, MlflowViewType,
};
use crate::api::metrics::history_interval;
use crate::api::runs::DEFAULT_SEARCH_MAX_RESULTS;
use crate::api::wire::{self, required};
use crate::model::Workspace;
use crate::search::ViewType;
use crate::store::registry::SEARCH_MODEL_VERSIONS_DEFAULT;
use crate::store::{RegistryQuery, RunQuery, Store};

/// What every resolver acts with: the store and the request's workspace.
pub struct Scope {
    pub store: Arc<dyn Store>,
    pub ws: Workspace,
}

/// A resolver's answer, on a nullable field as all of MLflow's are: on an
/// error the field is null and the error's message (MLflow's text) joins
/// `errors`. Recorded here rather than returned: async-graphql drops a field
/// whose resolver fails from its object instead of answering it null.
async fn field<T>(
    ctx: &Context<'_>,
    answer: impl Future<Output = crate::error::Result<T>>,
) -> Option<T> {
    match answer.await {
        Ok(value) => Some(value),
        Err(err) => {
            err.log_detail();
            ctx.add_error(ServerError::new(err.message, Some(ctx.item.pos)));
            None
        }
    }
}

fn scope<'a>(ctx: &Context<'a>) -> &'a Scope {
    ctx.data_unchecked::<Scope>()
}

pub struct Query;

#[Object]
impl Query {
    // `GetExperiment`.
    async fn mlflow_get_experiment(
        &self,
        ctx: &Context<'_>,
        input: Option<MlflowGetExperimentInput>,
    ) -> Option<MlflowGetExperimentResponse> {
        let Scope { store, ws } = scope(ctx);
        let input = input.unwrap_or_default();
        field(ctx, async {
            let id = required(input.experiment_id, "experiment_id")?;
            let experiment = store.get_experiment(ws, &id).await?;
            Ok(MlflowGetExperimentResponse {
                experiment: Some(experiment.into()),
                api_error: None,
            })
        })
        .await
    }

    // `GetMetricHistoryBulkInterval`: sampled series of one metric.
    async fn mlflow_get_metric_history_bulk_interval(
        &self,
        ctx: &Context<'_>,
        input: Option<MlflowGetMetricHistoryBulkIntervalInput>,
    ) -> Option<MlflowGetMetricHistoryBulkIntervalResponse> {
        let Scope { store, ws } = scope(ctx);
        let input = input.unwrap_or_default();
        field(ctx, async {
            let run_ids = strings(input.run_ids);
            // MLflow's GraphQL answers no runs with no points where REST
            // refuses the request; the UI may ask before it has runs.
            if run_ids.is_empty() {
                return Ok(MlflowGetMetricHistoryBulkIntervalResponse {
                    metrics: Some(Vec::new()),
                    api_error: None,
                });
            }
            // MLflow 3.17's resolver reads the steps and max_results from the
            // URL's query string, not from `input`, so it ignores them; the UI
            // sends them meaning what the REST call means, and so they are
            // read here.
            let query = history_interval(
                run_ids,
                input.metric_key,
                input.start_step.map(i64::from),
                input.end_step.map(i64::from),
                input.max_results.map(i64::from),
            )?;
            let metrics = store.get_metric_history_bulk_interval(ws, &query).await?;
            Ok(MlflowGetMetricHistoryBulkIntervalResponse {
                metrics: Some(metrics.into_iter().map(Into::into).collect()),
                api_error: None,
            })
        })
        .await
    }

    // `GetRun`.
    async fn mlflow_get_run(
        &self,
        ctx: &Context<'_>,
        input: Option<MlflowGetRunInput>,
    ) -> Option<MlflowGetRunResponse> {
        let Scope { store, ws } = scope(ctx);
        let input = input.unwrap_or_default();
        field(ctx, async {
            let run_id = wire::run_id(input.run_id, input.run_uuid)?;
            let run = store.get_run(ws, &run_id).await?;
            Ok(MlflowGetRunResponse {
                run: Some(run.into()),
                api_error: None,
            })
        })
        .await
    }

    // `SearchRuns`. MLflow declares it on both Query and Mutation; the UI
    // sends it as a query.
    async fn mlflow_search_runs(
        &self,
        ctx: &Context<'_>,
        input: Option<MlflowSearchRunsInput>,
    ) -> Option<MlflowSearchRunsResponse> {
        let Scope { store, ws } = scope(ctx);
        let input = input.unwrap_or_default();
        field(ctx, async {
            // MLflow 3.17 fails any request naming a view type (its resolver
            // hands protobuf the graphene enum); the view is honoured here.
            let view = match input.run_view_type {
                None | Some(MlflowViewType::ActiveOnly) => ViewType::ActiveOnly,
                Some(MlflowViewType::DeletedOnly) => ViewType::DeletedOnly,
                Some(MlflowViewType::All) => ViewType::All,
            };
            let query = RunQuery {
                experiment_ids: strings(input.experiment_ids),
                filter: input.filter.unwrap_or_default(),
                view,
                max_results: input
                    .max_results
                    .map_or(DEFAULT_SEARCH_MAX_RESULTS, i64::from),
                order_by: strings(input.order_by),
                page_token: input.page_token.filter(|t| !t.is_empty()),
            };
            let page = store.search_runs(ws, &query).await?;
            Ok(MlflowSearchRunsResponse {
                runs: Some(page.items.into_iter().map(Into::into).collect()),
                next_page_token: Some(page.next_page_token.unwrap_or_default()),
                api_error: None,
            })
        })
        .await
    }
}

// The fields graphql_schema_extensions.py adds to `MlflowRun`, fetched only
// when a query selects them (once per run, as MLflow does).
#[ComplexObject]
impl MlflowRunExtension {
    // The run's experiment, as `GetExperiment` answers it.
    async fn experiment(&self, ctx: &Context<'_>) -> Option<MlflowExperiment> {
        let Scope { store, ws } = scope(ctx);
        field(ctx, async {
            let experiment = store.get_experiment(ws, &self.experiment_id).await?;
            Ok(experiment.into())
        })
        .await
    }

    // The registered versions made from the run: `SearchModelVersions` with
    // `run_id='<id>'`, MLflow's query for this field.
    async fn model_versions(&self, ctx: &Context<'_>) -> Option<Vec<MlflowModelVersion>> {
        let Scope { store, ws } = scope(ctx);
        field(ctx, async {
            let query = RegistryQuery {
                filter: format!("run_id='{}'", self.run_id),
                max_results: SEARCH_MODEL_VERSIONS_DEFAULT,
                order_by: Vec::new(),
                page_token: None,
            };
            let page = store.search_model_versions(ws, &query).await?;
            Ok(page.items.into_iter().map(Into::into).collect())
        })
        .await
    }
}
