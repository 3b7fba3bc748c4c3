//! PLACEHOLDER until the search module lands: no filter support.
use crate::error::{MlflowError, Result};

pub enum SqlValue {
    Text(String),
    Int(i64),
    Float(f64),
}
pub struct SqlQuery {
    pub sql: String,
    pub binds: Vec<SqlValue>,
}
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ViewType {
    #[default]
    ActiveOnly,
    DeletedOnly,
    All,
}
impl ViewType {
    pub fn parse(value: Option<&str>) -> Result<Self> {
        Ok(match value {
            None | Some("ACTIVE_ONLY") | Some("1") => Self::ActiveOnly,
            Some("DELETED_ONLY") | Some("2") => Self::DeletedOnly,
            Some("ALL") | Some("3") => Self::All,
            Some(v) => return Err(MlflowError::invalid_parameter(format!("bad view type {v}"))),
        })
    }
    fn clause(self, col: &str) -> String {
        match self {
            Self::ActiveOnly => format!("{col} = 'active'"),
            Self::DeletedOnly => format!("{col} = 'deleted'"),
            Self::All => "1=1".into(),
        }
    }
}
pub fn runs_search_query(
    experiment_ids: &[i64],
    view: ViewType,
    _filter: &str,
    _order_by: &[String],
    limit: i64,
    offset: i64,
) -> Result<SqlQuery> {
    let ids: Vec<String> = experiment_ids.iter().map(|i| i.to_string()).collect();
    Ok(SqlQuery { sql: format!("SELECT r.run_uuid FROM runs r WHERE r.experiment_id IN ({}) AND {} ORDER BY r.start_time DESC, r.run_uuid LIMIT $1 OFFSET $2", if ids.is_empty() {"NULL".into()} else {ids.join(",")}, view.clause("r.lifecycle_stage")), binds: vec![SqlValue::Int(limit), SqlValue::Int(offset)] })
}
pub fn experiments_search_query(
    workspace: &str,
    view: ViewType,
    _filter: &str,
    _order_by: &[String],
    limit: i64,
    offset: i64,
) -> Result<SqlQuery> {
    Ok(SqlQuery { sql: format!("SELECT e.experiment_id FROM experiments e WHERE e.workspace = $1 AND {} ORDER BY e.creation_time DESC, e.experiment_id LIMIT $2 OFFSET $3", view.clause("e.lifecycle_stage")), binds: vec![SqlValue::Text(workspace.into()), SqlValue::Int(limit), SqlValue::Int(offset)] })
}
pub mod page_token {
    use crate::error::{MlflowError, Result};
    use base64::Engine;
    pub fn encode(offset: i64) -> String {
        base64::engine::general_purpose::STANDARD.encode(format!("{{\"offset\": {offset}}}"))
    }
    pub fn decode(token: Option<&str>) -> Result<i64> {
        let Some(t) = token.filter(|t| !t.is_empty()) else {
            return Ok(0);
        };
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(t)
            .map_err(|_| MlflowError::invalid_parameter("Invalid page token"))?;
        let v: serde_json::Value = serde_json::from_slice(&bytes)
            .map_err(|_| MlflowError::invalid_parameter("Invalid page token"))?;
        v["offset"]
            .as_i64()
            .ok_or_else(|| MlflowError::invalid_parameter("Invalid page token"))
    }
}
