"""The `ferroflow` command line: `db upgrade`, shutdown on signals (draining uploads), `gc`,
configuration errors.

These check ferroflow's own binary, so they do not run in reference mode.
"""

from __future__ import annotations

import http.client
import json
import signal
import sqlite3
import subprocess
import threading
import time

import pytest
import requests

from conftest import REFERENCE_MODE, _ferroflow_bin, _free_port

pytestmark = pytest.mark.skipif(REFERENCE_MODE, reason="exercises ferroflow's own CLI")

# The Alembic revision of the pinned MLflow release (migrations/README.md).
MLFLOW_ALEMBIC_HEAD = "dc11669786a5"


def run_cli(*args: str, env: dict | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [_ferroflow_bin(), *args], capture_output=True, text=True, timeout=timeout, env=env
    )


def test_db_upgrade_creates_mlflows_schema_and_is_repeatable(tmp_path):
    db = tmp_path / "upgraded.db"
    for _ in range(2):
        result = run_cli("db", "upgrade", "--backend-store-uri", f"sqlite:///{db}")
        assert result.returncode == 0, result.stderr
    with sqlite3.connect(db) as conn:
        (revision,) = conn.execute("SELECT version_num FROM alembic_version").fetchone()
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert revision == MLFLOW_ALEMBIC_HEAD
    assert {"experiments", "runs", "metrics", "latest_metrics", "params", "tags"} <= tables


def test_unsupported_backend_and_bad_config_fail_cleanly(tmp_path):
    result = run_cli("db", "upgrade", "--backend-store-uri", "mysql://nowhere/db")
    assert result.returncode != 0
    assert "unsupported backend store URI" in result.stderr

    config = tmp_path / "bad.toml"
    config.write_text("prot = 5000\n")
    result = run_cli("server", "--config", str(config))
    assert result.returncode != 0
    assert "prot" in result.stderr


def _serve(tmp_path, *extra: str) -> tuple[subprocess.Popen, int]:
    """A ferroflow on SQLite in `tmp_path`, answering /health."""
    port = _free_port()
    proc = subprocess.Popen(
        [_ferroflow_bin(), "server", "--port", str(port),
         "--backend-store-uri", f"sqlite:///{tmp_path / 'signals.db'}", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if requests.get(f"http://127.0.0.1:{port}/health", timeout=1).text == "OK":
                return proc, port
        except requests.ConnectionError:
            time.sleep(0.1)
    proc.kill()
    pytest.fail("ferroflow did not become healthy")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_server_stops_cleanly_on_signals(tmp_path, sig):
    proc, _ = _serve(tmp_path)
    try:
        proc.send_signal(sig)
        output, _ = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, output
    assert "shutting down" in output


@pytest.mark.parametrize("drain", ["10s", "1s"], ids=["drained", "cut-off"])
def test_sigterm_lets_an_upload_finish_or_leaves_nothing_of_it(tmp_path, drain):
    """An upload in flight at SIGTERM finishes within the drain timeout; one that outlasts it
    is dropped, and nothing (no partial or staging file) is left under the destination."""
    artifacts = tmp_path / "artifacts"
    proc, port = _serve(tmp_path, "--artifacts-destination", str(artifacts),
                        "--drain-timeout", drain)
    chunk = b"x" * 65536
    sending = threading.Event()

    def body():
        yield chunk
        sending.set()
        for _ in range(25):  # 2.5 s of trickle: longer than 1 s, shorter than 10 s
            time.sleep(0.1)
            yield chunk

    outcome: dict = {}

    def upload():
        # One keep-alive connection that has already been served a request, so SIGTERM
        # cannot catch the upload still in the listen queue (a connection the server
        # never accepted is closed unanswered, as on any server).
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        try:
            conn.request("GET", "/health")
            conn.getresponse().read()
            conn.request("PUT", "/api/2.0/mlflow-artifacts/artifacts/0/r/artifacts/a.bin",
                         body=body(), encode_chunked=True)
            outcome["status"] = conn.getresponse().status
        except (OSError, http.client.HTTPException) as err:
            outcome["error"] = err
        finally:
            conn.close()

    uploader = threading.Thread(target=upload)
    try:
        uploader.start()
        assert sending.wait(10)
        time.sleep(0.3)  # the request head is read as soon as it arrives
        proc.send_signal(signal.SIGTERM)
        uploader.join(30)
        output, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, output
    stored = artifacts / "0" / "r" / "artifacts" / "a.bin"
    if drain == "10s":
        assert outcome.get("status") == 200, (outcome, output)
        assert stored.stat().st_size == 26 * len(chunk)
    else:
        assert "status" not in outcome, outcome
        assert [p for p in artifacts.rglob("*") if p.is_file()] == []


def test_gc_removes_deleted_runs_with_huge_histories_and_resumes_after_a_kill(tmp_path):
    """`mlflow gc`'s known failure modes: artifacts left behind, and a run with a huge metric
    history (here 120,000 rows) timing out in one statement. A gc killed part-way leaves
    state the next one finishes: no run without its rows, no artifacts without a run."""
    from mlflow import MlflowClient

    artifacts = tmp_path / "artifacts"
    db = tmp_path / "signals.db"
    proc, port = _serve(tmp_path, "--artifacts-destination", str(artifacts))
    try:
        client = MlflowClient(f"http://127.0.0.1:{port}")
        exp = client.create_experiment("gc")
        kept = client.create_run(exp).info.run_id
        client.log_text(kept, "kept\n", "k.txt")
        doomed = []
        for i in range(300):
            run_id = client.create_run(exp).info.run_id
            client.log_text(run_id, "x" * 100, "a.txt")
            doomed.append(run_id)
        with sqlite3.connect(db) as conn:
            conn.executemany(
                "INSERT INTO metrics (key, value, timestamp, run_uuid, step, is_nan) "
                "VALUES ('loss', ?, 1, ?, ?, 0)",
                ((float(step), doomed[0], step) for step in range(120_000)),
            )
        for run_id in doomed:
            client.delete_run(run_id)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)

    gc = ["gc", "--older-than", "0s", "--batch-size", "20",
          "--backend-store-uri", f"sqlite:///{db}", "--artifacts-destination", str(artifacts)]
    dry = run_cli(*gc, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert json.loads(dry.stdout)["runs"] == 300
    interrupted = subprocess.Popen([_ferroflow_bin(), *gc], stdout=subprocess.PIPE, text=True)
    time.sleep(0.3)
    interrupted.kill()
    interrupted.wait()
    finished = run_cli(*gc)
    assert finished.returncode == 0, finished.stderr
    report = json.loads(finished.stdout)
    assert report["failed"] == []
    with sqlite3.connect(db) as conn:
        left = {row[0] for row in conn.execute("SELECT run_uuid FROM runs")}
        metrics = conn.execute("SELECT COUNT(*) FROM metrics").fetchone()[0]
    assert left == {kept}
    assert metrics == 0
    run_dirs = {p.name for p in (artifacts / exp).iterdir()}
    assert run_dirs == {kept}, "the deleted runs' artifacts are gone, the kept one's stay"
    again = json.loads(run_cli(*gc).stdout)
    assert (again["runs"], again["rows"]) == (0, 0)
