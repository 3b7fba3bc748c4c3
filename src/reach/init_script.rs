//! `ferroflow workspace init-script WS --url URL`: a bash script for
//! Databricks-style clusters that installs the auth plugin and writes the
//! workspace's tracking URI where the driver and the executors read their
//! environment. The key stays a cluster secret: the script reads
//! `FERROFLOW_API_KEY` and writes it nowhere.

use url::Url;

use super::{is_url_safe, shell_quote, workspace_uri};
use crate::store::workspaces::validate_workspace_name;

const TEMPLATE: &str = include_str!("init-script.sh");
/// The plugin's sources, carried in the script so a cluster needs no
/// package index that knows it.
const PLUGIN_PYPROJECT: &str = include_str!("../../clients/python/pyproject.toml");
const PLUGIN_README: &str = include_str!("../../clients/python/README.md");
const PLUGIN_MODULE: &str = include_str!("../../clients/python/ferroflow_auth/__init__.py");

/// The script for `workspace` (none: a server without workspaces) on the
/// server at `server`. The URI ends up inside quotes in shell and
/// environment files, so anything but a valid workspace name and URL-safe
/// characters is refused here, whatever the caller checked.
pub fn render(server: &Url, workspace: Option<&str>) -> anyhow::Result<String> {
    if let Some(workspace) = workspace {
        validate_workspace_name(workspace)?;
    }
    let uri = workspace_uri(server, workspace);
    anyhow::ensure!(
        uri.chars().all(is_url_safe),
        "the tracking URI '{uri}' holds characters a shell would read"
    );
    Ok(TEMPLATE
        .replace("@TRACKING_URI_TEXT@", &uri)
        .replace("@TRACKING_URI@", &shell_quote(&uri))
        .replace("@PLUGIN_VERSION@", &shell_quote(plugin_version()))
        .replace("@PLUGIN_PYPROJECT@", PLUGIN_PYPROJECT.trim_end())
        .replace("@PLUGIN_README@", PLUGIN_README.trim_end())
        .replace("@PLUGIN_MODULE@", PLUGIN_MODULE.trim_end()))
}

/// The plugin's `__version__`, the one the script checks before installing.
pub fn plugin_version() -> &'static str {
    PLUGIN_MODULE
        .lines()
        .find_map(|line| line.strip_prefix("__version__ = \""))
        .and_then(|rest| rest.split('"').next())
        .unwrap_or("0")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reach::parse_server_url;

    #[test]
    fn the_script_carries_the_uri_and_the_plugin_and_no_placeholder() {
        let server = parse_server_url("https://mlflow.example.com").unwrap();
        let script = render(&server, Some("team-a")).unwrap();
        assert!(render(&server, Some("x';touch /tmp/p;'")).is_err());
        assert!(script.starts_with("#!/usr/bin/env bash\n"));
        assert!(script.contains("tracking_uri='https://mlflow.example.com/w/team-a'\n"));
        assert!(script.contains("class FerroflowRequestAuthProvider"));
        assert!(!script.contains("@TRACKING_URI") && !script.contains("@PLUGIN_"));
        assert_ne!(plugin_version(), "0");
        // The heredocs end where the script says: no plugin line closes one.
        assert!(!PLUGIN_MODULE
            .lines()
            .chain(PLUGIN_PYPROJECT.lines())
            .chain(PLUGIN_README.lines())
            .any(|line| line == "FERROFLOW_PLUGIN_EOF"));
    }
}
