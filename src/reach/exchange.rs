//! The key exchange a command line tool makes with a running server: the
//! same `POST /oauth/token` the auth plugin and any OAuth client make.

use serde::Deserialize;
use url::Url;

/// A token and how long it lives, as `/oauth/token` answers.
#[derive(Debug, Deserialize)]
pub struct Grant {
    pub access_token: String,
    pub expires_in: u64,
}

#[derive(Deserialize)]
struct Refusal {
    message: Option<String>,
}

/// Exchanges `key` for a token of `workspace` at `server`. Errors name the
/// endpoint and the server's message, never the key.
pub async fn exchange_key(server: &Url, workspace: &str, key: &str) -> anyhow::Result<Grant> {
    let endpoint = format!("{}/oauth/token", server.as_str().trim_end_matches('/'));
    let response = reqwest::Client::new()
        .post(&endpoint)
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_secret", key),
            ("scope", workspace),
        ])
        .timeout(std::time::Duration::from_secs(30))
        .send()
        .await
        // reqwest's message names the URL, which holds no credentials.
        .map_err(|err| anyhow::anyhow!("could not reach {endpoint}: {err}"))?;
    let status = response.status();
    let body = response.bytes().await.unwrap_or_default();
    if status.is_success() {
        return serde_json::from_slice(&body)
            .map_err(|_| anyhow::anyhow!("{endpoint} answered something other than a token"));
    }
    let message = serde_json::from_slice::<Refusal>(&body)
        .ok()
        .and_then(|refusal| refusal.message)
        .unwrap_or_else(|| "no message".into())
        .replace(key, "***");
    anyhow::bail!(
        "{endpoint} refused the key for workspace '{workspace}' (HTTP {status}): {message}"
    )
}
