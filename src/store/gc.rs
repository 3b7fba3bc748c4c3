//! What `ferroflow gc` reads and removes: soft-deleted runs, logged models
//! and experiments, found page by page and removed for good. The order of
//! removal (artifacts first, rows last) lives in `crate::gc`.

use async_trait::async_trait;

use crate::error::Result;

/// A soft-deleted entity and where its artifacts are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Purgeable {
    pub id: String,
    pub artifact_location: String,
}

#[async_trait]
pub trait GcStore: Send + Sync {
    /// Runs deleted at or before `cutoff` (ms), ids after `after`, by id.
    async fn deleted_runs(&self, cutoff: i64, after: &str, limit: i64) -> Result<Vec<Purgeable>>;
    /// Logged models deleted (last updated) at or before `cutoff`.
    async fn deleted_logged_models(
        &self,
        cutoff: i64,
        after: &str,
        limit: i64,
    ) -> Result<Vec<Purgeable>>;
    /// Experiments deleted (last updated) at or before `cutoff`, ids above
    /// `after`.
    async fn deleted_experiments(
        &self,
        cutoff: i64,
        after: i64,
        limit: i64,
    ) -> Result<Vec<Purgeable>>;
    /// Every run of an experiment, whatever its stage.
    async fn runs_of_experiment(
        &self,
        experiment_id: &str,
        after: &str,
        limit: i64,
    ) -> Result<Vec<Purgeable>>;
    /// Every logged model of an experiment, whatever its stage.
    async fn logged_models_of_experiment(
        &self,
        experiment_id: &str,
        after: &str,
        limit: i64,
    ) -> Result<Vec<Purgeable>>;
    /// Removes the runs with their metrics, params, tags and inputs; returns
    /// the rows removed. Metric rows go in bounded chunks, each committed,
    /// so a run with millions of them never makes one long statement; the
    /// run row goes last, so an interrupted purge is finished by the next.
    async fn purge_runs(&self, run_ids: &[String]) -> Result<u64>;
    /// Removes the logged models with their metrics, params and tags.
    async fn purge_logged_models(&self, model_ids: &[String]) -> Result<u64>;
    /// Removes an experiment whose runs and models are gone, with its tags
    /// and the rows that name it without a cascading key.
    async fn purge_experiment(&self, experiment_id: &str) -> Result<u64>;
}
