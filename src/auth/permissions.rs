//! Roles and the permission every route needs, in one table a reviewer can
//! read top to bottom. A route missing from it is refused (fail closed), and
//! a test checks that every route `api` declares is in it.
//!
//! Roles carry MLflow's names: `READ` reads everything in the workspace,
//! `EDIT` also creates and changes experiments, runs, artifacts and models,
//! `MANAGE` also the workspace's settings, members and keys. Server admins
//! manage workspaces themselves.

use axum::http::Method;
use serde::{Deserialize, Serialize};

/// A principal's role in one workspace, ordered by what it allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Role {
    Read,
    Edit,
    Manage,
}

impl Role {
    pub fn parse(role: &str) -> Option<Self> {
        match role {
            "READ" => Some(Self::Read),
            "EDIT" => Some(Self::Edit),
            "MANAGE" => Some(Self::Manage),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Read => "READ",
            Self::Edit => "EDIT",
            Self::Manage => "MANAGE",
        }
    }
}

/// What a route needs from the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    /// No credentials: health, version, the capability probe, token
    /// exchange, public keys.
    Public,
    /// At least the role, in the request's workspace.
    Role(Role),
    /// Any valid token, whatever its workspace; the handler decides (the
    /// workspace catalog, where the workspace named is the path's).
    Authenticated,
    /// A server admin.
    Admin,
}

use Permission::{Admin, Authenticated, Public};
pub const READ: Permission = Permission::Role(Role::Read);
const EDIT: Permission = Permission::Role(Role::Edit);
const MANAGE: Permission = Permission::Role(Role::Manage);

/// Every route: method, path as routed (`/ajax-api/...` reads as `/api/...`),
/// and what it needs. `*` matches any method.
#[rustfmt::skip]
pub const ROUTES: &[(&str, &str, Permission)] = &[
    // Server.
    ("GET", "/health", Public),
    ("GET", "/version", Public),
    // Readiness and metrics are for the orchestrator and Prometheus, which
    // hold no token; `/metrics` names workspaces, so keep it off the public
    // ingress (README, Deploy).
    ("GET", "/ready", Public),
    ("GET", "/metrics", Public),
    ("GET", "/api/3.0/mlflow/server-info", Public),
    ("POST", "/oauth/token", Public),
    ("GET", "/.well-known/jwks.json", Public),
    // MLflow's web UI: the page and its static bundle (no data in them).
    ("GET", "/", Public),
    ("GET", "/static-files/{*path}", Public),
    ("*", "/signin", Public),
    ("POST", "/signout", Public),
    ("*", "/api/3.0/mlflow/ui-telemetry", Authenticated),
    ("POST", "/api/3.0/mlflow/traces/metrics", READ),
    ("POST", "/api/3.0/mlflow/datasets/search", READ),
    ("GET", "/api/3.0/mlflow/assistant/config", Authenticated),
    ("GET", "/api/3.0/mlflow/assistant/providers", Authenticated),
    ("GET", "/api/2.0/mlflow/gateway-proxy", Authenticated),
    // Workspaces: the catalog is the server admins'; a member sees its own.
    ("GET", "/api/3.0/mlflow/workspaces", Authenticated),
    ("POST", "/api/3.0/mlflow/workspaces", Admin),
    ("GET", "/api/3.0/mlflow/workspaces/{name}", Authenticated),
    ("PATCH", "/api/3.0/mlflow/workspaces/{name}", Admin),
    ("DELETE", "/api/3.0/mlflow/workspaces/{name}", Admin),
    // Experiments.
    ("POST", "/api/2.0/mlflow/experiments/create", EDIT),
    ("GET", "/api/2.0/mlflow/experiments/get", READ),
    ("GET", "/api/2.0/mlflow/experiments/get-by-name", READ),
    ("*", "/api/2.0/mlflow/experiments/search", READ),
    ("POST", "/api/2.0/mlflow/experiments/update", EDIT),
    ("POST", "/api/2.0/mlflow/experiments/delete", EDIT),
    ("POST", "/api/2.0/mlflow/experiments/restore", EDIT),
    ("POST", "/api/2.0/mlflow/experiments/set-experiment-tag", EDIT),
    ("POST", "/api/2.0/mlflow/experiments/delete-experiment-tag", EDIT),
    // Runs, their data and history.
    ("POST", "/api/2.0/mlflow/runs/create", EDIT),
    ("GET", "/api/2.0/mlflow/runs/get", READ),
    ("POST", "/api/2.0/mlflow/runs/update", EDIT),
    ("POST", "/api/2.0/mlflow/runs/delete", EDIT),
    ("POST", "/api/2.0/mlflow/runs/restore", EDIT),
    ("POST", "/api/2.0/mlflow/runs/search", READ),
    ("POST", "/api/2.0/mlflow/runs/log-metric", EDIT),
    ("POST", "/api/2.0/mlflow/runs/log-parameter", EDIT),
    ("POST", "/api/2.0/mlflow/runs/set-tag", EDIT),
    ("POST", "/api/2.0/mlflow/runs/delete-tag", EDIT),
    ("POST", "/api/2.0/mlflow/runs/log-batch", EDIT),
    ("POST", "/api/2.0/mlflow/runs/log-inputs", EDIT),
    ("POST", "/api/2.0/mlflow/runs/log-model", EDIT),
    ("POST", "/api/2.0/mlflow/runs/outputs", EDIT),
    ("GET", "/api/2.0/mlflow/metrics/get-history", READ),
    ("GET", "/api/2.0/mlflow/metrics/get-history-bulk-interval", READ),
    ("GET", "/api/2.0/mlflow/metrics/get-history-bulk", READ),
    ("POST", "/api/2.0/mlflow/experiments/search-datasets", READ),
    ("POST", "/api/2.0/mlflow/upload-artifact", EDIT),
    // MLflow's GraphQL reads runs and experiments; it has no mutation here.
    ("*", "/graphql", READ),
    // Logged models.
    ("POST", "/api/2.0/mlflow/logged-models", EDIT),
    ("POST", "/api/2.0/mlflow/logged-models/search", READ),
    ("GET", "/api/2.0/mlflow/logged-models/{model_id}", READ),
    ("PATCH", "/api/2.0/mlflow/logged-models/{model_id}", EDIT),
    ("DELETE", "/api/2.0/mlflow/logged-models/{model_id}", EDIT),
    ("PATCH", "/api/2.0/mlflow/logged-models/{model_id}/tags", EDIT),
    ("DELETE", "/api/2.0/mlflow/logged-models/{model_id}/tags/{tag_key}", EDIT),
    ("POST", "/api/2.0/mlflow/logged-models/{model_id}/params", EDIT),
    ("GET", "/api/2.0/mlflow/logged-models/{model_id}/artifacts/directories", READ),
    ("GET", "/api/2.0/mlflow/logged-models/{model_id}/artifacts/files", READ),
    // Traces: their records, spans (OTLP), tags, links to runs and
    // assessments. Spans uploaded as artifacts (`traces.json`) follow the
    // artifact rules.
    ("POST", "/api/3.0/mlflow/traces", EDIT),
    ("POST", "/v1/traces", EDIT),
    ("POST", "/api/3.0/mlflow/traces/search", READ),
    ("POST", "/api/3.0/mlflow/traces/batchGetInfos", READ),
    ("GET", "/api/3.0/mlflow/traces/{trace_id}", READ),
    ("GET", "/api/3.0/mlflow/traces/get", READ),
    ("GET", "/api/3.0/mlflow/traces/batchGet", READ),
    ("PATCH", "/api/3.0/mlflow/traces/{trace_id}/tags", EDIT),
    ("DELETE", "/api/3.0/mlflow/traces/{trace_id}/tags", EDIT),
    ("POST", "/api/3.0/mlflow/traces/delete-traces", EDIT),
    ("POST", "/api/3.0/mlflow/traces/{trace_id}/assessments", EDIT),
    ("GET", "/api/3.0/mlflow/traces/{trace_id}/assessments/{assessment_id}", READ),
    ("PATCH", "/api/3.0/mlflow/traces/{trace_id}/assessments/{assessment_id}", EDIT),
    ("DELETE", "/api/3.0/mlflow/traces/{trace_id}/assessments/{assessment_id}", EDIT),
    ("GET", "/api/3.0/mlflow/get-trace-artifact", READ),
    ("GET", "/api/2.0/mlflow/traces", READ),
    ("POST", "/api/2.0/mlflow/traces", EDIT),
    ("PATCH", "/api/2.0/mlflow/traces/{trace_id}", EDIT),
    ("GET", "/api/2.0/mlflow/traces/{trace_id}/info", READ),
    ("PATCH", "/api/2.0/mlflow/traces/{trace_id}/tags", EDIT),
    ("DELETE", "/api/2.0/mlflow/traces/{trace_id}/tags", EDIT),
    ("POST", "/api/2.0/mlflow/traces/delete-traces", EDIT),
    ("POST", "/api/2.0/mlflow/traces/link-to-run", EDIT),
    ("POST", "/api/2.0/mlflow/traces/link-prompts", EDIT),
    ("GET", "/api/2.0/mlflow/get-trace-artifact", READ),
    // Registry.
    ("POST", "/api/2.0/mlflow/registered-models/create", EDIT),
    ("POST", "/api/2.0/mlflow/registered-models/rename", EDIT),
    ("PATCH", "/api/2.0/mlflow/registered-models/update", EDIT),
    ("DELETE", "/api/2.0/mlflow/registered-models/delete", EDIT),
    ("GET", "/api/2.0/mlflow/registered-models/get", READ),
    ("GET", "/api/2.0/mlflow/registered-models/search", READ),
    ("*", "/api/2.0/mlflow/registered-models/get-latest-versions", READ),
    ("POST", "/api/2.0/mlflow/registered-models/set-tag", EDIT),
    ("DELETE", "/api/2.0/mlflow/registered-models/delete-tag", EDIT),
    ("GET", "/api/2.0/mlflow/registered-models/alias", READ),
    ("POST", "/api/2.0/mlflow/registered-models/alias", EDIT),
    ("DELETE", "/api/2.0/mlflow/registered-models/alias", EDIT),
    ("POST", "/api/2.0/mlflow/model-versions/create", EDIT),
    ("PATCH", "/api/2.0/mlflow/model-versions/update", EDIT),
    ("DELETE", "/api/2.0/mlflow/model-versions/delete", EDIT),
    ("GET", "/api/2.0/mlflow/model-versions/get", READ),
    ("GET", "/api/2.0/mlflow/model-versions/search", READ),
    ("POST", "/api/2.0/mlflow/model-versions/transition-stage", EDIT),
    ("POST", "/api/2.0/mlflow/model-versions/set-tag", EDIT),
    ("DELETE", "/api/2.0/mlflow/model-versions/delete-tag", EDIT),
    ("GET", "/api/2.0/mlflow/model-versions/get-download-uri", READ),
    // Artifacts: reading is READ, writing EDIT.
    ("GET", "/api/2.0/mlflow/artifacts/list", READ),
    ("GET", "/get-artifact", READ),
    ("GET", "/model-versions/get-artifact", READ),
    ("GET", "/api/2.0/mlflow-artifacts/artifacts", READ),
    ("GET", "/api/2.0/mlflow-artifacts/artifacts/{*path}", READ),
    ("PUT", "/api/2.0/mlflow-artifacts/artifacts/{*path}", EDIT),
    ("DELETE", "/api/2.0/mlflow-artifacts/artifacts/{*path}", EDIT),
    ("POST", "/api/2.0/mlflow-artifacts/mpu/create/{*path}", EDIT),
    ("POST", "/api/2.0/mlflow-artifacts/mpu/complete/{*path}", EDIT),
    ("POST", "/api/2.0/mlflow-artifacts/mpu/abort/{*path}", EDIT),
    // The stock client PUTs parts with no credentials: each part URL is
    // authorised by the upload it belongs to (an unguessable upload id).
    ("PUT", "/api/2.0/mlflow-artifacts/mpu/part/{*path}", Public),
    ("GET", "/api/2.0/mlflow-artifacts/presigned/{*path}", READ),
    // ferroflow's own: a workspace's audit log and keys are its managers'.
    ("GET", "/api/3.0/ferroflow/audit", MANAGE),
    ("GET", "/api/3.0/ferroflow/keys", MANAGE),
    ("POST", "/api/3.0/ferroflow/keys", MANAGE),
    ("DELETE", "/api/3.0/ferroflow/keys/{key_id}", MANAGE),
    ("DELETE", "/api/3.0/ferroflow/principals/{name}", Admin),
    // Removes soft-deleted entities of every workspace for good.
    ("POST", "/api/3.0/ferroflow/gc", Admin),
    // Reaching a workspace: the tracking URI authenticates by the key in its
    // body, as /oauth/token does; the init script holds no secret.
    ("POST", "/api/3.0/ferroflow/tracking-uri", Public),
    ("GET", "/api/3.0/ferroflow/init-script", READ),
];

/// What the route matched as `path` (axum's pattern) needs for `method`;
/// `None` for a route missing from [`ROUTES`].
pub fn required(method: &Method, path: &str) -> Option<Permission> {
    let path = canonical(path);
    ROUTES
        .iter()
        .find(|(m, p, _)| *p == path.as_ref() && (*m == "*" || *m == method.as_str()))
        .map(|(_, _, permission)| *permission)
}

/// The UI's `/ajax-api/...` routes are the `/api/...` ones.
fn canonical(path: &str) -> std::borrow::Cow<'_, str> {
    match path.strip_prefix("/ajax-api/") {
        Some(rest) => format!("/api/{rest}").into(),
        None => path.into(),
    }
}

impl Role {
    /// Whether this role satisfies `permission`.
    pub fn allows(self, permission: Permission) -> bool {
        match permission {
            Permission::Public | Permission::Authenticated => true,
            Permission::Role(needed) => self >= needed,
            Permission::Admin => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_nest_and_only_admins_pass_admin_routes() {
        assert!(Role::Manage.allows(EDIT) && Role::Edit.allows(READ));
        assert!(!Role::Read.allows(EDIT));
        assert!(!Role::Edit.allows(MANAGE));
        assert!(!Role::Manage.allows(Admin));
        assert_eq!(
            required(&Method::GET, "/ajax-api/2.0/mlflow/runs/get"),
            Some(READ)
        );
        assert_eq!(required(&Method::GET, "/api/2.0/mlflow/runs/create"), None);
    }

    /// Every route `api` declares is in the table: the route paths are read
    /// from the source, joined to the prefix they are nested under.
    #[test]
    fn no_route_is_unmapped() {
        let source = include_str!("../api/mod.rs");
        let nests = [
            ("fn tracking_routes(", "/api/2.0/mlflow"),
            ("fn registry_routes(", "/api/2.0/mlflow"),
            ("fn artifact_routes(", "/api/2.0/mlflow-artifacts"),
            ("fn workspace_routes(", "/api/3.0/mlflow/workspaces"),
            ("pub fn routes(", ""),
        ];
        let mut checked = 0;
        for (section, prefix) in nests {
            let start = source.find(section).expect(section);
            let end = source[start..]
                .find("\n}\n")
                .map_or(source.len(), |e| start + e);
            let section = &source[start..end];
            for (at, _) in section.match_indices(".route(") {
                let rest = section[at + ".route(".len()..].trim_start();
                let path = rest.strip_prefix('"').expect("a route's path is a literal");
                let path = &path[..path.find('"').unwrap()];
                // A nested "/" is routed as the prefix itself.
                let full = format!("{prefix}{path}");
                let full = canonical(
                    full.strip_suffix('/')
                        .filter(|p| !p.is_empty())
                        .unwrap_or(&full),
                );
                let mapped = ROUTES.iter().any(|(_, p, _)| *p == full);
                assert!(
                    mapped,
                    "route {full} has no permission in auth::permissions::ROUTES"
                );
                checked += 1;
            }
        }
        assert!(
            checked > 60,
            "only {checked} routes found: has api/mod.rs changed shape?"
        );
    }
}
