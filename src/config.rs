//! Typed server configuration: defaults < config file < environment < flags.
//!
//! Flags and environment variables are named after `mlflow server`'s so
//! deploy scripts carry over: `--backend-store-uri` is also
//! `MLFLOW_BACKEND_STORE_URI`, and `FERROFLOW_BACKEND_STORE_URI` wins over it.
//! `config.example.toml` documents every key.

use std::path::{Path, PathBuf};

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address to listen on.
    pub host: String,
    pub port: u16,
    /// `sqlite:///<path>` (relative) / `sqlite:////<abs path>` or `postgresql://...`.
    pub backend_store_uri: String,
    /// Root of new experiments' artifact locations; derived when unset.
    pub default_artifact_root: Option<String>,
    /// Where proxied artifacts are stored (`--artifacts-destination`).
    pub artifacts_destination: String,
    /// Serve the artifact proxy (`--serve-artifacts`, on by default).
    pub serve_artifacts: bool,
    /// Serve only the artifact proxy; tracking routes answer 503
    /// (`--artifacts-only`).
    pub artifacts_only: bool,
    /// Workspaces (tenants), selected by the `X-MLFLOW-WORKSPACE` header or a
    /// `/w/<name>` path prefix (`--enable-workspaces`).
    pub enable_workspaces: bool,
    /// `none` (anyone who reaches the server may do anything: the laptop
    /// default) or `token` (API keys exchanged for one-hour tokens).
    pub auth: AuthMode,
    /// How long a token lives: seconds, or `30s`, `5m`, `1h`.
    pub token_ttl: String,
    /// Ed25519 private key (PKCS#8 PEM) that signs tokens. Unset, the server
    /// makes one and keeps it in the database, so replicas share it (and a
    /// reader of the database could mint tokens).
    pub signing_key_file: Option<PathBuf>,
    /// Serve a non-loopback address with `auth = "none"` anyway.
    pub insecure_no_auth: bool,
    /// The URL clients reach this server at (`https://mlflow.example.com`),
    /// used in the tracking URIs and init scripts it hands out; unset, it is
    /// taken from each request's `X-Forwarded-*` or `Host` headers.
    pub public_url: Option<String>,
    /// A directory holding MLflow's web UI bundle (`index.html`, `static/`);
    /// unset, the one `ferroflow ui install` made, else an installed `mlflow`
    /// package's.
    pub ui_dir: Option<PathBuf>,
    /// Serve everything under this path (`/mlflow`), as `mlflow server
    /// --static-prefix` does; `MLFLOW_STATIC_PREFIX` is read too.
    pub static_prefix: Option<String>,
}

/// Whether requests need credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum AuthMode {
    #[default]
    None,
    Token,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            host: "127.0.0.1".into(),
            port: 5000,
            backend_store_uri: "sqlite:///mlflow.db".into(),
            default_artifact_root: None,
            artifacts_destination: "./mlartifacts".into(),
            serve_artifacts: true,
            artifacts_only: false,
            enable_workspaces: false,
            auth: AuthMode::None,
            token_ttl: "1h".into(),
            signing_key_file: None,
            insecure_no_auth: false,
            public_url: None,
            ui_dir: None,
            static_prefix: None,
        }
    }
}

/// Flags of `ferroflow server` (and `ferroflow db upgrade`); each overrides
/// the file and the environment when given. Field names are the config keys:
/// the flags that were given serialize straight into the top layer.
#[derive(Debug, Default, Clone, clap::Args, Serialize)]
pub struct ServerArgs {
    /// Address to listen on [default: 127.0.0.1]
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Port to listen on [default: 5000]
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// Metadata store URI [default: sqlite:///mlflow.db]
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backend_store_uri: Option<String>,
    /// Root URI for new experiments' artifacts [default: mlflow-artifacts:/ when serving artifacts]
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_artifact_root: Option<String>,
    /// Where the artifact proxy stores files [default: ./mlartifacts]
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub artifacts_destination: Option<String>,
    /// Serve the artifact proxy (the default)
    #[arg(long, overrides_with = "no_serve_artifacts")]
    #[serde(skip)]
    pub serve_artifacts: bool,
    /// Do not serve the artifact proxy
    #[arg(long)]
    #[serde(skip)]
    pub no_serve_artifacts: bool,
    /// Serve only the artifact proxy; tracking endpoints answer 503
    #[arg(long)]
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub artifacts_only: bool,
    /// Serve workspaces: each request acts in the one its X-MLFLOW-WORKSPACE
    /// header or /w/<name> path prefix names
    #[arg(long)]
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub enable_workspaces: bool,
    /// none, or token: requests need a token from POST /oauth/token [default: none]
    #[arg(long, value_enum)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth: Option<AuthMode>,
    /// Token lifetime: seconds, or 30s, 5m, 1h [default: 1h]
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_ttl: Option<String>,
    /// Ed25519 PKCS#8 PEM key that signs tokens [default: one kept in the database]
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signing_key_file: Option<PathBuf>,
    /// Listen on a non-loopback address without authentication
    #[arg(long)]
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub insecure_no_auth: bool,
    /// The URL clients reach this server at, for the tracking URIs it hands
    /// out [default: from each request's Host or X-Forwarded-* headers]
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub public_url: Option<String>,
    /// MLflow's web UI bundle directory [default: from `ferroflow ui install`
    /// or the installed mlflow package]
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ui_dir: Option<PathBuf>,
    /// Serve every route under this path prefix, e.g. /mlflow
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub static_prefix: Option<String>,
    /// TOML config file (also FERROFLOW_CONFIG); see config.example.toml
    #[arg(long)]
    #[serde(skip)]
    pub config: Option<PathBuf>,
}

impl ServerArgs {
    /// The flags that were given, as config keys. `--serve-artifacts` and
    /// `--no-serve-artifacts` set one key, so they are added by hand.
    fn overrides(&self) -> serde_json::Value {
        let mut map = serde_json::to_value(self).unwrap_or_default();
        if let Some(map) = map.as_object_mut() {
            if self.serve_artifacts || self.no_serve_artifacts {
                map.insert("serve_artifacts".into(), self.serve_artifacts.into());
            }
        }
        map
    }
}

/// The config keys: the fields of [`Config`], read off its serialized form so
/// the list cannot drift from the struct.
fn keys() -> Vec<String> {
    match serde_json::to_value(Config::default()) {
        Ok(serde_json::Value::Object(map)) => map.into_iter().map(|(key, _)| key).collect(),
        _ => Vec::new(),
    }
}

impl Config {
    /// Merges defaults, the config file (`--config` or `FERROFLOW_CONFIG`),
    /// `MLFLOW_*` then `FERROFLOW_*` environment variables, then flags.
    pub fn load(args: &ServerArgs) -> anyhow::Result<Self> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        let file = args
            .config
            .clone()
            .or_else(|| std::env::var_os("FERROFLOW_CONFIG").map(PathBuf::from));
        if let Some(path) = file {
            anyhow::ensure!(
                Path::new(&path).is_file(),
                "config file {} does not exist",
                path.display()
            );
            figment = figment.merge(Toml::file_exact(path));
        }
        // Every key is also `MLFLOW_<KEY>`, the variable `mlflow server`
        // reads, and `FERROFLOW_<KEY>`, which wins. Other `FERROFLOW_*`
        // variables (test harness settings, say) are not config.
        let keys = keys();
        let is_key = move |key: &figment::value::UncasedStr| keys.iter().any(|k| key == k.as_str());
        figment = figment
            .merge(Env::prefixed("MLFLOW_").filter(is_key.clone()))
            .merge(Env::prefixed("FERROFLOW_").filter(is_key))
            .merge(Serialized::defaults(args.overrides()));
        Ok(figment.extract()?)
    }

    /// The token lifetime, from `token_ttl`.
    pub fn token_ttl(&self) -> anyhow::Result<std::time::Duration> {
        parse_duration(&self.token_ttl).ok_or_else(|| {
            anyhow::anyhow!(
                "token_ttl '{}': use seconds, or 30s, 5m, 1h",
                self.token_ttl
            )
        })
    }

    /// Refuses to serve everyone's data to the network without a door.
    pub fn check_exposure(&self) -> anyhow::Result<()> {
        let loopback = match self.host.parse::<std::net::IpAddr>() {
            Ok(ip) => ip.is_loopback(),
            Err(_) => self.host == "localhost",
        };
        if self.auth == AuthMode::None && !loopback && !self.insecure_no_auth {
            anyhow::bail!(
                "refusing to serve {} without authentication: anyone who can reach it could \
                 read and delete everything. Turn tokens on with `--auth token` (then create a \
                 key: `ferroflow key create --principal <name> --admin`), or pass \
                 `--insecure-no-auth` if something in front of ferroflow authenticates.",
                self.host
            );
        }
        Ok(())
    }

    /// `static_prefix`, checked as `mlflow server` checks it; `None` when
    /// unset or empty.
    pub fn static_prefix(&self) -> anyhow::Result<Option<&str>> {
        let Some(prefix) = self.static_prefix.as_deref().filter(|p| !p.is_empty()) else {
            return Ok(None);
        };
        anyhow::ensure!(
            prefix.starts_with('/'),
            "--static-prefix must begin with a '/'."
        );
        anyhow::ensure!(
            !prefix.ends_with('/'),
            "--static-prefix should not end with a '/'."
        );
        Ok(Some(prefix))
    }

    /// The artifact root new experiments get, resolved as `mlflow server`
    /// does: `mlflow-artifacts:/` when proxying artifacts, else `./mlruns`.
    pub fn artifact_root(&self) -> String {
        match &self.default_artifact_root {
            Some(root) => root.clone(),
            None if self.serve_artifacts => "mlflow-artifacts:/".into(),
            None => std::env::current_dir()
                .map(|dir| dir.join("mlruns").display().to_string())
                .unwrap_or_else(|_| "./mlruns".into()),
        }
    }
}

/// `3600`, `30s`, `5m`, `1h` as a duration; `None` for anything else or zero.
fn parse_duration(text: &str) -> Option<std::time::Duration> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(split) => text.split_at(split),
        None => (text, "s"),
    };
    let seconds = number.parse::<u64>().ok()?
        * match unit {
            "s" => 1,
            "m" => 60,
            "h" => 3600,
            _ => return None,
        };
    (seconds > 0).then(|| std::time::Duration::from_secs(seconds))
}

#[cfg(test)]
// figment's Jail closures return its (large) error type; that is its API.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;
    use figment::Jail;

    #[test]
    fn precedence_is_defaults_file_env_flags() {
        Jail::expect_with(|jail| {
            jail.create_file(
                "ferroflow.toml",
                r#"
                port = 6000
                host = "0.0.0.0"
                backend_store_uri = "sqlite:///file.db"
                artifacts_destination = "/file/artifacts"
                "#,
            )?;
            jail.set_env("MLFLOW_BACKEND_STORE_URI", "sqlite:///mlflow-env.db");
            jail.set_env("MLFLOW_ARTIFACTS_DESTINATION", "/mlflow-env/artifacts");
            jail.set_env(
                "FERROFLOW_ARTIFACTS_DESTINATION",
                "/ferroflow-env/artifacts",
            );
            jail.set_env("FERROFLOW_PORT", "7000");
            jail.set_env("FERROFLOW_BIN", "not a config key");
            let args = ServerArgs {
                config: Some("ferroflow.toml".into()),
                port: Some(8000),
                no_serve_artifacts: true,
                ..ServerArgs::default()
            };
            let config = Config::load(&args).expect("config loads");
            assert_eq!(config.host, "0.0.0.0", "file over default");
            assert_eq!(
                config.backend_store_uri, "sqlite:///mlflow-env.db",
                "env over file"
            );
            assert_eq!(
                config.artifacts_destination, "/ferroflow-env/artifacts",
                "FERROFLOW_ over MLFLOW_"
            );
            assert_eq!(config.port, 8000, "flag over env");
            assert!(!config.serve_artifacts);
            assert_eq!(config.default_artifact_root, None);
            assert!(!config.artifacts_only);
            Ok(())
        });
    }

    #[test]
    fn artifacts_only_from_file_env_and_flag() {
        Jail::expect_with(|jail| {
            jail.create_file("ferroflow.toml", "artifacts_only = true")?;
            let from_file = ServerArgs {
                config: Some("ferroflow.toml".into()),
                ..ServerArgs::default()
            };
            assert!(Config::load(&from_file).expect("loads").artifacts_only);
            jail.set_env("MLFLOW_ARTIFACTS_ONLY", "true");
            assert!(
                Config::load(&ServerArgs::default())
                    .expect("loads")
                    .artifacts_only
            );
            jail.set_env("MLFLOW_ARTIFACTS_ONLY", "false");
            let flag = ServerArgs {
                artifacts_only: true,
                ..ServerArgs::default()
            };
            assert!(
                Config::load(&flag).expect("loads").artifacts_only,
                "flag over env"
            );
            Ok(())
        });
    }

    #[test]
    fn defaults_match_mlflow_server() {
        Jail::expect_with(|_| {
            let config = Config::load(&ServerArgs::default()).expect("defaults load");
            assert_eq!(config, Config::default());
            assert_eq!(config.port, 5000);
            assert_eq!(config.artifact_root(), "mlflow-artifacts:/");
            Ok(())
        });
    }

    #[test]
    fn token_lifetimes_and_exposure() {
        assert_eq!(
            parse_duration("5s"),
            Some(std::time::Duration::from_secs(5))
        );
        assert_eq!(
            parse_duration("1h"),
            Some(std::time::Duration::from_secs(3600))
        );
        assert_eq!(
            parse_duration("90"),
            Some(std::time::Duration::from_secs(90))
        );
        for bad in ["", "0", "5d", "-5", "s", "1.5h"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
        let open = Config {
            host: "0.0.0.0".into(),
            ..Config::default()
        };
        let message = open.check_exposure().unwrap_err().to_string();
        assert!(message.contains("--auth token"), "{message}");
        let token = Config {
            auth: AuthMode::Token,
            ..open.clone()
        };
        assert!(token.check_exposure().is_ok());
        assert!(Config::default().check_exposure().is_ok());
    }

    #[test]
    fn unknown_keys_and_missing_files_are_errors() {
        Jail::expect_with(|jail| {
            jail.create_file("bad.toml", "prot = 1")?;
            let args = ServerArgs {
                config: Some("bad.toml".into()),
                ..ServerArgs::default()
            };
            assert!(Config::load(&args).is_err());
            let args = ServerArgs {
                config: Some("missing.toml".into()),
                ..ServerArgs::default()
            };
            assert!(Config::load(&args).is_err());
            Ok(())
        });
    }
}
