//! ferroflow: a self-hosted, MLflow-compatible experiment-tracking server.

/// HTTP routes and handlers, one module per MLflow service area; no SQL.
pub mod api;
/// Application state, router, serving and graceful shutdown.
pub mod app;
/// Artifact storage behind MLflow's artifact operations; path safety.
pub mod artifacts;
/// Workspaces (tenants) a request acts in; keys, tokens, roles, audit.
pub mod auth;
/// Operator subcommands that work on the database directly.
pub mod cli;
/// Typed configuration: defaults < file < environment < flags.
pub mod config;
/// MLflow error codes and their HTTP mapping.
pub mod error;
/// `ferroflow gc`: permanent removal of soft-deleted entities.
pub mod gc;
/// MLflow entities as they appear on the wire.
pub mod model;
/// Operating the server: request ids, Prometheus metrics.
pub mod observe;
/// Python's printing of JSON values, which MLflow stores and compares.
pub mod python;
/// Reaching a workspace from outside: tracking URIs, `exec`, init scripts.
pub mod reach;
/// MLflow's search language: filter and order_by parsing, rendered to SQL.
pub mod search;
/// The tracking store trait and its SQL backends.
pub mod store;
/// MLflow's web UI bundle: finding one, `ferroflow ui install`.
pub mod ui;
