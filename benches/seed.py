"""Seeding: the same data on every server, through the REST API, then a read-back of what the
workloads will read (check_seeded), so every server is asked for the same work and a server that
does not serve a call, or answers it differently, gets that workload marked n/a."""

from __future__ import annotations

import math
import random
import time
from typing import Callable
from urllib.parse import urlencode

from harness import now_ms
from httpapi import ApiError, call, parallel
from pgdb import vacuum_analyze
from servers import Server
from workloads import SEARCH_QUERIES


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
