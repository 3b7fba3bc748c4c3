//! Experiments and their tags (`experiments/*` over `experiments` and
//! `experiment_tags`), and the experiment checks other areas make: a run or
//! a logged model is created only in an active experiment of the workspace.

use std::collections::HashMap;

use super::{
    append_to_uri, fetch_rendered, in_list, next_token, now_millis, tag_from_row, SqlStore, ACTIVE,
    DELETED, IN_LIST_CHUNK,
};
use crate::artifacts::resolve_if_local;
use crate::error::{ErrorCode, MlflowError, Result};
use crate::model::{Experiment, Page, Tag, Workspace};
use crate::search::{self, page_token};
use crate::store::db::{self, Row, Target, Tx, UniqueViolation};
use crate::store::validation::{self, MAX_RESULTS_SEARCH};
use crate::store::ExperimentQuery;

pub(super) fn parse_experiment_id(experiment_id: &str) -> Result<i64> {
    experiment_id.trim().parse::<i64>().map_err(|_| {
        MlflowError::invalid_parameter(format!(
            "Experiment ID must be a valid integer, got '{experiment_id}'"
        ))
    })
}

fn experiment_not_found(experiment_id: &str) -> MlflowError {
    MlflowError::not_found(format!("No Experiment with id={experiment_id} exists"))
}

/// An experiment row of `search::EXPERIMENT_COLUMNS` (the list searches
/// select too), without tags.
fn experiment_from_row(row: &Row) -> Result<Experiment> {
    let id: i64 = row.try_get("experiment_id")?;
    Ok(Experiment {
        experiment_id: id.to_string(),
        name: row.try_get("name")?,
        artifact_location: row.try_get("artifact_location")?,
        lifecycle_stage: row
            .try_get::<Option<String>, _>("lifecycle_stage")?
            .unwrap_or_else(|| ACTIVE.into()),
        last_update_time: row.try_get("last_update_time")?,
        creation_time: row.try_get("creation_time")?,
        tags: Vec::new(),
        workspace: row
            .try_get::<Option<String>, _>("workspace")?
            .unwrap_or_else(|| Workspace::DEFAULT.into()),
    })
}

impl SqlStore {
    /// Creates experiment 0 ("Default") if it is missing, as MLflow's SQL
    /// store does at startup; safe when several replicas start at once.
    pub async fn ensure_default_experiment(&self) -> Result<()> {
        let now = now_millis();
        db::query(
            "INSERT INTO experiments (experiment_id, name, artifact_location, lifecycle_stage, \
             creation_time, last_update_time, workspace) \
             VALUES (0, 'Default', $1, 'active', $2, $2, $3) ON CONFLICT DO NOTHING",
        )
        .bind(append_to_uri(&self.default_artifact_root, &["0"]))
        .bind(now)
        .bind(Workspace::DEFAULT)
        .execute(&self.db)
        .await?;
        Ok(())
    }

    /// Loads an experiment row of this workspace, without tags.
    async fn experiment_row<'a>(
        &self,
        target: impl Into<Target<'a>>,
        ws: &Workspace,
        experiment_id: &str,
    ) -> Result<Experiment> {
        let id = parse_experiment_id(experiment_id)?;
        let sql = format!(
            "SELECT {} FROM experiments e WHERE e.experiment_id = $1 AND e.workspace = $2",
            search::EXPERIMENT_COLUMNS
        );
        let row = db::query(&sql)
            .bind(id)
            .bind(ws.name())
            .fetch_optional(target)
            .await?
            .ok_or_else(|| experiment_not_found(experiment_id))?;
        experiment_from_row(&row)
    }

    async fn experiments_by_ids(&self, ids: &[i64]) -> Result<Vec<Experiment>> {
        let mut experiments = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(IN_LIST_CHUNK) {
            let sql = format!(
                "SELECT {} FROM experiments e WHERE e.experiment_id IN ({})",
                search::EXPERIMENT_COLUMNS,
                in_list(chunk.len(), 1)
            );
            let rows = chunk
                .iter()
                .fold(db::query(&sql), |q, id| q.bind(*id))
                .fetch_all(&self.db)
                .await?;
            for row in rows {
                experiments.push(experiment_from_row(&row)?);
            }
        }
        let position: HashMap<String, usize> = ids
            .iter()
            .enumerate()
            .map(|(i, id)| (id.to_string(), i))
            .collect();
        experiments.sort_by_key(|e| position.get(&e.experiment_id).copied());
        self.attach_experiment_tags(&mut experiments).await?;
        Ok(experiments)
    }

    /// Reads the tags of `experiments` (one query per chunk) into them.
    async fn attach_experiment_tags(&self, experiments: &mut [Experiment]) -> Result<()> {
        let mut tags: HashMap<String, Vec<Tag>> = HashMap::new();
        for chunk in experiments.chunks(IN_LIST_CHUNK) {
            let sql = format!(
                "SELECT experiment_id, key, value FROM experiment_tags WHERE experiment_id IN ({})",
                in_list(chunk.len(), 1)
            );
            let mut query = db::query(&sql);
            for experiment in chunk {
                query = query.bind(parse_experiment_id(&experiment.experiment_id)?);
            }
            for row in query.fetch_all(&self.db).await? {
                let id: i64 = row.try_get("experiment_id")?;
                tags.entry(id.to_string())
                    .or_default()
                    .push(tag_from_row(&row, "key")?);
            }
        }
        for experiment in experiments {
            if let Some(tags) = tags.remove(&experiment.experiment_id) {
                experiment.tags = tags;
            }
        }
        Ok(())
    }

    pub(super) async fn active_experiment<'a>(
        &self,
        target: impl Into<Target<'a>>,
        ws: &Workspace,
        experiment_id: &str,
    ) -> Result<Experiment> {
        let experiment = self.experiment_row(target, ws, experiment_id).await?;
        if experiment.lifecycle_stage != ACTIVE {
            return Err(MlflowError::invalid_parameter(format!(
                "The experiment {experiment_id} must be in the 'active' state. Current state is {}.",
                experiment.lifecycle_stage
            )));
        }
        Ok(experiment)
    }
}

/// Where a workspace's new experiments put their artifacts, as MLflow's
/// workspace store resolves it: the workspace's own root, else
/// `<server root>/workspaces/<name>` (for `default` too).
async fn experiments_root(store: &SqlStore, tx: &mut Tx, ws: &Workspace) -> Result<String> {
    if !store.workspaces {
        return Ok(store.default_artifact_root.clone());
    }
    let own: Option<String> =
        db::query("SELECT default_artifact_root FROM workspaces WHERE name = $1")
            .bind(ws.name())
            .fetch_optional(&mut *tx)
            .await?
            .map(|row| row.try_get("default_artifact_root"))
            .transpose()?
            .flatten();
    Ok(match own {
        Some(root) => root,
        None => append_to_uri(&store.default_artifact_root, &["workspaces", ws.name()]),
    })
}

pub(super) async fn create_experiment(
    store: &SqlStore,
    ws: &Workspace,
    name: &str,
    artifact_location: Option<&str>,
    tags: &[Tag],
) -> Result<String> {
    validation::validate_experiment_name(name)?;
    for tag in tags {
        validation::validate_experiment_tag(tag)?;
    }
    let artifact_location = artifact_location
        .filter(|l| !l.is_empty())
        .map(resolve_if_local);
    if store.workspaces && artifact_location.is_some() {
        // A client-chosen location could point into another workspace's space.
        return Err(MlflowError::invalid_parameter(
            "artifact_location cannot be specified when workspaces are enabled",
        ));
    }
    let exists = db::query("SELECT 1 FROM experiments WHERE name = $1 AND workspace = $2")
        .bind(name)
        .bind(ws.name())
        .fetch_optional(&store.db)
        .await?;
    let already_exists =
        || MlflowError::already_exists(format!("Experiment(name={name}) already exists."));
    if exists.is_some() {
        return Err(already_exists());
    }
    let now = now_millis();
    let mut tx = store.db.begin().await?;
    let id: i64 = db::query(
        "INSERT INTO experiments (name, artifact_location, lifecycle_stage, creation_time, \
         last_update_time, workspace) VALUES ($1, $2, 'active', $3, $3, $4) \
         RETURNING experiment_id",
    )
    .bind(name)
    .bind(artifact_location.as_deref())
    .bind(now)
    .bind(ws.name())
    .fetch_one(&mut tx)
    .await
    .or_conflict(already_exists)?
    .try_get("experiment_id")?;
    if artifact_location.is_none() {
        let root = experiments_root(store, &mut tx, ws).await?;
        db::query("UPDATE experiments SET artifact_location = $1 WHERE experiment_id = $2")
            .bind(append_to_uri(&root, &[&id.to_string()]))
            .bind(id)
            .execute(&mut tx)
            .await?;
    }
    for tag in tags {
        db::query(
            "INSERT INTO experiment_tags (key, value, experiment_id) VALUES ($1, $2, $3) \
             ON CONFLICT (key, experiment_id) DO UPDATE SET value = excluded.value",
        )
        .bind(tag.key.as_str())
        .bind(tag.value.as_str())
        .bind(id)
        .execute(&mut tx)
        .await?;
    }
    tx.commit().await?;
    Ok(id.to_string())
}

pub(super) async fn get_experiment(
    store: &SqlStore,
    ws: &Workspace,
    experiment_id: &str,
) -> Result<Experiment> {
    let id = parse_experiment_id(experiment_id)?;
    store
        .experiments_by_ids(&[id])
        .await?
        .pop()
        .filter(|experiment| experiment.workspace == ws.name())
        .ok_or_else(|| experiment_not_found(experiment_id))
}

pub(super) async fn get_experiment_by_name(
    store: &SqlStore,
    ws: &Workspace,
    name: &str,
) -> Result<Experiment> {
    let row = db::query("SELECT experiment_id FROM experiments WHERE name = $1 AND workspace = $2")
        .bind(name)
        .bind(ws.name())
        .fetch_optional(&store.db)
        .await?
        .ok_or_else(|| {
            MlflowError::not_found(format!("Could not find experiment with name '{name}'"))
        })?;
    let id: i64 = row.try_get("experiment_id")?;
    store
        .experiments_by_ids(&[id])
        .await?
        .pop()
        .ok_or_else(|| experiment_not_found(&id.to_string()))
}

pub(super) async fn search_experiments(
    store: &SqlStore,
    ws: &Workspace,
    query: &ExperimentQuery,
) -> Result<Page<Experiment>> {
    validation::validate_max_results(query.max_results, MAX_RESULTS_SEARCH)?;
    let offset = page_token::decode(query.page_token.as_deref())?;
    let sql = search::experiments_search_query(
        ws.name(),
        query.view,
        &query.filter,
        &query.order_by,
        query.max_results + 1,
        offset,
    )?;
    let mut experiments = fetch_rendered(&store.db, &sql)
        .await?
        .iter()
        .map(experiment_from_row)
        .collect::<Result<Vec<_>>>()?;
    let next_page_token = next_token(experiments.len(), query.max_results, offset);
    experiments.truncate(query.max_results as usize);
    store.attach_experiment_tags(&mut experiments).await?;
    Ok(Page {
        items: experiments,
        next_page_token,
    })
}

pub(super) async fn rename_experiment(
    store: &SqlStore,
    ws: &Workspace,
    experiment_id: &str,
    new_name: &str,
) -> Result<()> {
    validation::validate_experiment_name(new_name)?;
    let experiment = store.experiment_row(&store.db, ws, experiment_id).await?;
    if experiment.lifecycle_stage != ACTIVE {
        return Err(MlflowError::invalid_parameter(
            "Cannot rename a non-active experiment.",
        ));
    }
    db::query("UPDATE experiments SET name = $1, last_update_time = $2 WHERE experiment_id = $3")
        .bind(new_name)
        .bind(now_millis())
        .bind(parse_experiment_id(experiment_id)?)
        .execute(&store.db)
        .await
        // MLflow lets the database reject the rename and reports BAD_REQUEST.
        .or_conflict(|| {
            MlflowError::new(
                ErrorCode::BadRequest,
                format!("Experiment(name={new_name}) already exists."),
            )
        })?;
    Ok(())
}

pub(super) async fn set_experiment_deleted(
    store: &SqlStore,
    ws: &Workspace,
    experiment_id: &str,
    deleted: bool,
) -> Result<()> {
    let experiment = store.experiment_row(&store.db, ws, experiment_id).await?;
    // MLflow deletes only active experiments and restores only deleted ones.
    let expected = if deleted { ACTIVE } else { DELETED };
    if experiment.lifecycle_stage != expected {
        return Err(experiment_not_found(experiment_id));
    }
    let id = parse_experiment_id(experiment_id)?;
    let now = now_millis();
    let (stage, deleted_time) = if deleted {
        (DELETED, Some(now))
    } else {
        (ACTIVE, None)
    };
    let mut tx = store.db.begin().await?;
    db::query(
        "UPDATE experiments SET lifecycle_stage = $1, last_update_time = $2 WHERE experiment_id = $3",
    )
    .bind(stage)
    .bind(now)
    .bind(id)
    .execute(&mut tx)
    .await?;
    // Runs follow their experiment, as in MLflow.
    db::query("UPDATE runs SET lifecycle_stage = $1, deleted_time = $2 WHERE experiment_id = $3")
        .bind(stage)
        .bind(deleted_time)
        .bind(id)
        .execute(&mut tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

pub(super) async fn set_experiment_tag(
    store: &SqlStore,
    ws: &Workspace,
    experiment_id: &str,
    tag: &Tag,
) -> Result<()> {
    validation::validate_experiment_tag(tag)?;
    let experiment = store
        .active_experiment(&store.db, ws, experiment_id)
        .await?;
    db::query(
        "INSERT INTO experiment_tags (key, value, experiment_id) VALUES ($1, $2, $3) \
         ON CONFLICT (key, experiment_id) DO UPDATE SET value = excluded.value",
    )
    .bind(tag.key.as_str())
    .bind(tag.value.as_str())
    .bind(parse_experiment_id(&experiment.experiment_id)?)
    .execute(&store.db)
    .await?;
    Ok(())
}

pub(super) async fn delete_experiment_tag(
    store: &SqlStore,
    ws: &Workspace,
    experiment_id: &str,
    key: &str,
) -> Result<()> {
    let experiment = store
        .active_experiment(&store.db, ws, experiment_id)
        .await?;
    let deleted = db::query("DELETE FROM experiment_tags WHERE experiment_id = $1 AND key = $2")
        .bind(parse_experiment_id(&experiment.experiment_id)?)
        .bind(key)
        .execute(&store.db)
        .await?;
    if deleted == 0 {
        return Err(MlflowError::not_found(format!(
            "No tag with name: {key} in experiment with id {experiment_id}"
        )));
    }
    Ok(())
}
