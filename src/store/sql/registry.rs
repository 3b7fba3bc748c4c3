//! The SQL implementation of [`RegistryStore`] over MLflow's registry tables
//! (`registered_models`, `model_versions`, their tags, aliases).
//!
//! Mirrors MLflow's SQLAlchemy registry store: deleted versions stay as rows
//! in stage `Deleted_Internal` (so numbers are never reused), renames rely on
//! the schema's `ON UPDATE CASCADE`, and a search page loads its tags,
//! aliases and latest versions with one query per table.

use std::collections::HashMap;

use crate::store::db::{self, DbError, DbResult, Row, Target, Tx, UniqueViolation};
use async_trait::async_trait;

use super::{in_list, now_millis, tag_from_row, SqlStore};
use crate::error::{MlflowError, Result};
use crate::model::{ModelVersion, Page, RegisteredModel, RegisteredModelAlias, Tag, Workspace};
use crate::search::registry::MODEL_VERSION_COLUMNS;
use crate::search::{self, page_token};
use crate::store::registry::{
    self as rules, canonical_stage, check_not_prompt, dedup_tags, is_prompt, parse_version,
    python_json, validate_alias, validate_alias_not_reserved, validate_model_name,
    validate_registry_tag, ModelUri, NewModelVersion, RegistryQuery, RegistryStore, ACTIVE_STAGES,
    ALL_STAGES, MODEL_VERSIONS_TAG, SEARCH_MODEL_VERSIONS_MAX, SEARCH_REGISTERED_MODELS_MAX,
    STAGE_DELETED_INTERNAL,
};

/// Attempts at numbering a new version before giving up, as MLflow's store.
const CREATE_VERSION_ATTEMPTS: usize = 3;
/// (name, version) pairs per child-table read of a search page.
const VERSION_CHUNK: usize = 500;

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

/// A logged model's row, as model-version creation needs it.
struct LoggedModelRow {
    experiment_id: i64,
    artifact_location: String,
    source_run_id: Option<String>,
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

    /// Whole registered models (tags, aliases, latest versions with their
    /// tags) in the order of `names`; names that are not stored are left out.
    async fn load_registered_models(
        &self,
        ws: &Workspace,
        names: &[String],
    ) -> Result<Vec<RegisteredModel>> {
        let mut models: HashMap<String, RegisteredModel> = HashMap::with_capacity(names.len());
        for chunk in names.chunks(super::IN_LIST_CHUNK) {
            let list = in_list(chunk.len(), 2);
            let models_sql = format!(
                "SELECT name, creation_time, last_updated_time, description FROM \
                 registered_models WHERE workspace = $1 AND name IN ({list})"
            );
            let tags_sql = format!(
                "SELECT name, key, value FROM registered_model_tags WHERE workspace = $1 \
                 AND name IN ({list}) ORDER BY key"
            );
            let aliases_sql = format!(
                "SELECT name, alias, version FROM registered_model_aliases WHERE workspace = $1 \
                 AND name IN ({list}) ORDER BY alias"
            );
            // Newest version per (name, stage); stages in the order of their
            // first version, which is the order MLflow's store builds them in.
            let latest_sql = format!(
                "SELECT {MODEL_VERSION_COLUMNS} FROM model_versions v JOIN ( \
                   SELECT name, current_stage, MAX(version) AS latest, MIN(version) AS first \
                   FROM model_versions WHERE workspace = $1 AND name IN ({list}) \
                   AND current_stage <> '{STAGE_DELETED_INTERNAL}' GROUP BY name, current_stage \
                 ) l ON l.name = v.name AND l.latest = v.version \
                 WHERE v.workspace = $1 ORDER BY l.first"
            );
            let query = |sql| bind_names(sql, ws.name(), chunk);
            let (model_rows, tag_rows, alias_rows, latest_rows) = tokio::try_join!(
                query(&models_sql).fetch_all(&self.db),
                query(&tags_sql).fetch_all(&self.db),
                query(&aliases_sql).fetch_all(&self.db),
                query(&latest_sql).fetch_all(&self.db),
            )?;
            for row in &model_rows {
                let name: String = row.try_get("name")?;
                models.insert(
                    name.clone(),
                    RegisteredModel {
                        name,
                        creation_timestamp: row.try_get("creation_time")?,
                        last_updated_timestamp: row
                            .try_get::<Option<i64>, _>("last_updated_time")?
                            .filter(|t| *t != 0),
                        description: row
                            .try_get::<Option<String>, _>("description")?
                            .filter(|d| !d.is_empty()),
                        latest_versions: Vec::new(),
                        tags: Vec::new(),
                        aliases: Vec::new(),
                    },
                );
            }
            for row in &tag_rows {
                if let Some(model) = models.get_mut(&row.try_get::<String, _>("name")?) {
                    model.tags.push(tag_from_row(row, "key")?);
                }
            }
            for row in &alias_rows {
                if let Some(model) = models.get_mut(&row.try_get::<String, _>("name")?) {
                    let version: i64 = row.try_get("version")?;
                    model.aliases.push(RegisteredModelAlias {
                        alias: row.try_get("alias")?,
                        version: version.to_string(),
                    });
                }
            }
            let mut latest = latest_rows
                .iter()
                .map(|row| version_from_row(row).map(|r| r.version))
                .collect::<Result<Vec<_>>>()?;
            self.attach_version_tags(ws, &mut latest).await?;
            for version in latest {
                if let Some(model) = models.get_mut(&version.name) {
                    model.latest_versions.push(version);
                }
            }
        }
        Ok(names.iter().filter_map(|n| models.remove(n)).collect())
    }

    /// Loads the tags of `versions` (one query per chunk of versions).
    async fn attach_version_tags(
        &self,
        ws: &Workspace,
        versions: &mut [ModelVersion],
    ) -> Result<()> {
        for chunk in versions.chunks_mut(VERSION_CHUNK) {
            let pairs: Vec<(String, i64)> = chunk
                .iter()
                .map(|v| Ok((v.name.clone(), parse_version(&v.version)?)))
                .collect::<Result<_>>()?;
            let mut sql = String::from(
                "SELECT name, version, key, value FROM model_version_tags WHERE workspace = $1 AND (",
            );
            for i in 0..pairs.len() {
                if i > 0 {
                    sql.push_str(" OR ");
                }
                sql.push_str(&format!(
                    "(name = ${} AND version = ${})",
                    2 * i + 2,
                    2 * i + 3
                ));
            }
            sql.push_str(") ORDER BY key");
            let mut query = db::query(&sql).bind(ws.name());
            for (name, version) in &pairs {
                query = query.bind(name.as_str()).bind(*version);
            }
            let mut tags: HashMap<(String, i64), Vec<Tag>> = HashMap::new();
            for row in query.fetch_all(&self.db).await? {
                tags.entry((row.try_get("name")?, row.try_get("version")?))
                    .or_default()
                    .push(tag_from_row(&row, "key")?);
            }
            for (version, key) in chunk.iter_mut().zip(pairs) {
                version.tags = tags.remove(&key).unwrap_or_default();
            }
        }
        Ok(())
    }

    /// Loads the aliases of `versions` (one query per chunk of model names).
    async fn attach_version_aliases(
        &self,
        ws: &Workspace,
        versions: &mut [ModelVersion],
    ) -> Result<()> {
        let mut names: Vec<String> = versions.iter().map(|v| v.name.clone()).collect();
        names.sort();
        names.dedup();
        let mut aliases: HashMap<(String, String), Vec<String>> = HashMap::new();
        for chunk in names.chunks(super::IN_LIST_CHUNK) {
            let sql = format!(
                "SELECT name, alias, version FROM registered_model_aliases WHERE workspace = $1 \
                 AND name IN ({}) ORDER BY alias",
                in_list(chunk.len(), 2)
            );
            let query = chunk
                .iter()
                .fold(db::query(&sql).bind(ws.name()), |q, n| q.bind(n.as_str()));
            for row in query.fetch_all(&self.db).await? {
                let version: i64 = row.try_get("version")?;
                aliases
                    .entry((row.try_get("name")?, version.to_string()))
                    .or_default()
                    .push(row.try_get("alias")?);
            }
        }
        for version in versions {
            version.aliases = aliases
                .remove(&(version.name.clone(), version.version.clone()))
                .unwrap_or_default();
        }
        Ok(())
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

    async fn logged_model(&self, ws: &Workspace, model_id: &str) -> Result<Option<LoggedModelRow>> {
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
    async fn resolve_registered_source(
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
    async fn run_artifact_root(&self, ws: &Workspace, run_id: &str) -> Result<Option<String>> {
        match self.accessible_run(ws, run_id).await {
            Ok(run) => Ok(Some(run.artifact_uri)),
            Err(err) if err.code == crate::error::ErrorCode::ResourceDoesNotExist => Ok(None),
            Err(err) => Err(err),
        }
    }

    /// The artifact location of a source's logged model; `None` when the
    /// model is not here.
    async fn logged_model_artifact_root(
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
    async fn storage_location(&self, ws: &Workspace, new: &mut NewModelVersion) -> Result<String> {
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
                    Ok(run) => Ok(super::append_to_uri(&run.artifact_uri, &[&path])),
                    Err(_) => Ok(source),
                }
            }
            _ => Ok(source),
        }
    }

    /// Appends `{name, version}` to the logged model's `mlflow.modelVersions`
    /// tag (a JSON list), as MLflow's `set_model_versions_tags`.
    async fn record_version_on_logged_model(
        &self,
        tx: &mut Tx,
        model: &LoggedModelRow,
        model_id: &str,
        name: &str,
        version: i64,
    ) -> Result<()> {
        let current: Option<String> = db::query(
            "SELECT tag_value FROM logged_model_tags WHERE model_id = $1 AND tag_key = $2",
        )
        .bind(model_id)
        .bind(MODEL_VERSIONS_TAG)
        .fetch_optional(&mut *tx)
        .await?
        .map(|row| row.try_get("tag_value"))
        .transpose()?;
        let entry = serde_json::json!({ "name": name, "version": version });
        let mut list: Vec<serde_json::Value> = current
            .and_then(|v| serde_json::from_str(&v).ok())
            .unwrap_or_default();
        if !list.contains(&entry) {
            list.push(entry);
        }
        let mut value = String::new();
        python_json(&serde_json::Value::Array(list), &mut value);
        let tag = Tag {
            key: MODEL_VERSIONS_TAG.to_string(),
            value,
        };
        self.upsert_logged_model_tags(tx, model_id, model.experiment_id, &[&tag])
            .await
    }

    /// Inserts the next version of `new.name` (max + 1) and its tags.
    async fn insert_version(
        &self,
        tx: &mut Tx,
        ws: &Workspace,
        new: &NewModelVersion,
        storage_location: &str,
        tags: &[Tag],
        now: i64,
    ) -> DbResult<i64> {
        // Touching the model first locks its row on PostgreSQL, so concurrent
        // creators queue here and each sees the previous one's version.
        if self.touch_registered_model(tx, ws, &new.name, now).await? == 0 {
            return Err(DbError::RowNotFound);
        }
        let row = db::query(
            "INSERT INTO model_versions (workspace, name, version, creation_time, \
             last_updated_time, description, user_id, current_stage, source, run_id, status, \
             status_message, run_link, storage_location) \
             SELECT $1, $2, COALESCE(MAX(version), 0) + 1, $3, $3, $4, NULL, 'None', $5, $6, \
             'READY', NULL, $7, $8 FROM model_versions WHERE workspace = $1 AND name = $2 \
             RETURNING version",
        )
        .bind(ws.name())
        .bind(new.name.as_str())
        .bind(now)
        .bind(new.description.as_deref().unwrap_or_default())
        .bind(new.source.as_str())
        .bind(new.run_id.as_deref())
        .bind(new.run_link.as_deref().unwrap_or_default())
        .bind(storage_location)
        .fetch_one(&mut *tx)
        .await?;
        let version: i64 = row.try_get("version")?;
        for tag in tags {
            db::query(
                "INSERT INTO model_version_tags (workspace, key, name, version, value) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(ws.name())
            .bind(tag.key.as_str())
            .bind(new.name.as_str())
            .bind(version)
            .bind(tag.value.as_str())
            .execute(&mut *tx)
            .await?;
        }
        Ok(version)
    }
}

/// A query whose `$1` is the workspace and `$2..` are `names`.
fn bind_names<'q>(sql: &'q str, workspace: &'q str, names: &[String]) -> db::Query<'q> {
    names
        .iter()
        .fold(db::query(sql).bind(workspace), |q, name| q.bind(name))
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
        validate_model_name(name)?;
        for tag in tags {
            validate_registry_tag(tag)?;
        }
        let tags = dedup_tags(tags);
        let now = now_millis();
        let mut tx = self.db.begin().await?;
        let inserted = db::query(
            "INSERT INTO registered_models (workspace, name, creation_time, last_updated_time, \
             description) VALUES ($1, $2, $3, $3, $4)",
        )
        .bind(ws.name())
        .bind(name)
        .bind(now)
        .bind(description.unwrap_or_default())
        .execute(&mut tx)
        .await;
        match inserted {
            Ok(_) => {}
            // Not `or_conflict`: the message depends on whether a model or a
            // prompt holds the name, which takes a read.
            Err(err) if err.is_unique_violation() => {
                drop(tx);
                let existing = self.get_registered_model(ws, name).await?;
                let (old, new) = (is_prompt(&existing.tags), is_prompt(&tags));
                let entity = |prompt: bool| if prompt { "Prompt" } else { "Registered Model" };
                if old != new {
                    return Err(MlflowError::already_exists(format!(
                        "Tried to create a {} with name '{name}', but the name is already taken \
                         by a {}. MLflow does not allow creating a model and a prompt with the \
                         same name.",
                        entity(new).to_lowercase(),
                        entity(old).to_lowercase()
                    )));
                }
                return Err(MlflowError::already_exists(format!(
                    "{} (name={name}) already exists.",
                    entity(new)
                )));
            }
            Err(err) => return Err(err.into()),
        }
        for tag in &tags {
            db::query(
                "INSERT INTO registered_model_tags (workspace, key, value, name) \
                 VALUES ($1, $2, $3, $4)",
            )
            .bind(ws.name())
            .bind(tag.key.as_str())
            .bind(tag.value.as_str())
            .bind(name)
            .execute(&mut tx)
            .await?;
        }
        tx.commit().await?;
        let mut tags = tags;
        tags.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(RegisteredModel {
            name: name.to_string(),
            creation_timestamp: Some(now),
            last_updated_timestamp: Some(now),
            description: description.filter(|d| !d.is_empty()).map(str::to_string),
            latest_versions: Vec::new(),
            tags,
            aliases: Vec::new(),
        })
    }

    async fn get_registered_model(&self, ws: &Workspace, name: &str) -> Result<RegisteredModel> {
        validate_model_name(name)?;
        self.load_registered_models(ws, &[name.to_string()])
            .await?
            .pop()
            .ok_or_else(|| model_not_found(name))
    }

    async fn rename_registered_model(
        &self,
        ws: &Workspace,
        name: &str,
        new_name: &str,
    ) -> Result<RegisteredModel> {
        if new_name.trim().is_empty() {
            return Err(MlflowError::missing_parameter("new_name"));
        }
        validate_model_name(new_name)?;
        let mut tx = self.db.begin().await?;
        self.require_model(&mut tx, ws, name).await?;
        let now = now_millis();
        // Versions, tags and aliases follow through ON UPDATE CASCADE.
        db::query(
            "UPDATE registered_models SET name = $1, last_updated_time = $2 \
             WHERE workspace = $3 AND name = $4",
        )
        .bind(new_name)
        .bind(now)
        .bind(ws.name())
        .bind(name)
        .execute(&mut tx)
        .await
        .or_conflict(|| {
            MlflowError::already_exists(format!(
                "Registered Model (name={new_name}) already exists."
            ))
        })?;
        db::query(
            "UPDATE model_versions SET last_updated_time = $1 WHERE workspace = $2 AND name = $3",
        )
        .bind(now)
        .bind(ws.name())
        .bind(new_name)
        .execute(&mut tx)
        .await?;
        tx.commit().await?;
        self.get_registered_model(ws, new_name).await
    }

    async fn update_registered_model(
        &self,
        ws: &Workspace,
        name: &str,
        description: Option<&str>,
    ) -> Result<RegisteredModel> {
        validate_model_name(name)?;
        let updated = db::query(
            "UPDATE registered_models SET description = $1, last_updated_time = $2 \
             WHERE workspace = $3 AND name = $4",
        )
        .bind(description)
        .bind(now_millis())
        .bind(ws.name())
        .bind(name)
        .execute(&self.db)
        .await?;
        if updated == 0 {
            return Err(model_not_found(name));
        }
        self.get_registered_model(ws, name).await
    }

    async fn delete_registered_model(&self, ws: &Workspace, name: &str) -> Result<()> {
        let mut tx = self.db.begin().await?;
        self.require_model(&mut tx, ws, name).await?;
        // The schema has no ON DELETE on versions and tags: children first.
        for table in [
            "model_version_tags",
            "model_versions",
            "registered_model_tags",
            "registered_model_aliases",
            "registered_models",
        ] {
            db::query(&format!(
                "DELETE FROM {table} WHERE workspace = $1 AND name = $2"
            ))
            .bind(ws.name())
            .bind(name)
            .execute(&mut tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn search_registered_models(
        &self,
        ws: &Workspace,
        query: &RegistryQuery,
    ) -> Result<Page<RegisteredModel>> {
        if query.max_results > SEARCH_REGISTERED_MODELS_MAX {
            return Err(MlflowError::invalid_parameter(format!(
                "Invalid value for request parameter max_results. It must be at most \
                 {SEARCH_REGISTERED_MODELS_MAX}, but got value {}",
                query.max_results
            )));
        }
        let max_results = query.max_results.max(0);
        let offset = page_token::decode(query.page_token.as_deref())?;
        let sql = search::registered_models_search_query(
            ws.name(),
            &query.filter,
            &query.order_by,
            max_results + 1,
            offset,
        )?;
        let mut names = super::fetch_rendered(&self.db, &sql)
            .await?
            .iter()
            .map(|row| row.try_get::<String, _>(0).map_err(MlflowError::from))
            .collect::<Result<Vec<_>>>()?;
        let next_page_token = super::next_token(names.len(), max_results, offset);
        names.truncate(max_results as usize);
        Ok(Page {
            items: self.load_registered_models(ws, &names).await?,
            next_page_token,
        })
    }

    async fn get_latest_versions(
        &self,
        ws: &Workspace,
        name: &str,
        stages: &[String],
    ) -> Result<Vec<ModelVersion>> {
        let model = self.get_registered_model(ws, name).await?;
        let expected = if stages.is_empty() {
            ALL_STAGES.to_vec()
        } else {
            stages
                .iter()
                .map(|s| canonical_stage(s))
                .collect::<Result<Vec<_>>>()?
        };
        let mut versions: Vec<ModelVersion> = model
            .latest_versions
            .into_iter()
            .filter(|v| expected.contains(&v.current_stage.as_str()))
            .collect();
        for version in &mut versions {
            version.aliases = model
                .aliases
                .iter()
                .filter(|a| a.version == version.version)
                .map(|a| a.alias.clone())
                .collect();
        }
        Ok(versions)
    }

    async fn set_registered_model_tag(&self, ws: &Workspace, name: &str, tag: &Tag) -> Result<()> {
        validate_model_name(name)?;
        validate_registry_tag(tag)?;
        self.require_model(&self.db, ws, name).await?;
        db::query(
            "INSERT INTO registered_model_tags (workspace, key, value, name) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (workspace, key, name) DO UPDATE SET value = excluded.value",
        )
        .bind(ws.name())
        .bind(tag.key.as_str())
        .bind(tag.value.as_str())
        .bind(name)
        .execute(&self.db)
        .await?;
        Ok(())
    }

    async fn delete_registered_model_tag(
        &self,
        ws: &Workspace,
        name: &str,
        key: &str,
    ) -> Result<()> {
        validate_model_name(name)?;
        super::validation::validate_key(super::validation::KeyKind::Tag, key)?;
        self.require_model(&self.db, ws, name).await?;
        // A missing tag is not an error in MLflow.
        db::query(
            "DELETE FROM registered_model_tags WHERE workspace = $1 AND name = $2 AND key = $3",
        )
        .bind(ws.name())
        .bind(name)
        .bind(key)
        .execute(&self.db)
        .await?;
        Ok(())
    }

    async fn create_model_version(
        &self,
        ws: &Workspace,
        mut new: NewModelVersion,
    ) -> Result<ModelVersion> {
        // The server's checks (handlers.py), in MLflow's order, then the store's.
        rules::validate_source_scheme(&new.source)?;
        self.resolve_registered_source(ws, &mut new).await?;
        let model_id = new.model_id.clone().filter(|m| !m.is_empty());
        match &model_id {
            Some(model_id) => {
                let root = self.logged_model_artifact_root(ws, model_id);
                rules::validate_source_model(&new.source, model_id, root).await?
            }
            None => {
                let run_id = new.run_id.clone().unwrap_or_default();
                let root = self.run_artifact_root(ws, &run_id);
                rules::validate_source_run(&new.source, &run_id, root).await?
            }
        }
        validate_model_name(&new.name)?;
        for tag in &new.tags {
            validate_registry_tag(tag)?;
        }
        let tags = dedup_tags(&new.tags);
        let storage_location = self.storage_location(ws, &mut new).await?;
        let logged_model = match &model_id {
            Some(id) => {
                let model = self.logged_model(ws, id).await?.ok_or_else(|| {
                    MlflowError::not_found(format!("Logged model with ID '{id}' not found."))
                })?;
                if new.run_id.as_deref().unwrap_or_default().is_empty() {
                    new.run_id = model.source_run_id.clone();
                }
                Some(model)
            }
            None => None,
        };
        let now = now_millis();
        for attempt in 1..=CREATE_VERSION_ATTEMPTS {
            let mut tx = self.db.begin().await?;
            let version = match self
                .insert_version(&mut tx, ws, &new, &storage_location, &tags, now)
                .await
            {
                Ok(version) => version,
                Err(DbError::RowNotFound) => return Err(model_not_found(&new.name)),
                // Another creator took the number first: count again. (A
                // match, not `or_conflict`: this violation is a cue to retry,
                // not an error to report.)
                Err(err) if err.is_unique_violation() && attempt < CREATE_VERSION_ATTEMPTS => {
                    tracing::info!(name = %new.name, attempt, "model version number taken, retrying");
                    continue;
                }
                Err(err) => return Err(err.into()),
            };
            if let (Some(model), Some(id)) = (&logged_model, &model_id) {
                self.record_version_on_logged_model(&mut tx, model, id, &new.name, version)
                    .await?;
            }
            tx.commit().await?;
            let mut tags = tags;
            tags.sort_by(|a, b| a.key.cmp(&b.key));
            return Ok(ModelVersion {
                name: new.name,
                version: version.to_string(),
                creation_timestamp: now,
                last_updated_timestamp: Some(now),
                user_id: None,
                current_stage: "None".into(),
                description: Some(new.description.unwrap_or_default()),
                source: Some(new.source),
                run_id: new.run_id,
                status: "READY".into(),
                status_message: None,
                tags,
                run_link: Some(new.run_link.unwrap_or_default()),
                aliases: Vec::new(),
            });
        }
        Err(MlflowError::internal(format!(
            "Model Version creation error (name={}). Giving up after {CREATE_VERSION_ATTEMPTS} \
             attempts.",
            new.name
        )))
    }

    async fn get_model_version(
        &self,
        ws: &Workspace,
        name: &str,
        version: &str,
    ) -> Result<ModelVersion> {
        self.full_version(ws, name, version).await
    }

    async fn update_model_version(
        &self,
        ws: &Workspace,
        name: &str,
        version: &str,
        description: Option<&str>,
    ) -> Result<ModelVersion> {
        let row = self.version_row(&self.db, ws, name, version).await?;
        db::query(
            "UPDATE model_versions SET description = $1, last_updated_time = $2 \
             WHERE workspace = $3 AND name = $4 AND version = $5",
        )
        .bind(description)
        .bind(now_millis())
        .bind(ws.name())
        .bind(name)
        .bind(parse_version(&row.version.version)?)
        .execute(&self.db)
        .await?;
        self.full_version(ws, name, version).await
    }

    async fn transition_model_version_stage(
        &self,
        ws: &Workspace,
        name: &str,
        version: &str,
        stage: &str,
        archive_existing_versions: bool,
    ) -> Result<ModelVersion> {
        let canonical = canonical_stage(stage)?;
        if archive_existing_versions && !ACTIVE_STAGES.contains(&canonical) {
            return Err(MlflowError::invalid_parameter(format!(
                "Model version transition cannot archive existing model versions because \
                 '{stage}' is not an Active stage. Valid stages are ['Staging', 'Production']"
            )));
        }
        let now = now_millis();
        let mut tx = self.db.begin().await?;
        let row = self.version_row(&mut tx, ws, name, version).await?;
        let number = parse_version(&row.version.version)?;
        if archive_existing_versions {
            db::query(
                "UPDATE model_versions SET current_stage = 'Archived', last_updated_time = $1 \
                 WHERE workspace = $2 AND name = $3 AND version <> $4 AND current_stage = $5",
            )
            .bind(now)
            .bind(ws.name())
            .bind(name)
            .bind(number)
            .bind(canonical)
            .execute(&mut tx)
            .await?;
        }
        db::query(
            "UPDATE model_versions SET current_stage = $1, last_updated_time = $2 \
             WHERE workspace = $3 AND name = $4 AND version = $5",
        )
        .bind(canonical)
        .bind(now)
        .bind(ws.name())
        .bind(name)
        .bind(number)
        .execute(&mut tx)
        .await?;
        self.touch_registered_model(&mut tx, ws, name, now).await?;
        tx.commit().await?;
        self.full_version(ws, name, version).await
    }

    async fn delete_model_version(&self, ws: &Workspace, name: &str, version: &str) -> Result<()> {
        let now = now_millis();
        let mut tx = self.db.begin().await?;
        let row = self.version_row(&mut tx, ws, name, version).await?;
        let number = parse_version(&row.version.version)?;
        db::query(
            "DELETE FROM registered_model_aliases WHERE workspace = $1 AND name = $2 AND version = $3",
        )
        .bind(ws.name())
        .bind(name)
        .bind(number)
        .execute(&mut tx)
        .await?;
        // MLflow keeps the row, redacted, so the number is never handed out again.
        db::query(
            "UPDATE model_versions SET current_stage = $1, last_updated_time = $2, \
             description = NULL, user_id = NULL, source = 'REDACTED-SOURCE-PATH', \
             run_id = 'REDACTED-RUN-ID', run_link = 'REDACTED-RUN-LINK', status_message = NULL \
             WHERE workspace = $3 AND name = $4 AND version = $5",
        )
        .bind(STAGE_DELETED_INTERNAL)
        .bind(now)
        .bind(ws.name())
        .bind(name)
        .bind(number)
        .execute(&mut tx)
        .await?;
        self.touch_registered_model(&mut tx, ws, name, now).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn get_model_version_download_uri(
        &self,
        ws: &Workspace,
        name: &str,
        version: &str,
    ) -> Result<String> {
        let row = self.version_row(&self.db, ws, name, version).await?;
        Ok(row
            .storage_location
            .filter(|l| !l.is_empty())
            .or(row.version.source)
            .unwrap_or_default())
    }

    async fn search_model_versions(
        &self,
        ws: &Workspace,
        query: &RegistryQuery,
    ) -> Result<Page<ModelVersion>> {
        if query.max_results < 1 {
            return Err(MlflowError::invalid_parameter(format!(
                "Invalid value for max_results. It must be a positive integer, but got {}",
                query.max_results
            )));
        }
        if query.max_results > SEARCH_MODEL_VERSIONS_MAX {
            return Err(MlflowError::invalid_parameter(format!(
                "Invalid value for request parameter max_results. It must be at most \
                 {SEARCH_MODEL_VERSIONS_MAX}, but got value {}",
                query.max_results
            )));
        }
        let offset = page_token::decode(query.page_token.as_deref())?;
        let sql = search::model_versions_search_query(
            ws.name(),
            &query.filter,
            &query.order_by,
            query.max_results + 1,
            offset,
        )?;
        let rows = super::fetch_rendered(&self.db, &sql).await?;
        let next_page_token = super::next_token(rows.len(), query.max_results, offset);
        let mut versions = rows
            .iter()
            .take(query.max_results as usize)
            .map(|row| version_from_row(row).map(|r| r.version))
            .collect::<Result<Vec<_>>>()?;
        self.attach_version_tags(ws, &mut versions).await?;
        self.attach_version_aliases(ws, &mut versions).await?;
        Ok(Page {
            items: versions,
            next_page_token,
        })
    }

    async fn set_model_version_tag(
        &self,
        ws: &Workspace,
        name: &str,
        version: &str,
        tag: &Tag,
    ) -> Result<()> {
        validate_model_name(name)?;
        let number = parse_version(version)?;
        validate_registry_tag(tag)?;
        self.version_row(&self.db, ws, name, version).await?;
        db::query(
            "INSERT INTO model_version_tags (workspace, key, name, version, value) \
             VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (workspace, key, name, version) DO UPDATE SET value = excluded.value",
        )
        .bind(ws.name())
        .bind(tag.key.as_str())
        .bind(name)
        .bind(number)
        .bind(tag.value.as_str())
        .execute(&self.db)
        .await?;
        Ok(())
    }

    async fn delete_model_version_tag(
        &self,
        ws: &Workspace,
        name: &str,
        version: &str,
        key: &str,
    ) -> Result<()> {
        validate_model_name(name)?;
        let number = parse_version(version)?;
        super::validation::validate_key(super::validation::KeyKind::Tag, key)?;
        self.version_row(&self.db, ws, name, version).await?;
        db::query(
            "DELETE FROM model_version_tags WHERE workspace = $1 AND name = $2 AND version = $3 \
             AND key = $4",
        )
        .bind(ws.name())
        .bind(name)
        .bind(number)
        .bind(key)
        .execute(&self.db)
        .await?;
        Ok(())
    }

    async fn set_registered_model_alias(
        &self,
        ws: &Workspace,
        name: &str,
        alias: &str,
        version: &str,
    ) -> Result<()> {
        validate_model_name(name)?;
        validate_alias(alias)?;
        validate_alias_not_reserved(alias)?;
        let number = parse_version(version)?;
        self.version_row(&self.db, ws, name, version).await?;
        db::query(
            "INSERT INTO registered_model_aliases (workspace, alias, version, name) \
             VALUES ($1, $2, $3, $4) \
             ON CONFLICT (workspace, name, alias) DO UPDATE SET version = excluded.version",
        )
        .bind(ws.name())
        .bind(alias)
        .bind(number)
        .bind(name)
        .execute(&self.db)
        .await?;
        Ok(())
    }

    async fn delete_registered_model_alias(
        &self,
        ws: &Workspace,
        name: &str,
        alias: &str,
    ) -> Result<()> {
        validate_model_name(name)?;
        validate_alias(alias)?;
        self.require_model(&self.db, ws, name).await?;
        db::query(
            "DELETE FROM registered_model_aliases WHERE workspace = $1 AND name = $2 AND alias = $3",
        )
        .bind(ws.name())
        .bind(name)
        .bind(alias)
        .execute(&self.db)
        .await?;
        Ok(())
    }

    async fn get_model_version_by_alias(
        &self,
        ws: &Workspace,
        name: &str,
        alias: &str,
    ) -> Result<ModelVersion> {
        validate_model_name(name)?;
        validate_alias(alias)?;
        if alias.eq_ignore_ascii_case("latest") {
            let latest = self.get_latest_versions(ws, name, &[]).await?;
            return latest
                .into_iter()
                .max_by_key(|v| v.version.parse::<i64>().unwrap_or_default())
                .ok_or_else(|| {
                    MlflowError::not_found(format!("Latest version not found for model {name}."))
                });
        }
        self.require_model(&self.db, ws, name).await?;
        let row = db::query(
            "SELECT version FROM registered_model_aliases WHERE workspace = $1 AND name = $2 \
             AND alias = $3",
        )
        .bind(ws.name())
        .bind(name)
        .bind(alias)
        .fetch_optional(&self.db)
        .await?
        .ok_or_else(|| {
            // MLflow answers an unknown alias with 400, not 404.
            MlflowError::invalid_parameter(format!("Registered model alias {alias} not found."))
        })?;
        let version: i64 = row.try_get("version")?;
        self.full_version(ws, name, &version.to_string()).await
    }
}
