//! Who may do what, where: the workspace a request acts in (header or path
//! prefix) and the check that it exists. No SQL here: the catalog is the
//! store's (`store::workspaces`).

pub mod workspace;

pub use workspace::{strip_path_prefix, PathWorkspace, Workspaces, WORKSPACE_HEADER};
