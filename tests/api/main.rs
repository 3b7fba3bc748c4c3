//! HTTP tests without Python: the app on a free port, SQLite in a temporary
//! file, artifacts in memory. They pin MLflow's wire rules (field spellings,
//! error shapes, the JSON 404, `--artifacts-only`); the real client's
//! behaviour is the e2e suite's job (`tests/e2e`).

mod access;
mod faults;
mod gc;
mod graphql;
mod helpers;
mod hostile;
mod observe;
mod security;
mod trace_ingest;
mod trace_search;
mod traces;
mod ui;
mod wire;
mod workspaces;
