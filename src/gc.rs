//! `ferroflow gc` (and `POST /api/3.0/ferroflow/gc`): permanently removes
//! runs, logged models and experiments soft-deleted longer ago than a given
//! age, with their rows and their artifacts in the destination.
//!
//! Resumable by construction: work goes in bounded batches, and for each
//! entity its artifacts go first and its row last, so an interrupted run
//! leaves entities still marked deleted (found again next time) and never a
//! row whose artifacts are gone without it, nor artifacts without a row.
//! Artifacts outside the server's destination (user-supplied locations) are
//! counted and left: the server does not hold credentials for them. Only
//! directories under an entity's own id are deleted (a run's, a logged
//! model's), never an experiment's root, which a client may have chosen.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde::Serialize;

use crate::artifacts::{from_proxied_uri, ArtifactStore};
use crate::error::{MlflowError, Result};
use crate::model::now_millis;
use crate::store::gc::Purgeable;
use crate::store::Store;

/// Entities per batch: one page read, one purge.
pub const DEFAULT_BATCH: i64 = 500;
/// Artifact roots deleted at once.
const ARTIFACT_DELETES_IN_FLIGHT: usize = 16;

#[derive(Debug, Clone)]
pub struct GcOptions {
    /// Only what was deleted at least this long ago.
    pub older_than: Duration,
    /// List what would go; remove nothing.
    pub dry_run: bool,
    pub batch: i64,
}

/// What a collection removed (or, dry, would remove).
#[derive(Debug, Default, Serialize, PartialEq)]
pub struct GcReport {
    pub dry_run: bool,
    pub runs: u64,
    pub logged_models: u64,
    pub experiments: u64,
    /// Database rows removed, the entities' own included.
    pub rows: u64,
    /// Bytes of artifact files removed from the destination.
    pub artifact_bytes: u64,
    /// Entities whose artifacts live outside the destination, left there.
    pub artifacts_left_outside: u64,
    /// Entities kept because their artifacts could not be removed (retried
    /// by the next collection).
    pub failed: Vec<String>,
    /// The first ids of what went (dry: would go), up to [`LISTED`].
    pub listed: Vec<String>,
    pub seconds: f64,
}

/// Ids named in a report at most.
const LISTED: usize = 1000;

/// `30d`, `1d12h`, `90m`, `3600s`, `0s`: MLflow's `--older-than` format.
pub fn parse_age(text: &str) -> Result<Duration> {
    let invalid = || {
        MlflowError::invalid_parameter(format!(
            "Could not parse any time information from '{text}'. Valid examples: 1d, 2h, 1d2h5m3s"
        ))
    };
    let mut seconds = 0u64;
    let mut digits = String::new();
    for c in text.trim().chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit = match c {
            'd' => 86_400,
            'h' => 3_600,
            'm' => 60,
            's' => 1,
            _ => return Err(invalid()),
        };
        let n: u64 = digits.parse().map_err(|_| invalid())?;
        seconds = n
            .checked_mul(unit)
            .and_then(|s| seconds.checked_add(s))
            .ok_or_else(invalid)?;
        digits.clear();
    }
    if !digits.is_empty() || text.trim().is_empty() {
        return Err(invalid());
    }
    Ok(Duration::from_secs(seconds))
}

/// Runs one collection.
pub async fn collect(
    store: &dyn Store,
    artifacts: Option<&ArtifactStore>,
    options: &GcOptions,
) -> Result<GcReport> {
    let started = Instant::now();
    let age = i64::try_from(options.older_than.as_millis()).unwrap_or(i64::MAX);
    let cutoff = now_millis().saturating_sub(age);
    let mut gc = Collector {
        store,
        artifacts,
        options,
        report: GcReport {
            dry_run: options.dry_run,
            ..GcReport::default()
        },
        counted: HashSet::new(),
    };
    let batch = options.batch;
    let mut after = String::new();
    while let Some(page) = next_page(store.deleted_runs(cutoff, &after, batch).await?, &mut after) {
        gc.runs(page).await?;
    }
    let mut after = String::new();
    while let Some(page) = next_page(
        store.deleted_logged_models(cutoff, &after, batch).await?,
        &mut after,
    ) {
        gc.logged_models(page).await?;
    }
    let mut after = String::new();
    while let Some(page) = next_page(
        store
            .deleted_experiments(cutoff, numeric(&after), batch)
            .await?,
        &mut after,
    ) {
        for experiment in page {
            gc.experiment(experiment).await?;
        }
    }
    gc.report.seconds = started.elapsed().as_secs_f64();
    Ok(gc.report)
}

/// The page, unless it is empty (there are no more), with `after` moved to
/// its last id, where the next page starts.
fn next_page(page: Vec<Purgeable>, after: &mut String) -> Option<Vec<Purgeable>> {
    *after = page.last()?.id.clone();
    Some(page)
}

/// Experiment ids are numbers, paged in numeric order; none read yet: -1.
fn numeric(after: &str) -> i64 {
    if after.is_empty() {
        -1
    } else {
        after.parse().unwrap_or(i64::MAX)
    }
}

struct Collector<'a> {
    store: &'a dyn Store,
    artifacts: Option<&'a ArtifactStore>,
    options: &'a GcOptions,
    report: GcReport,
    /// Dry runs remove nothing, so a deleted run of a deleted experiment
    /// is found twice (alone, then with its experiment): counted once.
    counted: HashSet<String>,
}

impl Collector<'_> {
    async fn runs(&mut self, page: Vec<Purgeable>) -> Result<()> {
        let ids = self.without_artifacts(page).await;
        self.report.runs += ids.len() as u64;
        if !self.options.dry_run {
            self.report.rows += self.store.purge_runs(&ids).await?;
        }
        Ok(())
    }

    async fn logged_models(&mut self, page: Vec<Purgeable>) -> Result<()> {
        let ids = self.without_artifacts(page).await;
        self.report.logged_models += ids.len() as u64;
        if !self.options.dry_run {
            self.report.rows += self.store.purge_logged_models(&ids).await?;
        }
        Ok(())
    }

    /// An experiment goes with all its runs and models, whatever their
    /// stage; it stays if any of them could not be removed.
    async fn experiment(&mut self, experiment: Purgeable) -> Result<()> {
        let failed_before = self.report.failed.len();
        let (store, batch) = (self.store, self.options.batch);
        let mut after = String::new();
        while let Some(page) = next_page(
            store
                .runs_of_experiment(&experiment.id, &after, batch)
                .await?,
            &mut after,
        ) {
            self.runs(page).await?;
        }
        let mut after = String::new();
        while let Some(page) = next_page(
            store
                .logged_models_of_experiment(&experiment.id, &after, batch)
                .await?,
            &mut after,
        ) {
            self.logged_models(page).await?;
        }
        if self.report.failed.len() > failed_before {
            return Ok(());
        }
        // Its own root is not deleted: a client may have named it, even as
        // another experiment's directory. Its runs' and models' directories
        // (each under their own id) are gone, and so is everything it held.
        self.report.experiments += 1;
        if self.report.listed.len() < LISTED {
            self.report.listed.push(experiment.id.clone());
        }
        if !self.options.dry_run {
            self.report.rows += self.store.purge_experiment(&experiment.id).await?;
        }
        Ok(())
    }

    /// Removes the page's artifacts (dry: only looks) and returns the ids
    /// whose rows may go: those whose artifacts are gone or not ours.
    async fn without_artifacts(&mut self, mut page: Vec<Purgeable>) -> Vec<String> {
        let dry_run = self.options.dry_run;
        if dry_run {
            page.retain(|entity| self.counted.insert(entity.id.clone()));
        }
        let artifacts = self.artifacts;
        let outcomes: Vec<(Purgeable, Outcome)> = futures::stream::iter(page)
            .map(|entity| async move {
                let outcome = remove_artifacts(artifacts, &entity.artifact_location, dry_run).await;
                (entity, outcome)
            })
            .buffered(ARTIFACT_DELETES_IN_FLIGHT)
            .collect()
            .await;
        let mut ids = Vec::with_capacity(outcomes.len());
        for (entity, outcome) in outcomes {
            match outcome {
                Outcome::Removed(bytes) => self.report.artifact_bytes += bytes,
                Outcome::Outside => self.report.artifacts_left_outside += 1,
                Outcome::Failed(err) => {
                    tracing::warn!(id = %entity.id, %err, "gc: could not remove artifacts; kept");
                    self.report.failed.push(entity.id);
                    continue;
                }
            }
            if self.report.listed.len() < LISTED {
                self.report.listed.push(entity.id.clone());
            }
            ids.push(entity.id);
        }
        ids
    }
}

enum Outcome {
    Removed(u64),
    Outside,
    Failed(String),
}

async fn remove_artifacts(
    artifacts: Option<&ArtifactStore>,
    location: &str,
    dry_run: bool,
) -> Outcome {
    let (Some(artifacts), Some(path)) = (artifacts, from_proxied_uri(location)) else {
        return Outcome::Outside;
    };
    let path = match path {
        // The destination's root is never an entity's own.
        Ok(path) if !path.is_root() => path,
        Ok(_) => return Outcome::Outside,
        Err(err) => return Outcome::Failed(err.message),
    };
    if dry_run {
        return match artifacts.size_under(&path).await {
            Ok(bytes) => Outcome::Removed(bytes),
            Err(err) => Outcome::Failed(err.message),
        };
    }
    match artifacts.delete(&path).await {
        Ok(bytes) => Outcome::Removed(bytes),
        Err(err) => Outcome::Failed(err.message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_as_mlflow_gc_reads_them() {
        assert_eq!(parse_age("30d").unwrap(), Duration::from_secs(30 * 86_400));
        assert_eq!(
            parse_age("1d2h5m3s").unwrap(),
            Duration::from_secs(86_400 + 7_200 + 300 + 3)
        );
        assert_eq!(parse_age("0s").unwrap(), Duration::ZERO);
        for bad in ["", "5", "1w", "d", "-1d", "99999999999999999999d"] {
            assert!(parse_age(bad).is_err(), "{bad}");
        }
    }
}
