"""The benchmark's constants and paths (scale, servers, backends, the batch shape) and its log
line; every other module of benches/ reads them from here. No I/O beyond printing."""

from __future__ import annotations

import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCHES = ROOT / "benches"
VENV_BIN = BENCHES / ".venv" / "bin"
RESULTS = BENCHES / "results"
MIGRATIONS = ROOT / "migrations"
FERROFLOW_BIN = ROOT / "target" / "release" / "ferroflow"

PG_HOST, PG_PORT, PG_USER = "127.0.0.1", 5432, "postgres"
API = "/api/2.0/mlflow"
SERVERS = ("ferroflow", "mlflow", "fasttrackml")
# The second ferroflow of an A/B run (--baseline-bin): a build or flags to compare against.
BASELINE = "ferroflow-base"
BACKENDS = ("sqlite", "postgres")
JSON_HEADERS = {"Content-Type": "application/json"}
HTTP_TIMEOUT = 600  # seconds; a guard, not a measurement bound

# The scale, and --quick: small enough for a few minutes on 2 cores.
SCALES = {
    "full": dict(runs=10_000, history=100_000, experiments=1_000, versions=100,
                 rounds=3, py_seconds=2.0, wrk_seconds=2, quick=False),
    "quick": dict(runs=500, history=20_000, experiments=200, versions=20,
                  rounds=1, py_seconds=0.4, wrk_seconds=1, quick=True),
}

BATCH_KEYS, BATCH_STEPS = 10, 100     # a log-batch: 10 metric keys x 100 steps = 1,000 metrics


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def now_ms() -> int:
    return int(time.time() * 1000)
