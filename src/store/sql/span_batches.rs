//! Group commit for span ingest. OTLP exports arrive many at a time and
//! each is small (a trace of a few spans), so a transaction per export
//! spends most of its time on what every transaction costs: the commit's
//! log write, the experiment check, a statement per table. Exports that
//! arrive while another is being written wait for it and are then written
//! together, in one transaction with one statement per table; a request
//! is answered once its spans are committed.
//!
//! If a combined write fails, each export in it is written again on its
//! own, so one export's error (another workspace's trace id, a deleted
//! experiment) is its own and never another's.

use std::sync::Mutex;

use tokio::sync::{oneshot, Semaphore};

use super::spans::write_spans_to;
use super::{Dialect, SqlStore};
use crate::error::{MlflowError, Result};
use crate::model::Workspace;
use crate::store::traces::NewSpan;

/// The most spans one combined transaction takes; exports beyond it wait
/// for the next one.
const MAX_SPANS_PER_COMMIT: usize = 5000;
/// Transactions writing spans at once on PostgreSQL.
const POSTGRES_WRITERS: usize = 3;

/// Exports waiting to be written, and the writers' permits: one on SQLite
/// (it has one writer anyway); on PostgreSQL a few, so that its cores work
/// on several transactions while exports keep gathering.
pub(super) struct SpanQueue {
    pending: Mutex<Vec<Export>>,
    writers: Semaphore,
}

impl SpanQueue {
    pub(super) fn new(dialect: Dialect) -> Self {
        Self {
            pending: Mutex::default(),
            writers: Semaphore::new(match dialect {
                Dialect::Sqlite => 1,
                Dialect::Postgres => POSTGRES_WRITERS,
            }),
        }
    }
}

struct Export {
    ws: Workspace,
    experiment_id: String,
    spans: Vec<NewSpan>,
    done: oneshot::Sender<Result<()>>,
}

impl SqlStore {
    /// Queues one export's spans and waits until they are written.
    pub(super) async fn ingest_spans(
        &self,
        ws: &Workspace,
        experiment_id: &str,
        spans: Vec<NewSpan>,
    ) -> Result<()> {
        let (done, written) = oneshot::channel();
        self.span_queue
            .pending
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push(Export {
                ws: ws.clone(),
                experiment_id: experiment_id.to_string(),
                spans,
                done,
            });
        // The write runs as its own task: a client that disconnects drops
        // this future, never a transaction that holds others' spans.
        let store = self.clone();
        tokio::spawn(async move { store.write_pending().await });
        written
            .await
            .map_err(|_| MlflowError::internal("the span writer stopped before answering"))?
    }

    /// Takes what is waiting (up to the limit) and writes it.
    async fn write_pending(&self) {
        let Ok(_writing) = self.span_queue.writers.acquire().await else {
            return;
        };
        let exports = {
            let mut pending = self
                .span_queue
                .pending
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            let mut spans = 0;
            let take = pending
                .iter()
                .take_while(|e| {
                    spans += e.spans.len();
                    spans <= MAX_SPANS_PER_COMMIT
                })
                .count()
                .max(1)
                .min(pending.len());
            pending.drain(..take).collect::<Vec<_>>()
        };
        if exports.is_empty() {
            return;
        }
        if exports.len() > 1 && self.write_together(&exports).await.is_ok() {
            for export in exports {
                let _ = export.done.send(Ok(()));
            }
            return;
        }
        for export in exports {
            let result = self.write_together(std::slice::from_ref(&export)).await;
            let _ = export.done.send(result);
        }
    }

    /// One transaction for all of `exports`, one write per experiment.
    async fn write_together(&self, exports: &[Export]) -> Result<()> {
        let mut groups: Vec<(&Workspace, &str, Vec<&NewSpan>)> = Vec::new();
        for export in exports {
            let group = groups
                .iter_mut()
                .find(|(ws, id, _)| *ws == &export.ws && *id == export.experiment_id);
            match group {
                Some((_, _, spans)) => spans.extend(&export.spans),
                None => groups.push((
                    &export.ws,
                    &export.experiment_id,
                    export.spans.iter().collect(),
                )),
            }
        }
        let mut tx = self.db.begin().await?;
        for (ws, experiment_id, spans) in &groups {
            write_spans_to(&mut tx, self, ws, experiment_id, spans).await?;
        }
        Ok(tx.commit().await?)
    }
}
