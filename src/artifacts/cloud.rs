//! Cloud destinations: `s3://`, `gs://` and `az://` (also `abfs[s]://`,
//! `wasb[s]://`) URLs turned into object stores, configured from the
//! environment the way each cloud's own tools read it.
//!
//! Builders read an explicit variable map rather than the process
//! environment, so the precedence rules are unit tested without touching
//! global state. No HTTP and no artifact paths here.

use std::collections::BTreeMap;
use std::sync::Arc;

use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
use object_store::gcp::{GoogleCloudStorageBuilder, GoogleConfigKey};
use object_store::multipart::MultipartStore;
use object_store::path::Path;
use object_store::prefix::PrefixStore;
use object_store::{ClientConfigKey, ObjectStore, RetryConfig};

/// Environment variables, by name.
pub type Env = BTreeMap<String, String>;

/// The process environment, for [`open`], with each cloud credential that is
/// given as a file (`AWS_SECRET_ACCESS_KEY_FILE=/run/secrets/...`, as Docker
/// and Kubernetes mount secrets) read in under its plain name.
pub fn process_env() -> Env {
    with_file_credentials(std::env::vars().collect())
}

/// The variables whose `_FILE` form is read: the clouds' own, never an
/// arbitrary `*_FILE`.
const CREDENTIAL_PREFIXES: [&str; 3] = ["AWS_", "AZURE_", "GOOGLE_"];

fn with_file_credentials(mut env: Env) -> Env {
    let files: Vec<(String, String)> = env
        .iter()
        .filter_map(|(name, path)| {
            let plain = name.strip_suffix("_FILE")?;
            let known = CREDENTIAL_PREFIXES.iter().any(|p| plain.starts_with(p));
            (known && !env.contains_key(plain)).then(|| (plain.to_owned(), path.clone()))
        })
        .collect();
    for (plain, path) in files {
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                env.insert(plain, text.trim_end_matches(['\n', '\r']).to_owned());
            }
            // The builder then reports the credential as missing.
            Err(err) => tracing::warn!(%err, variable = %plain, "could not read {plain}_FILE"),
        }
    }
    env
}

/// Which cloud a destination is in; their multipart uploads differ a little.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cloud {
    S3,
    Azure,
    Gcs,
}

/// An opened cloud destination: the bucket (or container) with the URL's
/// path as prefix, as an object store and as a multipart store.
pub struct CloudStore {
    pub cloud: Cloud,
    pub store: Arc<dyn ObjectStore>,
    pub multipart: Arc<dyn MultipartStore>,
}

/// Opens the bucket or container named by `url`.
pub fn open(url: &url::Url, env: &Env) -> anyhow::Result<CloudStore> {
    // `s3://bucket/prefix`, `abfss://container@account.dfs.../prefix` alike:
    // the URL path is the prefix inside the bucket or container.
    let prefix = Path::from_url_path(url.path())?;
    match url.scheme() {
        "s3" | "s3a" => Ok(wrap(Cloud::S3, s3_builder(url, env).build()?, prefix)),
        "gs" => Ok(wrap(Cloud::Gcs, gcs_builder(url, env).build()?, prefix)),
        "az" | "azure" | "adl" | "abfs" | "abfss" | "wasb" | "wasbs" => Ok(wrap(
            Cloud::Azure,
            azure_builder(url, env)?.build()?,
            prefix,
        )),
        other => anyhow::bail!(
            "unsupported artifact destination scheme '{other}:' \
             (use a local path, s3://, gs://, az://, abfss:// or wasbs://)"
        ),
    }
}

fn wrap<T: ObjectStore + MultipartStore>(cloud: Cloud, store: T, prefix: Path) -> CloudStore {
    let store = Arc::new(PrefixStore::new(store, prefix));
    CloudStore {
        cloud,
        store: store.clone(),
        multipart: store,
    }
}

fn non_empty<'a>(env: &'a Env, key: &str) -> Option<&'a str> {
    env.get(key).map(String::as_str).filter(|v| !v.is_empty())
}

/// Every `<PREFIX>*` variable the builder knows, as object_store's
/// `from_env` would apply them.
fn known<K: std::str::FromStr>(env: &Env, prefix: &str) -> Vec<(K, String)> {
    env.iter()
        .filter(|(key, _)| key.starts_with(prefix))
        .filter_map(|(key, value)| Some((key.to_ascii_lowercase().parse().ok()?, value.clone())))
        .collect()
}

/// S3 and S3-compatible stores: `AWS_*` as the AWS tools read them
/// (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`,
/// `AWS_REGION`/`AWS_DEFAULT_REGION`, `AWS_ENDPOINT_URL[_S3]`,
/// `AWS_ALLOW_HTTP`), plus MLflow's `MLFLOW_S3_ENDPOINT_URL` and
/// `MLFLOW_S3_IGNORE_TLS`.
/// How long a request keeps retrying a store that does not answer. The
/// default (10 retries over 3 minutes) holds a client's upload that long
/// when the store is down; after this it gets a 503 and retries itself.
fn retry() -> RetryConfig {
    RetryConfig {
        max_retries: 5,
        retry_timeout: std::time::Duration::from_secs(20),
        ..RetryConfig::default()
    }
}

pub fn s3_builder(url: &url::Url, env: &Env) -> AmazonS3Builder {
    let mut builder = AmazonS3Builder::new().with_retry(retry());
    for (key, value) in known::<AmazonS3ConfigKey>(env, "AWS_") {
        builder = builder.with_config(key, value);
    }
    builder = builder.with_url(url.as_str());
    // boto3's precedence: the S3-specific variable, then the general one;
    // MLflow's own variable (for MinIO and friends) when neither is set.
    let endpoint = ["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "AWS_ENDPOINT"]
        .into_iter()
        .chain(["MLFLOW_S3_ENDPOINT_URL"])
        .find_map(|key| non_empty(env, key));
    if let Some(endpoint) = endpoint {
        builder = builder.with_endpoint(endpoint);
        // A plain-http endpoint is an emulator or a private MinIO: the
        // endpoint says so, AWS_ALLOW_HTTP need not repeat it.
        if endpoint.starts_with("http://") {
            builder = builder.with_allow_http(true);
        }
    }
    if non_empty(env, "MLFLOW_S3_IGNORE_TLS").is_some_and(truthy) {
        builder = builder.with_config(
            AmazonS3ConfigKey::Client(ClientConfigKey::AllowInvalidCertificates),
            "true",
        );
    }
    builder
}

/// Google Cloud Storage: `GOOGLE_APPLICATION_CREDENTIALS` (a service account
/// or authorized-user JSON file), `GOOGLE_SERVICE_ACCOUNT[_KEY]`, else the
/// metadata server's credentials.
pub fn gcs_builder(url: &url::Url, env: &Env) -> GoogleCloudStorageBuilder {
    let mut builder = GoogleCloudStorageBuilder::new().with_retry(retry());
    for (key, value) in known::<GoogleConfigKey>(env, "GOOGLE_") {
        builder = builder.with_config(key, value);
    }
    builder.with_url(url.as_str())
}

/// Azure Blob: `AZURE_STORAGE_CONNECTION_STRING` (what `az` and MLflow's
/// Azure repository read) or `AZURE_STORAGE_ACCOUNT_NAME` +
/// `AZURE_STORAGE_ACCOUNT_KEY` (and the other `AZURE_*` credentials);
/// `AZURE_STORAGE_USE_EMULATOR=true` or `UseDevelopmentStorage=true` for
/// Azurite's well-known development account (at `AZURITE_BLOB_STORAGE_URL`,
/// default `http://127.0.0.1:10000`).
pub fn azure_builder(url: &url::Url, env: &Env) -> anyhow::Result<MicrosoftAzureBuilder> {
    let mut builder = MicrosoftAzureBuilder::new().with_retry(retry());
    for (key, value) in known::<AzureConfigKey>(env, "AZURE_") {
        builder = builder.with_config(key, value);
    }
    // Users paste `wasbs://container@account.blob.core.windows.net/p` from
    // Azure; object_store reads the same shape as `abfss://`.
    let url = match url.scheme() {
        "wasb" | "wasbs" => url.as_str().replacen(url.scheme(), "abfss", 1),
        _ => url.to_string(),
    };
    builder = builder.with_url(url);
    if let Some(conn) = non_empty(env, "AZURE_STORAGE_CONNECTION_STRING") {
        builder = apply_connection_string(builder, conn)?;
    }
    Ok(builder)
}

/// `Key=Value;...` as the Azure portal and Azurite print it.
fn apply_connection_string(
    mut builder: MicrosoftAzureBuilder,
    conn: &str,
) -> anyhow::Result<MicrosoftAzureBuilder> {
    let fields: BTreeMap<&str, &str> = conn
        .split(';')
        .filter_map(|kv| kv.trim().split_once('='))
        .collect();
    if fields
        .get("UseDevelopmentStorage")
        .copied()
        .is_some_and(truthy)
    {
        return Ok(builder.with_use_emulator(true));
    }
    if let Some(account) = fields.get("AccountName") {
        builder = builder.with_account(*account);
    }
    if let Some(key) = fields.get("AccountKey") {
        builder = builder.with_access_key(*key);
    }
    if let Some(sas) = fields.get("SharedAccessSignature") {
        builder = builder.with_config(AzureConfigKey::SasKey, *sas);
    }
    let endpoint = match (fields.get("BlobEndpoint"), fields.get("AccountName")) {
        (Some(endpoint), _) => Some(endpoint.trim_end_matches('/').to_string()),
        // `DefaultEndpointsProtocol=https;AccountName=a;EndpointSuffix=...`
        (None, Some(account)) => fields.get("EndpointSuffix").map(|suffix| {
            let protocol = fields.get("DefaultEndpointsProtocol").unwrap_or(&"https");
            format!("{protocol}://{account}.blob.{suffix}")
        }),
        (None, None) => None,
    };
    if let Some(endpoint) = endpoint {
        anyhow::ensure!(
            url::Url::parse(&endpoint).is_ok(),
            "AZURE_STORAGE_CONNECTION_STRING: BlobEndpoint {endpoint:?} is not a URL"
        );
        // Azurite's path-style endpoint (`http://127.0.0.1:10000/devstoreaccount1`)
        // is plain http.
        builder = builder
            .with_allow_http(endpoint.starts_with("http://"))
            .with_endpoint(endpoint);
    }
    Ok(builder)
}

fn truthy(value: &str) -> bool {
    matches!(
        value.trim().to_ascii_lowercase().as_str(),
        "1" | "true" | "yes" | "on"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cloud_credentials_are_read_from_their_file_variables() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("aws-secret");
        std::fs::write(&secret, "from-file\n").unwrap();
        let path = secret.display().to_string();
        let env = with_file_credentials(Env::from([
            ("AWS_SECRET_ACCESS_KEY_FILE".into(), path.clone()),
            ("AZURE_STORAGE_ACCOUNT_KEY".into(), "plain".into()),
            ("AZURE_STORAGE_ACCOUNT_KEY_FILE".into(), path.clone()),
            ("SOMETHING_FILE".into(), path),
        ]));
        assert_eq!(env["AWS_SECRET_ACCESS_KEY"], "from-file");
        assert_eq!(
            env["AZURE_STORAGE_ACCOUNT_KEY"], "plain",
            "the plain one wins"
        );
        assert!(!env.contains_key("SOMETHING"), "only cloud credentials");
    }

    fn env(pairs: &[(&str, &str)]) -> Env {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn url(raw: &str) -> url::Url {
        url::Url::parse(raw).unwrap()
    }

    #[test]
    fn s3_endpoint_precedence_and_plain_http() {
        let s3 = |pairs: &[(&str, &str)]| s3_builder(&url("s3://bucket/prefix"), &env(pairs));
        let endpoint = |b: &AmazonS3Builder| b.get_config_value(&AmazonS3ConfigKey::Endpoint);
        let allow_http = |b: &AmazonS3Builder| {
            b.get_config_value(&AmazonS3ConfigKey::Client(ClientConfigKey::AllowHttp))
        };

        let mlflow_only = s3(&[("MLFLOW_S3_ENDPOINT_URL", "http://127.0.0.1:9000")]);
        assert_eq!(
            endpoint(&mlflow_only).as_deref(),
            Some("http://127.0.0.1:9000")
        );
        assert_eq!(allow_http(&mlflow_only).as_deref(), Some("true"));

        let both = s3(&[
            ("MLFLOW_S3_ENDPOINT_URL", "http://mlflow:1"),
            ("AWS_ENDPOINT_URL", "https://aws:2"),
        ]);
        assert_eq!(endpoint(&both).as_deref(), Some("https://aws:2"));
        assert_eq!(allow_http(&both).as_deref(), Some("false"));
        let specific = s3(&[
            ("AWS_ENDPOINT_URL", "https://aws:2"),
            ("AWS_ENDPOINT_URL_S3", "https://s3:3"),
        ]);
        assert_eq!(endpoint(&specific).as_deref(), Some("https://s3:3"));

        let creds = s3(&[
            ("AWS_ACCESS_KEY_ID", "AKID"),
            ("AWS_SECRET_ACCESS_KEY", "SECRET"),
            ("AWS_DEFAULT_REGION", "eu-west-1"),
            ("AWS_ALLOW_HTTP", "true"),
        ]);
        let get = |key| creds.get_config_value(&key);
        assert_eq!(get(AmazonS3ConfigKey::AccessKeyId).as_deref(), Some("AKID"));
        assert_eq!(
            get(AmazonS3ConfigKey::SecretAccessKey).as_deref(),
            Some("SECRET")
        );
        assert_eq!(get(AmazonS3ConfigKey::Region).as_deref(), Some("eu-west-1"));
        assert_eq!(allow_http(&creds).as_deref(), Some("true"));
    }

    #[test]
    fn azure_connection_strings() {
        let az = |pairs: &[(&str, &str)]| {
            azure_builder(&url("az://container/prefix"), &env(pairs)).unwrap()
        };
        let azurite = az(&[(
            "AZURE_STORAGE_CONNECTION_STRING",
            "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=a2V5;\
             BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1/;",
        )]);
        let get = |b: &MicrosoftAzureBuilder, key| b.get_config_value(&key);
        assert_eq!(
            get(&azurite, AzureConfigKey::AccountName).as_deref(),
            Some("devstoreaccount1")
        );
        assert_eq!(
            get(&azurite, AzureConfigKey::AccessKey).as_deref(),
            Some("a2V5")
        );
        assert_eq!(
            get(&azurite, AzureConfigKey::Endpoint).as_deref(),
            Some("http://127.0.0.1:10000/devstoreaccount1"),
            "no trailing slash: object_store appends the container"
        );

        let portal = az(&[(
            "AZURE_STORAGE_CONNECTION_STRING",
            "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=a2V5;EndpointSuffix=core.windows.net",
        )]);
        assert_eq!(
            get(&portal, AzureConfigKey::Endpoint).as_deref(),
            Some("https://acct.blob.core.windows.net")
        );

        let dev = az(&[(
            "AZURE_STORAGE_CONNECTION_STRING",
            "UseDevelopmentStorage=true",
        )]);
        assert_eq!(
            get(&dev, AzureConfigKey::UseEmulator).as_deref(),
            Some("true")
        );

        let account_and_key = az(&[
            ("AZURE_STORAGE_ACCOUNT_NAME", "acct"),
            ("AZURE_STORAGE_ACCOUNT_KEY", "a2V5"),
        ]);
        assert_eq!(
            get(&account_and_key, AzureConfigKey::AccountName).as_deref(),
            Some("acct")
        );
        assert_eq!(
            get(&account_and_key, AzureConfigKey::AccessKey).as_deref(),
            Some("a2V5")
        );
        // Built without network access: credentials are used lazily.
        open(
            &url("az://container/prefix"),
            &env(&[
                ("AZURE_STORAGE_ACCOUNT_NAME", "acct"),
                ("AZURE_STORAGE_ACCOUNT_KEY", "a2V5"),
            ]),
        )
        .unwrap();
        open(
            &url("az://container/prefix"),
            &env(&[("AZURE_STORAGE_USE_EMULATOR", "true")]),
        )
        .unwrap();
    }

    #[test]
    fn wasbs_urls_name_the_account() {
        let b = azure_builder(
            &url("wasbs://container@acct.blob.core.windows.net/prefix"),
            &Env::new(),
        )
        .unwrap();
        b.build().unwrap();
    }

    #[test]
    fn gcs_credentials_from_google_application_credentials() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("adc.json");
        std::fs::write(
            &file,
            r#"{"type":"authorized_user","client_id":"id","client_secret":"s","refresh_token":"r"}"#,
        )
        .unwrap();
        let gs = url("gs://bucket/prefix");
        let vars = env(&[("GOOGLE_APPLICATION_CREDENTIALS", file.to_str().unwrap())]);
        let builder = gcs_builder(&gs, &vars);
        assert_eq!(
            builder
                .get_config_value(&GoogleConfigKey::ApplicationCredentials)
                .as_deref(),
            file.to_str()
        );
        let opened = open(&gs, &vars).unwrap();
        assert_eq!(opened.cloud, Cloud::Gcs);
        // A credentials file that is not there is a startup error, not a
        // failure on the first upload.
        let missing = env(&[(
            "GOOGLE_APPLICATION_CREDENTIALS",
            dir.path().join("missing.json").to_str().unwrap(),
        )]);
        assert!(open(&gs, &missing).is_err());
    }

    #[test]
    fn unknown_schemes_are_refused() {
        assert!(open(&url("ftp://host/x"), &Env::new()).is_err());
    }
}
