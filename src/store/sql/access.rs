//! Principals, roles, API keys and signing keys in ferroflow's own tables.

use async_trait::async_trait;

use super::{now_millis, values_rows, SqlStore};
use crate::auth::permissions::Role;
use crate::error::Result;
use crate::store::access::{AccessStore, AuditEvent, KeyInfo, KeyRecord, StoredSigningKey};
use crate::store::db;

#[async_trait]
impl AccessStore for SqlStore {
    async fn ensure_principal(&self, name: &str, admin: bool) -> Result<()> {
        db::query(
            "INSERT INTO ferroflow_principals (name, is_admin, created_at) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO UPDATE SET is_admin = ferroflow_principals.is_admin OR $2, \
             deleted_at = NULL",
        )
        .bind(name)
        .bind(admin)
        .bind(now_millis())
        .execute(&self.db)
        .await?;
        Ok(())
    }

    async fn bind_role(&self, principal: &str, workspace: &str, role: Role) -> Result<()> {
        db::query(
            "INSERT INTO ferroflow_role_bindings (principal, workspace, role) VALUES ($1, $2, $3) \
             ON CONFLICT (principal, workspace) DO UPDATE SET role = excluded.role",
        )
        .bind(principal)
        .bind(workspace)
        .bind(role.as_str())
        .execute(&self.db)
        .await?;
        Ok(())
    }

    async fn role_of(&self, principal: &str, workspace: &str) -> Result<Option<Role>> {
        let row = db::query(
            "SELECT role FROM ferroflow_role_bindings WHERE principal = $1 AND workspace = $2",
        )
        .bind(principal)
        .bind(workspace)
        .fetch_optional(&self.db)
        .await?;
        Ok(match row {
            Some(row) => Role::parse(&row.try_get::<String, _>("role")?),
            None => None,
        })
    }

    async fn create_key(
        &self,
        key_id: &str,
        principal: &str,
        secret_sha256: &str,
        expires_at: Option<i64>,
    ) -> Result<()> {
        db::query(
            "INSERT INTO ferroflow_api_keys (key_id, principal, secret_sha256, created_at, \
             expires_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(key_id)
        .bind(principal)
        .bind(secret_sha256)
        .bind(now_millis())
        .bind(expires_at)
        .execute(&self.db)
        .await?;
        Ok(())
    }

    async fn find_key(&self, key_id: &str) -> Result<Option<KeyRecord>> {
        let row = db::query(
            "SELECT k.key_id, k.principal, k.secret_sha256, k.expires_at, k.revoked_at, \
             CASE WHEN p.deleted_at IS NULL THEN 0 ELSE 1 END AS principal_deleted, \
             CASE WHEN p.is_admin THEN 1 ELSE 0 END AS is_admin \
             FROM ferroflow_api_keys k JOIN ferroflow_principals p ON p.name = k.principal \
             WHERE k.key_id = $1",
        )
        .bind(key_id)
        .fetch_optional(&self.db)
        .await?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some(KeyRecord {
            key_id: row.try_get("key_id")?,
            principal: row.try_get("principal")?,
            secret_sha256: row.try_get("secret_sha256")?,
            expires_at: row.try_get("expires_at")?,
            revoked_at: row.try_get("revoked_at")?,
            principal_deleted: row.try_get::<i64, _>("principal_deleted")? != 0,
            is_admin: row.try_get::<i64, _>("is_admin")? != 0,
        }))
    }

    async fn revoke_key(&self, key_id: &str) -> Result<bool> {
        let changed = db::query(
            "UPDATE ferroflow_api_keys SET revoked_at = COALESCE(revoked_at, $2) \
             WHERE key_id = $1",
        )
        .bind(key_id)
        .bind(now_millis())
        .execute(&self.db)
        .await?;
        Ok(changed > 0)
    }

    async fn list_keys(&self, workspace: &str) -> Result<Vec<KeyInfo>> {
        db::query(
            "SELECT k.key_id, k.principal, k.created_at, k.expires_at, k.revoked_at \
             FROM ferroflow_api_keys k JOIN ferroflow_role_bindings b ON b.principal = k.principal \
             WHERE b.workspace = $1 ORDER BY k.created_at, k.key_id",
        )
        .bind(workspace)
        .fetch_all(&self.db)
        .await?
        .iter()
        .map(|row| {
            Ok(KeyInfo {
                key_id: row.try_get("key_id")?,
                principal: row.try_get("principal")?,
                created_at: row.try_get("created_at")?,
                expires_at: row.try_get("expires_at")?,
                revoked_at: row.try_get("revoked_at")?,
            })
        })
        .collect()
    }

    async fn delete_principal(&self, name: &str) -> Result<bool> {
        let changed = db::query(
            "UPDATE ferroflow_principals SET deleted_at = COALESCE(deleted_at, $2) WHERE name = $1",
        )
        .bind(name)
        .bind(now_millis())
        .execute(&self.db)
        .await?;
        Ok(changed > 0)
    }

    async fn revoked_key_ids(&self) -> Result<Vec<String>> {
        db::query(
            "SELECT k.key_id FROM ferroflow_api_keys k \
             JOIN ferroflow_principals p ON p.name = k.principal \
             WHERE k.revoked_at IS NOT NULL OR p.deleted_at IS NOT NULL",
        )
        .fetch_all(&self.db)
        .await?
        .iter()
        .map(|row| Ok(row.try_get("key_id")?))
        .collect()
    }

    async fn signing_keys(&self) -> Result<Vec<StoredSigningKey>> {
        db::query(
            "SELECT kid, private_key_pem FROM ferroflow_signing_keys WHERE retired_at IS NULL \
             ORDER BY created_at DESC, kid",
        )
        .fetch_all(&self.db)
        .await?
        .iter()
        .map(|row| {
            Ok(StoredSigningKey {
                kid: row.try_get("kid")?,
                private_key_pem: row.try_get("private_key_pem")?,
            })
        })
        .collect()
    }

    async fn add_first_signing_key(&self, key: &StoredSigningKey) -> Result<bool> {
        // SQLite's transactions take the write lock at BEGIN; on PostgreSQL a
        // lock mode that conflicts with itself makes the check and insert of
        // two replicas run one after the other.
        let mut tx = self.db.begin().await?;
        if self.dialect == super::Dialect::Postgres {
            db::query("LOCK TABLE ferroflow_signing_keys IN SHARE ROW EXCLUSIVE MODE")
                .execute(&mut tx)
                .await?;
        }
        let in_use =
            db::query("SELECT kid FROM ferroflow_signing_keys WHERE retired_at IS NULL LIMIT 1")
                .fetch_optional(&mut tx)
                .await?;
        if in_use.is_some() {
            return Ok(false);
        }
        db::query(
            "INSERT INTO ferroflow_signing_keys (kid, private_key_pem, created_at) \
             VALUES ($1, $2, $3)",
        )
        .bind(&key.kid)
        .bind(&key.private_key_pem)
        .bind(now_millis())
        .execute(&mut tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn append_audit(&self, events: &[AuditEvent]) -> Result<()> {
        if let db::Db::Postgres(pool) = &self.db {
            return append_audit_postgres(pool, events).await;
        }
        for chunk in events.chunks(AUDIT_CHUNK) {
            let sql = format!(
                "INSERT INTO ferroflow_audit_log \
                 (time, principal, workspace, action, target, request_id, outcome) VALUES {}",
                values_rows(chunk.len(), 7, 1)
            );
            let query = chunk.iter().fold(db::query(&sql), |query, event| {
                query
                    .bind(event.time)
                    .bind(event.principal.as_deref())
                    .bind(&event.workspace)
                    .bind(&event.action)
                    .bind(event.target.as_deref())
                    .bind(&event.request_id)
                    .bind(i64::from(event.outcome))
            });
            query.execute(&self.db).await?;
        }
        Ok(())
    }

    async fn read_audit(
        &self,
        workspace: &str,
        max_results: i64,
        before: Option<i64>,
    ) -> Result<Vec<(i64, AuditEvent)>> {
        let rows = db::query(
            "SELECT id, time, principal, workspace, action, target, request_id, outcome \
             FROM ferroflow_audit_log WHERE workspace = $1 AND id < $2 ORDER BY id DESC LIMIT $3",
        )
        .bind(workspace)
        .bind(before.unwrap_or(i64::MAX))
        .bind(max_results)
        .fetch_all(&self.db)
        .await?;
        rows.iter()
            .map(|row| {
                Ok((
                    row.try_get("id")?,
                    AuditEvent {
                        time: row.try_get("time")?,
                        principal: row.try_get("principal")?,
                        workspace: row.try_get("workspace")?,
                        action: row.try_get("action")?,
                        target: row.try_get("target")?,
                        request_id: row.try_get("request_id")?,
                        outcome: u16::try_from(row.try_get::<i64, _>("outcome")?).unwrap_or(0),
                    },
                ))
            })
            .collect()
    }
}

/// Audit rows per INSERT (7 parameters each) on SQLite.
const AUDIT_CHUNK: usize = 500;

/// On PostgreSQL a batch of any size is one statement of seven array
/// parameters: one text, parsed and planned once per connection, where a
/// multi-row VALUES list would be a new statement for every batch size (the
/// audit writer runs beside every write, so its cost shows in theirs).
async fn append_audit_postgres(pool: &sqlx::PgPool, events: &[AuditEvent]) -> Result<()> {
    fn column<T>(events: &[AuditEvent], field: impl Fn(&AuditEvent) -> T) -> Vec<T> {
        events.iter().map(field).collect()
    }
    sqlx::query(
        "INSERT INTO ferroflow_audit_log \
         (time, principal, workspace, action, target, request_id, outcome) \
         SELECT * FROM UNNEST($1::bigint[], $2::varchar[], $3::varchar[], $4::varchar[], \
         $5::text[], $6::varchar[], $7::int[])",
    )
    .bind(column(events, |e| e.time))
    .bind(column(events, |e| e.principal.clone()))
    .bind(column(events, |e| e.workspace.clone()))
    .bind(column(events, |e| e.action.clone()))
    .bind(column(events, |e| e.target.clone()))
    .bind(column(events, |e| e.request_id.clone()))
    .bind(column(events, |e| i32::from(e.outcome)))
    .execute(pool)
    .await
    .map_err(db::DbError::from)?;
    Ok(())
}
