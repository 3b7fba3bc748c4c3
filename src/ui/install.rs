//! `ferroflow ui install`: fetches the pinned `mlflow` wheel from a Python
//! package index (PEP 691's JSON simple API, what pip reads), checks its
//! SHA-256 against the one pinned here, and unpacks only the UI bundle. The
//! bundle is never committed to this repository.

use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use url::Url;

use super::{BUNDLE_IN_PACKAGE, MLFLOW_VERSION};

/// The wheel and its digest as PyPI publishes them (verified by hand
/// against `pip download mlflow==3.17.2`).
pub const WHEEL: &str = "mlflow-3.17.2-py3-none-any.whl";
pub const WHEEL_SHA256: &str = "4e44c03791beb518d8b0a40b0982d958c2634d902f46d67d7907c82107f21fac";
pub const DEFAULT_INDEX: &str = "https://pypi.org/simple";

/// Where an installed bundle lives unless told otherwise:
/// `$XDG_DATA_HOME/ferroflow/ui/mlflow-<version>` (`~/.local/share/...`).
pub fn default_dir() -> Option<PathBuf> {
    let data = std::env::var_os("XDG_DATA_HOME")
        .filter(|dir| !dir.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".local/share"))
        })?;
    Some(data.join(format!("ferroflow/ui/mlflow-{MLFLOW_VERSION}")))
}

/// Installs the bundle into `dir` (replacing what is there) from `wheel`, a
/// file already downloaded, or else from the index. Returns `dir`.
pub async fn install(dir: &Path, wheel: Option<&Path>, index: &str) -> anyhow::Result<()> {
    let parent = dir
        .parent()
        .ok_or_else(|| anyhow::anyhow!("{} has no parent directory", dir.display()))?;
    std::fs::create_dir_all(parent)?;
    let downloaded;
    let wheel = match wheel {
        Some(wheel) => wheel,
        None => {
            downloaded = tempfile::NamedTempFile::new_in(parent)?;
            download(index, downloaded.path()).await?;
            downloaded.path()
        }
    };
    let wheel = wheel.to_path_buf();
    let dir = dir.to_path_buf();
    tokio::task::spawn_blocking(move || {
        check_digest(&wheel)?;
        unpack(&wheel, &dir)
    })
    .await?
}

/// The wheel's URL from the index's page for `mlflow`, then the file.
async fn download(index: &str, to: &Path) -> anyhow::Result<()> {
    let page = Url::parse(&format!("{}/mlflow/", index.trim_end_matches('/')))?;
    let client = reqwest::Client::new();
    let body = client
        .get(page.clone())
        .header("Accept", "application/vnd.pypi.simple.v1+json")
        .send()
        .await?
        .error_for_status()?
        .bytes()
        .await?;
    let listing: serde_json::Value = serde_json::from_slice(&body)
        .map_err(|err| anyhow::anyhow!("{page} is not a PEP 691 JSON index page: {err}"))?;
    let href = listing["files"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|file| file["filename"] == WHEEL)
        .and_then(|file| file["url"].as_str())
        .ok_or_else(|| anyhow::anyhow!("{page} does not list {WHEEL}"))?;
    let url = page.join(href)?;
    tracing::info!(%url, "downloading");
    let mut response = client.get(url).send().await?.error_for_status()?;
    let mut file = std::fs::File::create(to)?;
    while let Some(chunk) = response.chunk().await? {
        file.write_all(&chunk)?;
    }
    file.sync_all()?;
    Ok(())
}

fn check_digest(wheel: &Path) -> anyhow::Result<()> {
    let mut hasher = Sha256::new();
    std::io::copy(&mut std::fs::File::open(wheel)?, &mut hasher)?;
    let digest = hex::encode(hasher.finalize());
    anyhow::ensure!(
        digest == WHEEL_SHA256,
        "{} has SHA-256 {digest}, not the pinned {WHEEL_SHA256} of {WHEEL}: refusing it",
        wheel.display()
    );
    Ok(())
}

/// Unpacks `mlflow/server/js/build/**` into a fresh directory beside `dir`,
/// then swaps it in, so a failure leaves the old bundle whole.
fn unpack(wheel: &Path, dir: &Path) -> anyhow::Result<()> {
    let prefix = format!("mlflow/{BUNDLE_IN_PACKAGE}/");
    let mut archive = zip::ZipArchive::new(std::fs::File::open(wheel)?)?;
    let parent = dir.parent().unwrap_or(Path::new("."));
    let staging = tempfile::tempdir_in(parent)?;
    let mut files = 0;
    for index in 0..archive.len() {
        let mut entry = archive.by_index(index)?;
        // `enclosed_name` refuses absolute paths and `..`.
        let Some(name) = entry.enclosed_name() else {
            continue;
        };
        let Ok(relative) = name.strip_prefix(&prefix) else {
            continue;
        };
        let target = staging.path().join(relative);
        if entry.is_dir() {
            std::fs::create_dir_all(&target)?;
            continue;
        }
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::io::copy(&mut entry, &mut std::fs::File::create(&target)?)?;
        files += 1;
    }
    anyhow::ensure!(
        staging.path().join("index.html").is_file(),
        "{WHEEL} holds no UI bundle under {prefix}"
    );
    if dir.exists() {
        std::fs::remove_dir_all(dir)?;
    }
    std::fs::rename(staging.keep(), dir)?;
    tracing::info!(files, dir = %dir.display(), "MLflow {MLFLOW_VERSION} UI installed");
    Ok(())
}
