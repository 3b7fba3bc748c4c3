//! Artifact storage: `object_store` behind MLflow's artifact operations (put,
//! get, list, delete) on paths relative to `--artifacts-destination`.
//!
//! Path safety lives here: every operation takes an [`ArtifactPath`], and on
//! the local filesystem no operation follows a symlink inside the root.
//! Cloud destinations are built in `cloud`; MLflow's multipart uploads map
//! onto the store's own in `multipart`. No HTTP here; `api::artifacts` maps
//! requests onto these methods.

mod cloud;
mod locations;
mod multipart;
mod path;

pub use locations::LocationPolicy;
pub use multipart::UploadPart;
pub use path::{from_proxied_uri, resolve_if_local, ArtifactPath};

use std::io::ErrorKind;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use anyhow::Context as _;
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{Stream, StreamExt, TryStreamExt};
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::multipart::MultipartStore;
use object_store::path::Path;
use object_store::{
    GetOptions, GetRange, GetResultPayload, ObjectStore, ObjectStoreExt, PutPayloadMut,
    WriteMultipart,
};
use serde::Serialize;

use crate::error::{ErrorCode, MlflowError, Result};
use crate::observe::metrics::metrics;

/// Bytes gathered before an upload switches from one `put` to a multipart
/// upload; also the part size (S3's minimum part is 5 MiB). Small files,
/// the common case, are one request to the store.
const PART_SIZE: usize = 5 * 1024 * 1024;
/// Parts of one upload in flight at once; with [`PART_SIZE`] this bounds an
/// upload's memory to ~25 MiB whatever the file size.
const MAX_PARTS_IN_FLIGHT: usize = 4;

/// MLflow's `FileInfo`: one entry of a directory listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileInfo {
    pub path: String,
    pub is_dir: bool,
    /// Absent for directories, as in MLflow.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file_size: Option<u64>,
}

/// What a download needs to know before streaming: size and validators.
#[derive(Debug, Clone)]
pub struct ArtifactMeta {
    pub size: u64,
    pub last_modified: SystemTime,
    pub etag: Option<String>,
}

/// A file's bytes (or a range of them) as a stream.
pub type ByteStream = BoxStream<'static, std::io::Result<Bytes>>;

/// The artifact destination: a local directory or a cloud bucket prefix.
pub struct ArtifactStore {
    store: Arc<dyn ObjectStore>,
    /// The canonical root directory when the destination is local; symlink
    /// checks need it (object stores have no symlinks).
    local_root: Option<PathBuf>,
    /// The store's native multipart upload, which the proxy's `mpu/*`
    /// endpoints map onto; `None` on the local filesystem (the client then
    /// falls back to one PUT).
    multipart: Option<multipart::Native>,
}

impl std::fmt::Debug for ArtifactStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArtifactStore")
            .field("store", &self.store)
            .field("local_root", &self.local_root)
            .field("multipart", &self.multipart.is_some())
            .finish()
    }
}

impl ArtifactStore {
    /// Opens `--artifacts-destination`: `s3://`, `gs://`, `az://` (also
    /// `abfs[s]://`, `wasb[s]://`) URLs with credentials from each cloud's
    /// environment variables, else a local directory (`file://` or a plain
    /// path), created if missing.
    pub fn open(destination: &str) -> anyhow::Result<Self> {
        match url::Url::parse(destination) {
            Ok(url) if url.scheme().len() > 1 && url.scheme() != "file" => {
                let opened = cloud::open(&url, &cloud::process_env())
                    .with_context(|| format!("artifact destination {destination}"))?;
                Ok(Self {
                    store: opened.store,
                    local_root: None,
                    multipart: Some(multipart::Native::new(
                        opened.multipart,
                        opened.cloud == cloud::Cloud::Azure,
                    )),
                })
            }
            Ok(url) if url.scheme() == "file" => {
                let dir = url
                    .to_file_path()
                    .map_err(|()| anyhow::anyhow!("not a local path: {destination}"))?;
                Self::local(dir)
            }
            // A plain path (a one-letter "scheme" is a Windows drive).
            _ => Self::local(PathBuf::from(destination)),
        }
    }

    fn local(dir: PathBuf) -> anyhow::Result<Self> {
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("creating artifact destination {}", dir.display()))?;
        let root = std::fs::canonicalize(&dir)?;
        // Cleanup removes directories emptied by a delete, as MLflow's
        // `shutil.rmtree` leaves none behind.
        let store = LocalFileSystem::new_with_prefix(&root)?.with_automatic_cleanup(true);
        Ok(Self {
            store: Arc::new(store),
            local_root: Some(root),
            multipart: None,
        })
    }

    /// A store in memory, with multipart uploads like a cloud store, for
    /// tests.
    pub fn in_memory() -> Self {
        let store = Arc::new(InMemory::new());
        Self {
            store: store.clone(),
            local_root: None,
            multipart: Some(multipart::Native::new(
                store as Arc<dyn MultipartStore>,
                false,
            )),
        }
    }

    /// Writes `body` to `path`, replacing any file there. Nothing is visible
    /// under `path` until the whole body arrived: a body error aborts the
    /// upload and leaves the previous state.
    pub async fn put<S, E>(&self, path: &ArtifactPath, body: S) -> Result<u64>
    where
        S: Stream<Item = std::result::Result<Bytes, E>> + Send,
        E: std::fmt::Display,
    {
        if path.is_root() {
            return Err(MlflowError::invalid_parameter(
                "Artifact path must end in a file name",
            ));
        }
        self.refuse_symlinks(path).await?;
        let location = location(path)?;
        let mut body = std::pin::pin!(body);
        let mut head = PutPayloadMut::new();
        let mut size = 0u64;
        // Small bodies: one atomic put.
        while head.content_length() < PART_SIZE {
            match body.next().await {
                Some(chunk) => {
                    let chunk = chunk.map_err(body_error)?;
                    size += chunk.len() as u64;
                    head.push(chunk);
                }
                None => {
                    self.store
                        .put(&location, head.freeze())
                        .await
                        .map_err(|e| store_error(e, path))?;
                    metrics().artifact_bytes_in.inc_by(size);
                    return Ok(size);
                }
            }
        }
        let upload = self
            .store
            .put_multipart(&location)
            .await
            .map_err(|e| store_error(e, path))?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_SIZE);
        for part in head.freeze() {
            writer.put(part);
        }
        let streamed: Result<()> = async {
            while let Some(chunk) = body.next().await {
                let chunk = chunk.map_err(body_error)?;
                size += chunk.len() as u64;
                writer
                    .wait_for_capacity(MAX_PARTS_IN_FLIGHT)
                    .await
                    .map_err(|e| store_error(e, path))?;
                writer.put(chunk);
            }
            Ok(())
        }
        .await;
        match streamed {
            Ok(()) => {
                writer.finish().await.map_err(|e| store_error(e, path))?;
                metrics().artifact_bytes_in.inc_by(size);
                Ok(size)
            }
            Err(err) => {
                if let Err(abort) = writer.abort().await {
                    tracing::warn!(%abort, path = path.as_str(), "aborting an upload failed");
                }
                Err(err)
            }
        }
    }

    /// Whether the destination answers: a lookup of a name nothing has, which
    /// must come back "not found" (readiness).
    pub async fn probe(&self) -> Result<()> {
        match self
            .store
            .head(&Path::from(".ferroflow-readiness-probe"))
            .await
        {
            Ok(_) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(err) => Err(MlflowError::internal(err)),
        }
    }

    /// Size and validators of the file at `path`: RESOURCE_DOES_NOT_EXIST if
    /// there is none, INVALID_PARAMETER_VALUE if it is a directory.
    pub async fn head(&self, path: &ArtifactPath) -> Result<ArtifactMeta> {
        self.refuse_symlinks(path).await?;
        let location = location(path)?;
        match self.store.head(&location).await {
            Ok(meta) => Ok(ArtifactMeta {
                size: meta.size,
                last_modified: meta.last_modified.into(),
                etag: meta.e_tag,
            }),
            Err(object_store::Error::NotFound { .. }) if self.is_dir(&location).await? => Err(
                MlflowError::invalid_parameter(format!("'{}' is a directory", path.as_str())),
            ),
            Err(err) => Err(store_error(err, path)),
        }
    }

    /// The bytes of `path`, all or the given (already validated) range.
    pub async fn get(&self, path: &ArtifactPath, range: Option<Range<u64>>) -> Result<ByteStream> {
        self.refuse_symlinks(path).await?;
        let location = location(path)?;
        let options = GetOptions {
            range: range.map(GetRange::Bounded),
            ..GetOptions::default()
        };
        let result = self
            .store
            .get_opts(&location, options)
            .await
            .map_err(|e| store_error(e, path))?;
        let stream = match result.payload {
            // object_store reads local files 8 KiB per blocking task, which
            // caps a download near 170 MB/s; larger reads, still one at a time.
            GetResultPayload::File(file, _) => file_stream(file, result.range),
            GetResultPayload::Stream(stream) => stream.map_err(std::io::Error::other).boxed(),
        };
        Ok(stream
            .inspect_ok(|chunk| {
                metrics().artifact_bytes_out.inc_by(chunk.len() as u64);
            })
            .boxed())
    }

    /// The immediate children of directory `dir` by basename, sorted. A file
    /// or a missing path lists as empty, as in MLflow.
    pub async fn list(&self, dir: &ArtifactPath) -> Result<Vec<FileInfo>> {
        self.refuse_symlinks(dir).await?;
        let prefix = location(dir)?;
        let listing = match self.store.list_with_delimiter(Some(&prefix)).await {
            Ok(listing) => listing,
            Err(object_store::Error::NotFound { .. }) => return Ok(Vec::new()),
            // Listing a file on the local filesystem is an error there;
            // MLflow answers an empty listing.
            Err(_) if self.head(dir).await.is_ok() => return Ok(Vec::new()),
            Err(err) => return Err(store_error(err, dir)),
        };
        let dirs = listing.common_prefixes.iter().filter_map(|p| {
            Some(FileInfo {
                path: p.filename()?.to_string(),
                is_dir: true,
                file_size: None,
            })
        });
        let files = listing.objects.iter().filter_map(|o| {
            Some(FileInfo {
                path: o.location.filename()?.to_string(),
                is_dir: false,
                file_size: Some(o.size),
            })
        });
        let mut entries: Vec<FileInfo> = dirs.chain(files).collect();
        // MLflow's local repository sorts by path; stores differ otherwise.
        entries.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(entries)
    }

    /// Deletes the file at `path`, or everything under it if it is a
    /// directory; returns the bytes of the files found under it (a lone
    /// file's are not looked up). Deleting nothing is not an error.
    pub async fn delete(&self, path: &ArtifactPath) -> Result<u64> {
        self.refuse_symlinks(path).await?;
        let location = location(path)?;
        if !path.is_root() {
            match self.store.delete(&location).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                // On the local filesystem a directory is not an object.
                Err(_) if self.is_dir(&location).await? => {}
                Err(err) => return Err(store_error(err, path)),
            }
        }
        // `delete_stream` wants a 'static stream: the count is shared.
        let bytes = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let counted = bytes.clone();
        let under = self
            .store
            .list(Some(&location))
            .map_ok(move |meta| {
                counted.fetch_add(meta.size, std::sync::atomic::Ordering::Relaxed);
                meta.location
            })
            .boxed();
        self.store
            .delete_stream(under)
            .try_collect::<Vec<_>>()
            .await
            .map_err(|e| store_error(e, path))?;
        Ok(bytes.load(std::sync::atomic::Ordering::Relaxed))
    }

    /// The bytes of the files under `path` (what [`Self::delete`] would
    /// remove).
    pub async fn size_under(&self, path: &ArtifactPath) -> Result<u64> {
        self.refuse_symlinks(path).await?;
        let location = location(path)?;
        self.store
            .list(Some(&location))
            .try_fold(0u64, |bytes, meta| async move { Ok(bytes + meta.size) })
            .await
            .map_err(|e| store_error(e, path))
    }

    async fn is_dir(&self, location: &Path) -> Result<bool> {
        let mut under = self.store.list(Some(location));
        match under.next().await {
            Some(Ok(_)) => Ok(true),
            None | Some(Err(object_store::Error::NotFound { .. })) => Ok(false),
            Some(Err(err)) => Err(MlflowError::internal(err)),
        }
    }

    /// On a local destination, refuses `path` if any existing component of
    /// it is a symlink: a link planted in the root must not lead reads or
    /// writes outside it. Object stores have no links.
    async fn refuse_symlinks(&self, path: &ArtifactPath) -> Result<()> {
        let Some(root) = &self.local_root else {
            return Ok(());
        };
        let mut current = root.clone();
        let segments: Vec<String> = path.segments().map(str::to_string).collect();
        let linked = tokio::task::spawn_blocking(move || {
            for segment in segments {
                current.push(segment);
                match std::fs::symlink_metadata(&current) {
                    Ok(meta) if meta.file_type().is_symlink() => return true,
                    Ok(_) => {}
                    // Nothing exists below a missing component.
                    Err(_) => return false,
                }
            }
            false
        })
        .await
        .map_err(MlflowError::internal)?;
        if linked {
            return Err(MlflowError::invalid_parameter(format!(
                "Invalid path {:?}: it passes through a symbolic link",
                path.as_str()
            )));
        }
        Ok(())
    }
}

/// Bytes of a local file read per blocking task while streaming a download.
const FILE_READ_CHUNK: u64 = 512 * 1024;

/// `range` of a local file as a stream of [`FILE_READ_CHUNK`] reads, one in
/// flight at a time (memory stays at a chunk or two per download).
fn file_stream(file: std::fs::File, range: Range<u64>) -> ByteStream {
    futures::stream::try_unfold(
        (Some(file), range.start, range.end),
        |(file, position, end)| async move {
            let Some(mut file) = file.filter(|_| position < end) else {
                return Ok(None);
            };
            let len = (end - position).min(FILE_READ_CHUNK) as usize;
            let (file, chunk) = tokio::task::spawn_blocking(move || {
                use std::io::{Read, Seek, SeekFrom};
                let mut chunk = vec![0; len];
                file.seek(SeekFrom::Start(position))?;
                file.read_exact(&mut chunk)?;
                Ok::<_, std::io::Error>((file, chunk))
            })
            .await
            .map_err(std::io::Error::other)??;
            let next = (Some(file), position + len as u64, end);
            Ok(Some((Bytes::from(chunk), next)))
        },
    )
    .boxed()
}

fn location(path: &ArtifactPath) -> Result<Path> {
    Path::parse(path.as_str()).map_err(|e| {
        MlflowError::invalid_parameter(format!("Invalid path {:?}: {e}", path.as_str()))
    })
}

fn store_error(err: object_store::Error, path: &ArtifactPath) -> MlflowError {
    match err {
        object_store::Error::NotFound { .. } => {
            MlflowError::not_found(format!("No such artifact: '{}'", path.as_str()))
        }
        object_store::Error::InvalidPath { .. } => {
            MlflowError::invalid_parameter(format!("Invalid path {:?}", path.as_str()))
        }
        other => match io_error_kind(&other) {
            // The blob store is down or unreachable: only artifact calls
            // fail, with a 503 the client retries.
            Some(
                ErrorKind::ConnectionRefused
                | ErrorKind::ConnectionReset
                | ErrorKind::ConnectionAborted
                | ErrorKind::NotConnected
                | ErrorKind::TimedOut
                | ErrorKind::HostUnreachable
                | ErrorKind::NetworkUnreachable,
            ) => {
                tracing::warn!(err = %other, "artifact store unreachable");
                MlflowError::new(
                    ErrorCode::TemporarilyUnavailable,
                    "The artifact store is unavailable; retry later.",
                )
            }
            Some(ErrorKind::StorageFull) => {
                tracing::error!(err = %other, "artifact destination full");
                MlflowError::new(
                    ErrorCode::TemporarilyUnavailable,
                    "The artifact store is out of space; nothing was stored.",
                )
            }
            _ => MlflowError::internal(other),
        },
    }
}

/// The kind of the I/O error at the root of `err`, if one is: object_store
/// wraps them (in its HTTP client's errors for the clouds).
fn io_error_kind(err: &(dyn std::error::Error + 'static)) -> Option<ErrorKind> {
    let mut current = Some(err);
    while let Some(err) = current {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            return Some(io.kind());
        }
        current = err.source();
    }
    None
}

fn body_error(err: impl std::fmt::Display) -> MlflowError {
    MlflowError::bad_request(format!("Reading the request body failed: {err}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(raw: &str) -> ArtifactPath {
        ArtifactPath::parse(raw).unwrap()
    }

    #[test]
    fn an_unreachable_or_full_store_is_a_503_not_a_500() {
        let wrapped = |kind: ErrorKind| object_store::Error::Generic {
            store: "S3",
            source: Box::new(std::io::Error::new(kind, "inner")),
        };
        for kind in [ErrorKind::ConnectionRefused, ErrorKind::StorageFull] {
            let err = store_error(wrapped(kind), &path("a/b"));
            assert_eq!(err.code, ErrorCode::TemporarilyUnavailable, "{kind:?}");
            assert!(!err.message.contains("inner"));
        }
        let other = store_error(wrapped(ErrorKind::InvalidData), &path("a/b"));
        assert_eq!(other.code, ErrorCode::InternalError);
    }

    fn body(chunks: Vec<Vec<u8>>) -> impl Stream<Item = std::result::Result<Bytes, String>> {
        futures::stream::iter(chunks.into_iter().map(|c| Ok(Bytes::from(c))))
    }

    async fn read(store: &ArtifactStore, p: &str, range: Option<Range<u64>>) -> Vec<u8> {
        let chunks: Vec<Bytes> = store
            .get(&path(p), range)
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap();
        chunks.concat()
    }

    async fn behaves_like_mlflow(store: ArtifactStore) {
        store
            .put(&path("1/r/artifacts/a.txt"), body(vec![b"hello".to_vec()]))
            .await
            .unwrap();
        store
            .put(&path("1/r/artifacts/d/e/b.bin"), body(vec![vec![1; 3]]))
            .await
            .unwrap();
        // Overwrites silently.
        store
            .put(
                &path("1/r/artifacts/a.txt"),
                body(vec![b"hel".to_vec(), b"lo!".to_vec()]),
            )
            .await
            .unwrap();
        assert_eq!(read(&store, "1/r/artifacts/a.txt", None).await, b"hello!");
        assert_eq!(read(&store, "1/r/artifacts/a.txt", Some(1..3)).await, b"el");
        assert_eq!(
            store.head(&path("1/r/artifacts/a.txt")).await.unwrap().size,
            6
        );

        let listing = store.list(&path("1/r/artifacts")).await.unwrap();
        assert_eq!(
            listing,
            vec![
                FileInfo {
                    path: "a.txt".into(),
                    is_dir: false,
                    file_size: Some(6)
                },
                FileInfo {
                    path: "d".into(),
                    is_dir: true,
                    file_size: None
                },
            ]
        );
        assert!(
            store
                .list(&path("1/r/artifacts/a.txt"))
                .await
                .unwrap()
                .is_empty(),
            "a file lists as empty"
        );
        assert!(store.list(&path("1/missing")).await.unwrap().is_empty());

        let missing = store.head(&path("1/r/artifacts/nope")).await.unwrap_err();
        assert_eq!(missing.code, crate::error::ErrorCode::ResourceDoesNotExist);
        assert_eq!(missing.message, "No such artifact: '1/r/artifacts/nope'");
        let dir = store.head(&path("1/r/artifacts/d")).await.unwrap_err();
        assert_eq!(dir.code, crate::error::ErrorCode::InvalidParameterValue);

        store.delete(&path("1/r/artifacts/d")).await.unwrap();
        assert_eq!(store.list(&path("1/r/artifacts")).await.unwrap().len(), 1);
        store.delete(&path("1/r/artifacts/a.txt")).await.unwrap();
        store.delete(&path("1/r/artifacts/never")).await.unwrap();
        assert!(store.list(&path("1/r/artifacts")).await.unwrap().is_empty());
    }

    async fn large_uploads_are_whole_or_absent(store: ArtifactStore) {
        let part = vec![7u8; 1024 * 1024];
        let chunks = vec![part.clone(); 12];
        let size = store.put(&path("big.bin"), body(chunks)).await.unwrap();
        assert_eq!(size, 12 * 1024 * 1024);
        assert_eq!(store.head(&path("big.bin")).await.unwrap().size, size);
        assert_eq!(
            read(&store, "big.bin", Some(size - 2..size)).await,
            vec![7, 7]
        );

        // A body that fails half way (a client that hung up) leaves nothing.
        let failing = futures::stream::iter(
            std::iter::repeat_n(Ok(Bytes::from(part)), 8)
                .chain([Err("connection reset".to_string())]),
        );
        let err = store.put(&path("broken.bin"), failing).await.unwrap_err();
        assert_eq!(err.code, crate::error::ErrorCode::BadRequest);
        assert!(store.head(&path("broken.bin")).await.is_err());
        assert_eq!(
            store.list(&ArtifactPath::root()).await.unwrap().len(),
            1,
            "only big.bin"
        );
    }

    #[tokio::test]
    async fn in_memory_store() {
        behaves_like_mlflow(ArtifactStore::in_memory()).await;
        large_uploads_are_whole_or_absent(ArtifactStore::in_memory()).await;
    }

    #[tokio::test]
    async fn local_store() {
        let dir = tempfile::tempdir().unwrap();
        behaves_like_mlflow(ArtifactStore::open(dir.path().join("a").to_str().unwrap()).unwrap())
            .await;
        let dest = dir.path().join("b");
        large_uploads_are_whole_or_absent(ArtifactStore::open(dest.to_str().unwrap()).unwrap())
            .await;
        let leftovers: Vec<_> = std::fs::read_dir(&dest)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(leftovers, vec!["big.bin"], "no staging file left behind");
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn local_store_refuses_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        let outside = dir.path().join("outside");
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(outside.join("secret.txt"), "secret").unwrap();
        let root = dir.path().join("root");
        let store = ArtifactStore::open(root.to_str().unwrap()).unwrap();
        std::os::unix::fs::symlink(&outside, root.join("link")).unwrap();
        std::os::unix::fs::symlink(outside.join("secret.txt"), root.join("file-link")).unwrap();

        for p in ["link/secret.txt", "file-link", "link/new.txt"] {
            let p = path(p);
            let refused = |r: Result<()>| {
                assert_eq!(
                    r.unwrap_err().code,
                    crate::error::ErrorCode::InvalidParameterValue
                )
            };
            refused(store.head(&p).await.map(drop));
            refused(store.get(&p, None).await.map(drop));
            refused(store.list(&p).await.map(drop));
            refused(store.put(&p, body(vec![b"x".to_vec()])).await.map(drop));
            refused(store.delete(&p).await.map(drop));
        }
        assert!(!outside.join("new.txt").exists());
        assert_eq!(
            std::fs::read_to_string(outside.join("secret.txt")).unwrap(),
            "secret"
        );
    }

    #[test]
    fn destinations_parse() {
        let dir = tempfile::tempdir().unwrap();
        let local = dir.path().join("nested/mlartifacts");
        ArtifactStore::open(local.to_str().unwrap()).unwrap();
        assert!(local.is_dir(), "a local destination is created");
        ArtifactStore::open(&format!("file://{}", dir.path().join("f").display())).unwrap();
        // Cloud stores are built without network access; credentials are read lazily.
        ArtifactStore::open("s3://bucket/prefix").unwrap();
        ArtifactStore::open("gs://bucket/prefix").unwrap();
        // The account is in these URLs; `az://container` takes it from
        // AZURE_STORAGE_ACCOUNT_NAME instead.
        for azure in [
            "abfss://container@account.dfs.core.windows.net/prefix",
            "wasbs://container@account.blob.core.windows.net/prefix",
        ] {
            ArtifactStore::open(azure).unwrap_or_else(|e| panic!("{azure}: {e:#}"));
        }
        assert!(ArtifactStore::open("ftp://host/x").is_err());
        assert!(ArtifactStore::open("s3://bucket/p")
            .unwrap()
            .supports_multipart());
        assert!(!ArtifactStore::open(local.to_str().unwrap())
            .unwrap()
            .supports_multipart());
    }
}
