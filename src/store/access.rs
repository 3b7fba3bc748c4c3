//! The access store: principals, their roles per workspace, their API keys
//! and the token signing keys, in ferroflow's own tables (migration 0007).
//! No SQL here; the rules of keys and tokens live in `crate::auth`.

use async_trait::async_trait;
use serde::Serialize;

use crate::auth::permissions::Role;
use crate::error::Result;

/// An API key's row, as the token exchange checks it.
#[derive(Debug, Clone)]
pub struct KeyRecord {
    pub key_id: String,
    pub principal: String,
    pub secret_sha256: String,
    pub expires_at: Option<i64>,
    pub revoked_at: Option<i64>,
    pub principal_deleted: bool,
    pub is_admin: bool,
}

/// An API key as listed: never its secret.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KeyInfo {
    pub key_id: String,
    pub principal: String,
    pub created_at: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<i64>,
}

/// A token signing key as stored (PKCS#8 PEM).
#[derive(Debug, Clone)]
pub struct StoredSigningKey {
    pub kid: String,
    pub private_key_pem: String,
}

/// One audited request: a write, or a refusal.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditEvent {
    /// Milliseconds since the epoch.
    pub time: i64,
    /// Who, when a token said so.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub principal: Option<String>,
    pub workspace: String,
    /// `METHOD /route`.
    pub action: String,
    /// The request's path and query as sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    pub request_id: String,
    /// The HTTP status answered.
    pub outcome: u16,
}

#[async_trait]
pub trait AccessStore: Send + Sync {
    /// Creates the principal if it is new; `admin` makes it a server admin.
    async fn ensure_principal(&self, name: &str, admin: bool) -> Result<()>;
    /// Gives `principal` `role` in `workspace` (replacing any other).
    async fn bind_role(&self, principal: &str, workspace: &str, role: Role) -> Result<()>;
    async fn role_of(&self, principal: &str, workspace: &str) -> Result<Option<Role>>;
    async fn create_key(
        &self,
        key_id: &str,
        principal: &str,
        secret_sha256: &str,
        expires_at: Option<i64>,
    ) -> Result<()>;
    async fn find_key(&self, key_id: &str) -> Result<Option<KeyRecord>>;
    /// Revokes a key; `false` if there is no such key.
    async fn revoke_key(&self, key_id: &str) -> Result<bool>;
    /// The keys of the principals that have a role in `workspace`.
    async fn list_keys(&self, workspace: &str) -> Result<Vec<KeyInfo>>;
    /// Marks a principal deleted: its keys' tokens stop passing; `false` if
    /// there is no such principal.
    async fn delete_principal(&self, name: &str) -> Result<bool>;
    /// Ids of keys whose tokens must no longer pass: revoked, or of a
    /// deleted principal.
    async fn revoked_key_ids(&self) -> Result<Vec<String>>;
    /// Signing keys still verifying, newest first.
    async fn signing_keys(&self) -> Result<Vec<StoredSigningKey>>;
    /// Stores `key` unless a signing key is already in use; one check and
    /// insert among all replicas, so replicas starting together on a fresh
    /// database end up with one key. Returns whether `key` was stored.
    async fn add_first_signing_key(&self, key: &StoredSigningKey) -> Result<bool>;
    /// Appends audited requests (one statement per batch).
    async fn append_audit(&self, events: &[AuditEvent]) -> Result<()>;
    /// A workspace's audit events, newest first, before event id `before`;
    /// each with its id (the next page's `before`).
    async fn read_audit(
        &self,
        workspace: &str,
        max_results: i64,
        before: Option<i64>,
    ) -> Result<Vec<(i64, AuditEvent)>>;
}
