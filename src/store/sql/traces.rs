//! [`TraceStore`] over MLflow's `trace_info`, `trace_tags`,
//! `trace_request_metadata`, `assessments` and `entity_associations`
//! tables. Those tables carry no workspace: a trace belongs to the
//! workspace of its experiment, so every statement joins `experiments`.
//!
//! What MLflow promotes out of the metadata (the session, token usage and
//! cost) and out of the tags (the trace name) lives in `trace_info` columns
//! and is put back when a record is read, so both servers read each other's
//! rows.

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;
use serde_json::Value as Json;

use super::assessments::{assessment_from_row, ASSESSMENT_COLUMNS};
use super::experiments::parse_experiment_id;
use super::{
    append_to_uri, bind_all, fetch_rendered, in_list, values_rows, SqlStore, IN_LIST_CHUNK,
};
use crate::error::{MlflowError, Result};
use crate::model::{now_millis, Page, Workspace};
use crate::python::py_float;
use crate::search::page_token;
use crate::search::traces::{
    traces_search_query, ASSOCIATION_PROMPT_VERSION, ASSOCIATION_RUN, ASSOCIATION_TRACE,
};
use crate::store::db::{self, Row, Target, Tx};
use crate::store::span_facts::{cost_value, token_count};
use crate::store::trace_metrics::{DataPoint, MetricQuery};
use crate::store::traces::{
    keys, refuse_server_owned, trace_not_found, validate_deletion, validate_trace_info,
    validate_trace_tag, Assessment, AssessmentUpdate, NewSpan, TraceDeletion, TraceInfo,
    TraceQuery, TraceStore, COST_COLUMNS, MAX_LINKS_PER_REQUEST, SEARCH_MAX_RESULTS, TOKEN_COLUMNS,
};

const INFO_COLUMNS: &str = "ti.request_id, ti.experiment_id, ti.timestamp_ms, \
     ti.execution_time_ms, ti.status, ti.client_request_id, ti.request_preview, \
     ti.response_preview, ti.trace_name, ti.session_id, ti.input_tokens, ti.output_tokens, \
     ti.total_tokens, ti.cache_read_input_tokens, ti.cache_creation_input_tokens, \
     ti.cache_creation_input_tokens_above_1hr, ti.input_cost, ti.output_cost, ti.total_cost";

/// A `trace_info` row, with the promoted metadata and tag put back.
fn info_from_row(row: &Row) -> Result<TraceInfo> {
    let experiment_id: i64 = row.try_get("experiment_id")?;
    let mut info = TraceInfo {
        trace_id: row.try_get("request_id")?,
        client_request_id: row.try_get("client_request_id")?,
        experiment_id: experiment_id.to_string(),
        request_time: row.try_get("timestamp_ms")?,
        execution_duration: row.try_get("execution_time_ms")?,
        state: row.try_get("status")?,
        request_preview: row.try_get("request_preview")?,
        response_preview: row.try_get("response_preview")?,
        ..TraceInfo::default()
    };
    if let Some(name) = row.try_get::<Option<String>, _>("trace_name")? {
        info.tags.insert(keys::TRACE_NAME.into(), name);
    }
    if let Some(session) = row.try_get::<Option<String>, _>("session_id")? {
        info.trace_metadata.insert(keys::SESSION.into(), session);
    }
    let mut tokens = Vec::new();
    for column in TOKEN_COLUMNS {
        if let Some(count) = row.try_get::<Option<i64>, _>(column)? {
            tokens.push(format!("\"{column}\": {count}"));
        }
    }
    if !tokens.is_empty() {
        let usage = format!("{{{}}}", tokens.join(", "));
        info.trace_metadata.insert(keys::TOKEN_USAGE.into(), usage);
    }
    let mut costs = Vec::new();
    for column in COST_COLUMNS {
        if let Some(cost) = row.try_get::<Option<f64>, _>(column)? {
            costs.push(format!("\"{column}\": {}", py_float(cost)));
        }
    }
    if !costs.is_empty() {
        let cost = format!("{{{}}}", costs.join(", "));
        info.trace_metadata.insert(keys::COST.into(), cost);
    }
    Ok(info)
}

/// The `trace_info` columns MLflow fills from promoted metadata: the
/// session, and each token count and cost the JSON holds. Malformed JSON
/// or values are left out rather than refusing the trace.
struct Promoted {
    session_id: Option<String>,
    tokens: [Option<i64>; 6],
    costs: [Option<f64>; 3],
}

impl Promoted {
    fn take(metadata: &mut BTreeMap<String, String>) -> Self {
        let object = |text: Option<String>| -> serde_json::Map<String, Json> {
            match text.map(|t| serde_json::from_str::<Json>(&t)) {
                Some(Ok(Json::Object(map))) => map,
                _ => serde_json::Map::new(),
            }
        };
        let usage = object(metadata.remove(keys::TOKEN_USAGE));
        let cost = object(metadata.remove(keys::COST));
        Self {
            session_id: metadata.remove(keys::SESSION),
            tokens: TOKEN_COLUMNS.map(|key| token_count(usage.get(key))),
            costs: COST_COLUMNS.map(|key| cost_value(cost.get(key))),
        }
    }
}

impl SqlStore {
    /// Links traces to entities of one type in MLflow's
    /// `entity_associations` (`(trace id, destination id)` pairs); a link
    /// that exists is kept.
    async fn link_traces(&self, links: &[(&str, &str)], destination_type: &str) -> Result<()> {
        if links.is_empty() {
            return Ok(());
        }
        let sql = format!(
            "INSERT INTO entity_associations (association_id, source_type, source_id, \
             destination_type, destination_id, created_time) VALUES {} ON CONFLICT DO NOTHING",
            values_rows(links.len(), 6, 1)
        );
        let now = now_millis();
        let mut query = db::query(&sql);
        for (trace_id, destination_id) in links {
            query = query
                .bind(uuid::Uuid::new_v4().to_string())
                .bind(ASSOCIATION_TRACE)
                .bind(*trace_id)
                .bind(destination_type)
                .bind(*destination_id)
                .bind(now);
        }
        query.execute(&self.db).await?;
        Ok(())
    }

    /// Whole records (info, tags, metadata, assessments) of this workspace
    /// in the order of `ids`; ids that name nothing here are left out. A
    /// chunk's four reads run concurrently.
    async fn load_trace_infos(&self, ws: &Workspace, ids: &[String]) -> Result<Vec<TraceInfo>> {
        let mut found: HashMap<String, TraceInfo> = HashMap::with_capacity(ids.len());
        for chunk in ids.chunks(IN_LIST_CHUNK) {
            let list = in_list(chunk.len(), 1);
            let infos_sql = format!(
                "SELECT {INFO_COLUMNS} FROM trace_info ti \
                 JOIN experiments e ON e.experiment_id = ti.experiment_id \
                 WHERE ti.request_id IN ({list}) AND e.workspace = ${}",
                chunk.len() + 1
            );
            let tags_sql = format!(
                "SELECT request_id, key, value FROM trace_tags WHERE request_id IN ({list})"
            );
            let metadata_sql = format!(
                "SELECT request_id, key, value FROM trace_request_metadata \
                 WHERE request_id IN ({list})"
            );
            let assessments_sql = format!(
                "SELECT {ASSESSMENT_COLUMNS} FROM assessments a WHERE a.trace_id IN ({list}) \
                 ORDER BY a.created_timestamp, a.assessment_id"
            );
            let (info_rows, tag_rows, metadata_rows, assessment_rows) = tokio::try_join!(
                bind_all(&infos_sql, chunk)
                    .bind(ws.name())
                    .fetch_all(&self.db),
                bind_all(&tags_sql, chunk).fetch_all(&self.db),
                bind_all(&metadata_sql, chunk).fetch_all(&self.db),
                bind_all(&assessments_sql, chunk).fetch_all(&self.db),
            )?;
            for row in &info_rows {
                let info = info_from_row(row)?;
                found.insert(info.trace_id.clone(), info);
            }
            for (rows, is_tag) in [(&tag_rows, true), (&metadata_rows, false)] {
                for row in rows {
                    let id: String = row.try_get("request_id")?;
                    let Some(info) = found.get_mut(&id) else {
                        continue;
                    };
                    let key: String = row.try_get("key")?;
                    let value: String = row
                        .try_get::<Option<String>, _>("value")?
                        .unwrap_or_default();
                    let map = if is_tag {
                        &mut info.tags
                    } else {
                        &mut info.trace_metadata
                    };
                    // The columns win over stale rows of promoted keys.
                    map.entry(key).or_insert(value);
                }
            }
            for row in &assessment_rows {
                let assessment = assessment_from_row(row)?;
                if let Some(info) = found.get_mut(&assessment.trace_id) {
                    info.assessments.push(assessment);
                }
            }
        }
        Ok(ids.iter().filter_map(|id| found.remove(id)).collect())
    }

    /// Checks that the trace exists in this workspace; its experiment id.
    pub(super) async fn trace_experiment<'a>(
        &self,
        target: impl Into<Target<'a>>,
        ws: &Workspace,
        trace_id: &str,
    ) -> Result<i64> {
        let row = db::query(
            "SELECT ti.experiment_id FROM trace_info ti \
             JOIN experiments e ON e.experiment_id = ti.experiment_id \
             WHERE ti.request_id = $1 AND e.workspace = $2",
        )
        .bind(trace_id)
        .bind(ws.name())
        .fetch_optional(target)
        .await?
        .ok_or_else(|| trace_not_found(trace_id))?;
        Ok(row.try_get("experiment_id")?)
    }
}

/// Upserts `(key, value)` rows of a trace, in key order (a fixed order
/// keeps concurrent writers from deadlocking on PostgreSQL).
async fn upsert_key_values(
    tx: &mut Tx,
    table: &str,
    trace_id: &str,
    items: &BTreeMap<String, String>,
) -> Result<()> {
    let items: Vec<_> = items.iter().collect();
    for chunk in items.chunks(500) {
        let sql = format!(
            "INSERT INTO {table} (key, value, request_id) VALUES {} \
             ON CONFLICT (key, request_id) DO UPDATE SET value = excluded.value",
            values_rows(chunk.len(), 3, 1)
        );
        let mut query = db::query(&sql);
        for (key, value) in chunk {
            query = query.bind(key.as_str()).bind(value.as_str()).bind(trace_id);
        }
        query.execute(&mut *tx).await?;
    }
    Ok(())
}

#[async_trait]
impl TraceStore for SqlStore {
    async fn start_trace(
        &self,
        ws: &Workspace,
        mut info: TraceInfo,
        final_record: bool,
    ) -> Result<TraceInfo> {
        validate_trace_info(&mut info)?;
        let trace_id = info.trace_id.clone();
        let mut tx = self.db.begin().await?;
        let experiment = self
            .active_experiment(&mut tx, ws, &info.experiment_id)
            .await?;
        let experiment_id = parse_experiment_id(&info.experiment_id)?;
        let trace_name = info.tags.remove(keys::TRACE_NAME);
        let promoted = Promoted::take(&mut info.trace_metadata);
        // A resend rewrites the record; fields it leaves out keep their
        // values (MLflow's merge), and a trace of another workspace is
        // never touched.
        let written = db::query(
            "INSERT INTO trace_info (request_id, experiment_id, timestamp_ms, execution_time_ms, \
             status, client_request_id, request_preview, response_preview, trace_name, \
             session_id, input_tokens, output_tokens, total_tokens, cache_read_input_tokens, \
             cache_creation_input_tokens, cache_creation_input_tokens_above_1hr, input_cost, \
             output_cost, total_cost) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, \
             $18, $19) \
             ON CONFLICT (request_id) DO UPDATE SET experiment_id = excluded.experiment_id, \
             timestamp_ms = excluded.timestamp_ms, execution_time_ms = excluded.execution_time_ms, \
             status = excluded.status, client_request_id = excluded.client_request_id, \
             request_preview = COALESCE(excluded.request_preview, trace_info.request_preview), \
             response_preview = COALESCE(excluded.response_preview, trace_info.response_preview), \
             trace_name = COALESCE(excluded.trace_name, trace_info.trace_name), \
             session_id = COALESCE(excluded.session_id, trace_info.session_id), \
             input_tokens = COALESCE(excluded.input_tokens, trace_info.input_tokens), \
             output_tokens = COALESCE(excluded.output_tokens, trace_info.output_tokens), \
             total_tokens = COALESCE(excluded.total_tokens, trace_info.total_tokens), \
             cache_read_input_tokens = COALESCE(excluded.cache_read_input_tokens, \
             trace_info.cache_read_input_tokens), \
             cache_creation_input_tokens = COALESCE(excluded.cache_creation_input_tokens, \
             trace_info.cache_creation_input_tokens), \
             cache_creation_input_tokens_above_1hr = COALESCE(\
             excluded.cache_creation_input_tokens_above_1hr, \
             trace_info.cache_creation_input_tokens_above_1hr), \
             input_cost = COALESCE(excluded.input_cost, trace_info.input_cost), \
             output_cost = COALESCE(excluded.output_cost, trace_info.output_cost), \
             total_cost = COALESCE(excluded.total_cost, trace_info.total_cost) \
             WHERE trace_info.experiment_id IN \
             (SELECT experiment_id FROM experiments WHERE workspace = $20)",
        )
        .bind(&trace_id)
        .bind(experiment_id)
        .bind(info.request_time)
        .bind(info.execution_duration)
        .bind(&info.state)
        .bind(info.client_request_id.as_deref())
        .bind(info.request_preview.as_deref())
        .bind(info.response_preview.as_deref())
        .bind(trace_name)
        .bind(promoted.session_id)
        .bind(promoted.tokens[0])
        .bind(promoted.tokens[1])
        .bind(promoted.tokens[2])
        .bind(promoted.tokens[3])
        .bind(promoted.tokens[4])
        .bind(promoted.tokens[5])
        .bind(promoted.costs[0])
        .bind(promoted.costs[1])
        .bind(promoted.costs[2])
        .bind(ws.name())
        .execute(&mut tx)
        .await?;
        if written == 0 {
            return Err(MlflowError::already_exists(format!(
                "Trace with ID '{trace_id}' already exists."
            )));
        }
        let location = append_to_uri(
            experiment.artifact_location.as_deref().unwrap_or_default(),
            &["traces", &trace_id, "artifacts"],
        );
        info.tags.insert(keys::ARTIFACT_LOCATION.into(), location);
        upsert_key_values(&mut tx, "trace_tags", &trace_id, &info.tags).await?;
        if final_record {
            info.trace_metadata
                .insert(keys::INFO_FINALIZED.into(), "true".into());
        }
        upsert_key_values(
            &mut tx,
            "trace_request_metadata",
            &trace_id,
            &info.trace_metadata,
        )
        .await?;
        tx.commit().await?;
        self.get_trace_info(ws, &trace_id).await
    }

    async fn get_trace_info(&self, ws: &Workspace, trace_id: &str) -> Result<TraceInfo> {
        self.load_trace_infos(ws, &[trace_id.to_string()])
            .await?
            .pop()
            .ok_or_else(|| trace_not_found(trace_id))
    }

    async fn batch_get_trace_infos(
        &self,
        ws: &Workspace,
        trace_ids: &[String],
    ) -> Result<Vec<TraceInfo>> {
        self.load_trace_infos(ws, trace_ids).await
    }

    async fn search_traces(&self, ws: &Workspace, query: &TraceQuery) -> Result<Page<TraceInfo>> {
        let max_results = match query.max_results {
            n if n < 1 => {
                return Err(MlflowError::invalid_parameter(format!(
                    "Invalid value {n} for parameter 'max_results' supplied. It must be a \
                     positive integer"
                )))
            }
            n if n > SEARCH_MAX_RESULTS => {
                return Err(MlflowError::invalid_parameter(format!(
                    "Invalid value {n} for parameter 'max_results' supplied."
                )))
            }
            n => n,
        };
        let experiment_ids = query
            .experiment_ids
            .iter()
            .map(|id| parse_experiment_id(id))
            .collect::<Result<Vec<_>>>()?;
        let offset = page_token::decode(query.page_token.as_deref())?;
        let rendered = traces_search_query(
            ws.name(),
            &experiment_ids,
            &query.filter,
            &query.order_by,
            max_results + 1,
            offset,
        )?;
        let rows = fetch_rendered(&self.db, &rendered).await?;
        let mut ids = rows
            .iter()
            .map(|row| row.try_get::<String, _>("request_id"))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let more = ids.len() as i64 > max_results;
        ids.truncate(max_results as usize);
        let items = self.load_trace_infos(ws, &ids).await?;
        Ok(Page {
            items,
            next_page_token: more.then(|| page_token::encode(offset + max_results)),
        })
    }

    async fn set_trace_tag(
        &self,
        ws: &Workspace,
        trace_id: &str,
        key: &str,
        value: &str,
    ) -> Result<()> {
        let value = validate_trace_tag(key, value)?;
        let mut tx = self.db.begin().await?;
        self.trace_experiment(&mut tx, ws, trace_id).await?;
        if key == keys::TRACE_NAME {
            db::query("UPDATE trace_info SET trace_name = $1 WHERE request_id = $2")
                .bind(value)
                .bind(trace_id)
                .execute(&mut tx)
                .await?;
        } else {
            let tag = BTreeMap::from([(key.to_string(), value)]);
            upsert_key_values(&mut tx, "trace_tags", trace_id, &tag).await?;
        }
        Ok(tx.commit().await?)
    }

    async fn delete_trace_tag(&self, ws: &Workspace, trace_id: &str, key: &str) -> Result<()> {
        refuse_server_owned(key, "deleted")?;
        let mut tx = self.db.begin().await?;
        self.trace_experiment(&mut tx, ws, trace_id).await?;
        let deleted = if key == keys::TRACE_NAME {
            db::query(
                "UPDATE trace_info SET trace_name = NULL \
                 WHERE request_id = $1 AND trace_name IS NOT NULL",
            )
            .bind(trace_id)
            .execute(&mut tx)
            .await?
        } else {
            db::query("DELETE FROM trace_tags WHERE request_id = $1 AND key = $2")
                .bind(trace_id)
                .bind(key)
                .execute(&mut tx)
                .await?
        };
        if deleted == 0 {
            return Err(MlflowError::not_found(format!(
                "No trace tag with key '{key}' for trace with ID '{trace_id}'"
            )));
        }
        Ok(tx.commit().await?)
    }

    async fn delete_traces(&self, ws: &Workspace, deletion: &TraceDeletion) -> Result<i64> {
        validate_deletion(deletion)?;
        let experiment_id = parse_experiment_id(&deletion.experiment_id)?;
        let mut tx = self.db.begin().await?;
        let mut sql = String::from(
            "SELECT ti.request_id FROM trace_info ti \
             JOIN experiments e ON e.experiment_id = ti.experiment_id \
             WHERE ti.experiment_id = $1 AND e.workspace = $2",
        );
        let mut query_ids: Vec<String> = Vec::new();
        if let Some(max) = deletion.max_timestamp_millis {
            sql.push_str(&format!(" AND ti.timestamp_ms <= {max}"));
        }
        if !deletion.trace_ids.is_empty() {
            sql.push_str(&format!(
                " AND ti.request_id IN ({})",
                in_list(deletion.trace_ids.len(), 3)
            ));
            query_ids.extend(deletion.trace_ids.iter().cloned());
        }
        // The oldest go first when a cap is set.
        sql.push_str(" ORDER BY ti.timestamp_ms, ti.request_id");
        if let Some(max) = deletion.max_traces {
            sql.push_str(&format!(" LIMIT {max}"));
        }
        let mut query = db::query(&sql).bind(experiment_id).bind(ws.name());
        for id in &query_ids {
            query = query.bind(id);
        }
        let ids = query
            .fetch_all(&mut tx)
            .await?
            .iter()
            .map(|row| row.try_get::<String, _>("request_id"))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        for chunk in ids.chunks(IN_LIST_CHUNK) {
            let list = in_list(chunk.len(), 1);
            // The schema cascades these on PostgreSQL and SQLite alike; the
            // links to runs have no foreign key.
            let sql = format!(
                "DELETE FROM entity_associations WHERE source_type = '{ASSOCIATION_TRACE}' \
                 AND source_id IN ({list})"
            );
            bind_all(&sql, chunk).execute(&mut tx).await?;
            let sql = format!("DELETE FROM trace_info WHERE request_id IN ({list})");
            bind_all(&sql, chunk).execute(&mut tx).await?;
        }
        tx.commit().await?;
        Ok(ids.len() as i64)
    }

    async fn link_traces_to_run(
        &self,
        ws: &Workspace,
        trace_ids: &[String],
        run_id: &str,
    ) -> Result<()> {
        if trace_ids.is_empty() {
            return Ok(());
        }
        if trace_ids.len() > MAX_LINKS_PER_REQUEST {
            return Err(MlflowError::invalid_parameter(format!(
                "Cannot link more than {MAX_LINKS_PER_REQUEST} traces to a run in a single \
                 request. Provided {} traces.",
                trace_ids.len()
            )));
        }
        self.accessible_run(ws, run_id).await?;
        let list = in_list(trace_ids.len(), 1);
        let sql = format!(
            "SELECT ti.request_id FROM trace_info ti \
             JOIN experiments e ON e.experiment_id = ti.experiment_id \
             WHERE ti.request_id IN ({list}) AND e.workspace = ${} ORDER BY ti.request_id",
            trace_ids.len() + 1
        );
        let rows = bind_all(&sql, trace_ids)
            .bind(ws.name())
            .fetch_all(&self.db)
            .await?;
        let traces = rows
            .iter()
            .map(|row| row.try_get::<String, _>("request_id"))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let links: Vec<(&str, &str)> = traces.iter().map(|t| (t.as_str(), run_id)).collect();
        self.link_traces(&links, ASSOCIATION_RUN).await
    }

    async fn link_prompts_to_trace(
        &self,
        ws: &Workspace,
        trace_id: &str,
        prompt_versions: &[String],
    ) -> Result<()> {
        // 404 for a trace that is not this workspace's.
        self.get_trace_info(ws, trace_id).await?;
        let links: Vec<(&str, &str)> = prompt_versions
            .iter()
            .map(|version| (trace_id, version.as_str()))
            .collect();
        self.link_traces(&links, ASSOCIATION_PROMPT_VERSION).await
    }

    async fn log_spans(
        &self,
        ws: &Workspace,
        experiment_id: &str,
        spans: Vec<NewSpan>,
    ) -> Result<()> {
        self.ingest_spans(ws, experiment_id, spans).await
    }

    async fn query_trace_metrics(
        &self,
        ws: &Workspace,
        query: &MetricQuery,
    ) -> Result<Vec<DataPoint>> {
        super::trace_metrics::query_trace_metrics(self, ws, query).await
    }

    async fn trace_spans(
        &self,
        ws: &Workspace,
        trace_ids: &[String],
    ) -> Result<BTreeMap<String, Vec<String>>> {
        let mut spans: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for chunk in trace_ids.chunks(IN_LIST_CHUNK) {
            let sql = format!(
                "SELECT s.trace_id, s.content FROM spans s \
                 JOIN trace_info ti ON ti.request_id = s.trace_id \
                 JOIN experiments e ON e.experiment_id = ti.experiment_id \
                 WHERE s.trace_id IN ({}) AND e.workspace = ${} \
                 ORDER BY s.trace_id, s.start_time_unix_nano, s.span_id",
                in_list(chunk.len(), 1),
                chunk.len() + 1
            );
            let rows = bind_all(&sql, chunk)
                .bind(ws.name())
                .fetch_all(&self.db)
                .await?;
            for row in &rows {
                spans
                    .entry(row.try_get("trace_id")?)
                    .or_default()
                    .push(row.try_get("content")?);
            }
        }
        Ok(spans)
    }

    async fn create_assessment(
        &self,
        ws: &Workspace,
        assessment: Assessment,
    ) -> Result<Assessment> {
        super::assessments::create(self, ws, assessment).await
    }

    async fn get_assessment(
        &self,
        ws: &Workspace,
        trace_id: &str,
        assessment_id: &str,
    ) -> Result<Assessment> {
        super::assessments::get(self, ws, trace_id, assessment_id).await
    }

    async fn update_assessment(
        &self,
        ws: &Workspace,
        trace_id: &str,
        assessment_id: &str,
        update: AssessmentUpdate,
    ) -> Result<Assessment> {
        super::assessments::update(self, ws, trace_id, assessment_id, update).await
    }

    async fn delete_assessment(
        &self,
        ws: &Workspace,
        trace_id: &str,
        assessment_id: &str,
    ) -> Result<()> {
        super::assessments::delete(self, ws, trace_id, assessment_id).await
    }
}
