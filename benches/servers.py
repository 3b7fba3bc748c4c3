"""The servers under test: how to start each one (ferroflow, a second ferroflow build or variant,
`mlflow server`, FastTrackML) on which database, its process tree's CPU and memory, and how it
stops. The ferroflow command line, the process group and the /health wait come from the
launcher the e2e suite uses too (tests/support/ferroflow_process.py)."""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from auth import AUTH_HEADER, check_auth, create_admin_key, exchange
from harness import FERROFLOW_BIN, PG_HOST, PG_PORT, PG_USER, ROOT, VENV_BIN, log
from httpapi import new_session
from pgdb import PgDatabases
from procstat import PgBackendCpu, cpu_by_pid, memory_kb, process_tree
from workspace import create_workspace, workspace_headers

sys.path.insert(0, str(ROOT / "tests" / "support"))
import ferroflow_process  # noqa: E402  (shared with tests/e2e/conftest.py)


@dataclass(frozen=True)
class Build:
    """What a ferroflow server runs: a binary, extra `server` flags (a variant's), the
    workspace every request to it acts in (--ferroflow-workspace; None: no header), and whether
    every request carries a bearer token (--ferroflow-token; the server runs `--auth token`)."""

    binary: Path
    args: tuple[str, ...] = ()
    workspace: str | None = None
    token: bool = False


DEFAULT_BUILDS = {"ferroflow": Build(FERROFLOW_BIN)}


class Server:
    def __init__(self, name: str, backend: str, workdir: Path, pg: PgDatabases | None,
                 builds: dict[str, Build] | None = None):
        self.name, self.backend = name, backend
        # "ferroflow" and its baseline ("ferroflow-base") differ only in their Build.
        self.build = (builds or DEFAULT_BUILDS).get(name)
        self.kind = "ferroflow" if self.build else name
        self.workspace = self.build.workspace if self.build else None
        self.token = self.build.token if self.build else False
        # On every request to this server: the workspace now, the token once it has one.
        self.headers = workspace_headers(self.workspace)
        self.auth_headers: dict[str, str] = {}
        self.dir = workdir / name
        self.dir.mkdir(parents=True)
        self.port = ferroflow_process.free_port()
        self.base = f"http://{ferroflow_process.HOST}:{self.port}"
        self.db = pg.create(name) if backend == "postgres" else None
        self.proc = None
        self.db_cpu: PgBackendCpu | None = None
        self.sessions = [new_session(self.headers) for _ in range(8)]
        self.ctx: dict = {}               # ids made while seeding, read by the workloads
        self.unsupported: dict[str, str] = {}  # workload key -> why it shows n/a
        self.info: dict = {}

    def use_token(self, token: str) -> None:
        """Sends `Authorization: Bearer <token>` from now on: its sessions, `call`, wrk."""
        self.auth_headers = {AUTH_HEADER: f"Bearer {token}"}
        self.headers.update(self.auth_headers)
        for session in self.sessions:
            session.headers.update(self.auth_headers)

    def store_uri(self) -> str:
        if self.backend == "sqlite":
            path = self.dir / "store.db"
            # SQLAlchemy spells an absolute path sqlite:////tmp/x.db; FastTrackML sqlite:///tmp/x.db
            return f"sqlite://{path}" if self.kind == "fasttrackml" else f"sqlite:///{path}"
        if self.kind == "fasttrackml":
            return f"postgres://{PG_USER}@{PG_HOST}:{PG_PORT}/{self.db}?sslmode=disable"
        return f"postgresql://{PG_USER}@{PG_HOST}:{PG_PORT}/{self.db}"

    def command(self) -> list[str]:
        artifacts = str(self.dir / "artifacts")
        host, port = ferroflow_process.HOST, str(self.port)
        if self.kind == "ferroflow":
            return ferroflow_process.ferroflow_command(
                self.build.binary, self.port, self.store_uri(), artifacts, self.build.args)
        if self.kind == "mlflow":  # its default worker setup (uvicorn, 4 workers)
            return [str(VENV_BIN / "mlflow"), "server", "--host", host, "--port", port,
                    "--backend-store-uri", self.store_uri(), "--artifacts-destination", artifacts]
        if self.kind == "fasttrackml":
            return [str(VENV_BIN / "fml"), "server", "--listen-address", f"{host}:{port}",
                    "--database-uri", self.store_uri(), "--default-artifact-root", artifacts]
        raise ValueError(self.name)

    def launch(self) -> None:
        env = dict(os.environ, MLFLOW_DISABLE_TELEMETRY="true", DO_NOT_TRACK="true")
        self.launched = time.perf_counter()
        self.proc = ferroflow_process.launch(self.command(), self.dir / "server.log", env=env,
                                             cwd=self.dir)

    def ready(self) -> bool:
        """True once GET /health answers 200; records the startup time then."""
        try:
            ok = ferroflow_process.answers(self.proc, self.base + "/health",
                                           lambda r: r.status_code == 200)
        except ferroflow_process.Exited as err:
            raise RuntimeError(f"{self.name} exited with {err.returncode}; "
                               f"see {self.dir / 'server.log'}") from None
        if ok:
            self.info["startup_s"] = round(time.perf_counter() - self.launched, 2)
            if self.db:
                self.db_cpu = PgBackendCpu(self.db)
        return ok

    def pids(self) -> list[int]:
        return process_tree(self.proc.pid) if self.proc and self.proc.poll() is None else []

    def cpu(self) -> dict[int, float]:
        """CPU seconds per process of the server's tree."""
        return cpu_by_pid(self.pids())

    def memory(self) -> dict:
        """VmRSS summed over the process tree (pages shared by forked workers count once per
        process), and PSS (shared pages split between the processes that share them)."""
        pids = self.pids()
        return dict(rss_mb=round(memory_kb(pids, "status", "VmRSS") / 1024, 1),
                    pss_mb=round(memory_kb(pids, "smaps_rollup", "Pss") / 1024, 1),
                    processes=len(pids))

    def stop(self) -> None:
        if self.db_cpu:
            self.db_cpu.close()
            self.db_cpu = None
        if self.proc:
            ferroflow_process.stop_group(self.proc)


def start_servers(backend: str, names: list[str], workdir: Path, pg: PgDatabases | None,
                  servers: list[Server], builds: dict[str, Build] | None = None) -> None:
    """Launches the servers together (appending to `servers`, so the caller can stop them
    whatever happens), waits for each one's /health, gives a server measured with a token its
    admin key and token, creates the workspace a server is to be measured in (then scopes the
    token to it), then reads their idle memory."""
    for name in names:
        servers.append(Server(name, backend, workdir, pg, builds))
        log(f"{backend}: starting {name} on {servers[-1].base}")
        servers[-1].launch()
    waiting, deadline = list(servers), time.monotonic() + 300
    while waiting:
        waiting = [s for s in waiting if not s.ready()]
        if waiting and time.monotonic() > deadline:
            raise RuntimeError(f"not ready after 300 s: {[s.name for s in waiting]}")
        time.sleep(0.1)
    for s in servers:
        # The key stays in this loop; neither it nor the token is ever logged.
        key = create_admin_key(s) if s.token else None
        if key and s.workspace:  # an admin token of the default workspace creates it
            s.use_token(exchange(s, key)[0])
        if s.workspace:
            create_workspace(s)
            log(f"{backend}: {s.name}: created workspace {s.workspace!r}")
        if key:
            scope = s.workspace or "default"
            token, ttl = exchange(s, key, scope)
            s.use_token(token)
            log(f"{backend}: {s.name}: admin key made, token for workspace {scope!r} "
                f"(valid {ttl} s); {check_auth(s)}")
    time.sleep(2)  # let them settle before reading the idle memory
    for s in servers:
        s.info["idle"] = s.memory()
        log(f"{backend}: {s.name} up in {s.info['startup_s']}s, idle: {s.info['idle']}")


def redact_cmd(cmd: list[str]) -> str:
    return " ".join(Path(c).name if i == 0 else c for i, c in enumerate(cmd))
