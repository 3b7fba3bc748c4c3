//! `POST /api/3.0/ferroflow/gc`: `ferroflow gc` for server admins, over the
//! server's own store and artifact destination.

use axum::extract::State;
use axum::Json;
use serde::Deserialize;

use super::wire::Body;
use crate::app::AppState;
use crate::error::{MlflowError, Result};
use crate::gc::{self, GcOptions, GcReport};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GcRequest {
    /// MLflow's `--older-than` format; absent: everything deleted.
    older_than: Option<String>,
    #[serde(default)]
    dry_run: bool,
}

pub async fn collect(
    State(state): State<AppState>,
    Body(req): Body<GcRequest>,
) -> Result<Json<GcReport>> {
    let options = GcOptions {
        older_than: gc::parse_age(req.older_than.as_deref().unwrap_or("0s"))?,
        dry_run: req.dry_run,
        batch: gc::DEFAULT_BATCH,
    };
    if state.artifacts_only {
        return Err(MlflowError::bad_request(
            "gc needs the tracking store, which --artifacts-only does not serve",
        ));
    }
    let report = gc::collect(state.store.as_ref(), state.artifacts.as_deref(), &options).await?;
    Ok(Json(report))
}
