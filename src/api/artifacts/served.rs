//! Files served from an entity's artifact root: `artifacts/list`,
//! `/get-artifact`, `/model-versions/get-artifact` and logged models' files.

use super::*;
use crate::api::wire::QueryOnly;

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
    // The path is checked first, as MLflow does.
    let rel = directory(req.path)?;
    let run = state.store.get_run(&ws, &run_id).await?;
    let root_uri = run.info.artifact_uri;
    list_under(&state, &format!("run '{run_id}'"), root_uri, rel).await
}

/// A directory to list, `""` (or none) being the root.
fn directory(rel: Option<String>) -> Result<ArtifactPath> {
    ArtifactPath::parse(rel.unwrap_or_default().trim_end_matches('/'))
}

/// A file to read: required, and checked before anything is looked up.
fn file(rel: Option<String>) -> Result<ArtifactPath> {
    ArtifactPath::parse(&wire::required(rel, "path")?)
}

/// Lists `rel` (a directory under `root_uri`, which `owner` owns) with
/// paths relative to the root.
pub(super) async fn list_under(
    state: &AppState,
    owner: &str,
    root_uri: String,
    rel: ArtifactPath,
) -> Result<Json<ListArtifactsResponse>> {
    let (store, root) = served_root(state, owner, &root_uri)?;
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
    let path = file(req.path)?;
    let run = state.store.get_run(&ws, &run_id).await?;
    let owner = format!("run '{run_id}'");
    download_under(&state, &owner, &run.info.artifact_uri, &path, &headers).await
}

#[derive(Deserialize)]
pub struct TraceArtifact {
    request_id: Option<String>,
    path: Option<String>,
}
impl QueryFields for TraceArtifact {}

/// `GET /ajax-api/{2.0,3.0}/mlflow/get-trace-artifact?request_id=`: a
/// trace's spans (`traces.json`), or with `path` one of its attachments,
/// from where the client uploaded them (the trace's artifact location).
pub async fn get_trace_artifact(
    State(state): State<AppState>,
    ws: Workspace,
    headers: HeaderMap,
    Query(req): Query<TraceArtifact>,
) -> Result<Response> {
    let trace_id = req.request_id.filter(|id| !id.is_empty()).ok_or_else(|| {
        MlflowError::bad_request("Request must include the \"request_id\" query parameter.")
    })?;
    let attachment = req.path.filter(|p| !p.is_empty());
    let wants_spans = attachment.is_none();
    let path = match attachment {
        Some(path) => ArtifactPath::parse(&format!("attachments/{path}"))?,
        None => ArtifactPath::parse("traces.json")?,
    };
    let info = state.store.get_trace_info(&ws, &trace_id).await?;
    // Spans that came over OTLP are in the database, as MLflow's span JSON.
    if wants_spans {
        let mut stored = state
            .store
            .trace_spans(&ws, std::slice::from_ref(&trace_id))
            .await?;
        if let Some(spans) = stored.remove(&trace_id) {
            let body = format!("{{\"spans\": [{}]}}", spans.join(", "));
            return Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response());
        }
    }
    let root = info
        .tags
        .get(crate::store::traces::keys::ARTIFACT_LOCATION)
        .ok_or_else(|| {
            MlflowError::not_found(format!("Trace with ID '{trace_id}' has no stored spans."))
        })?;
    let owner = format!("trace '{trace_id}'");
    download_under(&state, &owner, root, &path, &headers).await
}

/// Streams the file `rel` under `root_uri` (owned by `owner`), uncached.
pub(super) async fn download_under(
    state: &AppState,
    owner: &str,
    root_uri: &str,
    path: &ArtifactPath,
    headers: &HeaderMap,
) -> Result<Response> {
    let (store, root) = served_root(state, owner, root_uri)?;
    let mut response = serve_file(&store, &root.join(path), headers).await?;
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Ok(response)
}

/// The store and destination path behind an artifact root URI of a run or
/// logged model (`owner`). Only `mlflow-artifacts:` roots are read: a
/// user-supplied `file:` or cloud location must not make the server read
/// its own disk or an arbitrary network address.
pub(super) fn served_root(
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
    let path = file(req.path)?;
    let root = state
        .store
        .get_model_version_download_uri(&ws, &name, &version)
        .await?;
    let owner = format!("model '{name}' version {version}");
    download_under(&state, &owner, &root, &path, &headers).await
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
    let rel = directory(req.artifact_directory_path)?;
    let model = state.store.get_logged_model(&ws, &model_id, false).await?;
    let owner = format!("logged model '{model_id}'");
    list_under(&state, &owner, model.info.artifact_uri, rel).await
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
    let path = ArtifactPath::parse(&rel)?;
    let model = state.store.get_logged_model(&ws, &model_id, false).await?;
    let owner = format!("logged model '{model_id}'");
    download_under(&state, &owner, &model.info.artifact_uri, &path, &headers).await
}

/// MLflow's cap on a file the UI uploads.
const MAX_UI_UPLOAD: usize = 10 * 1024 * 1024;

#[derive(Deserialize)]
pub struct UploadRunArtifact {
    run_uuid: Option<String>,
    path: Option<String>,
}
impl QueryFields for UploadRunArtifact {}

/// `POST /ajax-api/2.0/mlflow/upload-artifact?run_uuid=&path=`: the UI saves
/// a file (an edited evaluation table) among a run's artifacts; at most
/// 10 MB, as MLflow allows. Answers an empty JSON response, as MLflow does.
pub async fn upload_run_artifact(
    State(state): State<AppState>,
    ws: Workspace,
    QueryOnly(req): QueryOnly<UploadRunArtifact>,
    body: Body,
) -> Result<Response> {
    let run_id = req
        .run_uuid
        .filter(|id| !id.is_empty())
        .ok_or_else(|| MlflowError::invalid_parameter("Request must specify run_uuid."))?;
    let path = req
        .path
        .filter(|path| !path.is_empty())
        .ok_or_else(|| MlflowError::invalid_parameter("Request must specify path."))?;
    let path = ArtifactPath::parse(&path)?;
    let too_large =
        || MlflowError::invalid_parameter("Artifact size is too large. Max size is 10MB.");
    let data = axum::body::to_bytes(body, MAX_UI_UPLOAD)
        .await
        .map_err(|_| too_large())?;
    if data.is_empty() {
        return Err(MlflowError::invalid_parameter("Request must specify data."));
    }
    let run = state.store.get_run(&ws, &run_id).await?;
    let (store, root) = served_root(&state, &format!("run '{run_id}'"), &run.info.artifact_uri)?;
    let chunk: std::result::Result<_, std::convert::Infallible> = Ok(data);
    store
        .put(&root.join(&path), futures::stream::iter([chunk]))
        .await?;
    Ok(([(header::CONTENT_TYPE, "application/json")], "").into_response())
}
