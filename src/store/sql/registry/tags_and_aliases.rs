//! Tags and aliases: `registered-models/set-tag`/`delete-tag`,
//! `model-versions/set-tag`/`delete-tag`, `registered-models/alias` (set,
//! delete, get a version by alias), and the reads that attach version tags
//! and aliases to loaded versions.

use std::collections::HashMap;

use crate::error::{MlflowError, Result};
use crate::model::{ModelVersion, Tag, Workspace};
use crate::store::db;
use crate::store::registry::{
    parse_version, validate_alias, validate_alias_not_reserved, validate_model_name,
    validate_registry_tag, RegistryStore,
};
use crate::store::sql::{in_list, tag_from_row, SqlStore, IN_LIST_CHUNK};
use crate::store::validation::{self, KeyKind};

/// (name, version) pairs per child-table read of a search page.
const VERSION_CHUNK: usize = 500;

impl SqlStore {
    /// Loads the tags of `versions` (one query per chunk of versions).
    pub(super) async fn attach_version_tags(
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
    pub(super) async fn attach_version_aliases(
        &self,
        ws: &Workspace,
        versions: &mut [ModelVersion],
    ) -> Result<()> {
        let mut names: Vec<String> = versions.iter().map(|v| v.name.clone()).collect();
        names.sort();
        names.dedup();
        let mut aliases: HashMap<(String, String), Vec<String>> = HashMap::new();
        for chunk in names.chunks(IN_LIST_CHUNK) {
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
}

pub(super) async fn set_registered_model_tag(
    store: &SqlStore,
    ws: &Workspace,
    name: &str,
    tag: &Tag,
) -> Result<()> {
    validate_model_name(name)?;
    validate_registry_tag(tag)?;
    store.require_model(&store.db, ws, name).await?;
    db::query(
        "INSERT INTO registered_model_tags (workspace, key, value, name) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (workspace, key, name) DO UPDATE SET value = excluded.value",
    )
    .bind(ws.name())
    .bind(tag.key.as_str())
    .bind(tag.value.as_str())
    .bind(name)
    .execute(&store.db)
    .await?;
    Ok(())
}

pub(super) async fn delete_registered_model_tag(
    store: &SqlStore,
    ws: &Workspace,
    name: &str,
    key: &str,
) -> Result<()> {
    validate_model_name(name)?;
    validation::validate_key(KeyKind::Tag, key)?;
    store.require_model(&store.db, ws, name).await?;
    // A missing tag is not an error in MLflow.
    db::query("DELETE FROM registered_model_tags WHERE workspace = $1 AND name = $2 AND key = $3")
        .bind(ws.name())
        .bind(name)
        .bind(key)
        .execute(&store.db)
        .await?;
    Ok(())
}

pub(super) async fn set_model_version_tag(
    store: &SqlStore,
    ws: &Workspace,
    name: &str,
    version: &str,
    tag: &Tag,
) -> Result<()> {
    validate_model_name(name)?;
    let number = parse_version(version)?;
    validate_registry_tag(tag)?;
    store.version_row(&store.db, ws, name, version).await?;
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
    .execute(&store.db)
    .await?;
    Ok(())
}

pub(super) async fn delete_model_version_tag(
    store: &SqlStore,
    ws: &Workspace,
    name: &str,
    version: &str,
    key: &str,
) -> Result<()> {
    validate_model_name(name)?;
    let number = parse_version(version)?;
    validation::validate_key(KeyKind::Tag, key)?;
    store.version_row(&store.db, ws, name, version).await?;
    db::query(
        "DELETE FROM model_version_tags WHERE workspace = $1 AND name = $2 AND version = $3 \
         AND key = $4",
    )
    .bind(ws.name())
    .bind(name)
    .bind(number)
    .bind(key)
    .execute(&store.db)
    .await?;
    Ok(())
}

pub(super) async fn set_registered_model_alias(
    store: &SqlStore,
    ws: &Workspace,
    name: &str,
    alias: &str,
    version: &str,
) -> Result<()> {
    validate_model_name(name)?;
    validate_alias(alias)?;
    validate_alias_not_reserved(alias)?;
    let number = parse_version(version)?;
    store.version_row(&store.db, ws, name, version).await?;
    db::query(
        "INSERT INTO registered_model_aliases (workspace, alias, version, name) \
         VALUES ($1, $2, $3, $4) \
         ON CONFLICT (workspace, name, alias) DO UPDATE SET version = excluded.version",
    )
    .bind(ws.name())
    .bind(alias)
    .bind(number)
    .bind(name)
    .execute(&store.db)
    .await?;
    Ok(())
}

pub(super) async fn delete_registered_model_alias(
    store: &SqlStore,
    ws: &Workspace,
    name: &str,
    alias: &str,
) -> Result<()> {
    validate_model_name(name)?;
    validate_alias(alias)?;
    store.require_model(&store.db, ws, name).await?;
    db::query(
        "DELETE FROM registered_model_aliases WHERE workspace = $1 AND name = $2 AND alias = $3",
    )
    .bind(ws.name())
    .bind(name)
    .bind(alias)
    .execute(&store.db)
    .await?;
    Ok(())
}

pub(super) async fn get_model_version_by_alias(
    store: &SqlStore,
    ws: &Workspace,
    name: &str,
    alias: &str,
) -> Result<ModelVersion> {
    validate_model_name(name)?;
    validate_alias(alias)?;
    if alias.eq_ignore_ascii_case("latest") {
        let latest = store.get_latest_versions(ws, name, &[]).await?;
        return latest
            .into_iter()
            .max_by_key(|v| v.version.parse::<i64>().unwrap_or_default())
            .ok_or_else(|| {
                MlflowError::not_found(format!("Latest version not found for model {name}."))
            });
    }
    store.require_model(&store.db, ws, name).await?;
    let row = db::query(
        "SELECT version FROM registered_model_aliases WHERE workspace = $1 AND name = $2 \
         AND alias = $3",
    )
    .bind(ws.name())
    .bind(name)
    .bind(alias)
    .fetch_optional(&store.db)
    .await?
    .ok_or_else(|| {
        // MLflow answers an unknown alias with 400, not 404.
        MlflowError::invalid_parameter(format!("Registered model alias {alias} not found."))
    })?;
    let version: i64 = row.try_get("version")?;
    store.full_version(ws, name, &version.to_string()).await
}
