#!/usr/bin/env python3
"""Trace records: StartTraceV3 ingest and traces/search, ferroflow against `mlflow server`.

Run it through `benches/run.sh traces` (release build, the benchmark venv). Per backend, both
servers run at once, each on a fresh store of its own: ferroflow (`--ferroflow-bin`, the release
binary by default) and `mlflow server` (the pinned 3.17.2, its default 4 workers).

1. Ingest, timed: the first `--ingest` of the `--traces` records of one experiment, one server
   after the other (each after 64 untimed ones in an experiment of their own), through `POST /api/3.0/mlflow/traces` (StartTraceV3) as the stock client
   sends them at the end of a trace: unique trace ids, 8 metadata keys (user, source, commit,
   schema version, inputs, outputs, size), 3 tags (the trace name, `k` = v0..v9, `env`),
   previews of 200-300 characters, a second apart, 10% in state ERROR; the same ids and times
   on both servers. 8 keep-alive clients: 4 threads in each of 2 forked processes
   (httpapi.parallel); a 5xx is retried (MLflow on SQLite can answer "database is locked") and
   counted. Reported: traces/s, the CPU the server's process tree (and its PostgreSQL backends)
   spent per trace, and the ratio. The issue's ingest goal (>= 30x MLflow) is about OTLP spans
   (`/v1/traces`), which `benches/run.sh otlp` measures: this measures trace records only. The
   Python clients share the 2 cores with the server, so for ferroflow the rate is mostly theirs.
2. Seeding, not a result: the rest of the `--traces` records the same way (its time is
   printed), then VACUUM ANALYZE on PostgreSQL (bench.py does so after a bulk load).
3. Search, timed: `POST /api/3.0/mlflow/traces/search` from one keep-alive session, 100 per page:

     default        newest first
     tag            filter `tags.k = 'v7'`
     status_time    filter `trace.status = 'OK' AND trace.timestamp_ms > <the middle trace's>`
     page_5         the default query's fifth page, with the page token the server gave for it

   `--repeats` requests of each, after 3 of warm-up, alternating ferroflow, mlflow and the
   database so machine noise hits all alike. "db" is the database's own time for ferroflow's
   work: the statements src/search/traces.rs and src/store/sql/traces.rs send for the query (the
   page's ids, then its rows of trace_info, trace_tags, trace_request_metadata and assessments),
   run one after the other from Python (sqlite3 / psycopg2, one open connection) on ferroflow's
   own database, rows fetched and built as any client must; the server runs the four loads
   concurrently. The goal: ferroflow's p50 within 2x of db's. Each query also checks that the
   three return the same trace ids.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing
import re
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import FERROFLOW_BIN, HTTP_TIMEOUT, log  # noqa: E402  (the tracking benchmark's)
from httpapi import ApiError, call, new_session, parallel  # noqa: E402
from pgdb import PgDatabases, pg_available, pg_connect, vacuum_analyze  # noqa: E402
from report import percentile, save_results  # noqa: E402
from servers import Build, Server, start_servers  # noqa: E402

API3 = "/api/3.0/mlflow"
PROCESSES, THREADS = 2, 4
PAGE, WARMUP = 100, 3
# Traces started before the timed ingest, in an experiment of their own: each of MLflow's
# workers builds its store on its first request, a second or more of CPU each.
WARMUP_TRACES = 64
T0_MS = 1_765_000_000_000  # the first trace's request_time; each next one a second later
USER_TEXT = ("Summarise the attached quarterly report for the board, in five bullet points, "
             "flagging any revenue line that moved more than ten percent against plan. ")
ANSWER_TEXT = ("Revenue grew 12% against plan, driven by the enterprise tier; support costs "
               "rose 9%. Churn fell to 2.1%. Two regions missed plan by more than 10%. ")


def trace_info(exp: str, i: int) -> dict:
    """The i-th record of experiment `exp`, as the stock client's StartTraceV3 body carries it."""
    ms = T0_MS + i * 1000
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + f".{ms % 1000:03d}Z"
    request = json.dumps({"messages": [{"role": "user", "content": f"{USER_TEXT}#{i}"}]})
    response = json.dumps({"choices": [{"message": {"role": "assistant", "content": ANSWER_TEXT}}]})
    return {
        "trace_id": "tr-" + hashlib.md5(f"bench-{i}".encode()).hexdigest(),
        "client_request_id": None,
        "trace_location": location(exp),
        "request_preview": request, "response_preview": response,
        "request_time": stamp, "execution_duration": f"{0.02 + (i % 97) / 100:.3f}s",
        "state": "ERROR" if i % 10 == 9 else "OK",
        "trace_metadata": {
            "mlflow.user": "bench", "mlflow.source.name": "agent.py",
            "mlflow.source.type": "LOCAL", "mlflow.trace_schema.version": "3",
            "mlflow.source.git.commit": hashlib.sha1(b"bench").hexdigest(),
            "mlflow.traceInputs": request, "mlflow.traceOutputs": response,
            "mlflow.trace.sizeBytes": str(2000 + i % 1000)},
        "tags": {"mlflow.traceName": ("chat", "retrieve", "plan")[i % 3],
                 "k": f"v{i % 10}", "env": ("prod", "dev")[i % 2]},
    }


def post(server: Server, session, path: str, body: dict, retried=None) -> dict:
    """POST to /api/3.0/mlflow; a 5xx is retried (and counted in `retried`) up to 8 times."""
    for attempt in range(9):
        r = session.post(server.base + API3 + path, data=json.dumps(body),
                         headers=server.headers, timeout=HTTP_TIMEOUT)
        if r.status_code == 200:
            return r.json()
        if r.status_code < 500 or attempt == 8:
            raise ApiError(r.status_code, r.text)
        if retried is not None:
            with retried.get_lock():
                retried.value += 1
        time.sleep(0.05 * 2 ** attempt)


def cpu_seconds(server: Server) -> float:
    """CPU seconds so far of the server's process tree and its PostgreSQL backends."""
    db = sum(server.db_cpu.snapshot().values()) if server.db_cpu else 0.0
    return sum(server.cpu().values()) + db


def ingest(server: Server, exp: str, lo: int, hi: int) -> dict:
    """Starts traces lo..hi-1 of `exp` over PROCESSES x THREADS keep-alive clients."""
    ctx = multiprocessing.get_context("fork")  # fork: the closure is never pickled
    retried, n = ctx.Value("i", 0), hi - lo

    def start(s, i):
        post(server, s, "/traces", {"trace": {"trace_info": trace_info(exp, i)}}, retried)

    bounds = [lo + n * k // PROCESSES for k in range(PROCESSES + 1)]
    procs = [ctx.Process(target=parallel, args=(b - a, lambda s, i, a=a: start(s, a + i),
                                                THREADS))
             for a, b in zip(bounds, bounds[1:])]
    cpu0, t0 = cpu_seconds(server), time.perf_counter()
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    seconds, cpu = time.perf_counter() - t0, cpu_seconds(server) - cpu0
    if any(p.exitcode for p in procs):
        raise RuntimeError(f"{server.name}: ingest failed in a worker process (traceback above)")
    return dict(traces=n, seconds=round(seconds, 2), traces_per_s=n / seconds,
                retried=retried.value, cpu_ms_per_trace=1000 * cpu / n)


def queries(middle: int) -> dict[str, tuple[str, int, str, list]]:
    """key -> (filter, page, the condition traces_search_query renders for the filter, its
    values from $3 on: $1 is the workspace, $2 the experiment)."""
    tag = ("EXISTS (SELECT 1 FROM trace_tags kv WHERE kv.request_id = ti.request_id "
           "AND kv.key = $3 AND kv.value = $4)")
    return {"default": ("", 1, "", []),
            "tag": ("tags.k = 'v7'", 1, tag, ["k", "v7"]),
            "status_time": (f"trace.status = 'OK' AND trace.timestamp_ms > {middle}", 1,
                            "ti.status = $3 AND ti.timestamp_ms > $4", ["OK", middle]),
            "page_5": ("", 5, "", [])}


def location(exp: str) -> dict:
    return {"type": "MLFLOW_EXPERIMENT", "mlflow_experiment": {"experiment_id": exp}}


def search_body(exp: str, filter_: str, token: str | None = None) -> dict:
    """SearchTracesV3 as the stock client sends it (empty fields left out)."""
    body = {"locations": [location(exp)], "filter": filter_, "max_results": PAGE,
            "page_token": token}
    return {k: v for k, v in body.items() if v}


def page_request(server: Server, session, exp: str, filter_: str, page: int) -> dict:
    """The body that asks for `page`, following the server's own page tokens to it."""
    token = None
    for _ in range(page - 1):
        token = post(server, session, "/traces/search", search_body(exp, filter_, token))[
            "next_page_token"]
    return search_body(exp, filter_, token)


class DbQuery:
    """ferroflow's statements for one search page, on its own database: the ids query of
    traces_search_query (limit max_results + 1, as search_traces asks) and the four reads of
    load_trace_infos. The SQL text is the server's, `$N` placeholders and all, rebound for
    sqlite3 (`?N`) or psycopg2 (`%s`)."""

    def __init__(self, server: Server, exp: str, condition: str, values: list, page: int):
        self.pg = server.backend == "postgres"
        self.conn = pg_connect(server.db) if self.pg else sqlite3.connect(server.dir / "store.db")
        # No transaction around the reads, as from the server's pool (sqlite3 begins none for
        # a SELECT).
        if self.pg:
            self.conn.autocommit = True
        where = "e.workspace = $1 AND ti.experiment_id IN ($2)" + (
            f" AND {condition}" if condition else "")
        binds = ["default", int(exp), *values]
        n = len(binds)
        self.ids_query = (f"SELECT ti.request_id FROM trace_info ti JOIN experiments e ON "
                          f"e.experiment_id = ti.experiment_id WHERE {where} ORDER BY "
                          f"ti.timestamp_ms DESC, ti.request_id ASC LIMIT ${n + 1} OFFSET ${n + 2}",
                          binds + [PAGE + 1, (page - 1) * PAGE])

    def run(self, sql: str, binds: list):
        cur = self.conn.cursor()
        if self.pg:
            order = [int(m) - 1 for m in re.findall(r"\$(\d+)", sql)]
            cur.execute(re.sub(r"\$\d+", "%s", sql), [binds[i] for i in order])
        else:
            cur.execute(re.sub(r"\$(\d+)", r"?\1", sql), binds)
        return cur.fetchall()

    def page(self) -> list[str]:
        ids = [row[0] for row in self.run(*self.ids_query)][:PAGE]
        if not ids:  # the server loads nothing then
            return ids
        listed = ", ".join(f"${k + 1}" for k in range(len(ids)))
        self.run("SELECT ti.request_id, ti.experiment_id, ti.timestamp_ms, ti.execution_time_ms, "
                 "ti.status, ti.client_request_id, ti.request_preview, ti.response_preview, "
                 "ti.trace_name, ti.session_id, ti.input_tokens, ti.output_tokens, "
                 "ti.total_tokens, ti.cache_read_input_tokens, ti.cache_creation_input_tokens, "
                 "ti.cache_creation_input_tokens_above_1hr, ti.input_cost, ti.output_cost, "
                 "ti.total_cost FROM trace_info ti JOIN experiments e ON e.experiment_id = "
                 f"ti.experiment_id WHERE ti.request_id IN ({listed}) AND e.workspace = "
                 f"${len(ids) + 1}", ids + ["default"])
        for table in ("trace_tags", "trace_request_metadata"):
            self.run(f"SELECT request_id, key, value FROM {table} WHERE request_id IN ({listed})",
                     ids)
        # `*` for the server's 16 columns: this data has no assessments.
        self.run(f"SELECT * FROM assessments a WHERE a.trace_id IN ({listed}) "
                 "ORDER BY a.created_timestamp, a.assessment_id", ids)
        return ids


def search(servers: list[Server], exps: dict[str, str], traces: int, repeats: int) -> dict:
    """p50/p95 of each query on each server and on ferroflow's database, interleaved."""
    sessions = {s.name: new_session(s.headers) for s in servers}
    results = {}
    for key, (filter_, page, condition, values) in queries(T0_MS + traces // 2 * 1000).items():
        row, timed, ids, samples, db = {}, {}, {}, {}, None
        for s in servers:
            sess, exp = sessions[s.name], exps[s.name]
            try:
                body = page_request(s, sess, exp, filter_, page)
            except (ApiError, KeyError) as err:  # KeyError: no next_page_token
                row[s.name] = {"n/a": f"{type(err).__name__}: {err}"}
                continue
            timed[s.name] = lambda s=s, sess=sess, body=body: [
                t["trace_id"] for t in post(s, sess, "/traces/search", body).get("traces", [])]
            if s.kind == "ferroflow":
                db = DbQuery(s, exp, condition, values, page)
                timed["db"] = db.page
        for name, fn in timed.items():
            for _ in range(WARMUP):
                ids[name] = fn()
            samples[name] = []
        for _ in range(repeats):
            for name, fn in timed.items():
                t0 = time.perf_counter()
                fn()
                samples[name].append(1000 * (time.perf_counter() - t0))
        if db:
            db.conn.close()
        results[key] = row
        for name, ms in samples.items():
            row[name] = dict(p50_ms=percentile(ms, 50), p95_ms=percentile(ms, 95),
                             traces=len(ids[name]))
        row["same_ids"] = len({tuple(v) for v in ids.values()}) == 1
        if "p50_ms" in row.get("mlflow", {}) and "p50_ms" in row.get("ferroflow", {}):
            row["ratio"] = row["mlflow"]["p50_ms"] / row["ferroflow"]["p50_ms"]
        if "db" in row:
            row["server_over_db"] = row["ferroflow"]["p50_ms"] / row["db"]["p50_ms"]
        log(f"  {key}: " + ", ".join(f"{n} p50 {v['p50_ms']:.1f} ms" for n, v in row.items()
                                       if isinstance(v, dict) and "p50_ms" in v))
    return results


def bench_backend(backend: str, args, workdir: Path, pg: PgDatabases | None) -> dict:
    servers: list[Server] = []
    builds = {"ferroflow": Build(Path(args.ferroflow_bin).resolve())}
    try:
        start_servers(backend, ["ferroflow", "mlflow"], workdir, pg, servers, builds)
        result: dict = {"ingest": {}, "seed_s": {}}
        exps = {s.name: call(s, "POST", "/experiments/create", {"name": "bench-traces"})[
            "experiment_id"] for s in servers}
        ing = result["ingest"]
        for s in servers:
            warmup = call(s, "POST", "/experiments/create", {"name": "warmup"})["experiment_id"]
            ingest(s, warmup, args.traces, args.traces + WARMUP_TRACES)  # ids of their own
            log(f"{backend}: {s.name}: ingest of {args.ingest:,} traces")
            r = ing[s.name] = ingest(s, exps[s.name], 0, args.ingest)
            log(f"{backend}: {s.name}: {r['traces_per_s']:,.0f} traces/s "
                f"({r['retried']} retried, {r['cpu_ms_per_trace']:.2f} CPU ms/trace)")
        ing["ratio"] = ing["ferroflow"]["traces_per_s"] / ing["mlflow"]["traces_per_s"]
        for s in servers:
            if args.traces > args.ingest:
                r = ingest(s, exps[s.name], args.ingest, args.traces)
                result["seed_s"][s.name] = r["seconds"]
                log(f"{backend}: {s.name}: seeded {r['traces']:,} more traces in {r['seconds']} s")
        for s in servers:
            if s.db:
                vacuum_analyze(s.db)
        log(f"{backend}: search over {args.traces:,} traces, {args.repeats} requests each")
        result["search"] = search(servers, exps, args.traces, args.repeats)
        return result
    finally:
        for s in servers:
            s.stop()


def render(results: dict, args) -> str:
    lines = [f"ingest: StartTraceV3 trace records, {PROCESSES * THREADS} clients "
             f"({PROCESSES} processes x {THREADS} threads)", "",
             "| backend | ferroflow traces/s | CPU ms/trace | mlflow traces/s | CPU ms/trace "
             "| ratio | retried (ff/mlflow) |", "|---|---:|---:|---:|---:|---:|---:|"]
    for backend, r in results.items():
        ff, ml = r["ingest"]["ferroflow"], r["ingest"]["mlflow"]
        lines.append(f"| {backend} | {ff['traces_per_s']:,.0f} | {ff['cpu_ms_per_trace']:.2f} | "
                     f"{ml['traces_per_s']:,.0f} | {ml['cpu_ms_per_trace']:.2f} | "
                     f"{r['ingest']['ratio']:.1f}x | {ff['retried']}/{ml['retried']} |")
    lines += ["", "The issue's ingest goal (>= 30x MLflow) is about OTLP spans (/v1/traces, "
              "benches/run.sh otlp); these numbers are trace records (StartTraceV3).", "",
              f"search: traces/search over {args.traces:,} traces in one experiment, {PAGE} per "
              f"page, p50 / p95 ms of {args.repeats} requests", "",
              "| backend | query | ferroflow | mlflow | mlflow/ff | db | ff/db (goal <= 2x) "
              "| same ids |",
              "|---|---|---:|---:|---:|---:|---:|---|"]
    cell = lambda v: f"{v['p50_ms']:.1f} / {v['p95_ms']:.1f}" if "p50_ms" in v else "n/a"
    times = lambda row, key: f"{row[key]:.{1 if key == 'ratio' else 2}f}x" if key in row else "n/a"
    for backend, r in results.items():
        for key, row in r["search"].items():
            ff, ml, db = (cell(row.get(n, {})) for n in ("ferroflow", "mlflow", "db"))
            lines.append(f"| {backend} | {key} | {ff} | {ml} | {times(row, 'ratio')} | {db} | "
                         f"{times(row, 'server_over_db')} | "
                         f"{'yes' if row.get('same_ids') else 'NO'} |")
    notes = [f"- {b} {key} {name}: n/a: {v['n/a']}" for b, r in results.items()
             for key, row in r["search"].items() for name, v in row.items()
             if isinstance(v, dict) and "n/a" in v]
    return "\n".join(lines + ([""] + notes if notes else []))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--traces", type=int, default=10_000,
                    help="traces in the searched experiment (10,000)")
    ap.add_argument("--ingest", type=int, default=10_000,
                    help="traces timed at ingest, the first of --traces (10,000)")
    ap.add_argument("--repeats", type=int, default=50, help="timed requests per query (50)")
    ap.add_argument("--backends", default="sqlite,postgres")
    ap.add_argument("--ferroflow-bin", default=str(FERROFLOW_BIN),
                    help="the ferroflow binary under test (target/release/ferroflow)")
    args = ap.parse_args()
    if not 0 < args.ingest <= args.traces:
        ap.error("--ingest must be between 1 and --traces")
    pg = PgDatabases() if "postgres" in args.backends and pg_available() else None
    results = {}
    try:
        with tempfile.TemporaryDirectory(prefix="ff-traces-bench-") as tmp:
            for backend in args.backends.split(","):
                if backend == "postgres" and pg is None:
                    continue
                results[backend] = bench_backend(backend, args, Path(tmp) / backend, pg)
    finally:
        if pg:
            pg.drop_all()
    path = save_results("traces", results, traces=args.traces, ingest=args.ingest,
                        repeats=args.repeats, ferroflow_bin=args.ferroflow_bin,
                        clients=PROCESSES * THREADS)
    print()
    print(render(results, args))
    print(f"\nresults: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
