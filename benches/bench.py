#!/usr/bin/env python3
"""Side-by-side benchmark: ferroflow vs `mlflow server` vs FastTrackML, on SQLite and PostgreSQL.

Run it through benches/run.sh, which prepares the venv, wrk and the release build.

For each backend the harness starts every server on a free loopback port with a fresh database,
seeds the same data through the REST API, warms up, then runs each workload against each server in
turn, round after round (A, B, C, A, B, C ...), so machine noise hits all alike. Two load drivers:

  py   the way clients call the API: a requests.Session (keep-alive) per client thread;
  wrk  for the fast paths, since one Python process tops out near 2,000 requests/s.

Per measurement it records latencies, the rate, and CPU seconds spent by the server's process tree,
by the PostgreSQL backends serving the server's database, and by the load generator, so a missed
target shows where the time went. It prints a table per backend with the ratios
ferroflow/mlflow and ferroflow/fasttrackml (throughput ratios: higher is better for ferroflow),
checks the issue's targets, and writes benches/results/<timestamp>.json.
`--markdown [FILE]` renders a results file as the README's table.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import platform
import random
import re
import resource
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Callable
from urllib.parse import urlencode

import requests

ROOT = Path(__file__).resolve().parent.parent
BENCHES = ROOT / "benches"
VENV_BIN = BENCHES / ".venv" / "bin"
RESULTS = BENCHES / "results"
FERROFLOW_BIN = ROOT / "target" / "release" / "ferroflow"

PG_HOST, PG_PORT, PG_USER = "127.0.0.1", 5432, "postgres"
API = "/api/2.0/mlflow"
SERVERS = ("ferroflow", "mlflow", "fasttrackml")
BACKENDS = ("sqlite", "postgres")
CLK_TCK = os.sysconf("SC_CLK_TCK")
JSON_HEADERS = {"Content-Type": "application/json"}
HTTP_TIMEOUT = 600  # seconds; a guard, not a measurement bound

# The scale, and --quick: small enough for a few minutes on 2 cores.
SCALES = {
    "full": dict(runs=10_000, history=100_000, experiments=1_000, versions=100,
                 rounds=3, py_seconds=2.0, wrk_seconds=2, quick=False),
    "quick": dict(runs=500, history=20_000, experiments=200, versions=20,
                  rounds=1, py_seconds=0.4, wrk_seconds=1, quick=True),
}

# The targets.
TARGET_VS_MLFLOW = 30.0
TARGET_VS_FASTTRACKML = 3.0
TARGET_DB_LIMIT_FACTOR = 2.0          # where the database is the bottleneck: within 2x of its limit
TARGET_LOG_BATCH_PG_C8 = 200_000      # metrics/s
TARGET_SEARCH_P50_MS = 5.0
TARGET_RSS_IDLE_MB = 30
TARGET_RSS_AFTER_MB = 150

BATCH_KEYS, BATCH_STEPS = 10, 100     # a log-batch: 10 metric keys x 100 steps = 1,000 metrics


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# --------------------------------------------------------------------------------------------
# Processes: free ports, the server's process tree, its RSS and CPU time, from /proc.
# --------------------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def proc_stat(pid: int) -> tuple[int, float] | None:
    """(ppid, utime+stime seconds) of one process, or None if it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / CLK_TCK


def process_tree(root: int) -> list[int]:
    """root and all its descendants."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            st = proc_stat(int(entry.name))
            if st:
                children.setdefault(st[0], []).append(int(entry.name))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, []))
    return tree


def stat_cpu(stat_path: Path) -> float:
    """utime+stime, in seconds, of a /proc/.../stat file (10 ms ticks)."""
    text = stat_path.read_text()
    fields = text[text.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def proc_cpu(pid: int) -> float | None:
    """CPU seconds of one process, all its threads: the live threads' run time in ns from
    schedstat (stat's 10 ms ticks are too coarse for short windows), plus, in ticks, the time of
    threads that already exited (which only the process's stat still counts)."""
    try:
        total = stat_cpu(Path(f"/proc/{pid}/stat"))
        live_ns, live_ticks = 0, 0.0
        for task in Path(f"/proc/{pid}/task").iterdir():
            live_ns += int((task / "schedstat").read_text().split()[0])
            live_ticks += stat_cpu(task / "stat")
        return live_ns / 1e9 + max(0.0, total - live_ticks)
    except (OSError, ValueError, IndexError):
        return None


def cpu_by_pid(pids: list[int]) -> dict[int, float]:
    return {pid: cpu for pid in pids if (cpu := proc_cpu(pid)) is not None}


def cpu_delta_by_pid(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU spent between two snapshots by the processes alive at the second; a process that
    exited in between loses its last stretch (an undercount, never a negative)."""
    return sum(max(0.0, cpu - before.get(pid, 0.0)) for pid, cpu in after.items())


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine spent busy (all processes, all cores), from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) / CLK_TCK


def memory_kb(pids: list[int], path: str, field: str) -> int:
    """Sums one kB field of /proc/<pid>/<path> over the processes."""
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/{path}").read_text().splitlines():
                if line.startswith(field + ":"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total


# --------------------------------------------------------------------------------------------
# PostgreSQL: scratch databases (only ever ff_bench_*), and the CPU of their backends.
# --------------------------------------------------------------------------------------------

def pg_connect(dbname: str = "postgres"):
    import psycopg2
    conn = psycopg2.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, dbname=dbname,
                            connect_timeout=5)
    return conn


def pg_available() -> bool:
    try:
        pg_connect().close()
        return True
    except Exception as err:  # noqa: BLE001 - any failure means "not here"
        log(f"PostgreSQL at {PG_HOST}:{PG_PORT} not reachable ({err}); skipping it")
        return False


class PgDatabases:
    """Creates ff_bench_<name>_<hex> databases and drops them again."""

    def __init__(self):
        self.created: list[str] = []

    def create(self, name: str) -> str:
        db = f"ff_bench_{name}_{uuid.uuid4().hex[:8]}"
        conn = pg_connect()
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{db}"')
        conn.close()
        self.created.append(db)
        return db

    def drop_all(self) -> None:
        if not self.created:
            return
        conn = pg_connect()
        conn.autocommit = True
        with conn.cursor() as cur:
            for db in self.created:
                assert db.startswith("ff_bench_")
                cur.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        conn.close()
        self.created.clear()


class PgBackendCpu:
    """CPU seconds of the PostgreSQL backends connected to one database (read from /proc)."""

    def __init__(self, dbname: str):
        self.dbname = dbname
        self.conn = pg_connect()
        self.conn.autocommit = True

    def snapshot(self) -> dict[int, float]:
        with self.conn.cursor() as cur:
            cur.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s", (self.dbname,))
            return cpu_by_pid([row[0] for row in cur.fetchall()])

    def close(self) -> None:
        self.conn.close()


# --------------------------------------------------------------------------------------------
# Servers: how to start each one, on which database.
# --------------------------------------------------------------------------------------------

class Server:
    def __init__(self, name: str, backend: str, workdir: Path, pg: PgDatabases | None):
        self.name, self.backend = name, backend
        self.dir = workdir / name
        self.dir.mkdir(parents=True)
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.db = pg.create(name) if backend == "postgres" else None
        self.proc: subprocess.Popen | None = None
        self.db_cpu: PgBackendCpu | None = None
        self.sessions = [new_session() for _ in range(8)]
        self.ctx: dict = {}               # ids made while seeding, read by the workloads
        self.unsupported: dict[str, str] = {}  # workload key -> why it shows n/a
        self.info: dict = {}

    def store_uri(self) -> str:
        if self.backend == "sqlite":
            path = self.dir / "store.db"
            # SQLAlchemy spells an absolute path sqlite:////tmp/x.db; FastTrackML sqlite:///tmp/x.db
            return f"sqlite://{path}" if self.name == "fasttrackml" else f"sqlite:///{path}"
        if self.name == "fasttrackml":
            return f"postgres://{PG_USER}@{PG_HOST}:{PG_PORT}/{self.db}?sslmode=disable"
        return f"postgresql://{PG_USER}@{PG_HOST}:{PG_PORT}/{self.db}"

    def command(self) -> list[str]:
        artifacts = str(self.dir / "artifacts")
        if self.name == "ferroflow":
            return [str(FERROFLOW_BIN), "server", "--host", "127.0.0.1", "--port", str(self.port),
                    "--backend-store-uri", self.store_uri(), "--artifacts-destination", artifacts]
        if self.name == "mlflow":  # its default worker setup (uvicorn, 4 workers)
            return [str(VENV_BIN / "mlflow"), "server", "--host", "127.0.0.1",
                    "--port", str(self.port), "--backend-store-uri", self.store_uri(),
                    "--artifacts-destination", artifacts]
        if self.name == "fasttrackml":
            return [str(VENV_BIN / "fml"), "server", "--listen-address", f"127.0.0.1:{self.port}",
                    "--database-uri", self.store_uri(), "--default-artifact-root", artifacts]
        raise ValueError(self.name)

    def launch(self) -> None:
        env = dict(os.environ, MLFLOW_DISABLE_TELEMETRY="true", DO_NOT_TRACK="true")
        logfile = open(self.dir / "server.log", "wb")
        self.launched = time.perf_counter()
        self.proc = subprocess.Popen(self.command(), cwd=self.dir, env=env,
                                     stdin=subprocess.DEVNULL, stdout=logfile,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        logfile.close()

    def ready(self) -> bool:
        """True once GET /health answers 200; records the startup time then."""
        if self.proc.poll() is not None:
            raise RuntimeError(f"{self.name} exited with {self.proc.returncode}; "
                               f"see {self.dir / 'server.log'}")
        try:
            ok = requests.get(self.base + "/health", timeout=2).status_code == 200
        except requests.RequestException:
            return False
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
        if not self.proc or self.proc.poll() is not None:
            return
        # start_new_session: the server leads its own process group, which holds its workers.
        pgid = self.proc.pid
        try:
            os.killpg(pgid, signal.SIGTERM)
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:  # until the whole group is gone
                self.proc.poll()
                os.killpg(pgid, 0)
                time.sleep(0.1)
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(timeout=10)


def new_session() -> requests.Session:
    s = requests.Session()
    s.headers.update(JSON_HEADERS)
    return s


# --------------------------------------------------------------------------------------------
# HTTP helpers.
# --------------------------------------------------------------------------------------------

class ApiError(Exception):
    def __init__(self, status: int, body: str):
        super().__init__(f"HTTP {status}: {body[:200]}")
        self.status = status


def call(server: Server, method: str, path: str, body=None, session=None, retries: int = 8):
    """One API call for seeding/setup: JSON in, JSON out, retried on 5xx (SQLite 'locked')."""
    session = session or server.sessions[0]
    data = json.dumps(body) if body is not None else None
    for attempt in range(retries + 1):
        try:
            r = session.request(method, server.base + API + path, data=data, timeout=HTTP_TIMEOUT)
        except requests.ConnectionError:
            if attempt == retries:
                raise
            time.sleep(0.1 * 2 ** attempt)
            continue
        if r.status_code < 300:
            return r.json() if r.content else {}
        if r.status_code < 500 or attempt == retries:
            raise ApiError(r.status_code, r.text)
        time.sleep(0.05 * 2 ** attempt)


def in_parallel(fns: list[Callable[[], None]]) -> None:
    """Runs the functions on a thread each; re-raises the first error."""
    errors = []

    def run(fn):
        try:
            fn()
        except Exception as err:  # noqa: BLE001 - surfaced below
            errors.append(err)

    threads = [threading.Thread(target=run, args=(fn,)) for fn in fns]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


def parallel(n_items: int, fn: Callable[[requests.Session, int], None], threads: int = 8) -> None:
    """fn(session, i) for i in range(n_items), on `threads` threads; re-raises the first error."""
    lock, next_i, errors = threading.Lock(), [0], []
    sessions = [new_session() for _ in range(threads)]

    def worker(s):
        while not errors:
            with lock:
                i = next_i[0]
                next_i[0] += 1
            if i >= n_items:
                return
            try:
                fn(s, i)
            except Exception as err:  # noqa: BLE001 - surfaced below
                errors.append(err)

    ts = [threading.Thread(target=worker, args=(s,)) for s in sessions]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    for s in sessions:
        s.close()
    if errors:
        raise errors[0]


def now_ms() -> int:
    return int(time.time() * 1000)


# --------------------------------------------------------------------------------------------
# Seeding: the same data on every server, through the REST API.
# --------------------------------------------------------------------------------------------

SEARCH_QUERIES = {
    # The UI's default query: active runs, newest first, a page of 100.
    "search_default": dict(filter="", order_by=["attributes.start_time DESC"], max_results=100),
    "search_metric_param": dict(filter="metrics.m0 > 0.5 and params.p0 = 'v3'",
                                order_by=[], max_results=100),
    "search_tag_order": dict(filter="tags.t0 = 'tag2'", order_by=["metrics.m1 DESC"],
                             max_results=100),
    "search_page_1000": dict(filter="", order_by=[], max_results=1000),
}


def seed_run_entities(i: int) -> dict:
    """Run i of the search experiment: 5 params, 5 tags, 10 metrics, deterministic."""
    rnd = random.Random(i)
    ts = 1_700_000_000_000 + i
    return {
        "params": [{"key": f"p{k}", "value": f"v{rnd.randrange(10)}"} for k in range(5)],
        "tags": [{"key": f"t{k}", "value": f"tag{rnd.randrange(5)}"} for k in range(5)],
        "metrics": [{"key": f"m{k}", "value": rnd.random(), "timestamp": ts, "step": 0}
                    for k in range(10)],
    }


def seed(server: Server, scale: dict, workloads: list[str]) -> None:
    t0 = time.perf_counter()
    ctx = server.ctx
    phases = server.info["seed_phases_s"] = {}

    def phase(name: str, fn: Callable[[], None]) -> None:
        start = time.perf_counter()
        fn()
        phases[name] = round(time.perf_counter() - start, 1)

    ctx["write_exp"] = call(server, "POST", "/experiments/create",
                            {"name": "bench-writes"})["experiment_id"]

    # runs/search: N runs with 5 params, 5 tags and 10 metrics each.
    ctx["search_exp"] = call(server, "POST", "/experiments/create",
                             {"name": "bench-search"})["experiment_id"]

    def seed_run(s, i):
        run = call(server, "POST", "/runs/create",
                   {"experiment_id": ctx["search_exp"], "run_name": f"run-{i:05d}",
                    "start_time": 1_700_000_000_000 + i}, session=s)["run"]["info"]["run_id"]
        call(server, "POST", "/runs/log-batch", {"run_id": run, **seed_run_entities(i)}, session=s)

    if any(w.startswith("search_") for w in workloads):
        phase("runs", lambda: parallel(scale["runs"], seed_run))

    # metrics/get-history: one run with a `history`-point metric, logged 1,000 points a batch.
    hist_exp = call(server, "POST", "/experiments/create", {"name": "bench-history"})
    ctx["hist_run"] = call(server, "POST", "/runs/create",
                           {"experiment_id": hist_exp["experiment_id"],
                            "start_time": now_ms()})["run"]["info"]["run_id"]

    def seed_history(s, b):
        steps = range(b * 1000, min((b + 1) * 1000, scale["history"]))
        call(server, "POST", "/runs/log-batch", {"run_id": ctx["hist_run"], "metrics": [
            {"key": "loss", "value": 1.0 / (st + 1), "timestamp": 1_700_000_000_000 + st,
             "step": st} for st in steps]}, session=s)

    if any(w.startswith("history_") or w == "bulk_interval" for w in workloads):
        phase("history", lambda: parallel(math.ceil(scale["history"] / 1000), seed_history))

    # experiments/search: that many experiments.
    def seed_experiment(s, i):
        call(server, "POST", "/experiments/create", {"name": f"bench-exp-{i:05d}"}, session=s)

    if "experiments_search" in workloads:
        # + Default and the three above
        phase("experiments", lambda: parallel(scale["experiments"] - 3, seed_experiment))

    # Registry: a model with `versions` versions to read, and one to add versions to.
    if any(w.startswith("registry_") for w in workloads):
        phase("registry", lambda: seed_registry(server, scale))
    phase("check", lambda: check_seeded(server, scale, workloads))
    if server.db:
        phase("analyze", lambda: vacuum_analyze(server.db))
    server.info["seed_s"] = round(time.perf_counter() - t0, 1)


def vacuum_analyze(dbname: str) -> None:
    """Brings a freshly seeded PostgreSQL database to its steady state, the one autovacuum
    reaches within a minute in production: planner statistics and the visibility map. Without
    it every server is measured on statistics of empty tables (plans then scan whole tables),
    which says more about the minute after a bulk load than about the server."""
    conn = pg_connect(dbname)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("VACUUM ANALYZE")
    conn.close()


def seed_registry(server: Server, scale: dict) -> None:
    ctx = server.ctx
    try:
        call(server, "POST", "/registered-models/create", {"name": "bench-model"}, retries=0)
    except ApiError as err:
        if err.status in (404, 501):
            reason = f"registry not served (HTTP {err.status})"
            for key in ("registry_create_version", "registry_search_versions",
                        "registry_get_model"):
                server.unsupported[key] = reason
            return
        raise
    call(server, "POST", "/registered-models/create", {"name": "bench-model-writes"})
    run = call(server, "POST", "/runs/create",
               {"experiment_id": ctx["write_exp"]})["run"]["info"]["run_id"]
    ctx["model_run"] = run
    for _ in range(scale["versions"]):  # one at a time: versions are numbered in order
        call(server, "POST", "/model-versions/create",
             {"name": "bench-model", "source": f"runs:/{run}/model", "run_id": run})


def check_seeded(server: Server, scale: dict, workloads: list[str]) -> None:
    """Reads back what the workloads will read, so every server is asked for the same work; a
    server that does not serve a call, or answers it differently, gets the workload marked n/a."""
    ctx, counts = server.ctx, {}

    def check(key: str, method: str, path: str, body=None, field: str = "") -> dict | None:
        if key not in workloads or key in server.unsupported:
            return None
        try:
            got = call(server, method, path, body, retries=2)
        except ApiError as err:
            if err.status not in (404, 501):
                raise
            server.unsupported[key] = f"not served (HTTP {err.status})"
            return None
        counts[key] = len(got.get(field, [])) if field else None
        return got

    hist = {"run_id": ctx["hist_run"], "metric_key": "loss"}
    check("history_full", "GET", "/metrics/get-history?" + urlencode(hist), field="metrics")
    check("bulk_interval", "GET", "/metrics/get-history-bulk-interval?" + urlencode(
        {"run_ids": ctx["hist_run"], "metric_key": "loss"}), field="metrics")
    page = ctx["history_page"] = scale["history"] // 4
    tokens, token = [None], None
    while "history_paged" in workloads and len(tokens) < 4:
        q = dict(hist, max_results=page, **({"page_token": token} if token else {}))
        got = check("history_paged", "GET", "/metrics/get-history?" + urlencode(q),
                    field="metrics")
        if got is None:
            break
        if counts["history_paged"] != page:
            server.unsupported["history_paged"] = (
                f"answered {counts['history_paged']} points for max_results={page}")
            break
        token = got.get("next_page_token")
        if not token:
            break
        tokens.append(token)
    ctx["history_tokens"] = tokens
    for key, q in SEARCH_QUERIES.items():
        check(key, "POST", "/runs/search", {"experiment_ids": [ctx["search_exp"]],
                                            "run_view_type": "ACTIVE_ONLY", **q}, field="runs")
    check("experiments_search", "POST", "/experiments/search", {"max_results": 1000},
          field="experiments")
    check("registry_search_versions", "GET", "/model-versions/search?" + urlencode(
        {"filter": "name='bench-model'"}), field="model_versions")
    server.info["result_counts"] = counts


# --------------------------------------------------------------------------------------------
# Workloads: one function each, giving the request(s) an operation sends.
#   static workloads: (ctx) -> [(method, path, body)], cycled by both drivers;
#   write workloads:  (ctx, run_id, i, ts) -> (method, path, body) for the py driver, and a
#                     `wrk_kind` the Lua script mirrors (same body shape, unique steps).
# --------------------------------------------------------------------------------------------

def user_run_body(ctx) -> dict:
    """What the stock client sends for mlflow.start_run()."""
    return {"experiment_id": ctx["write_exp"], "user_id": "bench", "start_time": now_ms(),
            "tags": [{"key": "mlflow.user", "value": "bench"},
                     {"key": "mlflow.source.name", "value": "bench.py"},
                     {"key": "mlflow.source.type", "value": "LOCAL"}]}


def w_runs_create(ctx):
    return [("POST", "/runs/create", user_run_body(ctx))]


def w_log_batch(ctx, run, i, ts):
    base = i * BATCH_STEPS
    metrics = ",".join(
        f'{{"key":"k{k}","value":{s}.5,"timestamp":{ts},"step":{base + s}}}'
        for k in range(BATCH_KEYS) for s in range(BATCH_STEPS))
    return "POST", "/runs/log-batch", f'{{"run_id":"{run}","metrics":[{metrics}]}}'


def w_log_metric(ctx, run, i, ts):
    return "POST", "/runs/log-metric", (
        f'{{"run_id":"{run}","key":"loss","value":{i}.25,"timestamp":{ts},"step":{i}}}')


def w_history_full(ctx):
    return [("GET", "/metrics/get-history?" + urlencode(
        {"run_id": ctx["hist_run"], "metric_key": "loss"}), None)]


def w_history_paged(ctx):
    reqs = []
    for token in ctx["history_tokens"]:
        q = {"run_id": ctx["hist_run"], "metric_key": "loss", "max_results": ctx["history_page"]}
        if token:
            q["page_token"] = token
        reqs.append(("GET", "/metrics/get-history?" + urlencode(q), None))
    return reqs


def w_bulk_interval(ctx):
    return [("GET", "/metrics/get-history-bulk-interval?" + urlencode(
        {"run_ids": ctx["hist_run"], "metric_key": "loss"}), None)]


def w_search(key):
    def requests_for(ctx):
        return [("POST", "/runs/search", {"experiment_ids": [ctx["search_exp"]],
                                          "run_view_type": "ACTIVE_ONLY", **SEARCH_QUERIES[key]})]
    return requests_for


def w_experiments_search(ctx):
    return [("POST", "/experiments/search", {"max_results": 1000, "view_type": "ACTIVE_ONLY"})]


def w_registry_create_version(ctx):
    run = ctx["model_run"]
    return [("POST", "/model-versions/create",
             {"name": "bench-model-writes", "source": f"runs:/{run}/model", "run_id": run})]


def w_registry_search_versions(ctx):
    return [("GET", "/model-versions/search?" + urlencode({"filter": "name='bench-model'"}), None)]


def w_registry_get_model(ctx):
    return [("GET", "/registered-models/get?" + urlencode({"name": "bench-model"}), None)]


@dataclass
class Workload:
    key: str
    title: str
    unit: str                       # what `rate` counts, per second
    static: Callable | None = None  # (ctx) -> [(method, path, body)]
    write: Callable | None = None   # (ctx, run, i, ts) -> (method, path, body)
    wrk_kind: str = "static"        # how the Lua script builds bodies
    py_clients: tuple = (1,)
    wrk_clients: tuple = ()
    items_per_op: int = 1
    count: str | None = None        # a scale key bounding ops per measurement, besides time
    db_limit: bool = False          # measure the database's own limit for the same work
    read: bool = False              # --quick drives reads with wrk only (when they have wrk rows)


WORKLOADS = [
    Workload("runs_create", "runs/create", "runs/s", static=w_runs_create,
             py_clients=(1, 8), wrk_clients=(1, 8), db_limit=True),
    Workload("log_batch", "runs/log-batch 1000", "metrics/s", write=w_log_batch,
             wrk_kind="log_batch", py_clients=(1, 8), wrk_clients=(1, 8),
             items_per_op=BATCH_KEYS * BATCH_STEPS, db_limit=True),
    Workload("log_metric", "runs/log-metric", "calls/s", write=w_log_metric,
             wrk_kind="log_metric", wrk_clients=(1, 8), db_limit=True),
    Workload("history_full", "get-history full", "calls/s", static=w_history_full,
             wrk_clients=(1,), read=True),
    Workload("history_paged", "get-history page", "pages/s", static=w_history_paged,
             wrk_clients=(1,), read=True),
    Workload("bulk_interval", "get-history-bulk-interval", "calls/s", static=w_bulk_interval,
             wrk_clients=(1,), read=True),
    Workload("search_default", "runs/search UI default", "calls/s",
             static=w_search("search_default"), wrk_clients=(1,), read=True),
    Workload("search_metric_param", "runs/search metric+param", "calls/s",
             static=w_search("search_metric_param"), wrk_clients=(1,), read=True),
    Workload("search_tag_order", "runs/search tag, by metric", "calls/s",
             static=w_search("search_tag_order"), wrk_clients=(1,), read=True),
    Workload("search_page_1000", "runs/search 1000-run page", "calls/s",
             static=w_search("search_page_1000"), wrk_clients=(1,), read=True),
    Workload("experiments_search", "experiments/search", "calls/s",
             static=w_experiments_search, wrk_clients=(1,), read=True),
    Workload("registry_create_version", "registry: create version", "versions/s",
             static=w_registry_create_version, count="versions"),
    Workload("registry_search_versions", "registry: search versions", "calls/s",
             static=w_registry_search_versions, read=True),
    Workload("registry_get_model", "registry: get model", "calls/s", static=w_registry_get_model,
             read=True),
]
WORKLOADS_BY_KEY = {w.key: w for w in WORKLOADS}


@dataclass
class Row:
    workload: Workload
    driver: str   # "py" or "wrk"
    clients: int

    @property
    def id(self) -> str:
        return f"{self.workload.key}/{self.driver}/c{self.clients}"


def rows_for(workloads: list[Workload], wrk: bool, quick: bool) -> list[Row]:
    """The measurements of a round. --quick drops the py rows of reads that wrk also drives."""
    rows = []
    for w in workloads:
        if not (quick and wrk and w.read and w.wrk_clients):
            rows += [Row(w, "py", c) for c in w.py_clients]
        if wrk:
            rows += [Row(w, "wrk", c) for c in w.wrk_clients]
    return rows


def fresh_runs(server: Server, n: int) -> list[str]:
    """New runs for a write measurement: one per client, as n training processes would."""
    runs = [""] * n

    def create(s, i):
        runs[i] = call(server, "POST", "/runs/create", user_run_body(server.ctx),
                       session=s)["run"]["info"]["run_id"]

    parallel(n, create, threads=n)
    return runs


# --------------------------------------------------------------------------------------------
# Drivers. Each measurement returns a dict with ops, items, errors, wall_s, latencies, and the
# CPU seconds of server, database backends and load generator over the measurement.
# --------------------------------------------------------------------------------------------

class Unsupported(Exception):
    pass


def cpu_snapshot(server: Server | None, db_cpu: PgBackendCpu | None) -> tuple:
    return (server.cpu() if server else {}, db_cpu.snapshot() if db_cpu else {},
            machine_busy_seconds())


def cpu_delta(server: Server | None, db_cpu: PgBackendCpu | None, before) -> dict:
    """CPU seconds since `before`: the server's process tree, the PostgreSQL backends of its
    database, and the whole machine (which also holds the load generator and anything else)."""
    srv, db, machine = cpu_snapshot(server, db_cpu)
    return dict(srv_cpu_s=cpu_delta_by_pid(before[0], srv),
                db_cpu_s=cpu_delta_by_pid(before[1], db),
                machine_cpu_s=machine - before[2])


def run_clients(n: int, client: Callable, seconds: float, server, db_cpu):
    """Runs `client(c, start, stop_at)` in n threads released together by `start`; each loops
    until `time.perf_counter() >= stop_at[0]`. Returns wall seconds, this process's CPU seconds
    and the CPU used meanwhile by the server and its database connections."""
    start = threading.Barrier(n + 1)
    stop_at = [0.0]
    threads = [threading.Thread(target=client, args=(c, start, stop_at)) for c in range(n)]
    for t in threads:
        t.start()
    before = cpu_snapshot(server, db_cpu)
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    stop_at[0] = t0 + seconds
    start.wait()
    for t in threads:
        t.join()
    return time.perf_counter() - t0, time.process_time() - cpu0, cpu_delta(server, db_cpu, before)


def drive_py(server: Server, row: Row, seconds: float, max_ops: int | None) -> dict:
    w, n = row.workload, row.clients
    ctx = server.ctx
    runs = fresh_runs(server, n) if w.write else [None] * n
    reqs = w.static(ctx) if w.static else None
    ts = now_ms()
    url = server.base + API
    lat: list[list[float]] = [[] for _ in range(n)]
    errors = [0] * n
    first_error: list = []
    cap = math.ceil(max_ops / n) if max_ops else None

    def client(c, start, stop_at):
        s, run, i = server.sessions[c], runs[c], 0
        # Bounded: stops by time (at least one op) or by count.
        start.wait()
        while (i == 0 or time.perf_counter() < stop_at[0]) and (cap is None or i < cap):
            if reqs:
                method, path, body = reqs[(c + i) % len(reqs)]
                data = json.dumps(body) if body is not None else None
            else:
                method, path, data = w.write(ctx, run, i, ts)
            t0 = time.perf_counter()
            try:
                r = s.request(method, url + path, data=data, timeout=HTTP_TIMEOUT)
                _ = r.content
                ok = r.status_code < 300
            except requests.RequestException as err:
                ok, r = False, err
            lat[c].append(time.perf_counter() - t0)
            if not ok:
                errors[c] += 1
                if not first_error:
                    first_error.append(r)
                if errors[c] > 50:
                    break
            i += 1

    wall, client_cpu, cpu = run_clients(n, client, seconds, server, server.db_cpu)

    ops = sum(len(x) for x in lat)
    errs = sum(errors)
    if first_error and errs == ops:
        r = first_error[0]
        if isinstance(r, requests.Response) and r.status_code in (404, 501):
            raise Unsupported(f"HTTP {r.status_code} {r.text[:120]}")
        raise RuntimeError(f"{server.name} {row.id}: every call failed: "
                           f"{getattr(r, 'status_code', '')} {getattr(r, 'text', r)!s:.300}")
    good = ops - errs
    return dict(ops=good, items=good * w.items_per_op, errors=errs, wall_s=wall,
                latencies_ms=[x * 1000 for c in lat for x in c], **cpu, client_cpu_s=client_cpu,
                client_cores=1.0,  # one Python process: the GIL
                first_error=str(getattr(first_error[0], "text", first_error[0]))[:200]
                if first_error else None)


LUA_TEMPLATE = r"""
-- Generated by benches/bench.py for one measurement.
local kind = "%(kind)s"
local method = "%(method)s"
local paths = { %(paths)s }
local bodies = { %(bodies)s }
local runs = { %(runs)s }
local per_thread = %(per_thread)d
local ts = %(ts)d
local counter = 0
local reqs = {}
local threads = {}

function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end

function init(args)
  wrk.headers["Content-Type"] = "application/json"
  for i, p in ipairs(paths) do
    reqs[i] = wrk.format(method, p, nil, bodies[i])
  end
end

function request()
  counter = counter + 1
  if kind == "static" then
    return reqs[(counter %% #reqs) + 1]
  end
  -- Writes: each thread writes its own runs; steps unique per thread and request.
  local run = runs[((tid * per_thread + counter %% per_thread) %% #runs) + 1]
  local n = tid * 100000000 + counter
  if kind == "log_metric" then
    return wrk.format("POST", paths[1], nil, string.format(
      '{"run_id":"%%s","key":"loss","value":%%d.25,"timestamp":%%d,"step":%%d}', run, n, ts, n))
  end
  local parts = {}
  local base = n * %(steps)d
  for k = 0, %(keys)d - 1 do
    for s = 0, %(steps)d - 1 do
      parts[#parts + 1] = string.format(
        '{"key":"k%%d","value":%%d.5,"timestamp":%%d,"step":%%d}', k, s, ts, base + s)
    end
  end
  return wrk.format("POST", paths[1], nil,
    '{"run_id":"' .. run .. '","metrics":[' .. table.concat(parts, ",") .. ']}')
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%%d,"duration_us":%%d,"socket_errors":%%d,"status_errors":%%d,' ..
    '"timeouts":%%d,"p50_us":%%d,"p95_us":%%d,"p99_us":%%d,"mean_us":%%.1f}\n',
    summary.requests, summary.duration, e.connect + e.read + e.write + e.timeout, e.status,
    e.timeout, latency:percentile(50), latency:percentile(95), latency:percentile(99),
    latency.mean))
end
"""


def lua_str(s: str | None) -> str:
    return "nil" if s is None else "[==[" + s + "]==]"


def drive_wrk(server: Server, row: Row, seconds: int, workdir: Path) -> dict:
    w, n = row.workload, row.clients
    threads = 1 if n == 1 else 2
    if w.static:
        reqs = w.static(server.ctx)
        method, runs = reqs[0][0], []
        paths = [API + p for _, p, _ in reqs]
        bodies = [json.dumps(b) if b is not None else None for _, _, b in reqs]
    else:
        method, path, _ = w.write(server.ctx, "RUN", 0, 0)
        paths, bodies = [API + path], [None]
        runs = fresh_runs(server, n)
    script = workdir / f"{server.name}-{row.workload.key}.lua"
    script.write_text(LUA_TEMPLATE % dict(
        kind=w.wrk_kind, method=method,
        paths=", ".join(lua_str(p) for p in paths),
        bodies=", ".join(lua_str(b) for b in bodies),
        runs=", ".join(lua_str(r) for r in runs), per_thread=max(1, n // threads),
        ts=now_ms(), keys=BATCH_KEYS, steps=BATCH_STEPS))
    cmd = ["wrk", f"-t{threads}", f"-c{n}", f"-d{seconds}s", "--timeout", "120s", "--latency",
           "-s", str(script), server.base]
    before = cpu_snapshot(server, server.db_cpu)
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 300)
    wall = time.perf_counter() - t0
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = cpu_delta(server, server.db_cpu, before)
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("WRKJSON ")), None)
    if out.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({out.returncode}): {out.stderr[-500:]} "
                           f"{out.stdout[-500:]}")
    res = json.loads(line[len("WRKJSON "):])
    if res["requests"] and res["status_errors"] == res["requests"]:
        status = probe_status(server, w)
        if status in (404, 501):
            raise Unsupported(f"HTTP {status}")
    good = res["requests"] - res["status_errors"]
    duration = res["duration_us"] / 1e6
    return dict(ops=good, items=good * w.items_per_op, errors=res["status_errors"] +
                res["socket_errors"], wall_s=duration,
                p50_ms=res["p50_us"] / 1000, p95_ms=res["p95_us"] / 1000, **cpu,
                client_cpu_s=(ru1.ru_utime + ru1.ru_stime) - (ru0.ru_utime + ru0.ru_stime),
                client_cores=float(threads), wall_with_startup_s=wall)


def probe_status(server: Server, w: Workload) -> int:
    method, path, body = w.static(server.ctx)[0]
    r = server.sessions[0].request(method, server.base + API + path,
                                   data=json.dumps(body) if body is not None else None)
    return r.status_code


# --------------------------------------------------------------------------------------------
# The database's own limit for the same work, written straight into tables shaped like
# ferroflow's (MLflow's PKs, indexes and FKs, and ferroflow's indexes), by one client and by eight: log-batch's 1,000-metric batches (the
# bare insert of the metric rows), runs/create (a run and its mlflow.runName tag, one
# transaction) and log-metric (a metric row and its latest-value upsert, one transaction).
# --------------------------------------------------------------------------------------------

PG_METRICS_DDL = """
CREATE TABLE runs (
    run_uuid varchar(32) PRIMARY KEY, name varchar(250), source_type varchar(20),
    source_name varchar(500), entry_point_name varchar(50), user_id varchar(256),
    status varchar(9), start_time bigint, end_time bigint, source_version varchar(50),
    lifecycle_stage varchar(20), artifact_uri varchar(200), experiment_id integer,
    deleted_time bigint);
CREATE INDEX ff_runs_search_order ON runs (experiment_id, lifecycle_stage,
    start_time DESC NULLS LAST, run_uuid);
CREATE TABLE tags (
    key varchar(250) NOT NULL, value varchar(8000), run_uuid varchar(32) NOT NULL
    REFERENCES runs(run_uuid), CONSTRAINT tag_pk PRIMARY KEY (key, run_uuid));
CREATE INDEX index_tags_run_uuid ON tags (run_uuid);
CREATE TABLE latest_metrics (
    key varchar(250) NOT NULL, value double precision NOT NULL, "timestamp" bigint,
    step bigint NOT NULL, is_nan boolean NOT NULL,
    run_uuid varchar(32) NOT NULL REFERENCES runs(run_uuid),
    CONSTRAINT latest_metric_pk PRIMARY KEY (key, run_uuid));
CREATE INDEX index_latest_metrics_run_uuid ON latest_metrics (run_uuid);
CREATE INDEX ff_latest_metrics_run_key ON latest_metrics (run_uuid, key) INCLUDE (value, is_nan);
CREATE TABLE metrics (
    key varchar(250) NOT NULL, value double precision NOT NULL, "timestamp" bigint NOT NULL,
    run_uuid varchar(32) NOT NULL REFERENCES runs(run_uuid), step bigint DEFAULT 0 NOT NULL,
    is_nan boolean DEFAULT false NOT NULL,
    CONSTRAINT metric_pk PRIMARY KEY (key, "timestamp", step, run_uuid, value, is_nan));
CREATE INDEX index_metrics_run_uuid ON metrics (run_uuid);
CREATE INDEX index_metrics_run_uuid_key_step ON metrics (run_uuid, key, step);
CREATE INDEX ff_metrics_history ON metrics (run_uuid, key, timestamp, step, value);
"""

SQLITE_METRICS_DDL = """
CREATE TABLE runs (
    run_uuid VARCHAR(32) PRIMARY KEY, name VARCHAR(250), source_type VARCHAR(20),
    source_name VARCHAR(500), entry_point_name VARCHAR(50), user_id VARCHAR(256),
    status VARCHAR(9), start_time BIGINT, end_time BIGINT, source_version VARCHAR(50),
    lifecycle_stage VARCHAR(20), artifact_uri VARCHAR(200), experiment_id INTEGER,
    deleted_time BIGINT);
CREATE INDEX ff_runs_search_order ON runs (experiment_id, lifecycle_stage, start_time DESC,
    run_uuid);
CREATE TABLE tags (
    "key" VARCHAR(250) NOT NULL, value VARCHAR(8000), run_uuid VARCHAR(32) NOT NULL
    REFERENCES runs(run_uuid), CONSTRAINT tag_pk PRIMARY KEY ("key", run_uuid));
CREATE INDEX index_tags_run_uuid ON tags (run_uuid);
CREATE TABLE latest_metrics (
    "key" VARCHAR(250) NOT NULL, value FLOAT NOT NULL, timestamp BIGINT, step BIGINT NOT NULL,
    is_nan BOOLEAN NOT NULL, run_uuid VARCHAR(32) NOT NULL REFERENCES runs(run_uuid),
    CONSTRAINT latest_metric_pk PRIMARY KEY ("key", run_uuid));
CREATE INDEX index_latest_metrics_run_uuid ON latest_metrics (run_uuid);
CREATE INDEX ff_latest_metrics_run_key ON latest_metrics (run_uuid, "key", value, is_nan);
CREATE TABLE metrics (
    "key" VARCHAR(250) NOT NULL, value FLOAT NOT NULL, timestamp BIGINT NOT NULL,
    run_uuid VARCHAR(32) NOT NULL REFERENCES runs(run_uuid), step BIGINT DEFAULT 0 NOT NULL,
    is_nan BOOLEAN DEFAULT 0 NOT NULL,
    CONSTRAINT metric_pk PRIMARY KEY ("key", timestamp, step, run_uuid, value, is_nan));
CREATE INDEX index_metrics_run_uuid ON metrics (run_uuid);
CREATE INDEX index_metrics_run_uuid_key_step ON metrics (run_uuid, "key", step);
CREATE INDEX ff_metrics_history ON metrics (run_uuid, "key", timestamp, step, value);
"""
# ferroflow's SQLite pragmas, so the baseline writes the way the server does.
SQLITE_PRAGMAS = ("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; "
                  "PRAGMA busy_timeout = 30000; PRAGMA foreign_keys = ON;")


class DbLimit:
    """Does a workload's database work directly: for log-batch, PostgreSQL INSERT ... SELECT FROM
    UNNEST, one statement and one commit per batch, SQLite executemany, one transaction per batch;
    for runs/create and log-metric, the rows one request writes, in one transaction. PostgreSQL:
    a connection per client; SQLite: WAL, all clients through one writer connection (SQLite has a
    single writer: clients on connections of their own only add lock waits)."""

    name = "db limit"

    def __init__(self, backend: str, workdir: Path, pg: PgDatabases | None):
        self.backend = backend
        self.key_list = [f"k{k}" for k in range(BATCH_KEYS) for _ in range(BATCH_STEPS)]
        self.value_list = [s + 0.5 for _ in range(BATCH_KEYS) for s in range(BATCH_STEPS)]
        if backend == "postgres":
            self.db = pg.create("dblimit")
            conn = pg_connect(self.db)
            with conn, conn.cursor() as cur:
                cur.execute(PG_METRICS_DDL)
            conn.close()
            self.db_cpu = PgBackendCpu(self.db)
        else:
            self.path = workdir / "dblimit.db"
            conn = sqlite3.connect(self.path)
            conn.executescript(SQLITE_PRAGMAS + SQLITE_METRICS_DDL)
            conn.close()
            self.db_cpu = None
        self.description = (
            "psycopg2, a connection per client; log-batch: INSERT ... SELECT FROM UNNEST, "
            "1 statement + commit per 1,000 rows" if backend == "postgres" else
            "Python sqlite3, WAL, synchronous=NORMAL, one writer connection shared by the "
            "clients; log-batch: executemany, 1 transaction per 1,000 rows"
        ) + ("; runs/create: the run and its mlflow.runName tag, log-metric: the metric and its "
             "latest-value upsert, 1 transaction each")
        self.writer_lock = threading.Lock()

    def connect(self):
        if self.backend == "postgres":
            return pg_connect(self.db)
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.executescript(SQLITE_PRAGMAS)
        return conn

    def write(self, kind: str, conn, run: str, i: int, ts: int) -> None:
        if kind == "runs_create":
            self.transaction(conn, [
                ("INSERT INTO runs (run_uuid, name, source_type, source_name, entry_point_name, "
                 "user_id, status, start_time, end_time, source_version, lifecycle_stage, "
                 "artifact_uri, experiment_id, deleted_time) VALUES (?, ?, 'UNKNOWN', '', '', "
                 "?, 'RUNNING', ?, NULL, '', 'active', ?, 0, NULL)",
                 (f"{run[:16]}{i:016x}", "bench", "bench", ts, "mlflow-artifacts:/0/x")),
                ("INSERT INTO tags (key, value, run_uuid) VALUES (?, ?, ?)",
                 ("mlflow.runName", "bench", f"{run[:16]}{i:016x}"))])
        elif kind == "log_metric":
            self.transaction(conn, [
                ("INSERT INTO metrics (key, value, timestamp, step, is_nan, run_uuid) "
                 "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                 ("loss", i + 0.25, ts, i, False, run)),
                ("INSERT INTO latest_metrics (key, value, timestamp, step, is_nan, run_uuid) "
                 "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (key, run_uuid) DO UPDATE SET "
                 "value = excluded.value, timestamp = excluded.timestamp, step = excluded.step, "
                 "is_nan = excluded.is_nan WHERE (excluded.step, excluded.timestamp, "
                 "excluded.value) > (latest_metrics.step, latest_metrics.timestamp, "
                 "latest_metrics.value)", ("loss", i + 0.25, ts, i, False, run))])
        else:
            self.write_batch(conn, run, i, ts)

    def transaction(self, conn, statements: list[tuple[str, tuple]]) -> None:
        if self.backend == "postgres":
            with conn.cursor() as cur:
                for sql, args in statements:
                    cur.execute(sql.replace("?", "%s"), args)
            conn.commit()
        else:
            with self.writer_lock:
                conn.execute("BEGIN")
                for sql, args in statements:
                    conn.execute(sql, args)
                conn.execute("COMMIT")

    def write_batch(self, conn, run: str, i: int, ts: int) -> None:
        steps = [i * BATCH_STEPS + s for _ in range(BATCH_KEYS) for s in range(BATCH_STEPS)]
        n = len(steps)
        if self.backend == "postgres":
            # Arrays go as text literals: psycopg2's list adaptation costs the client ~10 ms a
            # batch, which would make this a measure of Python rather than of the database.
            def arr(xs):
                return "{" + ",".join(map(str, xs)) + "}"
            with conn.cursor() as cur:
                cur.execute(
                    "INSERT INTO metrics (key, value, timestamp, step, is_nan, run_uuid) "
                    "SELECT * FROM UNNEST(%s::text[], %s::float8[], %s::bigint[], %s::bigint[], "
                    "%s::bool[], %s::text[])",
                    (arr(self.key_list), arr(self.value_list), arr([ts] * n), arr(steps),
                     arr(["f"] * n), arr([run] * n)))
            conn.commit()
        else:
            with self.writer_lock:
                conn.execute("BEGIN")
                conn.executemany(
                    'INSERT INTO metrics ("key", value, timestamp, step, is_nan, run_uuid) '
                    "VALUES (?, ?, ?, ?, 0, ?)",
                    zip(self.key_list, self.value_list, [ts] * n, steps, [run] * n))
                conn.execute("COMMIT")

    def measure(self, kind: str, clients: int, seconds: float) -> dict:
        conns = ([self.connect() for _ in range(clients)] if self.backend == "postgres"
                 else [self.connect()] * clients)
        runs = [uuid.uuid4().hex for _ in range(clients)]
        cur = conns[0].cursor()
        for run in runs:
            cur.execute("INSERT INTO runs (run_uuid) VALUES (%s)" if self.backend == "postgres"
                        else "INSERT INTO runs (run_uuid) VALUES (?)", (run,))
        cur.close()
        if self.backend == "postgres":
            conns[0].commit()
        lat: list[list[float]] = [[] for _ in range(clients)]
        ts = now_ms()

        def client(c, start, stop_at):
            start.wait()
            i = 0
            while i == 0 or time.perf_counter() < stop_at[0]:
                t0 = time.perf_counter()
                self.write(kind, conns[c], runs[c], i, ts)
                lat[c].append(time.perf_counter() - t0)
                i += 1

        wall, client_cpu, cpu = run_clients(clients, client, seconds, None, self.db_cpu)
        for conn in set(conns):
            conn.close()
        ops = sum(len(x) for x in lat)
        # SQLite runs inside this process: its CPU counts as the client's.
        items = ops * BATCH_KEYS * BATCH_STEPS if kind == "log_batch" else ops
        return dict(ops=ops, items=items, errors=0, wall_s=wall,
                    latencies_ms=[x * 1000 for c in lat for x in c], **cpu,
                    client_cpu_s=client_cpu, client_cores=1.0)

    def close(self):
        if self.db_cpu:
            self.db_cpu.close()


# --------------------------------------------------------------------------------------------
# Aggregation over rounds.
# --------------------------------------------------------------------------------------------

def percentile(xs: list[float], p: float) -> float:
    if not xs:
        return float("nan")
    xs = sorted(xs)
    k = (len(xs) - 1) * p / 100
    lo, hi = math.floor(k), math.ceil(k)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def summarize(rounds: list[dict]) -> dict:
    """Median rate over rounds; latency percentiles over all samples (py) or the median of the
    per-round percentiles (wrk); CPU per op and utilisation over the whole."""
    rates = [r["items"] / r["wall_s"] for r in rounds if r["wall_s"] > 0]
    ops = sum(r["ops"] for r in rounds)
    wall = sum(r["wall_s"] for r in rounds)
    if all("latencies_ms" in r for r in rounds):
        lat = [x for r in rounds for x in r["latencies_ms"]]
        p50, p95 = percentile(lat, 50), percentile(lat, 95)
    else:
        p50 = statistics.median(r["p50_ms"] for r in rounds)
        p95 = statistics.median(r["p95_ms"] for r in rounds)
    srv = sum(r["srv_cpu_s"] for r in rounds)
    db = sum(r["db_cpu_s"] for r in rounds)
    cli = sum(r["client_cpu_s"] for r in rounds)
    machine = sum(r["machine_cpu_s"] for r in rounds)
    return dict(
        rate=statistics.median(rates) if rates else 0.0, p50_ms=p50, p95_ms=p95, ops=ops,
        errors=sum(r["errors"] for r in rounds), rounds=len(rounds),
        srv_cpu_us_per_op=srv / ops * 1e6 if ops else None,
        db_cpu_us_per_op=db / ops * 1e6 if ops else None,
        util=dict(server=srv / wall if wall else 0, db=db / wall if wall else 0,
                  client=cli / wall if wall else 0,
                  other=max(0.0, machine - srv - db - cli) / wall if wall else 0,
                  client_cores=rounds[0].get("client_cores", 1.0)),
        round_rates=[round(x, 2) for x in rates],
        first_error=next((r.get("first_error") for r in rounds if r.get("first_error")), None),
    )


# --------------------------------------------------------------------------------------------
# One backend: start, seed, warm up, measure interleaved, collect.
# --------------------------------------------------------------------------------------------

def start_servers(backend: str, names: list[str], workdir: Path, pg: PgDatabases | None,
                  servers: list[Server]) -> None:
    """Launches the servers together (appending to `servers`, so the caller can stop them
    whatever happens), waits for each one's /health, then reads their idle memory."""
    for name in names:
        servers.append(Server(name, backend, workdir, pg))
        log(f"{backend}: starting {name} on {servers[-1].base}")
        servers[-1].launch()
    waiting, deadline = list(servers), time.monotonic() + 300
    while waiting:
        waiting = [s for s in waiting if not s.ready()]
        if waiting and time.monotonic() > deadline:
            raise RuntimeError(f"not ready after 300 s: {[s.name for s in waiting]}")
        time.sleep(0.1)
    time.sleep(2)  # let them settle before reading the idle memory
    for s in servers:
        s.info["idle"] = s.memory()
        log(f"{backend}: {s.name} up in {s.info['startup_s']}s, idle: {s.info['idle']}")


def warm_up(servers: list[Server], workloads: list[Workload],
            last_py_p50: dict[tuple[str, str], float]) -> None:
    """A few requests of every workload on every server; their latency sizes wrk's window."""
    for s in servers:
        for w in workloads:
            if w.key in s.unsupported:
                continue
            try:
                m = drive_py(s, Row(w, "py", 1), 0.3, 3)
                last_py_p50[(s.name, w.key)] = percentile(m["latencies_ms"], 50)
            except Unsupported as err:
                s.unsupported[w.key] = str(err)


def measure(s: Server, row: Row, scale: dict, last_py_p50: dict, workdir: Path) -> dict:
    """One measurement of one row on one server."""
    w = row.workload
    if row.driver == "py":
        # A counted workload ("create 100 versions") runs to its count, within a generous bound.
        m = drive_py(s, row, 300 if w.count else scale["py_seconds"],
                     scale[w.count] if w.count else None)
        last_py_p50[(s.name, w.key)] = percentile(m["latencies_ms"], 50)
        return m
    # wrk's window is whole seconds; give a slow server room for a few requests.
    slow = last_py_p50.get((s.name, w.key), 0) / 1000
    return drive_wrk(s, row, int(min(60, max(scale["wrk_seconds"], math.ceil(3 * slow)))), workdir)


def bench_backend(backend: str, server_names: list[str], workloads: list[Workload], scale: dict,
                  use_wrk: bool, pg: PgDatabases | None) -> dict:
    workdir = Path(tempfile.mkdtemp(prefix=f"ff_bench_{backend}_"))
    servers: list[Server] = []
    dblimit = None
    try:
        start_servers(backend, server_names, workdir, pg, servers)
        # Seeding runs on all servers at once: MLflow's is bound by its request latency.
        log(f"{backend}: seeding {', '.join(s.name for s in servers)}")
        in_parallel([lambda s=s: seed(s, scale, [w.key for w in workloads]) for s in servers])
        for s in servers:
            log(f"{backend}: seeded {s.name} in {s.info['seed_s']}s {s.info['seed_phases_s']}: "
                f"{s.info['result_counts']}" + (f"; n/a: {s.unsupported}" if s.unsupported else ""))
        if any(w.db_limit for w in workloads):
            dblimit = DbLimit(backend, workdir, pg)

        log(f"{backend}: warm-up")
        last_py_p50: dict[tuple[str, str], float] = {}  # (server, workload) -> latest py p50
        warm_up(servers, workloads, last_py_p50)
        if dblimit:
            for w in workloads:
                if w.db_limit:
                    dblimit.measure(w.key, 1, 0.2)

        rows = rows_for(workloads, use_wrk, scale["quick"])
        results: dict[str, dict[str, list[dict]]] = {r.id: {} for r in rows}
        # (workload, clients) -> db-limit measurements
        db_results: dict[tuple[str, int], list[dict]] = {}
        for rnd in range(scale["rounds"]):
            order = servers[rnd % len(servers):] + servers[:rnd % len(servers)]
            log(f"{backend}: round {rnd + 1}/{scale['rounds']} "
                f"(order {', '.join(s.name for s in order)})")
            for row in rows:
                for s in order:  # A, B, C: each workload on each server in turn
                    if row.workload.key in s.unsupported:
                        continue
                    try:
                        m = measure(s, row, scale, last_py_p50, workdir)
                    except Unsupported as err:
                        s.unsupported[row.workload.key] = str(err)
                        continue
                    results[row.id].setdefault(s.name, []).append(m)
                # The database's own limit for the same work, once per round and client count.
                limit_key = (row.workload.key, row.clients)
                if row.workload.db_limit and dblimit and \
                        len(db_results.get(limit_key, [])) <= rnd:
                    db_results.setdefault(limit_key, []).append(
                        dblimit.measure(row.workload.key, row.clients, scale["wrk_seconds"]))

        idle_cpu = {s.name: s.cpu() for s in servers}
        time.sleep(3)  # background work (job runners, pollers) shows as CPU while no request runs
        for s in servers:
            idle = cpu_delta_by_pid(idle_cpu[s.name], s.cpu()) / 3
            s.info["after"] = dict(s.memory(), idle_cpu_cores=round(idle, 3))
            s.info["unsupported"] = dict(s.unsupported)
        out_rows = []
        for row in rows:
            summ = {name: summarize(ms) for name, ms in results[row.id].items() if ms}
            if db_results.get((row.workload.key, row.clients)):
                summ["db limit"] = summarize(db_results[(row.workload.key, row.clients)])
            out_rows.append(dict(id=row.id, workload=row.workload.key, title=row.workload.title,
                                 driver=row.driver, clients=row.clients, unit=row.workload.unit,
                                 items_per_op=row.workload.items_per_op, results=summ))
        return dict(servers={s.name: dict(s.info, command=redact_cmd(s.command()))
                             for s in servers},
                    db_limit=dblimit.description if dblimit else None, rows=out_rows)
    finally:
        for s in servers:
            s.stop()
        if dblimit:
            dblimit.close()
        shutil.rmtree(workdir, ignore_errors=True)


def redact_cmd(cmd: list[str]) -> str:
    return " ".join(Path(c).name if i == 0 else c for i, c in enumerate(cmd))


# --------------------------------------------------------------------------------------------
# Targets: each checked on the numbers of this run; a miss says what was measured as the limit.
# --------------------------------------------------------------------------------------------

def bottleneck(res: dict, clients: int, items: int, unit: str, goal: float | None = None) -> str:
    """What limited ferroflow in a measurement, from the CPU it and its database used per
    operation: the ceiling that CPU cost sets on this machine, and (one client) how much of each
    request was spent off-CPU. The other processes' load is shown since the machine is shared."""
    cores = os.cpu_count() or 2
    u = res["util"]
    ops_rate = res["rate"] / items
    srv, db = res["srv_cpu_us_per_op"] or 0.0, res["db_cpu_us_per_op"] or 0.0
    gen = u["client"] / ops_rate * 1e6 if ops_rate else 0.0
    on_cpu = srv + db + gen
    # One client works one request at a time; more can use every core.
    parallelism = 1 if clients == 1 else cores
    ceiling = parallelism / on_cpu * 1e6 * items if on_cpu else float("inf")
    text = (f"CPU per op: server {srv:.0f} µs + db {db:.0f} µs + load gen {gen:.0f} µs "
            f"=> at most {fmt_rate(ceiling)} {unit} "
            f"{'one request at a time' if clients == 1 else f'on {cores} cores'}")
    if goal:
        need = parallelism / (goal / items) * 1e6 - gen
        text += f"; the goal needs {fmt_rate(goal)} {unit}, " + (
            f"i.e. server + db <= {need:.0f} µs/op" if need > 0 else
            f"out of reach with this load generator ({gen:.0f} µs/op by itself)")
    if u["client"] >= 0.8 * u["client_cores"]:
        why = "load generator saturated"
    elif clients == 1:
        mean = 1e6 / ops_rate if ops_rate else 0.0
        why = ("no requests" if not mean else
               f"one client, CPU-bound: {on_cpu / 1000:.2f} ms CPU per {mean / 1000:.2f} ms "
               f"request" if on_cpu >= 0.7 * mean else
               f"one client, {1 - on_cpu / mean:.0%} of each {mean / 1000:.2f} ms request "
               f"off-CPU (fsync, locks, scheduling)")
    else:
        # The cores other processes left free while this ran.
        free = max(cores - u["other"], 0.5)
        left = ceiling * free / cores
        if res["rate"] >= 0.7 * left:
            why = f"CPU-bound on the {free:.1f} cores other processes left"
        else:
            why = (f"not CPU-bound: at {res['rate'] / left:.0%} of what the {free:.1f} cores "
                   f"other processes left allow (locks, fsync, waits)")
    return f"{why}; {text}; other processes used {u['other']:.2f} cores meanwhile"


def db_cost(ff: dict, db: dict | None) -> str:
    """ferroflow's database CPU per operation against the same rows written directly."""
    if not db or not ff.get("db_cpu_us_per_op") or not db.get("db_cpu_us_per_op"):
        return ""
    return (f"; PostgreSQL CPU per operation: {ff['db_cpu_us_per_op'] / 1000:.2f} ms for "
            f"ferroflow's SQL vs {db['db_cpu_us_per_op'] / 1000:.2f} ms for the same rows "
            f"written directly")


def check_targets(backend: str, data: dict) -> list[dict]:
    checks = []
    servers = data["servers"]
    for row in data["rows"]:
        res = row["results"]
        ff = res.get("ferroflow")
        if not ff or not ff["rate"]:
            continue
        label = f"{row['title']} [{row['driver']} c{row['clients']}]"
        ratios = {}
        for other, goal in (("mlflow", TARGET_VS_MLFLOW), ("fasttrackml", TARGET_VS_FASTTRACKML)):
            if res.get(other) and res[other]["rate"]:
                ratios[other] = (ff["rate"] / res[other]["rate"], goal)
        if not ratios:
            continue
        ok = all(r >= goal for r, goal in ratios.values())
        goal_rate = max(res[o]["rate"] * goal for o, (_, goal) in ratios.items())
        text = ", ".join(f"{r:.1f}x {o} (goal {goal:g}x)" for o, (r, goal) in ratios.items())
        db = res.get("db limit")
        if not ok and db and db["rate"]:
            share = ff["rate"] / db["rate"]
            text += f"; db limit {fmt_rate(db['rate'])} {row['unit']}, ferroflow at {share:.0%}"
            ok = share >= 1 / TARGET_DB_LIMIT_FACTOR
        checks.append(dict(target=f"{label}: >= {TARGET_VS_MLFLOW:g}x mlflow, "
                                  f">= {TARGET_VS_FASTTRACKML:g}x fasttrackml",
                           ok=ok, measured=text,
                           bottleneck=None if ok else bottleneck(
                               ff, row["clients"], row["items_per_op"], row["unit"], goal_rate)
                           + db_cost(ff, db)))
    by_id = {r["id"]: r for r in data["rows"]}
    if backend == "postgres":
        best = max((by_id[i]["results"].get("ferroflow") or {"rate": 0}
                    for i in ("log_batch/wrk/c8", "log_batch/py/c8") if i in by_id),
                   key=lambda r: r["rate"], default=None)
        if best and best["rate"]:
            db = next((by_id[i]["results"].get("db limit") for i in ("log_batch/wrk/c8",
                       "log_batch/py/c8") if i in by_id and by_id[i]["results"].get("db limit")),
                      None)
            text = f"{fmt_rate(best['rate'])} metrics/s"
            if db:
                text += f" (db limit, 8 clients: {fmt_rate(db['rate'])} metrics/s"
                if db["rate"] < TARGET_LOG_BATCH_PG_C8:
                    text += ": the database itself does not reach the target on this machine"
                text += ")"
            ok = best["rate"] >= TARGET_LOG_BATCH_PG_C8
            checks.append(dict(target=f"log-batch 8 clients on PostgreSQL >= "
                                      f"{TARGET_LOG_BATCH_PG_C8:,} metrics/s",
                               ok=ok, measured=text,
                               bottleneck=None if ok else bottleneck(
                                   best, 8, BATCH_KEYS * BATCH_STEPS, "metrics/s",
                                   TARGET_LOG_BATCH_PG_C8) + db_cost(best, db)))
    for i in ("search_metric_param/wrk/c1", "search_metric_param/py/c1"):
        ff = by_id.get(i, {}).get("results", {}).get("ferroflow")
        if ff:
            ok = ff["p50_ms"] <= TARGET_SEARCH_P50_MS
            checks.append(dict(target=f"runs/search metric+param p50 <= {TARGET_SEARCH_P50_MS:g} "
                                      f"ms [{i.split('/')[1]}]", ok=ok,
                               measured=f"p50 {ff['p50_ms']:.2f} ms",
                               bottleneck=None if ok else bottleneck(ff, 1, 1, "calls/s")))
            break
    ff = servers.get("ferroflow")
    if ff:
        for key, goal, label in (("idle", TARGET_RSS_IDLE_MB, "idle RSS"),
                                 ("after", TARGET_RSS_AFTER_MB, "RSS after the run")):
            if key in ff:
                rss = ff[key]["rss_mb"]
                checks.append(dict(target=f"ferroflow {label} <= {goal} MB", ok=rss <= goal,
                                   measured=f"{rss} MB", bottleneck=None))
    return checks


# --------------------------------------------------------------------------------------------
# Output: text tables, markdown, JSON.
# --------------------------------------------------------------------------------------------

def fmt_rate(x: float | None) -> str:
    if x is None or x != x:
        return "-"
    if x >= 1e6:
        return f"{x / 1e6:.2f}M"
    if x >= 1e4:
        return f"{x / 1e3:.0f}k"
    if x >= 1e3:
        return f"{x / 1e3:.1f}k"
    if x >= 10:
        return f"{x:.0f}"
    return f"{x:.2g}"


def fmt_ms(x: float | None) -> str:
    if x is None or x != x:
        return "-"
    if x >= 100:
        return f"{x:.0f}"
    if x >= 10:
        return f"{x:.1f}"
    return f"{x:.2f}"


def fmt_ratio(a: dict | None, b: dict | None) -> str:
    if not a or not b or not a["rate"] or not b["rate"]:
        return "n/a"
    return f"{a['rate'] / b['rate']:.1f}x"


def table_cells(data: dict, names: list[str]) -> tuple[list[str], list[list[str]]]:
    head = ["workload", "drv", "c", "unit"]
    for n in names:
        head += [f"{n} rate", "p50/p95 ms"]
    head += ["db limit", "ff/mlflow", "ff/fml"]
    out = []
    for row in data["rows"]:
        res = row["results"]
        cells = [row["title"], row["driver"], str(row["clients"]), row["unit"]]
        for n in names:
            r = res.get(n)
            if r:
                cells += [fmt_rate(r["rate"]) + (f" ({r['errors']} err)" if r["errors"] else ""),
                          f"{fmt_ms(r['p50_ms'])}/{fmt_ms(r['p95_ms'])}"]
            else:
                cells += ["n/a", ""]
        db = res.get("db limit")
        ff = res.get("ferroflow")
        cells += [fmt_rate(db["rate"]) if db else "",
                  fmt_ratio(ff, res.get("mlflow")), fmt_ratio(ff, res.get("fasttrackml"))]
        out.append(cells)
    return head, out


def cpu_cells(data: dict, names: list[str]) -> tuple[list[str], list[list[str]]]:
    """CPU time per operation: the server's process tree, plus (PostgreSQL) the backends
    serving its database."""
    head = ["workload", "drv", "c"] + [f"{n} µs/op" for n in names]
    out = []
    for row in data["rows"]:
        cells = [row["title"], row["driver"], str(row["clients"])]
        for n in names:
            r = row["results"].get(n)
            if not r or r["srv_cpu_us_per_op"] is None:
                cells.append("n/a")
            elif r["db_cpu_us_per_op"]:
                cells.append(f"{r['srv_cpu_us_per_op']:.0f} + db {r['db_cpu_us_per_op']:.0f}")
            else:
                cells.append(f"{r['srv_cpu_us_per_op']:.0f}")
        out.append(cells)
    return head, out


def memory_cells(data: dict) -> tuple[list[str], list[list[str]]]:
    head = ["server", "startup s", "idle RSS MB", "idle PSS MB", "after RSS MB", "after PSS MB",
            "processes", "idle CPU after", "seed s"]
    out = []
    for n, s in data["servers"].items():
        idle, after = s.get("idle", {}), s.get("after", {})
        out.append([n, str(s.get("startup_s", "")), str(idle.get("rss_mb", "")),
                    str(idle.get("pss_mb", "")), str(after.get("rss_mb", "")),
                    str(after.get("pss_mb", "")), str(after.get("processes", "")),
                    f"{after['idle_cpu_cores']:.3f} cores" if "idle_cpu_cores" in after else "",
                    str(s.get("seed_s", ""))])
    return head, out


def unsupported_lines(data: dict) -> list[str]:
    return [f"n/a on {n}: " + "; ".join(f"{k} ({v})" for k, v in sorted(s["unsupported"].items()))
            for n, s in data["servers"].items() if s.get("unsupported")]


def text_table(head: list[str], rows: list[list[str]], left: int) -> list[str]:
    widths = [max(len(r[i]) for r in [head] + rows) for i in range(len(head))]
    return ["  ".join(c.ljust(w) if i < left else c.rjust(w)
                      for i, (c, w) in enumerate(zip(r, widths))).rstrip() for r in [head] + rows]


def markdown_table(head: list[str], rows: list[list[str]], left: int) -> list[str]:
    return (["| " + " | ".join(head) + " |",
             "|" + "|".join("---" if i < left else "---:" for i in range(len(head))) + "|"]
            + ["| " + " | ".join(c.replace("|", "/") for c in r) + " |" for r in rows])


def render_text(backend: str, data: dict, names: list[str]) -> str:
    lines = [f"== {backend} ==  rate: median over rounds; p50/p95 latency per request; "
             f"ratios: ferroflow's rate / the other's (higher is better for ferroflow)"]
    lines += text_table(*table_cells(data, names), left=4)
    if data.get("db_limit"):
        lines.append(f"db limit: {data['db_limit']}")
    lines.append("")
    lines.append("CPU per operation (server process tree + the PostgreSQL backends of its "
                 "database)")
    lines += text_table(*cpu_cells(data, names), left=3)
    lines.append("")
    lines += text_table(*memory_cells(data), left=1)
    lines += unsupported_lines(data)
    lines.append("")
    lines.append("targets:")
    for c in data.get("targets", []):
        lines.append(f"  [{'ok' if c['ok'] else 'MISS'}] {c['target']}: {c['measured']}")
        if c.get("bottleneck"):
            lines.append(f"         bottleneck: {c['bottleneck']}")
    return "\n".join(lines)


def render_markdown(result: dict) -> str:
    meta = result["meta"]
    lines = [f"Command: `{meta['command']}` ({meta.get('elapsed_s', '?')} s)  ",
             f"Machine: {meta['machine']}  ",
             f"Versions: {meta['versions']}", ""]
    for backend, data in result["backends"].items():
        names = list(data["servers"])
        lines.append(f"**{backend}** — rate: median over {meta['scale']['rounds']} round(s); "
                     f"p50/p95 latency per request; ratios: ferroflow's rate over the other's")
        lines.append("")
        lines += markdown_table(*table_cells(data, names), left=4)
        lines.append("")
        if data.get("db_limit"):
            lines += [f"db limit: {data['db_limit']}.", ""]
        lines += markdown_table(*memory_cells(data), left=1)
        lines.append("")
        lines += [x + "  " for x in unsupported_lines(data)]
        lines.append("")
        lines.append("Targets:")
        lines.append("")
        for c in data.get("targets", []):
            lines.append(f"- {'ok' if c['ok'] else '**miss**'}: {c['target']}: {c['measured']}"
                         + (f" — bottleneck: {c['bottleneck']}" if c.get("bottleneck") else ""))
        lines.append("")
    return "\n".join(lines)


def machine_description() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{cpu}, {os.cpu_count()} cores, {mem_gb:.0f} GB RAM, Linux {platform.release()}"


def versions(use_pg: bool) -> str:
    parts = []
    try:
        rev = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=ROOT,
                             capture_output=True, text=True).stdout.strip()
        built = dt.datetime.fromtimestamp(FERROFLOW_BIN.stat().st_mtime).isoformat(
            timespec="seconds") if FERROFLOW_BIN.exists() else "not built"
        parts.append(f"ferroflow {rev} (binary built {built})")
    except OSError:
        pass
    try:
        import importlib.metadata as md
        parts.append(f"mlflow {md.version('mlflow')}")
        parts.append(f"fasttrackml {md.version('fasttrackml')}")
    except Exception:  # noqa: BLE001
        pass
    if use_pg:
        try:
            conn = pg_connect()
            with conn.cursor() as cur:
                cur.execute("SHOW server_version")
                parts.append(f"PostgreSQL {cur.fetchone()[0].split()[0]}")
            conn.close()
        except Exception:  # noqa: BLE001
            pass
    wrk = shutil.which("wrk")
    if wrk:
        out = subprocess.run([wrk, "-v"], capture_output=True, text=True)
        m = re.search(r"wrk (\S+)", out.stdout + out.stderr)
        parts.append(f"wrk {m.group(1) if m else '?'}")
    parts.append(f"Python {platform.python_version()}")
    return ", ".join(parts)


# --------------------------------------------------------------------------------------------

def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="workloads: " + ", ".join(WORKLOADS_BY_KEY))
    p.add_argument("--quick", action="store_true", help="small scale: a few minutes on 2 cores")
    p.add_argument("--servers", default=",".join(SERVERS))
    p.add_argument("--backends", default=",".join(BACKENDS))
    p.add_argument("--workloads", default="all", help="comma-separated keys, or 'all'")
    p.add_argument("--rounds", type=int, help="override the scale's number of rounds")
    p.add_argument("--no-wrk", action="store_true", help="Python driver only")
    p.add_argument("--markdown", nargs="?", const="latest", metavar="RESULTS_JSON",
                   help="render a results file (default: the newest) as markdown and exit")
    return p.parse_args()


def main() -> int:
    args = parse_args()
    if args.markdown:
        path = (max(RESULTS.glob("*.json"), default=None) if args.markdown == "latest"
                else Path(args.markdown))
        if not path:
            sys.exit("no results in benches/results/")
        print(render_markdown(json.loads(Path(path).read_text())))
        return 0

    scale = dict(SCALES["quick" if args.quick else "full"])
    if args.rounds:
        scale["rounds"] = args.rounds
    server_names = [s for s in args.servers.split(",") if s]
    backends = [b for b in args.backends.split(",") if b]
    for s in server_names:
        if s not in SERVERS:
            sys.exit(f"unknown server {s}: choose from {SERVERS}")
    for b in backends:
        if b not in BACKENDS:
            sys.exit(f"unknown backend {b}: choose from {BACKENDS}")
    workloads = (list(WORKLOADS) if args.workloads == "all" else
                 [WORKLOADS_BY_KEY[k] for k in args.workloads.split(",") if k])
    use_wrk = not args.no_wrk and shutil.which("wrk") is not None
    if not use_wrk and not args.no_wrk:
        log("wrk not found: Python driver only")
    if "ferroflow" in server_names and not FERROFLOW_BIN.exists():
        sys.exit(f"{FERROFLOW_BIN} missing: run `cargo build --release` (benches/run.sh does)")
    if "postgres" in backends and not pg_available():
        backends.remove("postgres")

    # Stop cleanly on SIGTERM too, so servers stop and scratch databases are dropped.
    def on_sigterm(*_):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_sigterm)
    started = time.time()
    result = dict(meta=dict(
        command="benches/run.sh " + " ".join(sys.argv[1:]),
        timestamp=dt.datetime.now().isoformat(timespec="seconds"),
        machine=machine_description(), versions=versions("postgres" in backends),
        scale=scale, servers=server_names, wrk=use_wrk,
        targets=dict(vs_mlflow=TARGET_VS_MLFLOW, vs_fasttrackml=TARGET_VS_FASTTRACKML,
                     db_limit_factor=TARGET_DB_LIMIT_FACTOR,
                     log_batch_pg_c8=TARGET_LOG_BATCH_PG_C8, search_p50_ms=TARGET_SEARCH_P50_MS,
                     rss_idle_mb=TARGET_RSS_IDLE_MB, rss_after_mb=TARGET_RSS_AFTER_MB)),
        backends={})
    pg = PgDatabases() if "postgres" in backends else None
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"{time.strftime('%Y%m%d-%H%M%S')}.json"
    try:
        for backend in backends:
            data = bench_backend(backend, server_names, workloads, scale, use_wrk, pg)
            data["targets"] = check_targets(backend, data)
            result["backends"][backend] = data
            result["meta"]["elapsed_s"] = round(time.time() - started, 1)
            out.write_text(json.dumps(result, indent=1))  # after each backend: keep what we have
            log(f"{backend} done; results so far in {out.relative_to(ROOT)}")
    except KeyboardInterrupt:
        log("interrupted")
        return 130
    finally:
        if pg:
            pg.drop_all()
    for backend, data in result["backends"].items():
        print("\n" + render_text(backend, data, server_names) + "\n")
    log(f"done in {result['meta']['elapsed_s']}s; results in {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
