//! MLflow's proxied multipart uploads (`mpu/create`, part PUTs, `mpu/complete`,
//! `mpu/abort`) over the store's native multipart upload.

use super::*;
use crate::auth::tokens::{now_seconds, PART_URL_TTL};

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
    scope: ProxyScope,
    OriginalUri(original): OriginalUri,
    nested: Uri,
    headers: HeaderMap,
    path: std::result::Result<Path<String>, PathRejection>,
    wire::Body(req): wire::Body<CreateMultipartUpload>,
) -> Result<Json<CreateMultipartUploadResponse>> {
    let file = scope.path(upload_target(path, req.path)?)?;
    let num_parts = req.num_parts.unwrap_or(0);
    let upload_id = store.create_multipart(&file, num_parts).await?;
    let workspace_prefix = scope.part_url_prefix();
    let base = part_endpoint(
        &original,
        &nested,
        &headers,
        workspace_prefix.as_deref(),
        &file,
    )?;
    let expires = now_seconds() + PART_URL_TTL.as_secs();
    let credentials = (1..=num_parts)
        .map(|part_number| {
            let mut url = base.clone();
            url.query_pairs_mut()
                .append_pair("upload_id", &upload_id)
                .append_pair("part_number", &part_number.to_string());
            if let Some(access) = &scope.access {
                // The client PUTs parts with no credentials: the URL is the
                // credential, good for this part of this upload only.
                let signature =
                    access
                        .tokens
                        .sign_part(&upload_id, part_number, file.as_str(), expires);
                url.query_pairs_mut()
                    .append_pair("expires", &expires.to_string())
                    .append_pair("signature", &signature);
            }
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
    scope: ProxyScope,
    path: std::result::Result<Path<String>, PathRejection>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response> {
    let path = scope.path(artifact_path(path)?)?;
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
    if let Some(access) = &scope.access {
        let expires = query("expires").and_then(|e| e.parse::<u64>().ok());
        let signature = query("signature").unwrap_or_default();
        let valid = expires.is_some_and(|expires| {
            access.tokens.part_signature_valid(
                &upload_id,
                part_number,
                path.as_str(),
                expires,
                &signature,
            )
        });
        if !valid {
            return Err(MlflowError::new(
                ErrorCode::PermissionDenied,
                "The part URL's signature is missing, altered or expired; start the upload \
                 again with mpu/create",
            ));
        }
    }
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
    scope: ProxyScope,
    path: std::result::Result<Path<String>, PathRejection>,
    wire::Body(req): wire::Body<CompleteMultipartUpload>,
) -> Result<Json<Value>> {
    let file = scope.path(upload_target(path, req.path)?)?;
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
    scope: ProxyScope,
    path: std::result::Result<Path<String>, PathRejection>,
    wire::Body(req): wire::Body<AbortMultipartUpload>,
) -> Result<Json<Value>> {
    let file = scope.path(upload_target(path, req.path)?)?;
    store
        .abort_multipart(&file, &req.upload_id.unwrap_or_default())
        .await?;
    Ok(Json(json!({})))
}

/// `<dir>/<file>` of an `mpu/*` request: the directory from the URL, the
/// file name from the body's `path`, reduced to its basename as MLflow does
/// (its client sends the full local path of the file).
pub(super) fn upload_target(
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
/// `/ajax-api/...`) kept, after `workspace_prefix` (`/w/<name>`) if given.
pub(super) fn part_endpoint(
    original: &Uri,
    nested: &Uri,
    headers: &HeaderMap,
    workspace_prefix: Option<&str>,
    file: &ArtifactPath,
) -> Result<url::Url> {
    let first = |name: &str| wire::first_header(headers, name);
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
            .chain(workspace_prefix.unwrap_or("").split('/'))
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
