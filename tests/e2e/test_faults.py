"""A real database outage: a PostgreSQL cluster of the test's own is killed and started again
under a running ferroflow while the stock client writes to it.

The server answers 503 `TEMPORARILY_UNAVAILABLE` with `Retry-After` while the database is gone,
the stock client retries through it, the server reconnects by itself, and every write the
client saw acknowledged is there afterwards, once.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest
import requests

from conftest import REFERENCE_MODE, _ferroflow_bin, _free_port

pytestmark = pytest.mark.skipif(REFERENCE_MODE, reason="stops a database under ferroflow's own process")


def _postgres_bindir() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if found:
        return found[-1].parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


class Cluster:
    """A throwaway PostgreSQL cluster on a free loopback port (PostgreSQL refuses to run as
    root, so as root it runs as the `postgres` user)."""

    def __init__(self, bindir: Path):
        self.bindir = bindir
        self.home = Path(tempfile.mkdtemp(prefix="ferroflow-pg-"))
        self.data = self.home / "data"
        self.port = _free_port()
        self.as_owner: list[str] = []
        if os.geteuid() == 0:
            shutil.chown(self.home, "postgres", "postgres")
            self.as_owner = ["runuser", "-u", "postgres", "--"]
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")

    @property
    def uri(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, tool: str, *args: str) -> None:
        subprocess.run([*self.as_owner, str(self.bindir / tool), *args],
                       check=True, capture_output=True, timeout=120)

    def start(self) -> None:
        options = f"-p {self.port} -k {self.home} -c listen_addresses=127.0.0.1"
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.home / "log"),
                  "-w", "start")

    def kill(self) -> None:
        """Stops at once, as a crash does: connections dropped, no checkpoint."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")

    def remove(self) -> None:
        subprocess.run([*self.as_owner, str(self.bindir / "pg_ctl"), "-D", str(self.data),
                        "-m", "immediate", "stop"], capture_output=True, timeout=60)
        shutil.rmtree(self.home, ignore_errors=True)


@pytest.fixture
def cluster():
    bindir = _postgres_bindir()
    if bindir is None:
        pytest.skip("PostgreSQL's server binaries (initdb, pg_ctl) are not installed")
    cluster = Cluster(bindir)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.remove()


def _wait_until(check, seconds: float) -> float:
    """Polls `check` until it is true; returns how long that took."""
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        try:
            if check():
                return time.monotonic() - started
        except requests.RequestException:
            pass
        time.sleep(0.1)
    pytest.fail(f"not within {seconds} s")


def test_a_database_killed_and_restarted_loses_nothing_acknowledged(cluster, tmp_path, monkeypatch):
    from mlflow import MlflowClient

    # Retries quick enough to ride out a few seconds of outage within the test's time.
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "10")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_BACKOFF_JITTER", "0")
    port = _free_port()
    server = subprocess.Popen(
        [_ferroflow_bin(), "server", "--port", str(port), "--backend-store-uri", cluster.uri,
         "--artifacts-destination", str(tmp_path / "artifacts")],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_until(lambda: requests.get(f"{base}/ready", timeout=2).status_code == 200, 60)
        client = MlflowClient(base)
        run_id = client.create_run(client.create_experiment("outage")).info.run_id

        acknowledged: list[int] = []
        failures: list[Exception] = []
        stop = threading.Event()

        def write():
            step = 0
            while not stop.is_set():
                try:
                    client.log_metric(run_id, "loss", step / 10, step=step)
                    acknowledged.append(step)
                except Exception as err:  # the client gave up: the test reports it
                    failures.append(err)
                step += 1

        writer = threading.Thread(target=write)
        writer.start()
        try:
            _wait_until(lambda: len(acknowledged) >= 20, 30)
            cluster.kill()

            started = time.monotonic()
            refused = requests.post(f"{base}/api/2.0/mlflow/runs/log-metric", json={
                "run_id": run_id, "key": "direct", "value": 1, "timestamp": 1, "step": 0,
            }, timeout=30)
            assert time.monotonic() - started < 15
            assert refused.status_code == 503, refused.text
            assert refused.json()["error_code"] == "TEMPORARILY_UNAVAILABLE"
            assert "retry-after" in refused.headers
            assert requests.get(f"{base}/ready", timeout=15).status_code == 503
            assert requests.get(f"{base}/health", timeout=5).status_code == 200
            before_restart = len(acknowledged)

            time.sleep(2)
            cluster.start()
            recovered = _wait_until(
                lambda: requests.get(f"{base}/ready", timeout=2).status_code == 200, 30)
            _wait_until(lambda: len(acknowledged) >= before_restart + 20, 60)
        finally:
            stop.set()
            writer.join(120)
        assert server.poll() is None, "the server kept running"
        assert failures == [], failures

        history = client.get_metric_history(run_id, "loss")
        steps = sorted(point.step for point in history)
        assert steps == sorted(set(steps)), "a retried write was stored twice"
        assert set(acknowledged) <= set(steps), "an acknowledged write was lost"
        assert recovered < 30
    finally:
        server.terminate()
        output, _ = server.communicate(timeout=30)
        assert "panicked" not in output, output
