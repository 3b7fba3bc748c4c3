#!/usr/bin/env python3
"""Span ingest over OTLP (`POST /v1/traces`): ferroflow against `mlflow server`.

Run it through `benches/run.sh otlp` (release build, the benchmark venv). Per backend, each
server runs alone on a fresh store of its own: ferroflow (`--ferroflow-bin`, the release
binary by default), then `mlflow server` (the pinned 3.17.2, its default workers); started
afresh for the Python clients and again for each wrk concurrency, so that no measurement
inherits a store an earlier one filled.

Each request is an OTLP/HTTP protobuf `ExportTraceServiceRequest` with the experiment in the
`x-mlflow-experiment-id` header, built before the clock starts:

    batch   one whole trace per request: a root span and `--spans - 1` children, as the
            client's batching exporter (asynchronous export) and an OTel SDK's send them
    single  one span per request, as the client sends them with synchronous export

Spans carry what the MLflow client puts on them: span type, inputs and outputs (a few hundred
characters of JSON), the request id, a model name and token usage on the LLM children.
Two drivers send them:

    py      8 keep-alive Python clients (4 threads in each of 2 forked processes) send
            `--requests` requests to one server, then the other, after 32 untimed ones;
    wrk     `--wrk-seconds` of wrk (2 threads) sending batch requests, a fresh trace id each (a
            Lua script writes it into the prebuilt body), at each of `--wrk-connections`
            (8, 32 and 64 by default), `--repeat` times (3) with the servers taking turns,
            each time on a fresh store; the median run counts (one run on this 2-core
            machine can be 20% off the next). One Python process tops out near 600 of
            these requests/s, which is ferroflow's rate with `py`; wrk is not the bottleneck.

Reported: spans/s, the CPU the server's process tree (and its PostgreSQL backends) spent per
span, and the ratio, per mode and per wrk concurrency; then each server's peak, its ingest
capacity: the most spans/s it took at any of those concurrencies. MLflow's workers are busy
at 8 connections already; ferroflow writes the exports that wait together, so more of them
at once make larger transactions. Issue 16's goal is ferroflow's capacity >= 30x MLflow's.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import FERROFLOW_BIN, HTTP_TIMEOUT, log  # noqa: E402  (the tracking benchmark's)
from httpapi import ApiError, call, parallel  # noqa: E402
from pgdb import PgDatabases, pg_available, pg_connect  # noqa: E402
from report import save_results  # noqa: E402
from servers import Build, Server, start_servers  # noqa: E402
from traces import cpu_seconds  # noqa: E402  (the trace-record benchmark's)
from drivers import lua_headers  # noqa: E402

PROCESSES, THREADS, WARMUP = 2, 4, 32
WRK_WARMUP_S = 5  # untimed wrk before each timed run
T0_NS = 1_765_000_000_000_000_000
INPUTS = json.dumps({"messages": [{"role": "user", "content": "Summarise the quarterly report "
                                   "for the board in five bullet points. " * 3}]})
OUTPUTS = json.dumps({"choices": [{"message": {"role": "assistant", "content": "Revenue grew "
                                   "12% against plan; support costs rose 9%. " * 3}}]})


def attr(key: str, value: str) -> KeyValue:
    # The client sends its attributes JSON-encoded, as strings.
    return KeyValue(key=key, value=AnyValue(string_value=value))


def span(trace_no: int, span_no: int, spans: int, trace_id: bytes | None = None) -> Span:
    trace_id = trace_id or hashlib.md5(f"otlp-{trace_no}".encode()).digest()
    root = span_no == 0
    start = T0_NS + trace_no * 1_000_000_000 + span_no * 1_000_000
    kind = "AGENT" if root else ("LLM", "TOOL", "RETRIEVER")[span_no % 3]
    attributes = [
        attr("mlflow.traceRequestId", json.dumps("tr-" + trace_id.hex())),
        attr("mlflow.spanType", json.dumps(kind)),
        attr("mlflow.spanInputs", INPUTS),
        attr("mlflow.spanOutputs", OUTPUTS),
    ]
    if kind == "LLM":
        attributes += [attr("mlflow.llm.model", json.dumps("gpt-4o")),
                       attr("mlflow.chat.tokenUsage", json.dumps(
                           {"input_tokens": 120, "output_tokens": 40, "total_tokens": 160}))]
    return Span(
        trace_id=trace_id,
        span_id=(span_no + 1).to_bytes(8, "big"),
        parent_span_id=b"" if root else (1).to_bytes(8, "big"),
        name="agent" if root else f"step-{span_no}",
        start_time_unix_nano=start,
        end_time_unix_nano=start + (spans + 1 - span_no) * 1_000_000,
        attributes=attributes,
        status=Status(code=Status.STATUS_CODE_OK),
    )


def export(spans: list[Span]) -> bytes:
    return ExportTraceServiceRequest(resource_spans=[ResourceSpans(scope_spans=[
        ScopeSpans(spans=spans)])]).SerializeToString()


def bodies(mode: str, first_trace: int, requests: int, spans: int) -> list[bytes]:
    """`requests` request bodies; traces are numbered from `first_trace`."""
    if mode == "batch":
        return [export([span(first_trace + i, k, spans) for k in range(spans)])
                for i in range(requests)]
    # single: the children of a trace first, its root last, as they end.
    order = list(range(1, spans)) + [0]
    return [export([span(first_trace + i // spans, order[i % spans], spans)])
            for i in range(requests)]


def send(server: Server, exp: str, payloads: list[bytes]) -> dict:
    """POSTs every payload over PROCESSES x THREADS keep-alive clients."""
    ctx = multiprocessing.get_context("fork")  # fork: the closure is never pickled
    headers = {**server.headers, "Content-Type": "application/x-protobuf",
               "x-mlflow-experiment-id": exp}

    def post(s, i):
        r = s.post(server.base + "/v1/traces", data=payloads[i], headers=headers,
                   timeout=HTTP_TIMEOUT)
        if r.status_code != 200:
            raise ApiError(r.status_code, r.text)

    n = len(payloads)
    bounds = [n * k // PROCESSES for k in range(PROCESSES + 1)]
    procs = [ctx.Process(target=parallel, args=(b - a, lambda s, i, a=a: post(s, a + i),
                                                THREADS))
             for a, b in zip(bounds, bounds[1:])]
    cpu0, t0 = cpu_seconds(server), time.perf_counter()
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    seconds, cpu = time.perf_counter() - t0, cpu_seconds(server) - cpu0
    if any(p.exitcode for p in procs):
        raise RuntimeError(f"{server.name}: export failed in a worker process (traceback above)")
    return dict(seconds=round(seconds, 2), cpu_s=cpu)


# 16 bytes that occur nowhere else in a body: the trace id wrk replaces per request.
MARKER = b"ZQXJZQXJZQXJZQXJ"

LUA = r"""
-- Generated by benches/otlp.py: batch exports, a fresh trace id per request.
local marker = "%(marker)s"
local headers = { %(headers)s }
local parts = {}  -- the body split at the marker, once: each request only joins them
local counter = 0
local threads = {}

function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end

function init(args)
  local f = assert(io.open("%(body)s", "rb"))
  local template = f:read("*a")
  f:close()
  local from = 1
  while true do
    local at = template:find(marker, from, true)
    if not at then break end
    table.insert(parts, template:sub(from, at - 1))
    from = at + #marker
  end
  table.insert(parts, template:sub(from))
  wrk.method = "POST"
  wrk.path = "/v1/traces"
  wrk.headers["Content-Type"] = "application/x-protobuf"
  wrk.headers["x-mlflow-experiment-id"] = "%(experiment)s"
  for k, v in pairs(headers) do
    wrk.headers[k] = v
  end
end

-- 16 bytes: 8 fixed, then the request number in little-endian bytes.
local function trace_id(n)
  local bytes = {}
  for i = 1, 8 do
    bytes[i] = string.char(n %% 256)
    n = math.floor(n / 256)
  end
  return "wrk-otlp" .. table.concat(bytes)
end

function request()
  counter = counter + 1
  local id = trace_id(%(first_id)d + tid * 1000000000 + counter)
  return wrk.format(nil, nil, nil, table.concat(parts, id))
end

function done(summary, latency, requests)
  io.write(string.format('WRKJSON {"requests":%%d,"duration_us":%%d,"errors":%%d}\n',
    summary.requests, summary.duration, summary.errors.status + summary.errors.connect +
    summary.errors.read + summary.errors.write + summary.errors.timeout))
end
"""


def drive_wrk(server: Server, exp: str, args, workdir: Path, connections: int,
              seconds: int) -> dict:
    """`seconds` of wrk sending batch exports to `server` over `connections`."""
    body = workdir / f"{server.name}-otlp-body.bin"
    body.write_bytes(export([span(0, k, args.spans, MARKER) for k in range(args.spans)]))
    script = workdir / f"{server.name}-otlp.lua"
    # Trace ids unique to this run (a warmup's and the timed run's never meet).
    first_id = time.time_ns() // 1000  # microseconds: well within a double's exact integers
    script.write_text(LUA % dict(marker=MARKER.decode(), body=body, experiment=exp,
                                 headers=lua_headers(server.headers), first_id=first_id))
    cpu0 = cpu_seconds(server)
    out = subprocess.run(["wrk", "-t2", f"-c{connections}", f"-d{seconds}s",
                          "--timeout", "60s",
                          "-s", str(script), server.base],
                         capture_output=True, text=True, timeout=seconds + 120)
    cpu = cpu_seconds(server) - cpu0
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("WRKJSON ")), None)
    if out.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({out.returncode}): {out.stderr[-500:]}")
    res = json.loads(line[len("WRKJSON "):])
    if res["errors"]:
        raise RuntimeError(f"{server.name}: {res['errors']} of {res['requests']} exports failed")
    spans = res["requests"] * args.spans
    seconds = res["duration_us"] / 1e6
    return dict(spans=spans, seconds=round(seconds, 2), spans_per_s=spans / seconds,
                cpu_ms_per_span=1000 * cpu / spans)


NAMES = ("ferroflow", "mlflow")


@contextlib.contextmanager
def alone(name: str, backend: str, workdir: Path, pg: PgDatabases | None, args):
    """One server, on an empty store of its own, the only one running; stopped on leaving.
    (An idle `mlflow server` beside ferroflow is 15 processes whose wakeups cost ferroflow up
    to a fifth of its rate at 8 connections.)"""
    settle(pg)
    servers: list[Server] = []
    try:
        start_servers(backend, [name], workdir / name, pg, servers,
                      {"ferroflow": Build(Path(args.ferroflow_bin).resolve())})
        idle(servers[0])
        yield servers[0]
    finally:
        for s in servers:
            s.stop()


IDLE_CPU_S = 0.05   # CPU seconds per second below which a server counts as idle
IDLE_WAIT_S = 90    # the longest wait for it


def idle(server: Server) -> None:
    """Waits until the server's process tree is idle. `mlflow server` starts its job runners
    (Huey consumers, each a Python process importing mlflow) beside its workers, and they take
    some 25 s of both cores on this kind of machine: measured then, its rate and CPU per span
    would be its start-up's, not its steady state's."""
    deadline, last = time.monotonic() + IDLE_WAIT_S, cpu_seconds(server)
    while time.monotonic() < deadline:
        time.sleep(1)
        now = cpu_seconds(server)
        if now - last < IDLE_CPU_S:
            return
        last = now
    log(f"{server.name}: still busy after {IDLE_WAIT_S} s; measuring anyway")


def settle(pg: PgDatabases | None) -> None:
    """Writes out what earlier runs left dirty (the kernel's page cache, PostgreSQL's shared
    buffers), so that no run pays for the one before it."""
    os.sync()
    if pg:
        conn = pg_connect()
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("CHECKPOINT")
        conn.close()


def bench_backend(backend: str, args, workdir: Path, pg: PgDatabases | None) -> dict:
    results: dict = {mode: {} for mode in ("batch", "single")}
    for name in NAMES:
        with alone(name, backend, workdir / "py", pg, args) as s:
            for mode in ("batch", "single"):
                per_request = args.spans if mode == "batch" else 1
                timed = bodies(mode, 0, args.requests, args.spans)
                warmup = bodies(mode, 10 * args.requests, WARMUP, args.spans)
                exp = call(s, "POST", "/experiments/create", {"name": f"otlp-{mode}"})[
                    "experiment_id"]
                send(s, exp, warmup)
                r = send(s, exp, timed)
                spans = len(timed) * per_request
                results[mode][name] = dict(spans=spans, seconds=r["seconds"],
                                           spans_per_s=spans / r["seconds"],
                                           cpu_ms_per_span=1000 * r["cpu_s"] / spans)
                log(f"{backend}: {mode}: {name}: {results[mode][name]['spans_per_s']:,.0f} "
                    f"spans/s, {results[mode][name]['cpu_ms_per_span']:.2f} CPU ms/span")
    # Each concurrency on a fresh store: one that an earlier run filled (ferroflow's, with
    # thirty times MLflow's spans) would be measured as well as the concurrency.
    peak: dict = {}
    for connections in args.wrk_connections:
        mode = f"batch (wrk, {connections} conn)"
        runs: dict = {name: [] for name in NAMES}
        # The servers take turns, so that a slow spell of the machine falls on both.
        for repeat in range(args.repeat):
            for name in NAMES:
                workdir_run = workdir / f"wrk-{connections}-{repeat}"
                with alone(name, backend, workdir_run, pg, args) as s:
                    # A fresh `mlflow server` needs a few seconds before it runs at its pace.
                    warm = call(s, "POST", "/experiments/create", {"name": "otlp-warmup"})[
                        "experiment_id"]
                    drive_wrk(s, warm, args, s.dir, connections, WRK_WARMUP_S)
                    exp = call(s, "POST", "/experiments/create", {"name": "otlp-wrk"})[
                        "experiment_id"]
                    run = drive_wrk(s, exp, args, s.dir, connections, args.wrk_seconds)
                runs[name].append(run)
                log(f"{backend}: {mode}: {name}: {run['spans_per_s']:,.0f} spans/s, "
                    f"{run['cpu_ms_per_span']:.2f} CPU ms/span")
        row = results[mode] = {name: median(runs[name]) for name in NAMES}
        for name in NAMES:
            if row[name]["spans_per_s"] > peak.get(name, {}).get("spans_per_s", 0):
                peak[name] = row[name]
    for row in results.values():
        row["ratio"] = row["ferroflow"]["spans_per_s"] / row["mlflow"]["spans_per_s"]
    peak["ratio"] = peak["ferroflow"]["spans_per_s"] / peak["mlflow"]["spans_per_s"]
    results["peak (wrk): capacity"] = peak
    return results


def median(runs: list[dict]) -> dict:
    """The run with the median rate (the lower middle of an even count), and every rate."""
    ordered = sorted(runs, key=lambda r: r["spans_per_s"])
    return dict(ordered[(len(ordered) - 1) // 2],
                runs_spans_per_s=[round(r["spans_per_s"]) for r in runs])


def render(results: dict, args) -> str:
    lines = [f"OTLP span ingest: py: {PROCESSES * THREADS} Python clients, {args.requests} "
             f"requests (batch: {args.spans} spans each; single: 1); wrk: batch, "
             f"{args.wrk_seconds} s, the median of {args.repeat} runs per concurrency; peak: "
             "each server's best wrk rate", "",
             "| backend | mode | ferroflow spans/s | CPU ms/span | mlflow spans/s | CPU ms/span "
             "| ratio (goal >= 30x) |", "|---|---|---:|---:|---:|---:|---:|"]
    for backend, modes in results.items():
        for mode, row in modes.items():
            ff, ml = row["ferroflow"], row["mlflow"]
            lines.append(f"| {backend} | {mode} | {ff['spans_per_s']:,.0f} | "
                         f"{ff['cpu_ms_per_span']:.2f} | {ml['spans_per_s']:,.0f} | "
                         f"{ml['cpu_ms_per_span']:.2f} | {row['ratio']:.1f}x |")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=1000, help="timed requests per mode (1,000)")
    ap.add_argument("--spans", type=int, default=10, help="spans per trace (10)")
    ap.add_argument("--wrk-seconds", type=int, default=10, help="seconds of wrk per server (10)")
    ap.add_argument("--repeat", type=int, default=3,
                    help="wrk runs per server and concurrency, each on a fresh store; the "
                         "median counts (3)")
    ap.add_argument("--wrk-connections", default="8,32,64",
                    type=lambda v: [int(c) for c in v.split(",")],
                    help="wrk concurrencies, each run for --wrk-seconds (8,32,64)")
    ap.add_argument("--backends", default="sqlite,postgres")
    ap.add_argument("--ferroflow-bin", default=str(FERROFLOW_BIN),
                    help="the ferroflow binary under test (target/release/ferroflow)")
    args = ap.parse_args()
    pg = PgDatabases() if "postgres" in args.backends and pg_available() else None
    results = {}
    try:
        with tempfile.TemporaryDirectory(prefix="ff-otlp-bench-") as tmp:
            for backend in args.backends.split(","):
                if backend == "postgres" and pg is None:
                    continue
                results[backend] = bench_backend(backend, args, Path(tmp) / backend, pg)
    finally:
        if pg:
            pg.drop_all()
    path = save_results("otlp", results, requests=args.requests, spans=args.spans,
                        wrk_seconds=args.wrk_seconds, wrk_connections=args.wrk_connections,
                        repeat=args.repeat,
                        ferroflow_bin=args.ferroflow_bin, clients=PROCESSES * THREADS)
    print()
    print(render(results, args))
    print(f"\nresults: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
