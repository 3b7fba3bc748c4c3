//! MLflow's web UI: the static bundle shipped inside the `mlflow` wheel
//! (`mlflow/server/js/build`, Apache-2.0), served as `mlflow server` serves
//! it. ferroflow never carries the bundle itself; it finds one at start:
//!
//! 1. `ui_dir` from the config (`--ui-dir`, `FERROFLOW_UI_DIR`);
//! 2. the one `ferroflow ui install` unpacked (`install::default_dir`);
//! 3. an installed `mlflow` Python package (`python3`, or the active
//!    virtualenv's), the usual case for MLflow users.
//!
//! Without one, `/` answers a short page saying how to get one.

pub mod install;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The MLflow release whose UI (and API) ferroflow serves.
pub const MLFLOW_VERSION: &str = "3.17.2";

/// Where the bundle sits inside an `mlflow` package.
const BUNDLE_IN_PACKAGE: &str = "server/js/build";

/// A bundle found on disk: its directory and its `index.html`, kept in
/// memory (it is read on every visit to `/`).
#[derive(Debug)]
pub struct Bundle {
    pub dir: PathBuf,
    pub index_html: Vec<u8>,
    /// Where it was found, for the start-up log.
    pub origin: String,
}

impl Bundle {
    /// A directory holding `index.html` and `static/`, or why it is not one.
    pub fn open(dir: &Path, origin: String) -> anyhow::Result<Self> {
        let index = dir.join("index.html");
        let index_html = std::fs::read(&index).map_err(|err| {
            anyhow::anyhow!("{} is not an MLflow UI bundle: {err}", index.display())
        })?;
        Ok(Self {
            dir: dir.to_path_buf(),
            index_html,
            origin,
        })
    }

    /// The first bundle of the search order above; `configured` is the
    /// config's `ui_dir`, which must hold one when given.
    pub fn find(configured: Option<&Path>) -> anyhow::Result<Option<Self>> {
        if let Some(dir) = configured {
            return Self::open(dir, format!("ui_dir {}", dir.display())).map(Some);
        }
        let installed = install::default_dir();
        if let Some(dir) = installed.filter(|dir| dir.join("index.html").is_file()) {
            let origin = format!("`ferroflow ui install` ({})", dir.display());
            return Self::open(&dir, origin).map(Some);
        }
        Ok(python_packages()
            .into_iter()
            .find_map(|(package, version)| {
                let dir = package.join(BUNDLE_IN_PACKAGE);
                let origin = format!("the mlflow {version} Python package ({})", dir.display());
                if version != MLFLOW_VERSION {
                    tracing::warn!(
                        %version,
                        expected = MLFLOW_VERSION,
                        "the installed mlflow package's UI is another version; some pages may \
                         call endpoints ferroflow does not serve (ferroflow ui install fetches \
                         the matching one)"
                    );
                }
                Self::open(&dir, origin).ok()
            }))
    }
}

/// `mlflow` packages the Pythons at hand can import: (package dir, version).
/// Found without importing mlflow (seconds), by asking where it would load.
fn python_packages() -> Vec<(PathBuf, String)> {
    let mut pythons = Vec::new();
    if let Some(venv) = std::env::var_os("VIRTUAL_ENV") {
        pythons.push(PathBuf::from(venv).join("bin/python"));
    }
    pythons.push(PathBuf::from("python3"));
    const FIND: &str = "import importlib.util as u, importlib.metadata as m\n\
        s = u.find_spec('mlflow')\n\
        print(s.submodule_search_locations[0]); print(m.version('mlflow'))";
    pythons
        .into_iter()
        .filter_map(|python| {
            let output = Command::new(python)
                .args(["-c", FIND])
                .stdin(Stdio::null())
                .stderr(Stdio::null())
                .output()
                .ok()
                .filter(|output| output.status.success())?;
            let text = String::from_utf8(output.stdout).ok()?;
            let mut lines = text.lines();
            Some((PathBuf::from(lines.next()?), lines.next()?.to_string()))
        })
        .collect()
}

/// What `/` answers without a bundle: how to get one (never a 404).
pub const NO_BUNDLE_PAGE: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>ferroflow</title></head>
<body style="font-family: sans-serif; max-width: 40em; margin: 3em auto">
<h1>ferroflow is running</h1>
<p>The tracking API is up, but this server has no copy of MLflow's web UI to show.
The UI is a static bundle shipped inside the <code>mlflow</code> Python package. Any one of
these gives ferroflow a copy at its next start:</p>
<ul>
<li><code>ferroflow ui install</code> fetches the pinned <code>mlflow</code> wheel from the
Python package index, checks its hash and unpacks only the UI;</li>
<li><code>pip install mlflow==MLFLOW_VERSION</code> in the environment ferroflow starts from;</li>
<li><code>--ui-dir DIR</code> (or <code>FERROFLOW_UI_DIR</code>) names a directory holding
<code>index.html</code>.</li>
</ul>
</body></html>
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_without_index_html_is_not_a_bundle() {
        let dir = tempfile::tempdir().unwrap();
        assert!(Bundle::open(dir.path(), "test".into()).is_err());
        std::fs::write(dir.path().join("index.html"), "<html>").unwrap();
        let bundle = Bundle::open(dir.path(), "test".into()).unwrap();
        assert_eq!(bundle.index_html, b"<html>");
        assert!(Bundle::find(Some(&dir.path().join("missing"))).is_err());
    }
}
