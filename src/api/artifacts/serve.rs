//! Streaming a file out: MLflow's download headers, content types, `Range`.

use super::*;

/// Streams a file with MLflow's download headers, honouring a single-range
/// `Range` header (206, or 416 when unsatisfiable).
pub(super) async fn serve_file(
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
pub(super) enum RangeRequest {
    /// Absent, malformed or multi-range: RFC 9110 lets the server send it all.
    Ignored,
    Satisfiable(Range<u64>),
    Unsatisfiable,
}

/// One `bytes=` range against a file of `size` bytes.
pub(super) fn parse_range(spec: &str, size: u64) -> RangeRequest {
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
pub(super) fn content_type(name: &str) -> &'static str {
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
pub(super) fn content_disposition(name: &str) -> String {
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
pub(super) fn quoted_etag(etag: &str) -> Option<HeaderValue> {
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
