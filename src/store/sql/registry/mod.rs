//! The SQL implementation of [`RegistryStore`] over MLflow's registry tables
//! (`registered_models`, `model_versions`, their tags, aliases): what the
//! registry's files share (version rows, the model and version lookups) and
//! the trait, whose methods each call the area file that implements them.
//!
//! Mirrors MLflow's SQLAlchemy registry store: deleted versions stay as rows
//! in stage `Deleted_Internal` (so numbers are never reused), renames rely on
//! the schema's `ON UPDATE CASCADE`, and a search page loads its tags,
//! aliases and latest versions with one query per table.
//!
//! - `registered_models.rs`: registered models (create, get, rename, update,
//!   delete, search, latest versions)
//! - `model_versions.rs`: model versions (create, get, update, stage, delete,
//!   download URI, search)
//! - `version_sources.rs`: what a new version's source resolves to, and the
//!   lookups MLflow's source checks (`store/registry/sources.rs`) need
//! - `tags_and_aliases.rs`: tags of models and versions, aliases

mod model_versions;
mod registered_models;
mod tags_and_aliases;
mod version_sources;

use async_trait::async_trait;

use super::SqlStore;
use crate::error::{MlflowError, Result};
use crate::model::{ModelVersion, Page, RegisteredModel, Tag, Workspace};
use crate::search::registry::MODEL_VERSION_COLUMNS;
use crate::store::db::{self, DbResult, Row, Target, Tx};
use crate::store::registry::{
    parse_version, validate_model_name, NewModelVersion, RegistryQuery, RegistryStore,
    STAGE_DELETED_INTERNAL,
};

fn model_not_found(name: &str) -> MlflowError {
    MlflowError::not_found(format!("Registered Model with name={name} not found"))
}

fn version_not_found(name: &str, version: impl std::fmt::Display) -> MlflowError {
    MlflowError::not_found(format!(
        "Model Version (name={name}, version={version}) not found"
    ))
}

/// A version row and the storage location the wire never shows.
struct VersionRow {
    version: ModelVersion,
    storage_location: Option<String>,
}

/// A row of `search::registry::MODEL_VERSION_COLUMNS` (the list searches
/// select too).
fn version_from_row(row: &Row) -> Result<VersionRow> {
    let number: i64 = row.try_get("version")?;
    Ok(VersionRow {
        version: ModelVersion {
            name: row.try_get("name")?,
            version: number.to_string(),
            creation_timestamp: row.try_get::<Option<i64>, _>("creation_time")?.unwrap_or(0),
            last_updated_timestamp: row.try_get("last_updated_time")?,
            user_id: row.try_get("user_id")?,
            current_stage: row
                .try_get::<Option<String>, _>("current_stage")?
                .unwrap_or_else(|| "None".into()),
            description: row.try_get("description")?,
            source: row.try_get("source")?,
            run_id: row.try_get("run_id")?,
            // Registration is synchronous: every stored version is READY.
            status: row
                .try_get::<Option<String>, _>("status")?
                .unwrap_or_else(|| "READY".into()),
            status_message: row
                .try_get::<Option<String>, _>("status_message")?
                .filter(|m| !m.is_empty()),
            tags: Vec::new(),
            run_link: row.try_get("run_link")?,
            aliases: Vec::new(),
        },
        storage_location: row.try_get("storage_location")?,
    })
}

impl SqlStore {
    /// Stamps a registered model as changed now; the number of rows touched
    /// (0 when the model is not stored here).
    async fn touch_registered_model(
        &self,
        tx: &mut Tx,
        ws: &Workspace,
        name: &str,
        now: i64,
    ) -> DbResult<u64> {
        let touched = db::query(
            "UPDATE registered_models SET last_updated_time = $1 WHERE workspace = $2 AND name = $3",
        )
        .bind(now)
        .bind(ws.name())
        .bind(name)
        .execute(&mut *tx)
        .await?;
        Ok(touched)
    }

    /// Fails with MLflow's 404 unless the model exists in this workspace.
    async fn require_model<'a>(
        &self,
        target: impl Into<Target<'a>>,
        ws: &Workspace,
        name: &str,
    ) -> Result<()> {
        validate_model_name(name)?;
        db::query("SELECT 1 FROM registered_models WHERE workspace = $1 AND name = $2")
            .bind(ws.name())
            .bind(name)
            .fetch_optional(target)
            .await?
            .map(drop)
            .ok_or_else(|| model_not_found(name))
    }

    /// A live (not deleted) version row of this workspace.
    async fn version_row<'a>(
        &self,
        target: impl Into<Target<'a>>,
        ws: &Workspace,
        name: &str,
        version: &str,
    ) -> Result<VersionRow> {
        validate_model_name(name)?;
        let number = parse_version(version)?;
        let sql = format!(
            "SELECT {MODEL_VERSION_COLUMNS} FROM model_versions v WHERE v.workspace = $1 \
             AND v.name = $2 AND v.version = $3 AND v.current_stage <> $4"
        );
        let row = db::query(&sql)
            .bind(ws.name())
            .bind(name)
            .bind(number)
            .bind(STAGE_DELETED_INTERNAL)
            .fetch_optional(target)
            .await?
            .ok_or_else(|| version_not_found(name, number))?;
        version_from_row(&row)
    }

    /// A version with its tags and aliases, as `model-versions/get` returns it.
    async fn full_version(
        &self,
        ws: &Workspace,
        name: &str,
        version: &str,
    ) -> Result<ModelVersion> {
        let mut versions = vec![self.version_row(&self.db, ws, name, version).await?.version];
        self.attach_version_tags(ws, &mut versions).await?;
        self.attach_version_aliases(ws, &mut versions).await?;
        Ok(versions.remove(0))
    }
}

#[async_trait]
impl RegistryStore for SqlStore {
    async fn create_registered_model(
        &self,
        ws: &Workspace,
        name: &str,
        tags: &[Tag],
        description: Option<&str>,
    ) -> Result<RegisteredModel> {
        registered_models::create_registered_model(self, ws, name, tags, description).await
    }

    async fn get_registered_model(&self, ws: &Workspace, name: &str) -> Result<RegisteredModel> {
        registered_models::get_registered_model(self, ws, name).await
    }

    async fn rename_registered_model(
        &self,
        ws: &Workspace,
        name: &str,
        new_name: &str,
    ) -> Result<RegisteredModel> {
        registered_models::rename_registered_model(self, ws, name, new_name).await
    }

    async fn update_registered_model(
        &self,
        ws: &Workspace,
        name: &str,
        description: Option<&str>,
    ) -> Result<RegisteredModel> {
        registered_models::update_registered_model(self, ws, name, description).await
    }

    async fn delete_registered_model(&self, ws: &Workspace, name: &str) -> Result<()> {
        registered_models::delete_registered_model(self, ws, name).await
    }

    async fn search_registered_models(
        &self,
        ws: &Workspace,
        query: &RegistryQuery,
    ) -> Result<Page<RegisteredModel>> {
        registered_models::search_registered_models(self, ws, query).await
    }

    async fn get_latest_versions(
        &self,
        ws: &Workspace,
        name: &str,
        stages: &[String],
    ) -> Result<Vec<ModelVersion>> {
        registered_models::get_latest_versions(self, ws, name, stages).await
    }

    async fn set_registered_model_tag(&self, ws: &Workspace, name: &str, tag: &Tag) -> Result<()> {
        tags_and_aliases::set_registered_model_tag(self, ws, name, tag).await
    }

    async fn delete_registered_model_tag(
        &self,
        ws: &Workspace,
        name: &str,
        key: &str,
    ) -> Result<()> {
        tags_and_aliases::delete_registered_model_tag(self, ws, name, key).await
    }

    async fn create_model_version(
        &self,
        ws: &Workspace,
        new: NewModelVersion,
    ) -> Result<ModelVersion> {
        model_versions::create_model_version(self, ws, new).await
    }

    async fn get_model_version(
        &self,
        ws: &Workspace,
        name: &str,
        version: &str,
    ) -> Result<ModelVersion> {
        model_versions::get_model_version(self, ws, name, version).await
    }

    async fn update_model_version(
        &self,
        ws: &Workspace,
        name: &str,
        version: &str,
        description: Option<&str>,
    ) -> Result<ModelVersion> {
        model_versions::update_model_version(self, ws, name, version, description).await
    }

    async fn transition_model_version_stage(
        &self,
        ws: &Workspace,
        name: &str,
        version: &str,
        stage: &str,
        archive_existing_versions: bool,
    ) -> Result<ModelVersion> {
        model_versions::transition_model_version_stage(
            self,
            ws,
            name,
            version,
            stage,
            archive_existing_versions,
        )
        .await
    }

    async fn delete_model_version(&self, ws: &Workspace, name: &str, version: &str) -> Result<()> {
        model_versions::delete_model_version(self, ws, name, version).await
    }

    async fn get_model_version_download_uri(
        &self,
        ws: &Workspace,
        name: &str,
        version: &str,
    ) -> Result<String> {
        model_versions::get_model_version_download_uri(self, ws, name, version).await
    }

    async fn search_model_versions(
        &self,
        ws: &Workspace,
        query: &RegistryQuery,
    ) -> Result<Page<ModelVersion>> {
        model_versions::search_model_versions(self, ws, query).await
    }

    async fn set_model_version_tag(
        &self,
        ws: &Workspace,
        name: &str,
        version: &str,
        tag: &Tag,
    ) -> Result<()> {
        tags_and_aliases::set_model_version_tag(self, ws, name, version, tag).await
    }

    async fn delete_model_version_tag(
        &self,
        ws: &Workspace,
        name: &str,
        version: &str,
        key: &str,
    ) -> Result<()> {
        tags_and_aliases::delete_model_version_tag(self, ws, name, version, key).await
    }

    async fn set_registered_model_alias(
        &self,
        ws: &Workspace,
        name: &str,
        alias: &str,
        version: &str,
    ) -> Result<()> {
        tags_and_aliases::set_registered_model_alias(self, ws, name, alias, version).await
    }

    async fn delete_registered_model_alias(
        &self,
        ws: &Workspace,
        name: &str,
        alias: &str,
    ) -> Result<()> {
        tags_and_aliases::delete_registered_model_alias(self, ws, name, alias).await
    }

    async fn get_model_version_by_alias(
        &self,
        ws: &Workspace,
        name: &str,
        alias: &str,
    ) -> Result<ModelVersion> {
        tags_and_aliases::get_model_version_by_alias(self, ws, name, alias).await
    }
}
