#!/usr/bin/env python3
"""The web UI's experiment page on a big experiment: how long its requests take to answer.

Run it through `benches/run.sh ui-page` (release build, the benchmark venv). Per backend:
ferroflow is seeded through the API with one experiment of `--runs` runs (5 params, 5 tags and
10 metrics each, the tracking benchmark's seed), then `mlflow server` (the pinned 3.17.2, its
default 4 workers) is started on the same database, so both answer from the same data.

One page load is the requests MLflow's UI sends when the experiment's runs page opens, as a
browser sends them: all at once, over up to 6 connections (chromium's per host), timed until the
last answer. They are the ones the browser tests record (tests/e2e/test_ui.py):

  graphql          the experiment, for the header (MlflowGetExperimentQuery's fields)
  experiments_get  the experiment
  search_datasets  experiments/search-datasets
  logged_models    logged-models/search, newest first
  runs_search      runs/search: active runs, newest first, a page of 100
  history          metrics/get-history-bulk-interval of one metric for the 10 runs the chart
                   view shows first

Loads alternate between the servers, so machine noise hits both alike. The table shows p50 and
p95 of a whole load, each request's p50 inside a load, and the ratio mlflow/ferroflow (how many
times faster ferroflow is). The issue's target: a load under 200 ms on 10,000 runs.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import API, log  # noqa: E402  (the tracking benchmark's modules)
from httpapi import call, new_session  # noqa: E402
from pgdb import PgDatabases, pg_available  # noqa: E402
from report import percentile, save_results  # noqa: E402
from seed import seed  # noqa: E402
from servers import Server, start_servers  # noqa: E402

TARGET_MS = 200
BROWSER_CONNECTIONS = 6
CHART_RUNS = 10

# The fields the UI's experiment query reads (ferroflow's /graphql serves MLflow's schema).
EXPERIMENT_QUERY = """query ExperimentHeader($input: MlflowGetExperimentInput!) {
  mlflowGetExperiment(input: $input) {
    apiError { code message }
    experiment { experimentId name artifactLocation lifecycleStage lastUpdateTime
                 tags { key value } }
  }
}"""


class SharedStore(Server):
    """`mlflow server` on another server's database (its own would need seeding again)."""

    def __init__(self, owner: Server, workdir: Path):
        # As "sqlite" so that no database of its own is created; then the owner's.
        super().__init__("mlflow", "sqlite", workdir, None)
        self.owner, self.backend, self.db = owner, owner.backend, owner.db

    def store_uri(self) -> str:
        return self.owner.store_uri()


def page_requests(server: Server) -> list[tuple[str, str, str, dict | None]]:
    """(name, method, url, body) of one page load."""
    exp = server.ctx["search_exp"]
    chart_runs = server.ctx["chart_runs"]
    ajax = server.base + API.replace("/api/", "/ajax-api/")
    history = "&".join([f"run_ids={run}" for run in chart_runs]
                       + ["metric_key=m0", "max_results=320"])
    return [
        ("graphql", "POST", server.base + "/graphql",
         {"operationName": "ExperimentHeader", "query": EXPERIMENT_QUERY,
          "variables": {"input": {"experimentId": exp}}}),
        ("experiments_get", "GET", f"{ajax}/experiments/get?experiment_id={exp}", None),
        ("search_datasets", "POST", f"{ajax}/experiments/search-datasets",
         {"experiment_ids": [exp]}),
        ("logged_models", "POST", f"{ajax}/logged-models/search",
         {"experiment_ids": [exp], "order_by": [{"field_name": "creation_time",
                                                 "ascending": False}]}),
        ("runs_search", "POST", f"{ajax}/runs/search",
         {"experiment_ids": [exp], "run_view_type": "ACTIVE_ONLY", "max_results": 100,
          "order_by": ["attributes.start_time DESC"]}),
        ("history", "GET", f"{ajax}/metrics/get-history-bulk-interval?{history}", None),
    ]


class PageLoader:
    """Sends one server's page loads over a browser's worth of keep-alive connections."""

    def __init__(self, server: Server):
        self.server = server
        self.requests = page_requests(server)
        self.sessions = [new_session(server.headers) for _ in range(BROWSER_CONNECTIONS)]
        self.pool = ThreadPoolExecutor(BROWSER_CONNECTIONS)

    def _one(self, index: int) -> float:
        name, method, url, body = self.requests[index]
        session = self.sessions[index % BROWSER_CONNECTIONS]
        start = time.perf_counter()
        resp = session.request(method, url, data=json.dumps(body) if body else None, timeout=60)
        elapsed = time.perf_counter() - start
        if resp.status_code != 200 or (name == "graphql" and resp.json().get("errors")):
            raise RuntimeError(f"{self.server.name} {name}: {resp.status_code} {resp.text[:300]}")
        if name == "runs_search" and len(resp.json().get("runs", [])) != 100:
            raise RuntimeError(f"{self.server.name} runs_search: not a page of 100 runs")
        return elapsed

    def load(self) -> tuple[float, dict[str, float]]:
        """One page load: its wall time, and each request's time (seconds)."""
        start = time.perf_counter()
        times = list(self.pool.map(self._one, range(len(self.requests))))
        wall = time.perf_counter() - start
        return wall, {req[0]: t for req, t in zip(self.requests, times)}

    def close(self) -> None:
        self.pool.shutdown()


def measure(servers: list[Server], loads: int, warmup: int) -> dict:
    loaders = [PageLoader(s) for s in servers]
    walls: dict[str, list[float]] = {s.name: [] for s in servers}
    parts: dict[str, dict[str, list[float]]] = {s.name: {} for s in servers}
    try:
        for i in range(warmup + loads):
            for loader in loaders:
                wall, each = loader.load()
                if i < warmup:
                    continue
                walls[loader.server.name].append(wall * 1000)
                for name, t in each.items():
                    parts[loader.server.name].setdefault(name, []).append(t * 1000)
    finally:
        for loader in loaders:
            loader.close()
    return {name: {"p50_ms": percentile(walls[name], 50), "p95_ms": percentile(walls[name], 95),
                   "requests_p50_ms": {k: percentile(v, 50) for k, v in parts[name].items()}}
            for name in walls}


def render(backend: str, runs: int, result: dict) -> str:
    names = list(result)
    with_ratio = names == ["ferroflow", "mlflow"]
    cells = [("page load p50", lambda r: r["p50_ms"]), ("page load p95", lambda r: r["p95_ms"])]
    cells += [(f"  {req} p50", lambda r, req=req: r["requests_p50_ms"][req])
              for req in result[names[0]]["requests_p50_ms"]]
    head = ["", *names] + (["mlflow/ferroflow"] if with_ratio else [])
    lines = [f"### {backend}: the experiment page on {runs:,} runs",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for label, value in cells:
        row = [label, *(f"{value(result[n]):.1f} ms" for n in names)]
        if with_ratio:
            row.append(f"{value(result['mlflow']) / value(result['ferroflow']):.1f}×")
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def bench_backend(backend: str, args, workdir: Path, pg: PgDatabases | None) -> dict:
    servers: list[Server] = []
    try:
        start_servers(backend, ["ferroflow"], workdir, pg, servers)
        ferroflow = servers[0]
        log(f"{backend}: seeding {args.runs:,} runs")
        seed(ferroflow, {"runs": args.runs, "history": 0}, ["search_default"])
        log(f"{backend}: seeded in {ferroflow.info['seed_s']} s")
        page = call(ferroflow, "POST", "/runs/search", {
            "experiment_ids": [ferroflow.ctx["search_exp"]], "max_results": CHART_RUNS,
            "order_by": ["attributes.start_time DESC"]})
        ferroflow.ctx["chart_runs"] = [r["info"]["run_id"] for r in page["runs"]]
        if "mlflow" in args.servers:
            mlflow = SharedStore(ferroflow, workdir)
            servers.append(mlflow)
            mlflow.launch()
            deadline = time.monotonic() + 300
            while not mlflow.ready():
                if time.monotonic() > deadline:
                    raise RuntimeError("mlflow server did not start")
                time.sleep(0.2)
            mlflow.ctx = ferroflow.ctx
            log(f"{backend}: mlflow server up on the same database")
        log(f"{backend}: {args.loads} page loads per server")
        return measure(servers, args.loads, args.warmup)
    finally:
        for s in servers:
            s.stop()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=10_000, help="runs in the experiment (10,000)")
    ap.add_argument("--loads", type=int, default=40, help="page loads measured per server (40)")
    ap.add_argument("--warmup", type=int, default=3, help="page loads not measured (3)")
    ap.add_argument("--backends", default="sqlite,postgres")
    ap.add_argument("--servers", default="ferroflow,mlflow",
                    help="ferroflow, optionally with mlflow on the same database")
    args = ap.parse_args()
    pg = PgDatabases() if "postgres" in args.backends and pg_available() else None
    results = {}
    try:
        with tempfile.TemporaryDirectory(prefix="ff-ui-page-bench-") as tmp:
            for backend in args.backends.split(","):
                if backend == "postgres" and pg is None:
                    continue
                results[backend] = bench_backend(backend, args, Path(tmp) / backend, pg)
                log(f"{backend}: page load p50 "
                    + ", ".join(f"{name} {r['p50_ms']:.1f} ms"
                                for name, r in results[backend].items()))
    finally:
        if pg:
            pg.drop_all()
    path = save_results("ui-page", results, runs=args.runs, loads=args.loads)
    print()
    for backend, result in results.items():
        print(render(backend, args.runs, result))
        p95 = result["ferroflow"]["p95_ms"]
        print(f"\nferroflow p95 {p95:.1f} ms (target < {TARGET_MS} ms): "
              f"{'met' if p95 < TARGET_MS else 'MISSED'}\n")
    print(f"results: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
