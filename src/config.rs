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
    /// Where clients may point a new experiment's artifacts: comma-separated
    /// prefixes, `*` for anywhere (`mlflow server`'s behaviour); unset, the
    /// server's own roots.
    pub allowed_artifact_locations: Option<String>,
    /// `Host` headers served, comma-separated patterns (`*` wildcard); unset,
    /// localhost and private addresses, plus `public_url`'s host when the
    /// list is given. `MLFLOW_SERVER_ALLOWED_HOSTS` is read too.
    pub allowed_hosts: Option<String>,
    /// Browser origins allowed to call the API (besides localhost ones),
    /// comma-separated; `*` for any, without credentials.
    /// `MLFLOW_SERVER_CORS_ALLOWED_ORIGINS` is read too.
    pub cors_allowed_origins: Option<String>,
    /// How long SIGTERM waits for in-flight requests before the server
    /// exits anyway: seconds, or `30s`, `5m`.
    pub drain_timeout: String,
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
            allowed_artifact_locations: None,
            allowed_hosts: None,
            cors_allowed_origins: None,
            drain_timeout: "30s".into(),
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
    /// Where clients may point experiments' artifacts: comma-separated
    /// prefixes, or * [default: the server's own artifact roots]
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allowed_artifact_locations: Option<String>,
    /// Host headers to serve, comma-separated patterns, or * [default:
    /// localhost and private addresses]
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allowed_hosts: Option<String>,
    /// Browser origins allowed to call the API besides localhost,
    /// comma-separated, or *
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cors_allowed_origins: Option<String>,
    /// How long SIGTERM waits for in-flight requests: seconds, or 30s, 5m [default: 30s]
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drain_timeout: Option<String>,
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
        let secrets = secrets_from_files(&keys, |name| std::env::var(name).ok())?;
        let is_key = move |key: &figment::value::UncasedStr| keys.iter().any(|k| key == k.as_str());
        // `mlflow server`'s names for its security options.
        let security_keys = |key: &figment::value::UncasedStr| {
            key == "allowed_hosts" || key == "cors_allowed_origins"
        };
        figment = figment
            .merge(Env::prefixed("MLFLOW_SERVER_").filter(security_keys))
            .merge(Env::prefixed("MLFLOW_").filter(is_key.clone()))
            .merge(Env::prefixed("FERROFLOW_").filter(is_key))
            .merge(Serialized::defaults(secrets))
            .merge(Serialized::defaults(args.overrides()));
        Ok(figment.extract::<Self>()?.empty_as_unset())
    }

    /// An optional setting given as `""` is unset: compose files and Helm
    /// charts pass optional variables through empty.
    fn empty_as_unset(mut self) -> Self {
        fn text(value: &mut Option<String>) {
            if value.as_deref().is_some_and(|v| v.trim().is_empty()) {
                *value = None;
            }
        }
        fn path(value: &mut Option<PathBuf>) {
            if value.as_ref().is_some_and(|v| v.as_os_str().is_empty()) {
                *value = None;
            }
        }
        for value in [
            &mut self.default_artifact_root,
            &mut self.public_url,
            &mut self.static_prefix,
            &mut self.allowed_artifact_locations,
            &mut self.allowed_hosts,
            &mut self.cors_allowed_origins,
        ] {
            text(value);
        }
        path(&mut self.signing_key_file);
        path(&mut self.ui_dir);
        self
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

    /// How long SIGTERM waits for in-flight requests, from `drain_timeout`.
    pub fn drain_timeout(&self) -> anyhow::Result<std::time::Duration> {
        parse_duration(&self.drain_timeout).ok_or_else(|| {
            anyhow::anyhow!(
                "drain_timeout '{}': use seconds, or 30s, 5m",
                self.drain_timeout
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

    /// Where clients may point experiments' artifacts: the configured
    /// prefixes, else the roots this server itself hands out and stores to.
    pub fn artifact_locations(&self) -> crate::artifacts::LocationPolicy {
        if let Some(list) = &self.allowed_artifact_locations {
            return crate::artifacts::LocationPolicy::new(
                list.split(',').map(str::trim).filter(|p| !p.is_empty()),
            );
        }
        let mut roots = vec![self.artifact_root()];
        if self.serve_artifacts {
            roots.push(self.artifacts_destination.clone());
        }
        crate::artifacts::LocationPolicy::new(roots)
    }
}

/// Values read from files named by `FERROFLOW_<KEY>_FILE` or
/// `MLFLOW_<KEY>_FILE` (Docker and Kubernetes secrets are files): a
/// password-bearing `backend_store_uri` need not sit in the environment.
/// Naming both the variable and its `_FILE` is an error, not a guess.
fn secrets_from_files(
    keys: &[String],
    var: impl Fn(&str) -> Option<String>,
) -> anyhow::Result<serde_json::Value> {
    let mut values = serde_json::Map::new();
    for key in keys {
        for prefix in ["FERROFLOW_", "MLFLOW_"] {
            let name = format!("{prefix}{}", key.to_uppercase());
            let Some(path) = var(&format!("{name}_FILE")) else {
                continue;
            };
            anyhow::ensure!(
                var(&name).is_none(),
                "both {name} and {name}_FILE are set: keep one"
            );
            let text = std::fs::read_to_string(&path)
                .map_err(|err| anyhow::anyhow!("{name}_FILE: reading {path}: {err}"))?;
            values
                .entry(key.clone())
                .or_insert_with(|| text.trim_end_matches(['\n', '\r']).into());
        }
    }
    Ok(values.into())
}

/// A URI fit for logs and `config print`: a password, in the user-info or
/// as a `password=` query parameter, is masked.
pub fn redact_uri(uri: &str) -> String {
    let Ok(mut url) = url::Url::parse(uri) else {
        return uri.to_string();
    };
    if url.password().is_some() {
        let _ = url.set_password(Some("***"));
    }
    if url.query_pairs().any(|(name, _)| name == "password") {
        let pairs: Vec<(String, String)> = url
            .query_pairs()
            .map(|(name, value)| {
                let value = if name == "password" {
                    "***".into()
                } else {
                    value.into_owned()
                };
                (name.into_owned(), value)
            })
            .collect();
        url.query_pairs_mut().clear().extend_pairs(pairs);
    }
    url.to_string()
}

impl Config {
    /// The effective configuration as TOML, URIs' passwords masked
    /// (`ferroflow config print`).
    pub fn to_redacted_toml(&self) -> anyhow::Result<String> {
        let mut shown = self.clone();
        shown.backend_store_uri = redact_uri(&shown.backend_store_uri);
        shown.artifacts_destination = redact_uri(&shown.artifacts_destination);
        shown.default_artifact_root = shown.default_artifact_root.as_deref().map(redact_uri);
        shown.public_url = shown.public_url.as_deref().map(redact_uri);
        Ok(toml::to_string(&shown)?)
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
    fn secrets_come_from_files_and_print_masked() {
        Jail::expect_with(|jail| {
            jail.create_file("db-uri", "postgresql://ff:s3cret@db:5432/mlflow\n")?;
            jail.set_env("FERROFLOW_BACKEND_STORE_URI_FILE", "db-uri");
            jail.set_env("MLFLOW_SERVER_ALLOWED_HOSTS", "mlflow.example.com");
            jail.set_env("FERROFLOW_PUBLIC_URL", "");
            let config = Config::load(&ServerArgs::default()).expect("loads");
            assert_eq!(
                config.backend_store_uri,
                "postgresql://ff:s3cret@db:5432/mlflow"
            );
            assert_eq!(config.allowed_hosts.as_deref(), Some("mlflow.example.com"));
            assert_eq!(config.public_url, None, "empty is unset");
            let printed = config.to_redacted_toml().expect("prints");
            assert!(
                printed.contains("postgresql://ff:***@db:5432/mlflow"),
                "{printed}"
            );
            assert!(!printed.contains("s3cret"));

            jail.set_env("FERROFLOW_BACKEND_STORE_URI", "sqlite:///x.db");
            let both = Config::load(&ServerArgs::default()).unwrap_err();
            assert!(both.to_string().contains("keep one"), "{both}");
            Ok(())
        });
    }

    #[test]
    fn a_query_string_password_is_masked() {
        assert_eq!(
            redact_uri("postgresql://h/db?user=u&password=p%40ss&sslmode=require"),
            "postgresql://h/db?user=u&password=***&sslmode=require"
        );
        assert_eq!(redact_uri("sqlite:///mlflow.db"), "sqlite:///mlflow.db");
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
    fn the_example_file_documents_every_key_with_its_default() {
        let example = include_str!("../config.example.toml");
        for key in keys() {
            assert!(
                example.contains(&format!("\n{key} = "))
                    || example.contains(&format!("\n# {key} = ")),
                "config.example.toml does not document {key}"
            );
        }
        Jail::expect_with(|jail| {
            jail.create_file("example.toml", example)?;
            let args = ServerArgs {
                config: Some("example.toml".into()),
                ..ServerArgs::default()
            };
            assert_eq!(Config::load(&args).expect("loads"), Config::default());
            Ok(())
        });
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
