"""The `ferroflow` command line: `db upgrade`, shutdown on signals, configuration errors.

These check ferroflow's own binary, so they do not run in reference mode.
"""

from __future__ import annotations

import signal
import sqlite3
import subprocess
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


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_server_stops_cleanly_on_signals(tmp_path, sig):
    port = _free_port()
    proc = subprocess.Popen(
        [_ferroflow_bin(), "server", "--port", str(port),
         "--backend-store-uri", f"sqlite:///{tmp_path / 'signals.db'}"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if requests.get(f"http://127.0.0.1:{port}/health", timeout=1).text == "OK":
                    break
            except requests.ConnectionError:
                time.sleep(0.1)
        else:
            pytest.fail("ferroflow did not become healthy")
        proc.send_signal(sig)
        output, _ = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, output
    assert "shutting down" in output
