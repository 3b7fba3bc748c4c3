"""One backend from start to finish: start every server on a fresh database, seed them, warm
up, then measure round after round, each workload on each server in turn (A, B, C, A, B, C ...)
so machine noise hits all alike, the database's own limit beside the write workloads; stop
everything, whatever happens, and return the backend's part of the results file."""

from __future__ import annotations

import math
import shutil
import tempfile
import time
from pathlib import Path

from dblimit import DbLimit
from drivers import Unsupported, drive_py, drive_wrk
from harness import log
from httpapi import in_parallel
from pgdb import PgDatabases
from procstat import cpu_delta_by_pid
from report import percentile, summarize
from seed import seed
from servers import Build, Server, redact_cmd, start_servers
from workloads import Row, Workload, rows_for
from workspace import check_scoped


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
                  use_wrk: bool, pg: PgDatabases | None,
                  builds: dict[str, Build] | None = None) -> dict:
    workdir = Path(tempfile.mkdtemp(prefix=f"ff_bench_{backend}_"))
    servers: list[Server] = []
    dblimit = None
    try:
        start_servers(backend, server_names, workdir, pg, servers, builds)
        # Seeding runs on all servers at once: MLflow's is bound by its request latency.
        log(f"{backend}: seeding {', '.join(s.name for s in servers)}")
        in_parallel([lambda s=s: seed(s, scale, [w.key for w in workloads]) for s in servers])
        for s in servers:
            log(f"{backend}: seeded {s.name} in {s.info['seed_s']}s {s.info['seed_phases_s']}: "
                f"{s.info['result_counts']}" + (f"; n/a: {s.unsupported}" if s.unsupported else ""))
            if s.workspace:
                log(f"{backend}: {check_scoped(s)}")
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
