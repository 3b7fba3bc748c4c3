"""Train -> log -> register -> promote -> load -> serve, with the real client (MLFLOW_API.md §5.6).

These are the workflows users follow from a training run to a serving job: registering a logged
model by `models:/m-...` and by `runs:/`, aliases and stages, loading `models:/name/1` and
`models:/name@alias` in a fresh process, and `mlflow models serve` answering a scoring request.
"""

import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest
import requests
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

import mlflow
from mlflow import MlflowClient

from conftest import _free_port, unique_name


@pytest.fixture(scope="module")
def iris():
    return load_iris(return_X_y=True, as_frame=True)


@pytest.fixture
def logged(fluent, iris):
    """A model trained and logged in a run: (model_info, run, predictions on iris)."""
    X, y = iris
    model = LogisticRegression(max_iter=500).fit(X, y)
    mlflow.set_experiment(unique_name("workflow"))
    with mlflow.start_run() as run:
        mlflow.log_metric("accuracy", model.score(X, y))
        info = mlflow.sklearn.log_model(model, name="model", input_example=X.head(2))
    return info, run, model.predict(X)


def _load_in_fresh_process(server, uri: str, X) -> list:
    """Loads `uri` in a new interpreter (no state shared with the test) and predicts X."""
    script = (
        "import io, json, sys, mlflow, pandas as pd\n"
        "X = pd.read_json(io.StringIO(sys.stdin.read()), orient='split')\n"
        f"print(json.dumps(mlflow.pyfunc.load_model({uri!r}).predict(X).tolist()))\n"
    )
    env = {**os.environ, "MLFLOW_TRACKING_URI": server.url}
    out = subprocess.run(
        [sys.executable, "-c", script],
        input=X.to_json(orient="split"),
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_register_from_logged_model_promote_and_load(server, logged, iris):
    X, _ = iris
    info, run, expected = logged
    name = unique_name("churn")
    client = MlflowClient()

    v1 = mlflow.register_model(info.model_uri, name)
    assert v1.version == "1"
    assert v1.status == "READY"
    assert v1.run_id == run.info.run_id
    assert v1.source == info.model_uri
    # Lineage: from the version back to its run and metrics in one lookup.
    assert client.get_run(v1.run_id).data.metrics["accuracy"] > 0.9

    v2 = mlflow.register_model(f"runs:/{run.info.run_id}/model", name)
    assert v2.version == "2"
    # A `runs:/` source is resolved to the run's logged model.
    assert v2.source == info.model_uri

    client.set_registered_model_alias(name, "champion", "1")
    assert client.get_model_version_by_alias(name, "champion").version == "1"
    client.transition_model_version_stage(name, "2", "Staging")
    assert client.get_model_version(name, "2").current_stage == "Staging"
    artifact_root = mlflow.get_logged_model(info.model_id).artifact_location
    assert client.get_model_version_download_uri(name, "1") == artifact_root

    np.testing.assert_array_equal(_load_in_fresh_process(server, f"models:/{name}/1", X), expected)
    np.testing.assert_array_equal(
        _load_in_fresh_process(server, f"models:/{name}@champion", X), expected
    )
    np.testing.assert_array_equal(
        mlflow.pyfunc.load_model(f"models:/{name}/Staging").predict(X), expected
    )

    # The logged model knows the versions registered from it.
    tags = mlflow.get_logged_model(info.model_id).tags
    registered = json.loads(tags["mlflow.modelVersions"])
    assert {(r["name"], str(r["version"])) for r in registered} >= {(name, "1")}


def test_models_serve_answers_a_scoring_request(server, logged, iris):
    X, _ = iris
    info, _, expected = logged
    name = unique_name("served")
    version = mlflow.register_model(info.model_uri, name)
    MlflowClient().set_registered_model_alias(name, "champion", version.version)

    port = _free_port()
    # The scoring server runs `uvicorn` from the same environment as the client.
    bin_dir = os.path.dirname(sys.executable)
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": server.url,
        "PATH": bin_dir + os.pathsep + os.environ.get("PATH", ""),
    }
    mlflow_cli = os.path.join(bin_dir, "mlflow")
    proc = subprocess.Popen(
        [mlflow_cli, "models", "serve", "-m", f"models:/{name}@champion",
         "--env-manager", "local", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                if requests.get(f"http://127.0.0.1:{port}/ping", timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"scoring server did not start: {proc.stderr.read()[-3000:]}")
            time.sleep(0.5)
        payload = {"dataframe_split": json.loads(X.head(10).to_json(orient="split"))}
        response = requests.post(f"http://127.0.0.1:{port}/invocations", json=payload, timeout=60)
        assert response.status_code == 200, response.text
        assert response.json()["predictions"] == expected[:10].tolist()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, 15)
        proc.wait(timeout=30)


def test_ui_downloads_a_registered_versions_files(server, logged):
    info, _, _ = logged
    name = unique_name("ui")
    version = mlflow.register_model(info.model_uri, name)
    url = f"{server.url}/model-versions/get-artifact"
    got = requests.get(url, params={"name": name, "version": version.version, "path": "MLmodel"},
                       timeout=30)
    assert got.status_code == 200
    assert "sklearn" in got.text
    escape = requests.get(url, params={"name": name, "version": version.version,
                                       "path": "../../../../etc/passwd"}, timeout=30)
    assert escape.status_code in (400, 403)
    unknown = requests.get(url, params={"name": name, "version": "99", "path": "MLmodel"},
                           timeout=30)
    assert unknown.status_code == 404
