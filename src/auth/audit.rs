//! The audit log: every write and every refusal, written to the database by
//! a background task in batches, so a request pays a channel send, not an
//! INSERT. A burst beyond the queue's size is dropped with a warning rather
//! than slowing requests down.

use std::sync::Arc;

use tokio::sync::mpsc;

use crate::store::access::{AccessStore, AuditEvent};

/// Events waiting for the writer.
const QUEUE: usize = 10_000;
/// Events per write.
const BATCH: usize = 500;
/// The pause after a write: events gather meanwhile, so a busy server
/// writes a few batches a second rather than one row per request (on
/// SQLite, a row per request would take the writer from the requests).
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
                batch.clear();
                tokio::time::sleep(FLUSH_EVERY).await;
            }
        });
        Self { sender }
    }

    pub fn record(&self, event: AuditEvent) {
        if self.sender.try_send(event).is_err() {
            tracing::warn!("audit queue full: an audit event was dropped");
        }
    }
}
