//! The artifact proxy (`/api/2.0/mlflow-artifacts/...`), the run artifact
//! listing (`/api/2.0/mlflow/artifacts/list`) and the UI download route
//! (`/get-artifact`). HTTP only: storage and path safety are in
//! `crate::artifacts`.

use std::ops::Range;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{FromRequestParts, OriginalUri, Path, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::wire::{self, Query, QueryFields};
use crate::app::AppState;
use crate::artifacts::{from_proxied_uri, ArtifactPath, ArtifactStore, FileInfo, UploadPart};
use crate::error::{ErrorCode, MlflowError, Result};
use crate::model::Workspace;

/// The artifact store, or MLflow's plain-text 503 when the server runs with
/// `--no-serve-artifacts`.
pub struct Artifacts(Arc<ArtifactStore>);

impl FromRequestParts<AppState> for Artifacts {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        match &state.artifacts {
            Some(store) => Ok(Self(store.clone())),
            None => Err((
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "Endpoint: {} disabled due to the mlflow server running with \
                     `--no-serve-artifacts`. To enable artifacts server functionality, run \
                     `mlflow server` with `--serve-artifacts`",
                    parts.uri.path()
                ),
            )
                .into_response()),
        }
    }
}

/// The `<path>` of `/artifacts/<path>`, already percent-decoded once by axum
/// and validated.
fn artifact_path(path: std::result::Result<Path<String>, PathRejection>) -> Result<ArtifactPath> {
    let Path(raw) =
        path.map_err(|e| MlflowError::invalid_parameter(format!("Invalid path: {e}")))?;
    ArtifactPath::parse(&raw)
}

/// `PUT /mlflow-artifacts/artifacts/<path>`: the raw body, any Content-Type,
/// streamed into the store.
pub async fn upload(
    Artifacts(store): Artifacts,
    path: std::result::Result<Path<String>, PathRejection>,
    body: Body,
) -> Result<Json<Value>> {
    let path = artifact_path(path)?;
    store.put(&path, body.into_data_stream()).await?;
    Ok(Json(json!({})))
}

/// `GET /mlflow-artifacts/artifacts/<path>`.
pub async fn download(
    Artifacts(store): Artifacts,
    path: std::result::Result<Path<String>, PathRejection>,
    headers: HeaderMap,
) -> Result<Response> {
    let path = artifact_path(path)?;
    serve_file(&store, &path, &headers).await
}

/// `DELETE /mlflow-artifacts/artifacts/<path>`, recursive.
pub async fn delete(
    Artifacts(store): Artifacts,
    path: std::result::Result<Path<String>, PathRejection>,
) -> Result<Json<Value>> {
    let path = artifact_path(path)?;
    store.delete(&path).await?;
    Ok(Json(json!({})))
}

#[derive(Deserialize)]
pub struct ListArtifacts {
    path: Option<String>,
}
impl QueryFields for ListArtifacts {}

#[derive(Serialize)]
pub struct ListArtifactsResponse {
    #[serde(skip_serializing_if = "Option::is_none")]
    root_uri: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    files: Vec<FileInfo>,
}

/// `GET /mlflow-artifacts/artifacts?path=<dir>`: basenames; `{}` for a file
/// or a missing path.
pub async fn list(
    Artifacts(store): Artifacts,
    Query(req): Query<ListArtifacts>,
) -> Result<Json<ListArtifactsResponse>> {
    let dir = ArtifactPath::parse(req.path.as_deref().unwrap_or("").trim_end_matches('/'))?;
    let files = store.list(&dir).await?;
    Ok(Json(ListArtifactsResponse {
        root_uri: None,
        files,
    }))
}

#[derive(Deserialize)]
pub struct CreateMultipartUpload {
    path: Option<String>,
    #[serde(default, deserialize_with = "wire::opt_i64")]
    num_parts: Option<i64>,
}

#[derive(Serialize)]
pub struct MultipartUploadCredential {
    url: String,
    part_number: i64,
    headers: serde_json::Map<String, Value>,
}

#[derive(Serialize)]
pub struct CreateMultipartUploadResponse {
    upload_id: String,
    credentials: Vec<MultipartUploadCredential>,
}

/// `POST /mlflow-artifacts/mpu/create/<dir>` `{path, num_parts}`: starts a
/// native multipart upload of `<dir>/<basename of path>` and answers one
/// part URL per part. object_store cannot presign part uploads, so the URLs
/// point back at this server's part endpoint (absolute, as the client PUTs
/// to them as given, built from the request's Host / `X-Forwarded-*`
/// headers and path prefix); any replica can take any part. On a local
/// destination: MLflow's 501, and the client falls back to a plain PUT.
pub async fn create_multipart(
    Artifacts(store): Artifacts,
    OriginalUri(original): OriginalUri,
    nested: Uri,
    headers: HeaderMap,
    path: std::result::Result<Path<String>, PathRejection>,
    wire::Body(req): wire::Body<CreateMultipartUpload>,
) -> Result<Json<CreateMultipartUploadResponse>> {
    let file = upload_target(path, req.path)?;
    let num_parts = req.num_parts.unwrap_or(0);
    let upload_id = store.create_multipart(&file, num_parts).await?;
    let base = part_endpoint(&original, &nested, &headers, &file)?;
    let credentials = (1..=num_parts)
        .map(|part_number| {
            let mut url = base.clone();
            url.query_pairs_mut()
                .append_pair("upload_id", &upload_id)
                .append_pair("part_number", &part_number.to_string());
            MultipartUploadCredential {
                url: url.into(),
                part_number,
                headers: serde_json::Map::new(),
            }
        })
        .collect();
    Ok(Json(CreateMultipartUploadResponse {
        upload_id,
        credentials,
    }))
}

/// `PUT /mlflow-artifacts/mpu/part/<path>?upload_id=&part_number=`: one part
/// (ferroflow's own endpoint, named in `mpu/create`'s credentials), sent on
/// to the store; the part's id comes back as the `ETag` header, which the
/// client hands to `mpu/complete`.
pub async fn upload_part(
    Artifacts(store): Artifacts,
    path: std::result::Result<Path<String>, PathRejection>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response> {
    let path = artifact_path(path)?;
    // The body is the part: the query string is read by hand.
    let query = |name: &str| {
        url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.into_owned())
    };
    let upload_id = wire::required(query("upload_id"), "upload_id")?;
    let part_number = wire::required(query("part_number"), "part_number")?;
    let part_number = part_number.parse::<i64>().map_err(|_| {
        MlflowError::invalid_parameter(format!("Invalid part_number {part_number:?}"))
    })?;
    let length = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    let etag = store
        .put_part(
            &path,
            &upload_id,
            part_number,
            length,
            body.into_data_stream(),
        )
        .await?;
    let mut response = Json(json!({})).into_response();
    // Part ids are ETags (S3, GCS) or base64 block ids (Azure): header-safe.
    let etag = HeaderValue::from_str(&etag).map_err(MlflowError::internal)?;
    response.headers_mut().insert(header::ETAG, etag);
    Ok(response)
}

#[derive(Deserialize)]
pub struct MultipartUploadPart {
    #[serde(default, deserialize_with = "wire::opt_i64")]
    part_number: Option<i64>,
    etag: Option<String>,
}

#[derive(Deserialize)]
pub struct CompleteMultipartUpload {
    path: Option<String>,
    upload_id: Option<String>,
    parts: Option<Vec<MultipartUploadPart>>,
}

/// `POST /mlflow-artifacts/mpu/complete/<dir>` `{path, upload_id, parts}`:
/// the object appears under its name, made of the parts in part order.
pub async fn complete_multipart(
    Artifacts(store): Artifacts,
    path: std::result::Result<Path<String>, PathRejection>,
    wire::Body(req): wire::Body<CompleteMultipartUpload>,
) -> Result<Json<Value>> {
    let file = upload_target(path, req.path)?;
    let parts = req
        .parts
        .ok_or_else(|| MlflowError::missing_parameter("parts"))?
        .into_iter()
        .map(|part| {
            Ok(UploadPart {
                part_number: part
                    .part_number
                    .ok_or_else(|| MlflowError::missing_parameter("part_number"))?,
                etag: part.etag.unwrap_or_default(),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    store
        .complete_multipart(&file, &req.upload_id.unwrap_or_default(), parts)
        .await?;
    Ok(Json(json!({})))
}

#[derive(Deserialize)]
pub struct AbortMultipartUpload {
    path: Option<String>,
    upload_id: Option<String>,
}

/// `POST /mlflow-artifacts/mpu/abort/<dir>` `{path, upload_id}`: drops the
/// upload; nothing appears under its name.
pub async fn abort_multipart(
    Artifacts(store): Artifacts,
    path: std::result::Result<Path<String>, PathRejection>,
    wire::Body(req): wire::Body<AbortMultipartUpload>,
) -> Result<Json<Value>> {
    let file = upload_target(path, req.path)?;
    store
        .abort_multipart(&file, &req.upload_id.unwrap_or_default())
        .await?;
    Ok(Json(json!({})))
}

/// `<dir>/<file>` of an `mpu/*` request: the directory from the URL, the
/// file name from the body's `path`, reduced to its basename as MLflow does
/// (its client sends the full local path of the file).
fn upload_target(
    dir: std::result::Result<Path<String>, PathRejection>,
    file: Option<String>,
) -> Result<ArtifactPath> {
    let dir = match dir {
        Ok(Path(raw)) => ArtifactPath::parse(raw.trim_end_matches('/'))?,
        Err(e) => return Err(MlflowError::invalid_parameter(format!("Invalid path: {e}"))),
    };
    let file = wire::required(file, "path")?;
    let name = file.rsplit('/').next().unwrap_or_default();
    let name = ArtifactPath::parse(name)?;
    if name.is_root() {
        return Err(MlflowError::invalid_parameter(format!(
            "Invalid path {file:?}: it must name a file"
        )));
    }
    Ok(dir.join(&name))
}

/// The absolute URL of the part endpoint for `file`, as the client reaches
/// this server: scheme and host from `X-Forwarded-Proto`/`X-Forwarded-Host`
/// (a reverse proxy's) or the `Host` header, `X-Forwarded-Prefix` and the
/// path prefix the request came in under (`/api/2.0/mlflow-artifacts` or
/// `/ajax-api/...`) kept.
fn part_endpoint(
    original: &Uri,
    nested: &Uri,
    headers: &HeaderMap,
    file: &ArtifactPath,
) -> Result<url::Url> {
    let first = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .map(str::trim)
            .filter(|v| !v.is_empty())
    };
    let scheme = match first("x-forwarded-proto") {
        Some(proto @ ("http" | "https")) => proto,
        Some(other) => {
            return Err(MlflowError::invalid_parameter(format!(
                "Unsupported X-Forwarded-Proto {other:?}"
            )))
        }
        None => "http",
    };
    let host = first("x-forwarded-host")
        .or_else(|| first(header::HOST.as_str()))
        .or_else(|| original.authority().map(|a| a.as_str()))
        .ok_or_else(|| MlflowError::invalid_parameter("A Host header is required"))?;
    let forwarded_prefix = first("x-forwarded-prefix").unwrap_or("");
    // What the router stripped before this nested service: `/api/2.0/mlflow-artifacts`.
    let service = original
        .path()
        .strip_suffix(nested.path())
        .unwrap_or("/api/2.0/mlflow-artifacts");
    let mut url = url::Url::parse(&format!("{scheme}://{host}"))
        .ok()
        .filter(|u| u.path() == "/" && u.username().is_empty() && u.query().is_none())
        .ok_or_else(|| MlflowError::invalid_parameter(format!("Invalid Host {host:?}")))?;
    {
        let mut segments = url
            .path_segments_mut()
            .map_err(|()| MlflowError::invalid_parameter(format!("Invalid Host {host:?}")))?;
        segments.clear();
        for segment in forwarded_prefix
            .split('/')
            .chain(service.split('/'))
            .filter(|s| !s.is_empty())
        {
            // Already URL-encoded as received; kept as is.
            segments.push(&percent_encoding::percent_decode_str(segment).decode_utf8_lossy());
        }
        segments.extend(["mpu", "part"]);
        // The artifact path is in its received form (a file may be named
        // `a%20b.txt`): each segment is encoded, `%` included.
        segments.extend(file.segments());
    }
    Ok(url)
}

/// `GET /mlflow-artifacts/presigned/<path>`: 501, so the client falls back
/// to the proxied GET.
pub async fn presigned_not_supported(_store: Artifacts) -> MlflowError {
    MlflowError::new(
        ErrorCode::NotImplemented,
        "Presigned URLs are not supported for the current artifact repository",
    )
}

#[derive(Deserialize)]
pub struct RunArtifact {
    run_id: Option<String>,
    run_uuid: Option<String>,
    path: Option<String>,
}
impl QueryFields for RunArtifact {}

/// `GET /api/2.0/mlflow/artifacts/list`: run-relative paths and `root_uri`.
pub async fn list_run_artifacts(
    State(state): State<AppState>,
    ws: Workspace,
    Query(req): Query<RunArtifact>,
) -> Result<Json<ListArtifactsResponse>> {
    let run_id = wire::run_id(req.run_id, req.run_uuid)?;
    let run = state.store.get_run(&ws, &run_id).await?;
    let root_uri = run.info.artifact_uri;
    list_under(&state, &format!("run '{run_id}'"), root_uri, req.path).await
}

/// Lists `rel` (a directory under `root_uri`, which `owner` owns) with
/// paths relative to the root.
async fn list_under(
    state: &AppState,
    owner: &str,
    root_uri: String,
    rel: Option<String>,
) -> Result<Json<ListArtifactsResponse>> {
    let (store, root) = served_root(state, owner, &root_uri)?;
    let rel = rel.unwrap_or_default();
    let rel = ArtifactPath::parse(rel.trim_end_matches('/'))?;
    let files = store
        .list(&root.join(&rel))
        .await?
        .into_iter()
        .map(|file| FileInfo {
            path: match rel.is_root() {
                true => file.path,
                false => format!("{}/{}", rel.as_str(), file.path),
            },
            ..file
        })
        .collect();
    Ok(Json(ListArtifactsResponse {
        root_uri: Some(root_uri),
        files,
    }))
}

/// `GET /get-artifact?run_id=&path=`: the UI's download of a run artifact.
pub async fn get_run_artifact(
    State(state): State<AppState>,
    ws: Workspace,
    headers: HeaderMap,
    Query(req): Query<RunArtifact>,
) -> Result<Response> {
    let run_id = wire::run_id(req.run_id, req.run_uuid)?;
    let run = state.store.get_run(&ws, &run_id).await?;
    let owner = format!("run '{run_id}'");
    download_under(&state, &owner, &run.info.artifact_uri, req.path, &headers).await
}

/// Streams the file `rel` under `root_uri` (owned by `owner`), uncached.
async fn download_under(
    state: &AppState,
    owner: &str,
    root_uri: &str,
    rel: Option<String>,
    headers: &HeaderMap,
) -> Result<Response> {
    let (store, root) = served_root(state, owner, root_uri)?;
    let path = ArtifactPath::parse(&wire::required(rel, "path")?)?;
    let mut response = serve_file(&store, &root.join(&path), headers).await?;
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Ok(response)
}

/// The store and destination path behind an artifact root URI of a run or
/// logged model (`owner`). Only `mlflow-artifacts:` roots are read: a
/// user-supplied `file:` or cloud location must not make the server read
/// its own disk or an arbitrary network address.
fn served_root(
    state: &AppState,
    owner: &str,
    uri: &str,
) -> Result<(Arc<ArtifactStore>, ArtifactPath)> {
    let not_served = || {
        MlflowError::invalid_parameter(format!(
            "The artifacts of {owner} are at '{uri}', which this server does not \
             serve; read them from there directly"
        ))
    };
    let store = state.artifacts.clone().ok_or_else(not_served)?;
    let root = from_proxied_uri(uri).ok_or_else(not_served)??;
    Ok((store, root))
}

#[derive(Deserialize)]
pub struct ModelVersionArtifact {
    name: Option<String>,
    version: Option<String>,
    path: Option<String>,
}
impl QueryFields for ModelVersionArtifact {}

/// `GET /model-versions/get-artifact?name=&version=&path=`: the UI's download
/// of a file of a registered model version, under its download URI.
pub async fn get_model_version_artifact(
    State(state): State<AppState>,
    ws: Workspace,
    headers: HeaderMap,
    Query(req): Query<ModelVersionArtifact>,
) -> Result<Response> {
    let name = wire::required(req.name, "name")?;
    let version = wire::required(req.version, "version")?;
    let root = state
        .store
        .get_model_version_download_uri(&ws, &name, &version)
        .await?;
    let owner = format!("model '{name}' version {version}");
    download_under(&state, &owner, &root, req.path, &headers).await
}

#[derive(Deserialize)]
pub struct LoggedModelDirectory {
    artifact_directory_path: Option<String>,
}
impl QueryFields for LoggedModelDirectory {}

/// `GET /mlflow/logged-models/{id}/artifacts/directories`: the UI's listing
/// of a logged model's files, relative to its root.
pub async fn list_logged_model_artifacts(
    State(state): State<AppState>,
    ws: Workspace,
    Path(model_id): Path<String>,
    Query(req): Query<LoggedModelDirectory>,
) -> Result<Json<ListArtifactsResponse>> {
    let model = state.store.get_logged_model(&ws, &model_id, false).await?;
    let owner = format!("logged model '{model_id}'");
    list_under(
        &state,
        &owner,
        model.info.artifact_uri,
        req.artifact_directory_path,
    )
    .await
}

#[derive(Deserialize)]
pub struct LoggedModelFile {
    artifact_file_path: Option<String>,
}
impl QueryFields for LoggedModelFile {}

/// `GET /ajax-api/2.0/mlflow/logged-models/{id}/artifacts/files`: the UI's
/// download of one file of a logged model.
pub async fn get_logged_model_artifact(
    State(state): State<AppState>,
    ws: Workspace,
    Path(model_id): Path<String>,
    headers: HeaderMap,
    Query(req): Query<LoggedModelFile>,
) -> Result<Response> {
    let rel = req
        .artifact_file_path
        .filter(|p| !p.is_empty())
        .ok_or_else(|| {
            MlflowError::bad_request(
                "Request must include the \"artifact_file_path\" query parameter.",
            )
        })?;
    let model = state.store.get_logged_model(&ws, &model_id, false).await?;
    let owner = format!("logged model '{model_id}'");
    download_under(
        &state,
        &owner,
        &model.info.artifact_uri,
        Some(rel),
        &headers,
    )
    .await
}

/// Streams a file with MLflow's download headers, honouring a single-range
/// `Range` header (206, or 416 when unsatisfiable).
async fn serve_file(
    store: &ArtifactStore,
    path: &ArtifactPath,
    headers: &HeaderMap,
) -> Result<Response> {
    let meta = store.head(path).await?;
    let range = match headers.get(header::RANGE).and_then(|v| v.to_str().ok()) {
        Some(spec) => match parse_range(spec, meta.size) {
            RangeRequest::Ignored => None,
            RangeRequest::Satisfiable(range) => Some(range),
            RangeRequest::Unsatisfiable => {
                return Ok((
                    StatusCode::RANGE_NOT_SATISFIABLE,
                    [(header::CONTENT_RANGE, format!("bytes */{}", meta.size))],
                )
                    .into_response());
            }
        },
        None => None,
    };
    let stream = store.get(path, range.clone()).await?;
    let name = path.file_name().unwrap_or_default();
    let mut response = Response::new(Body::from_stream(stream));
    let out = response.headers_mut();
    out.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(content_type(name)),
    );
    if let Ok(value) = HeaderValue::from_str(&content_disposition(name)) {
        out.insert(header::CONTENT_DISPOSITION, value);
    }
    out.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    out.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if let Ok(value) = HeaderValue::from_str(&httpdate::fmt_http_date(meta.last_modified)) {
        out.insert(header::LAST_MODIFIED, value);
    }
    if let Some(etag) = meta.etag.as_deref().and_then(quoted_etag) {
        out.insert(header::ETAG, etag);
    }
    let length = match &range {
        Some(range) => {
            *response.status_mut() = StatusCode::PARTIAL_CONTENT;
            let content_range = format!("bytes {}-{}/{}", range.start, range.end - 1, meta.size);
            response.headers_mut().insert(
                header::CONTENT_RANGE,
                HeaderValue::from_str(&content_range).map_err(MlflowError::internal)?,
            );
            range.end - range.start
        }
        None => meta.size,
    };
    response
        .headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    Ok(response)
}

#[derive(Debug, PartialEq, Eq)]
enum RangeRequest {
    /// Absent, malformed or multi-range: RFC 9110 lets the server send it all.
    Ignored,
    Satisfiable(Range<u64>),
    Unsatisfiable,
}

/// One `bytes=` range against a file of `size` bytes.
fn parse_range(spec: &str, size: u64) -> RangeRequest {
    let Some(set) = spec.trim().strip_prefix("bytes=") else {
        return RangeRequest::Ignored;
    };
    if set.contains(',') {
        return RangeRequest::Ignored;
    }
    let Some((start, end)) = set.trim().split_once('-') else {
        return RangeRequest::Ignored;
    };
    let (start, end) = (start.trim(), end.trim());
    let parse = |s: &str| s.parse::<u64>().ok();
    let range = match (start.is_empty(), end.is_empty()) {
        // `bytes=-N`: the last N bytes.
        (true, false) => match parse(end) {
            Some(0) => return RangeRequest::Unsatisfiable,
            Some(n) => size.saturating_sub(n)..size,
            None => return RangeRequest::Ignored,
        },
        (false, true) => match parse(start) {
            Some(first) => first..size,
            None => return RangeRequest::Ignored,
        },
        (false, false) => match (parse(start), parse(end)) {
            (Some(first), Some(last)) if first <= last => first..(last.saturating_add(1)).min(size),
            _ => return RangeRequest::Ignored,
        },
        (true, true) => return RangeRequest::Ignored,
    };
    if range.start >= size {
        RangeRequest::Unsatisfiable
    } else {
        RangeRequest::Satisfiable(range)
    }
}

/// MLflow serves text-like artifacts as `text/plain` so the UI can show
/// them (`mlflow.utils.mime_type_utils._guess_mime_type`: the extension, or
/// the whole name when it has none), else guesses from the extension.
fn content_type(name: &str) -> &'static str {
    const TEXT_EXTENSIONS: &[&str] = &[
        "txt",
        "log",
        "err",
        "cfg",
        "conf",
        "cnf",
        "cf",
        "ini",
        "properties",
        "prop",
        "hocon",
        "toml",
        "yaml",
        "yml",
        "xml",
        "json",
        "js",
        "py",
        "py3",
        "csv",
        "tsv",
        "md",
        "rst",
        "ipynb",
        "MLmodel",
        "mlproject",
    ];
    let extension = name.rsplit_once('.').map_or(name, |(_, ext)| ext);
    if TEXT_EXTENSIONS.contains(&extension) || TEXT_EXTENSIONS.contains(&name) {
        return "text/plain";
    }
    mime_guess::from_path(name)
        .first_raw()
        .unwrap_or("application/octet-stream")
}

/// `attachment; filename=a.txt` as MLflow sends it; quoted when the name is
/// not an HTTP token (spaces, separators), RFC 5987 `filename*` for names a
/// quoted string cannot carry.
fn content_disposition(name: &str) -> String {
    let token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    if !name.is_empty() && name.chars().all(token) {
        format!("attachment; filename={name}")
    } else if name.chars().all(|c| c.is_ascii_graphic() || c == ' ') && !name.contains(['"', '\\'])
    {
        format!("attachment; filename=\"{name}\"")
    } else {
        let encoded = utf8_percent_encode(name, NON_ALPHANUMERIC);
        format!("attachment; filename*=UTF-8''{encoded}")
    }
}

/// Stores report ETags bare (local) or quoted (S3); HTTP wants them quoted.
fn quoted_etag(etag: &str) -> Option<HeaderValue> {
    if etag.starts_with('"') || etag.starts_with("W/") {
        HeaderValue::from_str(etag).ok()
    } else {
        HeaderValue::from_str(&format!("\"{etag}\"")).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        use RangeRequest::*;
        let cases = [
            ("bytes=0-9", 100, Satisfiable(0..10)),
            ("bytes=90-", 100, Satisfiable(90..100)),
            ("bytes=-10", 100, Satisfiable(90..100)),
            ("bytes=-1000", 100, Satisfiable(0..100)),
            ("bytes=95-200", 100, Satisfiable(95..100)),
            ("bytes=100-", 100, Unsatisfiable),
            ("bytes=100-200", 100, Unsatisfiable),
            ("bytes=-0", 100, Unsatisfiable),
            ("bytes=0-", 0, Unsatisfiable),
            ("bytes=9-0", 100, Ignored),
            ("bytes=0-1,5-6", 100, Ignored),
            ("items=0-1", 100, Ignored),
            ("bytes=x-1", 100, Ignored),
        ];
        for (spec, size, expected) in cases {
            assert_eq!(parse_range(spec, size), expected, "{spec} of {size}");
        }
    }

    #[test]
    fn content_types_follow_mlflow() {
        assert_eq!(content_type("a.txt"), "text/plain");
        assert_eq!(content_type("conf.yaml"), "text/plain");
        assert_eq!(content_type("MLmodel"), "text/plain");
        assert_eq!(content_type("plot.png"), "image/png");
        assert_eq!(content_type("model.pkl"), "application/octet-stream");
        assert_eq!(content_type("noext"), "application/octet-stream");
    }

    #[test]
    fn content_disposition_quotes_or_encodes() {
        assert_eq!(content_disposition("a.txt"), "attachment; filename=a.txt");
        assert_eq!(
            content_disposition("a b.txt"),
            "attachment; filename=\"a b.txt\""
        );
        assert_eq!(
            content_disposition("é.txt"),
            "attachment; filename*=UTF-8''%C3%A9%2Etxt"
        );
        assert_eq!(
            content_disposition("a\"b"),
            "attachment; filename*=UTF-8''a%22b"
        );
    }
}
