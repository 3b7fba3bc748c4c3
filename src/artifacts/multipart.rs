//! Multipart uploads through the proxy (`mpu/create`, a part endpoint,
//! `mpu/complete`, `mpu/abort`), mapped onto the store's native multipart
//! upload (S3, Azure block blobs, GCS).
//!
//! Stateless on purpose: object_store's `MultipartStore` keeps nothing in
//! the process, so any replica can serve any part of an upload. Nothing is
//! visible under the final name before `complete`: an aborted or abandoned
//! upload leaves no object (S3 and GCS drop the parts on abort; Azure's
//! uncommitted blocks expire on their own).

use std::sync::Arc;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use object_store::multipart::{MultipartStore, PartId};
use object_store::PutPayloadMut;
use tokio::sync::Semaphore;

use super::{body_error, location, ArtifactPath, ArtifactStore};
use crate::error::{ErrorCode, MlflowError, Result};

/// Parts in one upload at most: S3's limit, which MLflow's client also
/// assumes.
pub const MAX_PARTS: u64 = 10_000;

/// Largest part the proxy accepts. object_store's `put_part` takes the part
/// whole, so parts are held in memory while they go to the store; this and
/// [`PARTS_IN_MEMORY`] bound that memory. MLflow's client sends 10 MiB parts
/// (`MLFLOW_MULTIPART_UPLOAD_CHUNK_SIZE`).
pub const MAX_PART_SIZE: u64 = 64 * 1024 * 1024;

/// Bytes of parts held in memory at once, over all uploads; further parts
/// wait for room (their senders see a slower upload, not an error).
const PARTS_IN_MEMORY: u64 = 64 * 1024 * 1024;

/// Semaphore permits are counted in KiB so a u32 covers the budget.
const PERMIT_BYTES: u64 = 1024;

/// A store's native multipart upload and the memory budget of its parts.
pub(super) struct Native {
    store: Arc<dyn MultipartStore>,
    /// Azure block blobs need no upload id (object_store's is always
    /// empty); the proxy still hands the client one, and ignores it.
    ids_unused: bool,
    budget: Semaphore,
}

impl Native {
    pub(super) fn new(store: Arc<dyn MultipartStore>, ids_unused: bool) -> Self {
        Self {
            store,
            ids_unused,
            budget: Semaphore::new((PARTS_IN_MEMORY / PERMIT_BYTES) as usize),
        }
    }

    /// The id the store knows an upload by.
    fn native_id(&self, upload_id: &str) -> Result<String> {
        if upload_id.is_empty() {
            return Err(MlflowError::invalid_parameter("Missing upload_id"));
        }
        Ok(if self.ids_unused {
            String::new()
        } else {
            upload_id.to_string()
        })
    }
}

/// One part of a `complete` request: MLflow's `MultipartUploadPart`.
#[derive(Debug, Clone)]
pub struct UploadPart {
    /// 1-based, as in S3 and MLflow.
    pub part_number: i64,
    /// What the part endpoint answered as `ETag`.
    pub etag: String,
}

impl ArtifactStore {
    /// Whether `mpu/*` can be served: the destination has a native
    /// multipart upload. server-info advertises exactly this.
    pub fn supports_multipart(&self) -> bool {
        self.multipart.is_some()
    }

    fn native(&self) -> Result<&Native> {
        self.multipart.as_ref().ok_or_else(|| {
            // MLflow's exact message: the client falls back to a plain PUT
            // when the 501's message starts with it.
            MlflowError::new(
                ErrorCode::NotImplemented,
                "Multipart upload is not supported for the current artifact repository",
            )
        })
    }

    /// Starts an upload of `num_parts` parts to `path`; returns its id.
    pub async fn create_multipart(&self, path: &ArtifactPath, num_parts: i64) -> Result<String> {
        let native = self.native()?;
        file_path(path)?;
        if !(1..=MAX_PARTS as i64).contains(&num_parts) {
            return Err(MlflowError::invalid_parameter(format!(
                "num_parts must be between 1 and {MAX_PARTS}, got {num_parts}"
            )));
        }
        let id = native
            .store
            .create_multipart(&location(path)?)
            .await
            .map_err(|e| upload_error(e, path))?;
        Ok(if native.ids_unused {
            uuid::Uuid::new_v4().simple().to_string()
        } else {
            id
        })
    }

    /// Stores part `part_number` (1-based) of an upload from a body of
    /// `content_length` bytes; returns the part's id, which the client
    /// hands back to [`Self::complete_multipart`] as its ETag.
    pub async fn put_part<S, E>(
        &self,
        path: &ArtifactPath,
        upload_id: &str,
        part_number: i64,
        content_length: Option<u64>,
        body: S,
    ) -> Result<String>
    where
        S: Stream<Item = std::result::Result<Bytes, E>> + Send,
        E: std::fmt::Display,
    {
        let native = self.native()?;
        file_path(path)?;
        let id = native.native_id(upload_id)?;
        let index = part_index(part_number)?;
        let size = content_length.ok_or_else(|| {
            MlflowError::invalid_parameter("A part upload needs a Content-Length header")
        })?;
        if size > MAX_PART_SIZE {
            return Err(MlflowError::invalid_parameter(format!(
                "Parts are at most {MAX_PART_SIZE} bytes, this one is {size}; \
                 lower MLFLOW_MULTIPART_UPLOAD_CHUNK_SIZE"
            )));
        }
        let permits = size.div_ceil(PERMIT_BYTES).max(1) as u32;
        let _room = native
            .budget
            .acquire_many(permits)
            .await
            .map_err(MlflowError::internal)?;
        let mut payload = PutPayloadMut::new();
        let mut body = std::pin::pin!(body);
        while let Some(chunk) = body.next().await {
            payload.push(chunk.map_err(body_error)?);
            if payload.content_length() as u64 > size {
                return Err(MlflowError::invalid_parameter(
                    "The part is longer than its Content-Length",
                ));
            }
        }
        let part = native
            .store
            .put_part(&location(path)?, &id, index, payload.freeze())
            .await
            .map_err(|e| upload_error(e, path))?;
        crate::observe::metrics::metrics()
            .artifact_bytes_in
            .inc_by(size);
        Ok(part.content_id)
    }

    /// Joins the parts, in part-number order, into the object at `path`.
    /// The parts must be numbered 1..=N, each once.
    pub async fn complete_multipart(
        &self,
        path: &ArtifactPath,
        upload_id: &str,
        mut parts: Vec<UploadPart>,
    ) -> Result<()> {
        let native = self.native()?;
        file_path(path)?;
        let id = native.native_id(upload_id)?;
        if parts.is_empty() {
            return Err(MlflowError::invalid_parameter("parts must not be empty"));
        }
        parts.sort_by_key(|p| p.part_number);
        for (expected, part) in (1..).zip(&parts) {
            if part.part_number != expected {
                return Err(MlflowError::invalid_parameter(format!(
                    "parts must be numbered 1 to {} without gaps or repeats; \
                     part {expected} is missing or repeated",
                    parts.len()
                )));
            }
        }
        if parts.len() as u64 > MAX_PARTS {
            return Err(MlflowError::invalid_parameter(format!(
                "At most {MAX_PARTS} parts"
            )));
        }
        let parts = parts
            .into_iter()
            .map(|p| PartId { content_id: p.etag })
            .collect();
        native
            .store
            .complete_multipart(&location(path)?, &id, parts)
            .await
            .map_err(|e| upload_error(e, path))?;
        Ok(())
    }

    /// Drops an upload and its parts; nothing appears under `path`.
    pub async fn abort_multipart(&self, path: &ArtifactPath, upload_id: &str) -> Result<()> {
        let native = self.native()?;
        file_path(path)?;
        let id = native.native_id(upload_id)?;
        native
            .store
            .abort_multipart(&location(path)?, &id)
            .await
            .map_err(|e| upload_error(e, path))
    }
}

fn file_path(path: &ArtifactPath) -> Result<()> {
    if path.is_root() {
        return Err(MlflowError::invalid_parameter(
            "Artifact path must end in a file name",
        ));
    }
    Ok(())
}

/// object_store's 0-based part index from MLflow's 1-based part number.
fn part_index(part_number: i64) -> Result<usize> {
    if !(1..=MAX_PARTS as i64).contains(&part_number) {
        return Err(MlflowError::invalid_parameter(format!(
            "part_number must be between 1 and {MAX_PARTS}, got {part_number}"
        )));
    }
    Ok((part_number - 1) as usize)
}

fn upload_error(err: object_store::Error, path: &ArtifactPath) -> MlflowError {
    match err {
        // S3 and GCS answer an unknown (or finished) upload id with 404.
        object_store::Error::NotFound { .. } => MlflowError::not_found(format!(
            "No such multipart upload to '{}': unknown, completed or aborted upload_id",
            path.as_str()
        )),
        // Other refusals (a part's ETag that does not match, say) are the
        // store's own errors, 500 as in MLflow, with no detail to the client.
        other => super::store_error(other, path),
    }
}

#[cfg(test)]
mod tests {
    use futures::TryStreamExt;

    use super::*;

    fn path(raw: &str) -> ArtifactPath {
        ArtifactPath::parse(raw).unwrap()
    }

    fn body(data: &[u8]) -> impl Stream<Item = std::result::Result<Bytes, String>> {
        futures::stream::iter(vec![Ok(Bytes::copy_from_slice(data))])
    }

    async fn put(store: &ArtifactStore, p: &str, id: &str, n: i64, data: &[u8]) -> Result<String> {
        store
            .put_part(&path(p), id, n, Some(data.len() as u64), body(data))
            .await
    }

    async fn read(store: &ArtifactStore, p: &str) -> Vec<u8> {
        let chunks: Vec<Bytes> = store
            .get(&path(p), None)
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap();
        chunks.concat()
    }

    #[tokio::test]
    async fn parts_in_any_order_join_in_part_number_order() {
        let store = ArtifactStore::in_memory();
        let p = "1/r/artifacts/big.bin";
        let id = store.create_multipart(&path(p), 3).await.unwrap();
        let mut parts = Vec::new();
        for (n, data) in [(3, &b"three"[..]), (1, b"one-"), (2, b"two-")] {
            let etag = put(&store, p, &id, n, data).await.unwrap();
            parts.push(UploadPart {
                part_number: n,
                etag,
            });
        }
        assert!(
            store.head(&path(p)).await.is_err(),
            "invisible until complete"
        );
        store
            .complete_multipart(&path(p), &id, parts)
            .await
            .unwrap();
        assert_eq!(read(&store, p).await, b"one-two-three");
    }

    #[tokio::test]
    async fn aborted_uploads_leave_nothing() {
        let store = ArtifactStore::in_memory();
        let p = "x/aborted.bin";
        let id = store.create_multipart(&path(p), 1).await.unwrap();
        put(&store, p, &id, 1, b"data").await.unwrap();
        store.abort_multipart(&path(p), &id).await.unwrap();
        assert!(store.head(&path(p)).await.is_err());
        // (The in-memory store reports unknown ids as generic errors; S3's
        // 404 is checked end to end.)
        assert!(put(&store, p, &id, 1, b"more").await.is_err());
    }

    #[tokio::test]
    async fn hostile_requests_are_refused() {
        let store = ArtifactStore::in_memory();
        let p = "x/f.bin";
        let invalid =
            |r: Result<String>| assert_eq!(r.unwrap_err().code, ErrorCode::InvalidParameterValue);
        invalid(store.create_multipart(&path(p), 0).await);
        invalid(store.create_multipart(&path(p), 10_001).await);
        invalid(store.create_multipart(&ArtifactPath::root(), 1).await);
        let id = store.create_multipart(&path(p), 2).await.unwrap();
        for n in [0, -1, 10_001] {
            invalid(put(&store, p, &id, n, b"x").await);
        }
        invalid(put(&store, p, "", 1, b"x").await);
        assert!(put(&store, p, "999999", 1, b"x").await.is_err());
        // No Content-Length, one too large, one longer than announced.
        invalid(store.put_part(&path(p), &id, 1, None, body(b"x")).await);
        invalid(
            store
                .put_part(&path(p), &id, 1, Some(MAX_PART_SIZE + 1), body(b"x"))
                .await,
        );
        invalid(store.put_part(&path(p), &id, 1, Some(1), body(b"xy")).await);

        let part = |n| UploadPart {
            part_number: n,
            etag: String::new(),
        };
        for parts in [
            vec![],
            vec![part(1), part(1)],
            vec![part(2)],
            vec![part(1), part(3)],
        ] {
            let err = store
                .complete_multipart(&path(p), &id, parts.clone())
                .await
                .unwrap_err();
            assert_eq!(err.code, ErrorCode::InvalidParameterValue, "{parts:?}");
        }
        assert!(store.head(&path(p)).await.is_err());
    }

    #[tokio::test]
    async fn local_destinations_answer_not_implemented() {
        let dir = tempfile::tempdir().unwrap();
        let store = ArtifactStore::open(dir.path().to_str().unwrap()).unwrap();
        let err = store.create_multipart(&path("a/b"), 1).await.unwrap_err();
        assert_eq!(err.code, ErrorCode::NotImplemented);
        assert!(err.message.starts_with("Multipart upload is not supported"));
    }
}
