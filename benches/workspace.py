"""--ferroflow-workspace: the workspace the `ferroflow` server is measured in. Its name goes on
every request to that server as X-MLFLOW-WORKSPACE (Server.headers: its sessions, `call`, the
wrk scripts); the workspace is created through the catalog API right after the server starts,
and a check after seeding proves the header does scope the requests. With --ferroflow-token both
send the server's admin token (Server.auth_headers)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import requests

from harness import API, HTTP_TIMEOUT

if TYPE_CHECKING:
    from servers import Server

WORKSPACE_HEADER = "X-MLFLOW-WORKSPACE"
WORKSPACES_API = "/api/3.0/mlflow/workspaces"
ENABLE_FLAG = "--enable-workspaces"


def workspace_headers(workspace: str | None) -> dict[str, str]:
    return {WORKSPACE_HEADER: workspace} if workspace else {}


def create_workspace(server: Server) -> None:
    """POST /api/3.0/mlflow/workspaces {"name": ...}, which answers 201."""
    r = requests.post(server.base + WORKSPACES_API, json={"name": server.workspace},
                      headers=server.auth_headers, timeout=HTTP_TIMEOUT)
    if r.status_code != 201:
        hint = (f" (start it with --ferroflow-args='{ENABLE_FLAG}')" if r.status_code == 503
                else "")
        raise RuntimeError(f"{server.name}: creating workspace {server.workspace!r} answered "
                           f"HTTP {r.status_code}{hint}: {r.text[:300]}")


def experiment_names(server: Server, headers: dict, name_filter: str = "") -> list[str]:
    r = requests.post(server.base + API + "/experiments/search", headers=headers,
                      json={"max_results": 1000, "filter": name_filter}, timeout=HTTP_TIMEOUT)
    r.raise_for_status()
    return sorted(e["name"] for e in r.json().get("experiments", []))


def check_scoped(server: Server) -> str:
    """After seeding: experiments/search with the header sees the seeded experiments, and
    without it (the default workspace; an admin token opens it too) only `Default`. Raises if
    not; returns a log line."""
    inside = experiment_names(server, server.headers, "name LIKE 'bench-%'")
    outside = experiment_names(server, server.auth_headers)
    missing = {"bench-writes", "bench-search", "bench-history"} - set(inside)
    if missing or outside != ["Default"]:
        raise RuntimeError(f"{server.name}: {WORKSPACE_HEADER}: {server.workspace} does not scope "
                           f"the requests: in it {len(inside)} bench-* experiments (missing "
                           f"{sorted(missing)}); without the header {outside[:5]}")
    return (f"{server.name}: {len(inside)} bench-* experiments in workspace "
            f"{server.workspace!r}, only Default without the header")
