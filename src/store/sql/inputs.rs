//! Run inputs and outputs: datasets a run used (`runs/log-inputs` over
//! `datasets`, `inputs`, `input_tags`) and the run–logged-model links of
//! MLflow's lineage table (`inputs` rows `RUN_INPUT`/`RUN_OUTPUT`), with the
//! reads that attach them to loaded runs.

use std::collections::{HashMap, HashSet};

use super::experiments::parse_experiment_id;
use super::{bind_all, in_list, tag_from_row, values_rows, SqlStore, IN_LIST_CHUNK};
use crate::error::Result;
use crate::model::{
    Dataset, DatasetInput, DatasetSummary, ModelInput, ModelOutput, Run, Workspace,
};
use crate::store::db::{self, Row, Tx};
use crate::store::validation;
use crate::store::NewDatasetInput;

/// The dataset inputs of the runs whose ids fill `list` (an `IN` list).
pub(super) fn dataset_inputs_sql(list: &str) -> String {
    format!(
        "SELECT i.input_uuid, i.destination_id, d.name, d.digest, d.dataset_source_type, \
         d.dataset_source, d.dataset_schema, d.dataset_profile \
         FROM inputs i JOIN datasets d ON d.dataset_uuid = i.source_id \
         WHERE i.source_type = 'DATASET' AND i.destination_type = 'RUN' \
         AND i.destination_id IN ({list}) ORDER BY d.name, d.digest"
    )
}

/// The logged models the runs whose ids fill `list` used and produced.
pub(super) fn model_links_sql(list: &str) -> String {
    format!(
        "SELECT source_type, source_id, destination_id, step FROM inputs \
         WHERE source_type IN ('RUN_INPUT', 'RUN_OUTPUT') AND source_id IN ({list}) \
         ORDER BY destination_id"
    )
}

/// Adds the links read by [`model_links_sql`] to their runs.
pub(super) fn attach_model_links(runs: &mut HashMap<String, Run>, rows: &[Row]) -> Result<()> {
    for row in rows {
        let Some(run) = runs.get_mut(&row.try_get::<String, _>("source_id")?) else {
            continue;
        };
        let model_id: String = row.try_get("destination_id")?;
        if row.try_get::<String, _>("source_type")? == "RUN_INPUT" {
            run.inputs.model_inputs.push(ModelInput { model_id });
        } else {
            let step = row.try_get::<Option<i64>, _>("step")?.unwrap_or(0);
            run.outputs
                .model_outputs
                .push(ModelOutput { model_id, step });
        }
    }
    Ok(())
}

impl SqlStore {
    /// Adds the dataset inputs in `rows` (and their tags) to their runs.
    pub(super) async fn attach_dataset_inputs(
        &self,
        runs: &mut HashMap<String, Run>,
        rows: &[Row],
    ) -> Result<()> {
        let mut owner: HashMap<String, (String, usize)> = HashMap::new();
        for row in rows {
            let run_id: String = row.try_get("destination_id")?;
            let Some(run) = runs.get_mut(&run_id) else {
                continue;
            };
            owner.insert(
                row.try_get("input_uuid")?,
                (run_id, run.inputs.dataset_inputs.len()),
            );
            run.inputs.dataset_inputs.push(DatasetInput {
                tags: Vec::new(),
                dataset: Dataset {
                    name: row.try_get("name")?,
                    digest: row.try_get("digest")?,
                    source_type: row.try_get("dataset_source_type")?,
                    source: row.try_get("dataset_source")?,
                    schema: row.try_get("dataset_schema")?,
                    profile: row.try_get("dataset_profile")?,
                },
            });
        }
        let input_uuids: Vec<String> = owner.keys().cloned().collect();
        for chunk in input_uuids.chunks(IN_LIST_CHUNK) {
            let sql = format!(
                "SELECT input_uuid, name, value FROM input_tags WHERE input_uuid IN ({}) ORDER BY name",
                in_list(chunk.len(), 1)
            );
            for row in bind_all(&sql, chunk).fetch_all(&self.db).await? {
                let input_uuid: String = row.try_get("input_uuid")?;
                let Some((run_id, index)) = owner.get(&input_uuid) else {
                    continue;
                };
                if let Some(input) = runs
                    .get_mut(run_id)
                    .and_then(|run| run.inputs.dataset_inputs.get_mut(*index))
                {
                    input.tags.push(tag_from_row(&row, "name")?);
                }
            }
        }
        Ok(())
    }

    /// Records edges run -> logged model in `inputs` (MLflow's lineage table:
    /// `RUN_INPUT`/`MODEL_INPUT` for models a run used, `RUN_OUTPUT`/
    /// `MODEL_OUTPUT` for models it produced); an edge logged again is kept once.
    async fn link_models(
        &self,
        tx: &mut Tx,
        ws: &Workspace,
        run_id: &str,
        source_type: &str,
        destination_type: &str,
        models: &[(&str, i64)],
    ) -> Result<()> {
        if models.is_empty() {
            return Ok(());
        }
        // MLflow links any id, even one naming no model. With workspaces on,
        // an id must name a model of this workspace: another workspace's
        // answers as if it did not exist, and so (not to tell the two apart)
        // does an unknown one.
        if self.workspaces {
            let sql = format!(
                "SELECT lm.model_id FROM logged_models lm \
                 JOIN experiments e ON e.experiment_id = lm.experiment_id \
                 WHERE lm.model_id IN ({}) AND e.workspace = ${}",
                in_list(models.len(), 1),
                models.len() + 1
            );
            let found: HashSet<String> = models
                .iter()
                .fold(db::query(&sql), |query, (model_id, _)| {
                    query.bind(*model_id)
                })
                .bind(ws.name())
                .fetch_all(&mut *tx)
                .await?
                .iter()
                .map(|row| row.try_get("model_id"))
                .collect::<Result<_, _>>()?;
            if let Some((missing, _)) = models.iter().find(|(id, _)| !found.contains(*id)) {
                return Err(super::logged_models::model_not_found(missing));
            }
        }
        let sql = format!(
            "INSERT INTO inputs (input_uuid, source_type, source_id, destination_type, \
             destination_id, step) VALUES {} ON CONFLICT DO NOTHING",
            values_rows(models.len(), 6, 1)
        );
        let mut query = db::query(&sql);
        for (model_id, step) in models {
            query = query
                .bind(uuid::Uuid::new_v4().simple().to_string())
                .bind(source_type)
                .bind(run_id)
                .bind(destination_type)
                .bind(*model_id)
                .bind(*step);
        }
        query.execute(&mut *tx).await?;
        Ok(())
    }
}

pub(super) async fn log_inputs(
    store: &SqlStore,
    ws: &Workspace,
    run_id: &str,
    inputs: Vec<NewDatasetInput>,
    models: Vec<ModelInput>,
) -> Result<()> {
    for input in &inputs {
        validation::validate_dataset_input(input)?;
    }
    let mut tx = store.db.begin().await?;
    let run = store.active_run_in(&mut tx, ws, run_id).await?;
    let experiment_id = parse_experiment_id(&run.experiment_id)?;
    // Same (name, digest) twice in one request: the first one counts.
    let mut seen = HashSet::new();
    for input in inputs {
        let dataset = &input.dataset;
        if !seen.insert((dataset.name.clone(), dataset.digest.clone())) {
            continue;
        }
        let existing = db::query(
            "SELECT dataset_uuid FROM datasets WHERE experiment_id = $1 AND name = $2 AND digest = $3",
        )
        .bind(experiment_id)
        .bind(dataset.name.as_str())
        .bind(dataset.digest.as_str())
        .fetch_optional(&mut tx)
        .await?;
        let dataset_uuid = match existing {
            Some(row) => row.try_get::<String, _>("dataset_uuid")?,
            None => {
                let uuid = uuid::Uuid::new_v4().simple().to_string();
                db::query(
                    "INSERT INTO datasets (dataset_uuid, experiment_id, name, digest, \
                     dataset_source_type, dataset_source, dataset_schema, dataset_profile) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                )
                .bind(uuid.as_str())
                .bind(experiment_id)
                .bind(dataset.name.as_str())
                .bind(dataset.digest.as_str())
                .bind(dataset.source_type.as_str())
                .bind(dataset.source.as_str())
                .bind(dataset.schema.as_deref())
                .bind(dataset.profile.as_deref())
                .execute(&mut tx)
                .await?;
                uuid
            }
        };
        let linked = db::query(
            "SELECT 1 FROM inputs WHERE source_type = 'DATASET' AND source_id = $1 \
             AND destination_type = 'RUN' AND destination_id = $2",
        )
        .bind(dataset_uuid.as_str())
        .bind(run_id)
        .fetch_optional(&mut tx)
        .await?;
        if linked.is_some() {
            continue;
        }
        let input_uuid = uuid::Uuid::new_v4().simple().to_string();
        db::query(
            "INSERT INTO inputs (input_uuid, source_type, source_id, destination_type, \
             destination_id) VALUES ($1, 'DATASET', $2, 'RUN', $3)",
        )
        .bind(input_uuid.as_str())
        .bind(dataset_uuid.as_str())
        .bind(run_id)
        .execute(&mut tx)
        .await?;
        for tag in &input.tags {
            db::query("INSERT INTO input_tags (input_uuid, name, value) VALUES ($1, $2, $3)")
                .bind(input_uuid.as_str())
                .bind(tag.key.as_str())
                .bind(tag.value.as_str())
                .execute(&mut tx)
                .await?;
        }
    }
    let models: Vec<(&str, i64)> = models.iter().map(|m| (m.model_id.as_str(), 0)).collect();
    store
        .link_models(&mut tx, ws, run_id, "RUN_INPUT", "MODEL_INPUT", &models)
        .await?;
    tx.commit().await?;
    Ok(())
}

pub(super) async fn log_outputs(
    store: &SqlStore,
    ws: &Workspace,
    run_id: &str,
    models: &[ModelOutput],
) -> Result<()> {
    let mut tx = store.db.begin().await?;
    store.active_run_in(&mut tx, ws, run_id).await?;
    let models: Vec<(&str, i64)> = models
        .iter()
        .map(|m| (m.model_id.as_str(), m.step))
        .collect();
    store
        .link_models(&mut tx, ws, run_id, "RUN_OUTPUT", "MODEL_OUTPUT", &models)
        .await?;
    tx.commit().await?;
    Ok(())
}

/// The input tag naming what a dataset was used for (train, eval...).
const CONTEXT_TAG: &str = "mlflow.data.context";
/// MLflow's cap on dataset summaries.
const MAX_DATASET_SUMMARIES: i64 = 1000;

pub(super) async fn search_datasets(
    store: &SqlStore,
    ws: &Workspace,
    experiment_ids: &[String],
) -> Result<Vec<DatasetSummary>> {
    let ids = experiment_ids
        .iter()
        .map(|id| parse_experiment_id(id))
        .collect::<Result<Vec<_>>>()?;
    let sql = format!(
        "SELECT DISTINCT d.experiment_id, d.name, d.digest, t.value AS context \
         FROM datasets d \
         JOIN experiments e ON e.experiment_id = d.experiment_id AND e.workspace = $1 \
         JOIN inputs i ON i.source_type = 'DATASET' AND i.source_id = d.dataset_uuid \
         LEFT JOIN input_tags t ON t.input_uuid = i.input_uuid AND t.name = '{CONTEXT_TAG}' \
         WHERE d.experiment_id IN ({}) \
         ORDER BY d.experiment_id, d.name, d.digest, context LIMIT ${}",
        in_list(ids.len(), 2),
        ids.len() + 2
    );
    let query = ids
        .iter()
        .fold(db::query(&sql).bind(ws.name()), |query, id| query.bind(*id))
        .bind(MAX_DATASET_SUMMARIES);
    query
        .fetch_all(&store.db)
        .await?
        .iter()
        .map(|row| {
            Ok(DatasetSummary {
                experiment_id: row.try_get::<i64, _>("experiment_id")?.to_string(),
                name: row.try_get("name")?,
                digest: row.try_get("digest")?,
                context: row.try_get("context")?,
            })
        })
        .collect()
}
