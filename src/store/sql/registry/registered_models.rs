//! Registered models: `registered-models/create`, `get`, `rename`,
//! `update`, `delete`, `search` and `get-latest-versions`, and the loading of
//! whole models (tags, aliases, latest versions) for them.

use std::collections::HashMap;

use super::{model_not_found, version_from_row};
use crate::error::{MlflowError, Result};
use crate::model::{ModelVersion, Page, RegisteredModel, RegisteredModelAlias, Tag, Workspace};
use crate::search::registry::MODEL_VERSION_COLUMNS;
use crate::search::{self, page_token};
use crate::store::db::{self, UniqueViolation};
use crate::store::registry::{
    canonical_stage, dedup_tags, is_prompt, validate_model_name, validate_registry_tag,
    RegistryQuery, RegistryStore, ALL_STAGES, SEARCH_REGISTERED_MODELS_MAX, STAGE_DELETED_INTERNAL,
};
use crate::store::sql::{
    fetch_rendered, in_list, next_token, now_millis, tag_from_row, SqlStore, IN_LIST_CHUNK,
};

/// A query whose `$1` is the workspace and `$2..` are `names`.
fn bind_names<'q>(sql: &'q str, workspace: &'q str, names: &[String]) -> db::Query<'q> {
    names
        .iter()
        .fold(db::query(sql).bind(workspace), |q, name| q.bind(name))
}

impl SqlStore {
    /// Whole registered models (tags, aliases, latest versions with their
    /// tags) in the order of `names`; names that are not stored are left out.
    async fn load_registered_models(
        &self,
        ws: &Workspace,
        names: &[String],
    ) -> Result<Vec<RegisteredModel>> {
        let mut models: HashMap<String, RegisteredModel> = HashMap::with_capacity(names.len());
        for chunk in names.chunks(IN_LIST_CHUNK) {
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
}

pub(super) async fn create_registered_model(
    store: &SqlStore,
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
    let mut tx = store.db.begin().await?;
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
            let existing = store.get_registered_model(ws, name).await?;
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

pub(super) async fn get_registered_model(
    store: &SqlStore,
    ws: &Workspace,
    name: &str,
) -> Result<RegisteredModel> {
    validate_model_name(name)?;
    store
        .load_registered_models(ws, &[name.to_string()])
        .await?
        .pop()
        .ok_or_else(|| model_not_found(name))
}

pub(super) async fn rename_registered_model(
    store: &SqlStore,
    ws: &Workspace,
    name: &str,
    new_name: &str,
) -> Result<RegisteredModel> {
    if new_name.trim().is_empty() {
        return Err(MlflowError::missing_parameter("new_name"));
    }
    validate_model_name(new_name)?;
    let mut tx = store.db.begin().await?;
    store.require_model(&mut tx, ws, name).await?;
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
    store.get_registered_model(ws, new_name).await
}

pub(super) async fn update_registered_model(
    store: &SqlStore,
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
    .execute(&store.db)
    .await?;
    if updated == 0 {
        return Err(model_not_found(name));
    }
    store.get_registered_model(ws, name).await
}

pub(super) async fn delete_registered_model(
    store: &SqlStore,
    ws: &Workspace,
    name: &str,
) -> Result<()> {
    let mut tx = store.db.begin().await?;
    store.require_model(&mut tx, ws, name).await?;
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

pub(super) async fn search_registered_models(
    store: &SqlStore,
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
    let mut names = fetch_rendered(&store.db, &sql)
        .await?
        .iter()
        .map(|row| row.try_get::<String, _>(0).map_err(MlflowError::from))
        .collect::<Result<Vec<_>>>()?;
    let next_page_token = next_token(names.len(), max_results, offset);
    names.truncate(max_results as usize);
    Ok(Page {
        items: store.load_registered_models(ws, &names).await?,
        next_page_token,
    })
}

pub(super) async fn get_latest_versions(
    store: &SqlStore,
    ws: &Workspace,
    name: &str,
    stages: &[String],
) -> Result<Vec<ModelVersion>> {
    let model = store.get_registered_model(ws, name).await?;
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
