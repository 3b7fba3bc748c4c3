-- ferroflow's own access tables (not MLflow's): who may call the server, with
-- which keys, in which workspaces and roles, and the keys that sign tokens.

-- A user or a service principal. Deleted principals stay (keys keep naming them).
CREATE TABLE IF NOT EXISTS ferroflow_principals (
    name VARCHAR(255) NOT NULL PRIMARY KEY,
    is_admin BOOLEAN NOT NULL DEFAULT FALSE,
    created_at BIGINT NOT NULL,
    deleted_at BIGINT
);

-- A principal's role in one workspace: READ, EDIT or MANAGE (MLflow's names).
CREATE TABLE IF NOT EXISTS ferroflow_role_bindings (
    principal VARCHAR(255) NOT NULL,
    workspace VARCHAR(63) NOT NULL,
    role VARCHAR(16) NOT NULL,
    PRIMARY KEY (principal, workspace),
    FOREIGN KEY (principal) REFERENCES ferroflow_principals (name) ON DELETE CASCADE
);
CREATE INDEX IF NOT EXISTS idx_ferroflow_role_bindings_workspace
    ON ferroflow_role_bindings (workspace, principal);

-- Long-lived API keys: only a SHA-256 of the secret part is kept.
CREATE TABLE IF NOT EXISTS ferroflow_api_keys (
    key_id VARCHAR(32) NOT NULL PRIMARY KEY,
    principal VARCHAR(255) NOT NULL,
    secret_sha256 VARCHAR(64) NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT,
    revoked_at BIGINT,
    FOREIGN KEY (principal) REFERENCES ferroflow_principals (name) ON DELETE CASCADE
);
CREATE INDEX IF NOT EXISTS idx_ferroflow_api_keys_principal ON ferroflow_api_keys (principal);

-- Token signing keys (Ed25519, PKCS#8 PEM), shared by replicas of one
-- database. A retired key still verifies until its tokens have expired.
CREATE TABLE IF NOT EXISTS ferroflow_signing_keys (
    kid VARCHAR(64) NOT NULL PRIMARY KEY,
    private_key_pem TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    retired_at BIGINT
);

-- Every write and every refusal, for the workspace's managers to read.
CREATE TABLE IF NOT EXISTS ferroflow_audit_log (
    id BIGSERIAL PRIMARY KEY,
    time BIGINT NOT NULL,
    principal VARCHAR(255),
    workspace VARCHAR(63) NOT NULL,
    action VARCHAR(300) NOT NULL,
    target TEXT,
    request_id VARCHAR(36) NOT NULL,
    outcome INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS idx_ferroflow_audit_log_workspace ON ferroflow_audit_log (workspace, id);
