"""The stock mlflow client with MLFLOW_TRACKING_AUTH=ferroflow against a real ferroflow server
whose tokens live 5 s, for a job that outlives several of them. Runs only when FERROFLOW_BIN
names a built `ferroflow` (FERROFLOW_E2E_SECONDS sets the job's length, 25 by default)."""

import json
import os
import socket
import subprocess
import sys
import time

import pytest
import requests

BIN = os.environ.get("FERROFLOW_BIN")
pytestmark = pytest.mark.skipif(not BIN, reason="set FERROFLOW_BIN to a built ferroflow")

TOKEN_TTL_SECONDS = 5

# Runs in a fresh process, as a user's training script would.
JOB = r"""
import json, os, sys, time
import mlflow
import ferroflow_auth

exchanges = 0
exchange = ferroflow_auth._exchange
def counted(*args):
    global exchanges
    exchanges += 1
    return exchange(*args)
ferroflow_auth._exchange = counted

seconds = float(os.environ["E2E_SECONDS"])
mlflow.set_experiment("token-refresh")
with mlflow.start_run() as run:
    mlflow.log_param("lr", "0.1")
    step, start = 0, time.time()
    while time.time() - start < seconds:
        mlflow.log_metric("loss", 1.0 / (step + 1), step=step)
        step += 1
        time.sleep(0.5)
    note = os.path.join(sys.argv[1], "note.txt")
    with open(note, "w") as f:
        f.write("hello")
    mlflow.log_artifact(note)

client = mlflow.MlflowClient()
downloaded = client.download_artifacts(run.info.run_id, "note.txt", sys.argv[1] + "/out")
print(json.dumps({
    "steps": step,
    "history": len(client.get_metric_history(run.info.run_id, "loss")),
    "params": client.get_run(run.info.run_id).data.params,
    "artifact": open(downloaded).read(),
    "exchanges": exchanges,
}))
"""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ferroflow(*args, store):
    return subprocess.run([BIN, *args, "--backend-store-uri", store],
                          check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def server(tmp_path):
    store = f"sqlite:///{tmp_path}/db.sqlite"
    ferroflow("workspace", "create", "team-a", store=store)
    key = ferroflow("key", "create", "--principal", "trainer", "--workspace", "team-a",
                    "--role", "EDIT", store=store)
    port = free_port()
    process = subprocess.Popen(
        [BIN, "server", "--host", "127.0.0.1", "--port", str(port), "--backend-store-uri", store,
         "--artifacts-destination", str(tmp_path / "artifacts"), "--auth", "token",
         "--enable-workspaces", "--token-ttl", f"{TOKEN_TTL_SECONDS}s"],
        stdout=subprocess.DEVNULL, stderr=open(tmp_path / "server.log", "w"),
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            requests.get(f"{url}/api/3.0/mlflow/server-info", timeout=1)
            break
        except requests.ConnectionError:
            time.sleep(0.1)
    yield url, key
    process.terminate()
    process.wait(timeout=10)


def test_a_job_outlives_many_tokens(server, tmp_path):
    url, key = server
    seconds = float(os.environ.get("FERROFLOW_E2E_SECONDS", "25"))
    # The server does refuse requests without a token.
    assert requests.get(f"{url}/w/team-a/api/2.0/mlflow/experiments/search").status_code == 401

    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "FERROFLOW_"))}
    env.update(MLFLOW_TRACKING_URI=f"{url}/w/team-a", MLFLOW_TRACKING_AUTH="ferroflow",
               FERROFLOW_API_KEY=key, E2E_SECONDS=str(seconds))
    job = subprocess.run([sys.executable, "-c", JOB, str(tmp_path)], env=env,
                         capture_output=True, text=True, timeout=seconds + 120)
    assert job.returncode == 0, job.stderr[-3000:]
    assert key not in job.stdout + job.stderr
    result = json.loads(job.stdout.strip().splitlines()[-1])

    assert result["history"] == result["steps"] >= seconds * 2 * 0.8
    assert result["params"] == {"lr": "0.1"}
    assert result["artifact"] == "hello"
    # Refreshed at half of each 5 s token's life: at least one exchange per token lifetime.
    assert result["exchanges"] >= seconds / TOKEN_TTL_SECONDS
