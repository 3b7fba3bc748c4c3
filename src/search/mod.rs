//! MLflow's search language (filter strings, order_by, page tokens): parsed
//! purely in `filter`, rendered to SQL with bound parameters in `sql`.
//!
//! Nothing here touches a database or HTTP: the store executes the returned
//! [`SqlQuery`] (same text on PostgreSQL and SQLite) and the API layer turns
//! errors into responses. Every error is a 400 INVALID_PARAMETER_VALUE.

pub mod filter;
pub mod logged_models;
pub mod page_token;
pub mod registry;
pub mod rlike;
pub mod sql;
mod trace_assessments;
mod trace_metadata;
pub mod traces;

#[cfg(test)]
mod tests;

pub use registry::{model_versions_search_query, registered_models_search_query};
pub use sql::{experiments_search_query, runs_search_query, EXPERIMENT_COLUMNS};

use crate::error::{MlflowError, Result};

/// A bound parameter of a rendered query.
#[derive(Debug, Clone, PartialEq)]
pub enum SqlValue {
    Text(String),
    Int(i64),
    Float(f64),
}

/// SQL text with `$1, $2, ...` placeholders, and the values they stand for, in order.
#[derive(Debug, Clone, PartialEq)]
pub struct SqlQuery {
    pub sql: String,
    pub binds: Vec<SqlValue>,
}

/// Which lifecycle stages a search returns (proto `ViewType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ViewType {
    /// `ACTIVE_ONLY` = 1, the proto default.
    #[default]
    ActiveOnly,
    /// `DELETED_ONLY` = 2.
    DeletedOnly,
    /// `ALL` = 3.
    All,
}

impl ViewType {
    /// Reads a request's view type, by name or number as protobuf accepts it
    /// (`"ACTIVE_ONLY"`, `"1"`); absent or empty means `ActiveOnly`.
    pub fn parse(value: Option<&str>) -> Result<Self> {
        let Some(value) = value.map(str::trim).filter(|v| !v.is_empty()) else {
            return Ok(Self::ActiveOnly);
        };
        match value.to_ascii_uppercase().as_str() {
            "ACTIVE_ONLY" | "1" => Ok(Self::ActiveOnly),
            "DELETED_ONLY" | "2" => Ok(Self::DeletedOnly),
            "ALL" | "3" => Ok(Self::All),
            _ => Err(MlflowError::invalid_parameter(format!(
                "Invalid view type '{value}'. Valid values are ACTIVE_ONLY (1), \
                 DELETED_ONLY (2) and ALL (3)."
            ))),
        }
    }

    /// The `lifecycle_stage` values this view selects (LifecycleStage.view_type_to_stages).
    pub fn lifecycle_stages(self) -> &'static [&'static str] {
        match self {
            Self::ActiveOnly => &["active"],
            Self::DeletedOnly => &["deleted"],
            Self::All => &["active", "deleted"],
        }
    }
}
