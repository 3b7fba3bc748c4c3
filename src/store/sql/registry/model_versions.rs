//! Model versions: `model-versions/create` (numbering, tags, and the
//! `mlflow.modelVersions` tag of a logged model), `get`, `update`,
//! `transition-stage`, `delete`, `get-download-uri` and `search`.

use super::version_sources::LoggedModelRow;
use super::{model_not_found, version_from_row};
use crate::error::{MlflowError, Result};
use crate::model::{ModelVersion, Page, Tag, Workspace};
use crate::python::py_json;
use crate::search::{self, page_token};
use crate::store::db::{self, DbError, DbResult, Tx};
use crate::store::registry::{
    self as rules, canonical_stage, dedup_tags, parse_version, validate_model_name,
    validate_registry_tag, NewModelVersion, RegistryQuery, ACTIVE_STAGES, MODEL_VERSIONS_TAG,
    SEARCH_MODEL_VERSIONS_MAX, STAGE_DELETED_INTERNAL,
};
use crate::store::sql::{fetch_rendered, next_token, now_millis, SqlStore};

/// Attempts at numbering a new version before giving up, as MLflow's store.
const CREATE_VERSION_ATTEMPTS: usize = 3;

impl SqlStore {
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
        // Printed as MLflow's `json.dumps` prints it, so it reads as MLflow's own.
        let value = py_json(&serde_json::Value::Array(list), false);
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

pub(super) async fn create_model_version(
    store: &SqlStore,
    ws: &Workspace,
    mut new: NewModelVersion,
) -> Result<ModelVersion> {
    // The server's checks (handlers.py), in MLflow's order, then the store's.
    rules::validate_source_scheme(&new.source)?;
    store.resolve_registered_source(ws, &mut new).await?;
    let model_id = new.model_id.clone().filter(|m| !m.is_empty());
    match &model_id {
        Some(model_id) => {
            let root = store.logged_model_artifact_root(ws, model_id);
            rules::validate_source_model(&new.source, model_id, root).await?
        }
        None => {
            let run_id = new.run_id.clone().unwrap_or_default();
            let root = store.run_artifact_root(ws, &run_id);
            rules::validate_source_run(&new.source, &run_id, root).await?
        }
    }
    validate_model_name(&new.name)?;
    for tag in &new.tags {
        validate_registry_tag(tag)?;
    }
    let tags = dedup_tags(&new.tags);
    let storage_location = store.storage_location(ws, &mut new).await?;
    let logged_model = match &model_id {
        Some(id) => {
            let model = store.logged_model(ws, id).await?.ok_or_else(|| {
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
        let mut tx = store.db.begin().await?;
        let version = match store
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
            store
                .record_version_on_logged_model(&mut tx, model, id, &new.name, version)
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

pub(super) async fn get_model_version(
    store: &SqlStore,
    ws: &Workspace,
    name: &str,
    version: &str,
) -> Result<ModelVersion> {
    store.full_version(ws, name, version).await
}

pub(super) async fn update_model_version(
    store: &SqlStore,
    ws: &Workspace,
    name: &str,
    version: &str,
    description: Option<&str>,
) -> Result<ModelVersion> {
    let row = store.version_row(&store.db, ws, name, version).await?;
    db::query(
        "UPDATE model_versions SET description = $1, last_updated_time = $2 \
         WHERE workspace = $3 AND name = $4 AND version = $5",
    )
    .bind(description)
    .bind(now_millis())
    .bind(ws.name())
    .bind(name)
    .bind(parse_version(&row.version.version)?)
    .execute(&store.db)
    .await?;
    store.full_version(ws, name, version).await
}

pub(super) async fn transition_model_version_stage(
    store: &SqlStore,
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
    let mut tx = store.db.begin().await?;
    let row = store.version_row(&mut tx, ws, name, version).await?;
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
    store.touch_registered_model(&mut tx, ws, name, now).await?;
    tx.commit().await?;
    store.full_version(ws, name, version).await
}

pub(super) async fn delete_model_version(
    store: &SqlStore,
    ws: &Workspace,
    name: &str,
    version: &str,
) -> Result<()> {
    let now = now_millis();
    let mut tx = store.db.begin().await?;
    let row = store.version_row(&mut tx, ws, name, version).await?;
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
    store.touch_registered_model(&mut tx, ws, name, now).await?;
    tx.commit().await?;
    Ok(())
}

pub(super) async fn get_model_version_download_uri(
    store: &SqlStore,
    ws: &Workspace,
    name: &str,
    version: &str,
) -> Result<String> {
    let row = store.version_row(&store.db, ws, name, version).await?;
    Ok(row
        .storage_location
        .filter(|l| !l.is_empty())
        .or(row.version.source)
        .unwrap_or_default())
}

pub(super) async fn search_model_versions(
    store: &SqlStore,
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
    let rows = fetch_rendered(&store.db, &sql).await?;
    let next_page_token = next_token(rows.len(), query.max_results, offset);
    let mut versions = rows
        .iter()
        .take(query.max_results as usize)
        .map(|row| version_from_row(row).map(|r| r.version))
        .collect::<Result<Vec<_>>>()?;
    store.attach_version_tags(ws, &mut versions).await?;
    store.attach_version_aliases(ws, &mut versions).await?;
    Ok(Page {
        items: versions,
        next_page_token,
    })
}
