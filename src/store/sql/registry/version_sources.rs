//! Where a new model version points: a `models:/` source resolved to the
//! version it names (`_resolve_registered_model_source_lineage`), the storage
//! location its files are at, and the run and logged-model lookups MLflow's
//! source checks (`store/registry/sources.rs`) are given.

use crate::error::{MlflowError, Result};
use crate::model::Workspace;
use crate::store::db;
use crate::store::registry::{
    self as rules, check_not_prompt, parse_version, ModelUri, NewModelVersion, RegistryStore,
};
use crate::store::sql::{append_to_uri, SqlStore};

/// A logged model's row, as model-version creation needs it.
pub(super) struct LoggedModelRow {
    pub(super) experiment_id: i64,
    pub(super) artifact_location: String,
    pub(super) source_run_id: Option<String>,
}

impl SqlStore {
    /// A logged model of this workspace; `None` when it is not here.
    pub(super) async fn logged_model(
        &self,
        ws: &Workspace,
        model_id: &str,
    ) -> Result<Option<LoggedModelRow>> {
        let row = db::query(
            "SELECT lm.experiment_id, lm.artifact_location, lm.source_run_id FROM logged_models lm \
             JOIN experiments e ON e.experiment_id = lm.experiment_id \
             WHERE lm.model_id = $1 AND e.workspace = $2",
        )
        .bind(model_id)
        .bind(ws.name())
        .fetch_optional(&self.db)
        .await?;
        row.map(|row| {
            Ok(LoggedModelRow {
                experiment_id: row.try_get("experiment_id")?,
                artifact_location: row.try_get("artifact_location")?,
                source_run_id: row.try_get("source_run_id")?,
            })
        })
        .transpose()
    }

    /// The newest live version of `name`, optionally within one stage.
    async fn latest_version_number(
        &self,
        ws: &Workspace,
        name: &str,
        stage: Option<&str>,
    ) -> Result<i64> {
        let stages: Vec<String> = stage.map(|s| vec![s.to_string()]).unwrap_or_default();
        let latest = self.get_latest_versions(ws, name, &stages).await?;
        latest
            .iter()
            .filter_map(|v| v.version.parse::<i64>().ok())
            .max()
            .ok_or_else(|| {
                let stage = stage
                    .map(|s| format!(" and stage '{s}'"))
                    .unwrap_or_default();
                MlflowError::invalid_parameter(format!(
                    "No versions of model with name '{name}'{stage} found"
                ))
            })
    }

    /// `_resolve_registered_model_source_lineage`: a `models:/<name>/...`
    /// source becomes `models:/<name>/<version>` of an existing version, and
    /// the run id defaults to that version's.
    pub(super) async fn resolve_registered_source(
        &self,
        ws: &Workspace,
        new: &mut NewModelVersion,
    ) -> Result<()> {
        let parts = rules::split_uri(&new.source);
        if parts.scheme != "models" {
            return Ok(());
        }
        if !parts.netloc.is_empty() {
            return Err(MlflowError::invalid_parameter(format!(
                "Invalid model version source: '{}'. Registered model sources must use the \
                 active model registry.",
                new.source
            )));
        }
        let parsed = rules::parse_models_uri(&new.source)
            .map_err(|_| rules::invalid_source(&new.source, "model_id"))?;
        let (name, number) = match parsed {
            ModelUri::LoggedModel(_) => return Ok(()),
            ModelUri::Version(name, version) => {
                let model = self.get_registered_model(ws, &name).await?;
                check_not_prompt(&model, &new.source)?;
                (name, parse_version(&version)?)
            }
            ModelUri::Alias(name, alias) => {
                let model = self.get_registered_model(ws, &name).await?;
                check_not_prompt(&model, &new.source)?;
                let version = self.get_model_version_by_alias(ws, &name, &alias).await?;
                (name, parse_version(&version.version)?)
            }
            ModelUri::Stage(name, stage) => {
                let model = self.get_registered_model(ws, &name).await?;
                check_not_prompt(&model, &new.source)?;
                let number = self
                    .latest_version_number(ws, &name, stage.as_deref())
                    .await?;
                (name, number)
            }
        };
        let referenced = self
            .version_row(&self.db, ws, &name, &number.to_string())
            .await?
            .version;
        let referenced_run = referenced.run_id.clone().unwrap_or_default();
        // Versions carry no model id in MLflow's SQL schema.
        let run_mismatch = new.run_id.as_ref().is_some_and(|r| *r != referenced_run);
        let model_mismatch = new.model_id.as_ref().is_some_and(|m| !m.is_empty());
        if run_mismatch || model_mismatch {
            return Err(MlflowError::invalid_parameter(format!(
                "Invalid model version source: '{}'. The run_id and model_id request parameters \
                 must match the referenced model version.",
                new.source
            )));
        }
        new.source = format!("models:/{name}/{number}");
        if new.run_id.is_none() {
            new.run_id = referenced.run_id;
        }
        Ok(())
    }

    /// The artifact URI of a source's run; `None` when the run is not here.
    pub(super) async fn run_artifact_root(
        &self,
        ws: &Workspace,
        run_id: &str,
    ) -> Result<Option<String>> {
        match self.accessible_run(ws, run_id).await {
            Ok(run) => Ok(Some(run.artifact_uri)),
            Err(err) if err.code == crate::error::ErrorCode::ResourceDoesNotExist => Ok(None),
            Err(err) => Err(err),
        }
    }

    /// The artifact location of a source's logged model; `None` when the
    /// model is not here.
    pub(super) async fn logged_model_artifact_root(
        &self,
        ws: &Workspace,
        model_id: &str,
    ) -> Result<Option<String>> {
        Ok(self
            .logged_model(ws, model_id)
            .await?
            .map(|m| m.artifact_location))
    }

    /// Where the version's files are: a logged model's artifact location, a
    /// referenced version's location, a run's artifact URI plus the path, or
    /// the source itself. Also fills in the run id from a logged model.
    pub(super) async fn storage_location(
        &self,
        ws: &Workspace,
        new: &mut NewModelVersion,
    ) -> Result<String> {
        let source = new.source.clone();
        let parts = rules::split_uri(&source);
        match parts.scheme.as_str() {
            "models" => match rules::parse_models_uri(&source)? {
                ModelUri::LoggedModel(id) => {
                    let model = self.logged_model(ws, &id).await?.ok_or_else(|| {
                        MlflowError::invalid_parameter(format!(
                            "Unable to fetch model from model URI source artifact location \
                             '{source}'.Error: Logged model with ID '{id}' not found."
                        ))
                    })?;
                    if new.run_id.as_deref().unwrap_or_default().is_empty() {
                        new.run_id = model.source_run_id;
                    }
                    Ok(model.artifact_location)
                }
                ModelUri::Version(name, version) => {
                    self.get_model_version_download_uri(ws, &name, &version)
                        .await
                }
                _ => Ok(source),
            },
            // The client resolves `runs:/` itself; the run's artifact URI saves
            // it the round trips (MLflow 3.17 keeps `runs:/...` here).
            "runs" => {
                let (run_id, path) = rules::parse_runs_uri(&source)?;
                match self.accessible_run(ws, &run_id).await {
                    Ok(run) if path.is_empty() => Ok(run.artifact_uri),
                    Ok(run) => Ok(append_to_uri(&run.artifact_uri, &[&path])),
                    Err(_) => Ok(source),
                }
            }
            _ => Ok(source),
        }
    }
}
