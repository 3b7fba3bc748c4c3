"""The load drivers. Each measurement returns a dict with ops, items, errors, wall_s, latencies,
and the CPU seconds of server, database backends and load generator over the measurement.

  py   the way clients call the API: a requests.Session (keep-alive) per client thread;
  wrk  for the fast paths, since one Python process tops out near 2,000 requests/s: a generated
       Lua script builds the bodies, wrk reports its own rate and latency percentiles."""

from __future__ import annotations

import json
import math
import os
import resource
import subprocess
import threading
import time
from pathlib import Path
from typing import Callable

import requests

from auth import AUTH_HEADER, WRK_AUTH_ENV
from harness import API, BATCH_KEYS, BATCH_STEPS, HTTP_TIMEOUT, now_ms
from httpapi import call, parallel
from procstat import PgBackendCpu, cpu_delta_by_pid, machine_busy_seconds
from servers import Server
from workloads import Row, Workload, user_run_body


def fresh_runs(server: Server, n: int) -> list[str]:
    """New runs for a write measurement: one per client, as n training processes would."""
    runs = [""] * n

    def create(s, i):
        runs[i] = call(server, "POST", "/runs/create", user_run_body(server.ctx),
                       session=s)["run"]["info"]["run_id"]

    parallel(n, create, threads=n)
    return runs


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
-- Generated by benches/drivers.py for one measurement.
local kind = "%(kind)s"
local method = "%(method)s"
local paths = { %(paths)s }
local bodies = { %(bodies)s }
local runs = { %(runs)s }
local headers = { %(headers)s }
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
  for k, v in pairs(headers) do  -- the server's headers (workspace, token): on every request
    wrk.headers[k] = v
  end
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


def lua_headers(headers: dict[str, str]) -> str:
    """The Lua table of a server's headers; the token's value is read from wrk's environment
    (WRK_AUTH_ENV), so the script on disk holds no secret."""
    return ", ".join(f"[ {lua_str(k)} ] = "
                     + (f'os.getenv("{WRK_AUTH_ENV}")' if k == AUTH_HEADER else lua_str(v))
                     for k, v in headers.items())


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
        headers=lua_headers(server.headers),
        ts=now_ms(), keys=BATCH_KEYS, steps=BATCH_STEPS))
    cmd = ["wrk", f"-t{threads}", f"-c{n}", f"-d{seconds}s", "--timeout", "120s", "--latency",
           "-s", str(script), server.base]
    before = cpu_snapshot(server, server.db_cpu)
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    env = dict(os.environ)
    if AUTH_HEADER in server.headers:
        env[WRK_AUTH_ENV] = server.headers[AUTH_HEADER]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 300, env=env)
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
