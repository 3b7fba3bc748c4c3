#!/usr/bin/env python3
"""`ferroflow gc` against `mlflow gc`: how fast soft-deleted runs and their artifacts go.

Run it through `benches/run.sh gc` (release build, the benchmark venv). Per backend:

1. Seeding, not a result (its time is printed): `ferroflow server` (the release binary) on a
   fresh store and a temp `--artifacts-destination` gets one experiment of `--runs` runs, each
   with 10 metrics, 5 params and 5 tags (the tracking benchmark's search seed) and one file of
   `--artifact-bytes` uploaded through the artifact proxy (PUT
   /api/2.0/mlflow-artifacts/artifacts/<exp>/<run>/artifacts/model.bin), then every run is
   deleted (runs/delete). Each run is created, logged, uploaded and deleted by one of 8 threads
   with keep-alive sessions (httpapi.parallel), 4 in each of 2 forked processes. The server
   stops; PostgreSQL gets VACUUM ANALYZE, as bench.py does after a bulk load, so neither gc is
   planned on statistics of empty tables.
2. Timed: `ferroflow gc --older-than 0s` as a subprocess, wall time (process start included).
   Its JSON report must say every run went and nothing failed; then the tables runs, metrics,
   latest_metrics, params and tags must be empty and no run directory left in the destination.
3. Baseline: `mlflow gc --older-than 0s` of the pinned mlflow (benches/.venv) on a store seeded
   the same way with `--baseline-runs` runs (it removes one run at a time, so 100,000 would take
   hours). MLflow resolves `mlflow-artifacts:/` URIs through the tracking server only, so
   `mlflow server` runs on that store and destination meanwhile, and MLFLOW_TRACKING_URI names
   it; `--artifacts-destination` is passed too but only sets new experiments' root. The same
   checks follow, but for the run directories: the proxy empties a run's artifacts/ and leaves
   the run's directory (their number is in the results file). Wall time here includes mlflow's
   import, a few seconds. If it fails, its cell is n/a with the reason.

The table gives runs/s, rows/s (the report's `rows`: every row removed) and MB/s of artifact
bytes removed for ferroflow, mlflow's runs/s, and the ratio of the two runs/s.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import FERROFLOW_BIN, VENV_BIN, log  # noqa: E402  (the tracking benchmark's modules)
from httpapi import call, parallel  # noqa: E402
from pgdb import PgDatabases, pg_available, pg_connect, vacuum_analyze  # noqa: E402
from report import save_results  # noqa: E402
from seed import seed_run_entities  # noqa: E402
from servers import Server, start_servers  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "support"))
import ferroflow_process  # noqa: E402

ARTIFACTS_API = "/api/2.0/mlflow-artifacts/artifacts/"
# A run's own rows; the checks after each gc want them all gone.
RUN_TABLES = ("runs", "metrics", "latest_metrics", "params", "tags")
GC_TIMEOUT = 3 * 3600  # seconds; a guard against a hung gc, not a bound on the measurement
# One Python process of requests sessions is slower than the server it seeds: two of them.
SEED_PROCESSES, SEED_THREADS = 2, 4


class Store:
    """A seeded store: where ferroflow kept it, and what is in it."""

    def __init__(self, server: Server, experiment: str, runs: int, seed_s: float):
        self.backend, self.db, self.dir = server.backend, server.db, server.dir
        self.uri = server.store_uri()
        self.artifacts = server.dir / "artifacts"
        self.experiment, self.runs, self.seed_s = experiment, runs, seed_s

    def count_rows(self) -> dict[str, int]:
        conn = (sqlite3.connect(self.dir / "store.db") if self.backend == "sqlite"
                else pg_connect(self.db))
        try:
            cur, counts = conn.cursor(), {}
            for table in RUN_TABLES:
                cur.execute(f"SELECT COUNT(*) FROM {table}")
                counts[table] = cur.fetchone()[0]
            return counts
        finally:
            conn.close()

    def run_dirs(self) -> int:
        exp_dir = self.artifacts / self.experiment
        return sum(1 for _ in exp_dir.iterdir()) if exp_dir.exists() else 0

    def artifact_files(self) -> int:
        return sum(1 for p in (self.artifacts / self.experiment).rglob("*") if p.is_file())


def in_processes(n: int, fn) -> None:
    """fn(session, i) for i in range(n), split over SEED_PROCESSES forked processes running
    httpapi.parallel; raises if any of them failed (its traceback is on stderr)."""
    ctx = multiprocessing.get_context("fork")  # fork: fn is a closure, never pickled
    bounds = [n * k // SEED_PROCESSES for k in range(SEED_PROCESSES + 1)]
    procs = [ctx.Process(target=parallel,
                         args=(hi - lo, lambda s, i, lo=lo: fn(s, lo + i), SEED_THREADS))
             for lo, hi in zip(bounds, bounds[1:])]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    if any(p.exitcode for p in procs):
        raise RuntimeError("seeding failed in a worker process (traceback above)")


def seed_deleted(backend: str, runs: int, artifact_bytes: int, workdir: Path,
                 pg: PgDatabases | None) -> Store:
    servers: list[Server] = []
    try:
        start_servers(backend, ["ferroflow"], workdir, pg, servers)
        server = servers[0]
        start = time.perf_counter()
        exp = call(server, "POST", "/experiments/create", {"name": "bench-gc"})["experiment_id"]
        blob = os.urandom(artifact_bytes)

        def seed_run(s, i):
            info = call(server, "POST", "/runs/create",
                        {"experiment_id": exp, "run_name": f"run-{i:06d}",
                         "start_time": 1_700_000_000_000 + i}, session=s)["run"]["info"]
            call(server, "POST", "/runs/log-batch",
                 {"run_id": info["run_id"], **seed_run_entities(i)}, session=s)
            # The path the server gave the run, so gc maps it back the way it was written.
            path = info["artifact_uri"].removeprefix("mlflow-artifacts:/").lstrip("/")
            resp = s.put(server.base + ARTIFACTS_API + path + "/model.bin", data=blob,
                         headers={**server.headers, "Content-Type": "application/octet-stream"})
            if resp.status_code != 200:
                raise RuntimeError(f"artifact PUT: {resp.status_code} {resp.text[:200]}")
            call(server, "POST", "/runs/delete", {"run_id": info["run_id"]}, session=s)

        in_processes(runs, seed_run)
        seed_s = round(time.perf_counter() - start, 1)
    finally:
        for s in servers:
            s.stop()
    store = Store(servers[0], exp, runs, seed_s)
    if store.db:
        vacuum_analyze(store.db)
    log(f"{backend}: seeded and deleted {runs:,} runs in {seed_s} s "
        f"({runs / seed_s:,.0f} runs/s); {store.count_rows()}")
    if store.run_dirs() != runs:
        raise RuntimeError(f"{store.run_dirs()} run directories for {runs} runs")
    return store


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, subprocess.CompletedProcess]:
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=GC_TIMEOUT)
    return time.perf_counter() - start, proc


def leftovers(store: Store, run_dirs: bool) -> str | None:
    """What a gc should have removed but left (a run's rows, its artifact files and, when
    `run_dirs`, its directory), or None."""
    rows = {t: n for t, n in store.count_rows().items() if n}
    files, dirs = store.artifact_files(), store.run_dirs() if run_dirs else 0
    if rows or files or dirs:
        return f"left behind: rows {rows}, {files} artifact files, {dirs} run directories"
    return None


def ferroflow_gc(store: Store) -> dict:
    rows_before = store.count_rows()
    seconds, proc = timed([str(FERROFLOW_BIN), "gc", "--older-than", "0s",
                           "--backend-store-uri", store.uri,
                           "--artifacts-destination", str(store.artifacts)], dict(os.environ))
    if proc.returncode != 0:
        raise RuntimeError(f"ferroflow gc exited {proc.returncode}: {proc.stderr[-2000:]}")
    report = json.loads(proc.stdout)
    if report["runs"] != store.runs or report["failed"]:
        raise RuntimeError(f"ferroflow gc removed {report['runs']} of {store.runs} runs, "
                           f"failed: {report['failed'][:5]}")
    problem = leftovers(store, run_dirs=True)
    if problem:
        raise RuntimeError(f"ferroflow gc: {problem}")
    report.pop("listed")  # up to 1,000 run ids
    return dict(seconds=round(seconds, 3), rows_before=rows_before, report=report,
                runs_per_s=store.runs / seconds, rows_per_s=report["rows"] / seconds,
                mb_per_s=report["artifact_bytes"] / 1e6 / seconds)


def mlflow_gc(store: Store, workdir: Path) -> dict:
    """mlflow gc with `mlflow server` on the same store as its artifact proxy; n/a on failure."""
    port = ferroflow_process.free_port()
    base = f"http://{ferroflow_process.HOST}:{port}"
    env = dict(os.environ, MLFLOW_DISABLE_TELEMETRY="true", DO_NOT_TRACK="true",
               MLFLOW_TRACKING_URI=base)
    proxy = ferroflow_process.launch(
        [str(VENV_BIN / "mlflow"), "server", "--host", ferroflow_process.HOST, "--port",
         str(port), "--backend-store-uri", store.uri,
         "--artifacts-destination", str(store.artifacts)],
        workdir / "mlflow-server.log", env=env, cwd=workdir)
    try:
        if not ferroflow_process.wait_ready(proxy, base + "/health", timeout=300):
            return {"n/a": "mlflow server did not start in 300 s"}
        log(f"{store.backend}: mlflow server up as the artifact proxy; mlflow gc")
        seconds, proc = timed([str(VENV_BIN / "mlflow"), "gc", "--older-than", "0s",
                               "--backend-store-uri", store.uri,
                               "--artifacts-destination", str(store.artifacts)], env)
    except ferroflow_process.Exited as err:
        return {"n/a": f"mlflow server {err}; see {workdir / 'mlflow-server.log'}"}
    finally:
        ferroflow_process.stop_group(proxy)
    (workdir / "mlflow-gc.log").write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        lines = proc.stderr.strip().splitlines() or ["no output"]
        return {"n/a": f"mlflow gc exited {proc.returncode}: {lines[-1][:300]}"}
    problem = leftovers(store, run_dirs=False)
    if problem:
        return {"n/a": f"mlflow gc: {problem}"}
    # It empties each run's artifacts/ directory through the proxy; the run's own stays.
    return dict(runs=store.runs, seconds=round(seconds, 3), runs_per_s=store.runs / seconds,
                run_dirs_left=store.run_dirs())


def bench_backend(backend: str, args, workdir: Path, pg: PgDatabases | None) -> dict:
    main = seed_deleted(backend, args.runs, args.artifact_bytes, workdir / "main", pg)
    log(f"{backend}: ferroflow gc of {args.runs:,} runs")
    result = dict(runs=args.runs, seed_s=main.seed_s, ferroflow=ferroflow_gc(main))
    log(f"{backend}: ferroflow gc took {result['ferroflow']['seconds']} s")
    base = seed_deleted(backend, args.baseline_runs, args.artifact_bytes,
                        workdir / "baseline", pg)
    result["mlflow"] = mlflow_gc(base, workdir / "baseline")
    result["mlflow"]["seed_s"] = base.seed_s
    if "runs_per_s" in result["mlflow"]:
        result["ratio"] = result["ferroflow"]["runs_per_s"] / result["mlflow"]["runs_per_s"]
        log(f"{backend}: mlflow gc took {result['mlflow']['seconds']} s")
    else:
        log(f"{backend}: mlflow gc n/a: {result['mlflow']['n/a']}")
    return result


def render(results: dict) -> str:
    lines = ["| backend | runs | seconds | runs/s | rows/s | MB/s | mlflow runs/s | ratio |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    notes = []
    for backend, r in results.items():
        ff, ml = r["ferroflow"], r["mlflow"]
        mlflow_cell = f"{ml['runs_per_s']:,.1f}" if "runs_per_s" in ml else "n/a"
        ratio_cell = f"{r['ratio']:,.0f}×" if "ratio" in r else "n/a"
        lines.append(f"| {backend} | {r['runs']:,} | {ff['seconds']:.2f} | "
                     f"{ff['runs_per_s']:,.0f} | {ff['rows_per_s']:,.0f} | "
                     f"{ff['mb_per_s']:,.1f} | {mlflow_cell} | {ratio_cell} |")
        notes.append(f"- {backend}: " + (f"mlflow gc removed {ml['runs']:,} runs in "
                                         f"{ml['seconds']:.1f} s" if "runs_per_s" in ml
                                         else f"mlflow gc n/a: {ml['n/a']}"))
    return "\n".join(lines + [""] + notes)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=100_000,
                    help="deleted runs for ferroflow gc (100,000)")
    ap.add_argument("--baseline-runs", type=int, default=2_000,
                    help="deleted runs for mlflow gc (2,000)")
    ap.add_argument("--backends", default="sqlite,postgres")
    ap.add_argument("--artifact-bytes", type=int, default=1024,
                    help="size of each run's artifact file (1024)")
    args = ap.parse_args()
    pg = PgDatabases() if "postgres" in args.backends and pg_available() else None
    results = {}
    try:
        with tempfile.TemporaryDirectory(prefix="ff-gc-bench-") as tmp:
            for backend in args.backends.split(","):
                if backend == "postgres" and pg is None:
                    continue
                results[backend] = bench_backend(backend, args, Path(tmp) / backend, pg)
    finally:
        if pg:
            pg.drop_all()
    path = save_results("gc", results, runs=args.runs, baseline_runs=args.baseline_runs,
                        artifact_bytes=args.artifact_bytes)
    print()
    print(render(results))
    print(f"\nresults: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
