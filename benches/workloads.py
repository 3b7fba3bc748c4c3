"""The workloads: one function each, giving the request(s) an operation sends, and the rows of a
round (workload x driver x clients).

  static workloads: (ctx) -> [(method, path, body)], cycled by both drivers;
  write workloads:  (ctx, run_id, i, ts) -> (method, path, body) for the py driver, and a
                    `wrk_kind` the Lua script mirrors (same body shape, unique steps).

`ctx` holds the ids seeding made (seed.py). Nothing here sends a request."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable
from urllib.parse import urlencode

from harness import BATCH_KEYS, BATCH_STEPS, now_ms

SEARCH_QUERIES = {
    # The UI's default query: active runs, newest first, a page of 100.
    "search_default": dict(filter="", order_by=["attributes.start_time DESC"], max_results=100),
    "search_metric_param": dict(filter="metrics.m0 > 0.5 and params.p0 = 'v3'",
                                order_by=[], max_results=100),
    "search_tag_order": dict(filter="tags.t0 = 'tag2'", order_by=["metrics.m1 DESC"],
                             max_results=100),
    "search_page_1000": dict(filter="", order_by=[], max_results=1000),
}


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
