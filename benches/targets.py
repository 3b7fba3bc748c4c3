"""The issue's targets, each checked on the numbers of the same run; a miss says what was
measured as the limit (CPU per operation of server, database and load generator, and the
ceiling that sets on this machine)."""

from __future__ import annotations

import os

from harness import BATCH_KEYS, BATCH_STEPS
from report import fmt_rate

TARGET_VS_MLFLOW = 30.0
TARGET_VS_FASTTRACKML = 3.0
TARGET_DB_LIMIT_FACTOR = 2.0          # where the database is the bottleneck: within 2x of its limit
TARGET_LOG_BATCH_PG_C8 = 200_000      # metrics/s
TARGET_SEARCH_P50_MS = 5.0
TARGET_RSS_IDLE_MB = 30
TARGET_RSS_AFTER_MB = 150


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
