//! The audit log: every write and every refusal, written to the database by
//! a background task in multi-row batches, so a request pays a channel send,
//! not an INSERT. When the writer falls behind, requests wait for room in the
//! queue: an audit log that drops events under load is not one.

use std::sync::Arc;

use tokio::sync::mpsc;

use crate::store::access::{AccessStore, AuditEvent};

/// Events waiting for the writer.
const QUEUE: usize = 10_000;
/// Events per write.
const BATCH: usize = 500;
/// The pause after a write that was not full: events gather meanwhile, so a
/// lightly loaded server writes a few batches a second rather than one row
/// per request (on SQLite, a row per request would take the writer from the
/// requests). After a full batch the writer goes on at once.
const FLUSH_EVERY: std::time::Duration = std::time::Duration::from_millis(100);

/// Where requests leave their audit events.
pub struct AuditLog {
    sender: mpsc::Sender<AuditEvent>,
}

impl AuditLog {
    /// Starts the writer; it stops once every sender is gone and the queue
    /// is drained.
    pub fn spawn(store: Arc<dyn AccessStore>) -> Self {
        let (sender, mut receiver) = mpsc::channel::<AuditEvent>(QUEUE);
        tokio::spawn(async move {
            let mut batch = Vec::with_capacity(BATCH);
            while receiver.recv_many(&mut batch, BATCH).await > 0 {
                if let Err(err) = store.append_audit(&batch).await {
                    tracing::error!(%err, events = batch.len(), "could not write audit events");
                }
                let full = batch.len() == BATCH;
                batch.clear();
                if !full {
                    tokio::time::sleep(FLUSH_EVERY).await;
                }
            }
        });
        Self { sender }
    }

    /// Queues an event, waiting while the queue is full.
    pub async fn record(&self, event: AuditEvent) {
        if self.sender.send(event).await.is_err() {
            tracing::error!("the audit writer has stopped: an audit event was not recorded");
        }
    }
}
