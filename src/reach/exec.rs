//! `ferroflow exec --workspace WS -- python train.py`: runs a command with
//! the workspace's tracking URI and credentials in its environment, as a
//! compute target runs a submitted script with tracking pre-wired.
//!
//! With the auth plugin (`clients/python`) importable by the command's
//! Python, the command gets the key and `MLFLOW_TRACKING_AUTH=ferroflow`, so
//! a job may run for days on tokens the plugin renews. Without it, the
//! command gets one token, and a warning says when it dies.

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};

use url::Url;

use super::exchange::exchange_key;
use super::{
    workspace_uri, API_KEY_ENV, AUTH_PLUGIN, REGISTRY_URI_ENV, TRACKING_AUTH_ENV,
    TRACKING_TOKEN_ENV, TRACKING_URI_ENV,
};

/// Credentials or a workspace the caller's environment may carry that would
/// compete with the ones set here.
const CLEARED: &[&str] = &[
    "MLFLOW_TRACKING_USERNAME",
    "MLFLOW_TRACKING_PASSWORD",
    TRACKING_TOKEN_ENV,
    TRACKING_AUTH_ENV,
    "MLFLOW_WORKSPACE",
];

/// Replaces this process with `command`, so its exit code and signals are
/// the caller's; returns only for a refused key or an unreachable server.
pub async fn exec(
    server: &Url,
    workspace: &str,
    key: &str,
    command: &[OsString],
) -> anyhow::Result<std::convert::Infallible> {
    let (program, args) = command
        .split_first()
        .ok_or_else(|| anyhow::anyhow!("no command given: ferroflow exec --workspace WS -- CMD"))?;
    // Exchanged even when the plugin will make its own: a refused key or a
    // workspace without a role fails here, not hours into the job.
    let grant = exchange_key(server, workspace, key).await?;
    let uri = workspace_uri(server, Some(workspace));
    let mut child = Command::new(program);
    child.args(args);
    for name in CLEARED {
        child.env_remove(name);
    }
    child
        .env(TRACKING_URI_ENV, &uri)
        .env(REGISTRY_URI_ENV, &uri);
    if plugin_installed(program) {
        child
            .env(TRACKING_AUTH_ENV, AUTH_PLUGIN)
            .env(API_KEY_ENV, key);
    } else {
        eprintln!(
            "ferroflow: the auth plugin is not installed for this Python \
             (pip install ./clients/python); the command gets one token, \
             valid for {} s",
            grant.expires_in
        );
        child
            .env(TRACKING_TOKEN_ENV, &grant.access_token)
            .env_remove(API_KEY_ENV);
    }
    let err = child.exec();
    eprintln!("error: could not run {}: {err}", program.to_string_lossy());
    // A shell's codes for a command not found, and one that cannot run.
    std::process::exit(match err.kind() {
        std::io::ErrorKind::NotFound => 127,
        _ => 126,
    })
}

/// Whether the Python that will run the command can import the plugin: the
/// command itself when it is a Python, else `python3` on the PATH.
fn plugin_installed(program: &OsString) -> bool {
    let is_python = Path::new(program)
        .file_name()
        .is_some_and(|name| name.to_string_lossy().starts_with("python"));
    let python = if is_python {
        program.clone()
    } else {
        "python3".into()
    };
    Command::new(python)
        .args(["-c", "import ferroflow_auth"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}
