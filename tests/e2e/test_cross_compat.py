"""ferroflow and `mlflow server` on one database: what one writes, the other reads back equal.

Users migrate both ways (an existing MLflow database under ferroflow, and back out), so the
schema and the meaning of every row must be MLflow's. Each test writes through one server,
stops it, starts the other on the same database and artifact directory, compares everything
through the client, then checks that the second server can keep writing.

The "mlflow" side is always the real `mlflow server`. In reference mode there is nothing to
compare, so the module is skipped, unless FERROFLOW_E2E_CROSS_SELFTEST=1, which runs the
reference on both sides to check this test itself.
"""

import math
import os

import mlflow
import pandas as pd
import pytest
import requests
from mlflow.entities import DatasetInput, InputTag, Metric, Param, RunTag, ViewType

from conftest import (
    BACKENDS,
    REFERENCE_MODE,
    Database,
    LocalDestination,
    running_server,
    unique_name,
)

SELFTEST = os.environ.get("FERROFLOW_E2E_CROSS_SELFTEST") == "1"

pytestmark = pytest.mark.skipif(
    REFERENCE_MODE and not SELFTEST,
    reason="needs ferroflow on one side (set FERROFLOW_E2E_CROSS_SELFTEST=1 to run mlflow on both)",
)


def _kind(side: str) -> str:
    return "mlflow" if side == "mlflow" or SELFTEST else "ferroflow"


def write_history(client) -> dict:
    """A bit of everything a tracking database holds; returns what the readers look up."""
    experiment_name = unique_name("cross")
    exp_id = client.create_experiment(experiment_name, tags={"team": "ml", "empty": ""})
    client.set_experiment_tag(exp_id, "stage", "dev")

    parent = client.create_run(exp_id, start_time=1_000, run_name="parent", tags={"kind": "parent"})
    parent_id = parent.info.run_id
    client.log_batch(
        parent_id,
        metrics=[Metric("loss", 1.0 / (s + 1), 10_000 + s, s) for s in range(300)]
        + [Metric("acc", 0.5, 20_000, 0), Metric("acc", 0.75, 20_001, 1)]
        + [Metric("nan", float("nan"), 20_000, 0), Metric("inf", float("inf"), 20_000, 0)],
        params=[Param("lr", "0.01"), Param("layers", "3"), Param("long", "p" * 500)],
        tags=[RunTag("note", "hello"), RunTag("empty", "")],
    )
    client.log_metric(parent_id, "neg_step", -1.0, timestamp=30_000, step=-5)
    frame = pd.DataFrame({"x": [1.0, 2.0], "y": ["a", "b"]})
    dataset = mlflow.data.from_pandas(frame, source="s3://bucket/data.csv", name="cross-ds")
    client.log_inputs(
        parent_id,
        datasets=[
            DatasetInput(dataset._to_mlflow_entity(), [InputTag("mlflow.data.context", "train")])
        ],
    )
    client.set_terminated(parent_id, status="FINISHED", end_time=50_000)

    child_id = client.create_run(
        exp_id, start_time=2_000, run_name="child", tags={"mlflow.parentRunId": parent_id}
    ).info.run_id
    client.log_metric(child_id, "loss", 0.1, timestamp=40_000, step=0)

    failed_id = client.create_run(exp_id, start_time=3_000, run_name="failed").info.run_id
    client.set_terminated(failed_id, status="FAILED", end_time=3_500)

    deleted_id = client.create_run(exp_id, start_time=4_000, run_name="deleted").info.run_id
    client.log_param(deleted_id, "p", "gone")
    client.delete_run(deleted_id)

    default_run_id = client.create_run("0", start_time=5_000, run_name="in-default").info.run_id

    gone_exp_id = client.create_experiment(unique_name("cross-deleted"))
    client.create_run(gone_exp_id, start_time=6_000, run_name="in-deleted-exp")
    client.delete_experiment(gone_exp_id)

    return {
        "experiment_ids": ["0", exp_id, gone_exp_id],
        "experiment_id": exp_id,
        "parent_id": parent_id,
        "default_run_id": default_run_id,
    }


def _plain(value):
    """Floats made comparable (NaN != NaN), entities turned into plain data."""
    if isinstance(value, float) and math.isnan(value):
        return "NaN"
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def snapshot(client, written) -> dict:
    """Everything the client can read about the written data, as plain comparable values."""
    experiments = {}
    for exp_id in written["experiment_ids"]:
        e = client.get_experiment(exp_id)
        experiments[exp_id] = (
            e.name,
            e.lifecycle_stage,
            e.artifact_location,
            e.tags,
            e.creation_time,
            e.last_update_time,
        )
    runs = {}
    for run in client.search_runs(
        written["experiment_ids"], run_view_type=ViewType.ALL, max_results=1000
    ):
        info, data = run.info, run.data
        if info.experiment_id == "0" and info.run_id != written["default_run_id"]:
            continue  # other tests may share experiment 0; only our run matters
        got = client.get_run(info.run_id)
        assert got.info == info
        histories = {
            key: [
                (m.step, m.timestamp, m.value) for m in client.get_metric_history(info.run_id, key)
            ]
            for key in data.metrics
        }
        inputs = [
            (
                d.dataset.name,
                d.dataset.digest,
                d.dataset.source_type,
                d.dataset.source,
                d.dataset.schema,
                d.dataset.profile,
                [(t.key, t.value) for t in d.tags],
            )
            for d in got.inputs.dataset_inputs
        ]
        runs[info.run_id] = _plain(
            {
                "info": (
                    info.experiment_id,
                    info.run_name,
                    info.user_id,
                    info.status,
                    info.start_time,
                    info.end_time,
                    info.artifact_uri,
                    info.lifecycle_stage,
                ),
                "metrics": data.metrics,
                "params": data.params,
                "tags": data.tags,
                "histories": histories,
                "inputs": inputs,
            }
        )
    order = [
        r.info.run_id
        for r in client.search_runs([written["experiment_id"]], run_view_type=ViewType.ALL)
    ]
    found = client.search_runs(
        [written["experiment_id"]],
        "params.lr = '0.01' AND metrics.acc > 0.7 AND tags.note = 'hello'",
    )
    return {
        "experiments": experiments,
        "runs": runs,
        "default_order": order,
        "filtered": [r.info.run_id for r in found],
    }


def keep_writing(client, written) -> None:
    """The second server extends the first one's data: ids keep counting, histories grow."""
    parent_id = written["parent_id"]
    new_exp_id = client.create_experiment(unique_name("cross-after"))
    assert new_exp_id not in written["experiment_ids"]
    new_run_id = client.create_run(written["experiment_id"], run_name="after").info.run_id
    client.log_metric(new_run_id, "loss", 0.5, timestamp=60_000, step=0)
    client.set_tag(parent_id, "note", "updated")
    client.log_metric(parent_id, "loss", 0.001, timestamp=70_000, step=300)
    client.log_param(parent_id, "lr", "0.01")  # same value again: fine
    assert client.get_run(parent_id).data.tags["note"] == "updated"
    assert len(client.get_metric_history(parent_id, "loss")) == 301
    assert client.get_run(parent_id).data.metrics["loss"] == 0.001
    active = client.search_runs([written["experiment_id"]])
    assert {"after", "parent", "child", "failed"} == {r.info.run_name for r in active}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    "writer, reader",
    [("ferroflow", "mlflow"), ("mlflow", "ferroflow")],
    ids=["ferroflow-writes-mlflow-reads", "mlflow-writes-ferroflow-reads"],
)
def test_one_database_reads_back_equal_through_the_other_server(backend, writer, reader, tmp_path):
    database = Database(backend, tmp_path)
    try:
        with running_server(_kind(writer), database, tmp_path, label=f"writer-{writer}") as first:
            written = write_history(first.client)
            expected = snapshot(first.client, written)
        with running_server(_kind(reader), database, tmp_path, label=f"reader-{reader}") as second:
            actual = snapshot(second.client, written)
            assert actual["experiments"] == expected["experiments"]
            assert actual["runs"].keys() == expected["runs"].keys()
            for run_id, want in expected["runs"].items():
                assert actual["runs"][run_id] == want, f"run {run_id} differs"
            assert actual == expected
            keep_writing(second.client, written)
    finally:
        database.drop()


def write_models(url: str) -> dict:
    """A logged sklearn model, registered twice, with an alias, a stage and tags."""
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    mlflow.set_tracking_uri(url)
    client = mlflow.MlflowClient(url)
    X, y = load_iris(return_X_y=True, as_frame=True)
    model = LogisticRegression(max_iter=500).fit(X, y)
    exp_id = client.create_experiment(unique_name("cross-models"))
    with mlflow.start_run(experiment_id=exp_id) as run:
        info = mlflow.sklearn.log_model(model, name="model")
    name = unique_name("cross-reg")
    client.create_registered_model(name, tags={"owner": "ml"}, description="churn")
    mlflow.register_model(info.model_uri, name)
    mlflow.register_model(f"runs:/{run.info.run_id}/model", name)
    client.set_registered_model_alias(name, "champion", "1")
    client.set_model_version_tag(name, "1", "validated", "yes")
    client.transition_model_version_stage(name, "2", "Staging")
    return {"name": name, "model_id": info.model_id, "experiment_id": exp_id, "X": X,
            "predictions": model.predict(X).tolist()}


def snapshot_models(url: str, written) -> dict:
    client = mlflow.MlflowClient(url)
    name = written["name"]
    rm = client.get_registered_model(name)
    # Read each version by itself: MLflow's search leaves out aliases, ferroflow's has them.
    found = client.search_model_versions(f"name = '{name}'")
    versions = {}
    for v in (client.get_model_version(name, f.version) for f in found):
        versions[v.version] = (
            v.source, v.run_id, v.status, v.current_stage, v.tags, v.aliases,
            v.creation_timestamp, client.get_model_version_download_uri(name, v.version),
        )
    lm = client.get_logged_model(written["model_id"])
    return {
        "registered": (rm.name, rm.description, rm.tags, rm.aliases, rm.creation_timestamp),
        "versions": versions,
        "logged": (lm.name, lm.status, lm.params, lm.tags, lm.artifact_location,
                   lm.source_run_id, lm.creation_timestamp),
        "searched": [m.model_id for m in client.search_logged_models([written["experiment_id"]])],
    }


@pytest.mark.parametrize(
    "writer, reader",
    [("ferroflow", "mlflow"), ("mlflow", "ferroflow")],
    ids=["ferroflow-writes-mlflow-reads", "mlflow-writes-ferroflow-reads"],
)
def test_models_registered_through_one_server_load_through_the_other(writer, reader, tmp_path):
    database = Database("sqlite", tmp_path)
    with running_server(_kind(writer), database, tmp_path, label=f"writer-{writer}") as first:
        written = write_models(first.url)
        expected = snapshot_models(first.url, written)
    with running_server(_kind(reader), database, tmp_path, label=f"reader-{reader}") as second:
        assert snapshot_models(second.url, written) == expected
        mlflow.set_tracking_uri(second.url)
        loaded = mlflow.pyfunc.load_model(f"models:/{written['name']}@champion")
        assert loaded.predict(written["X"]).tolist() == written["predictions"]
        # Numbering continues where the other server stopped.
        again = mlflow.register_model(f"models:/{written['model_id']}", written["name"])
        assert again.version == "3"


# --------------------------------------------------------------------------------------------
# Workspaces: the same catalog and the same isolation through either server
# --------------------------------------------------------------------------------------------

WORKSPACE_HEADER = "X-MLFLOW-WORKSPACE"


def _in_workspace(url: str, workspace: str, method: str, path: str, **kwargs) -> requests.Response:
    headers = {WORKSPACE_HEADER: workspace}
    return requests.request(method, f"{url}{path}", headers=headers, timeout=30, **kwargs)


def write_workspaces(url: str) -> dict:
    """Two workspaces, each with an experiment, a run and a registered model of the same names."""
    written = {}
    for team in ("team-a", "team-b"):
        created = requests.post(
            f"{url}/api/3.0/mlflow/workspaces",
            json={"name": team, "description": f"{team} models"},
            timeout=30,
        )
        assert created.status_code == 201, created.text
        call = lambda method, path, **kw: _in_workspace(url, team, method, path, **kw)  # noqa: E731
        exp = call("POST", "/api/2.0/mlflow/experiments/create", json={"name": "churn"})
        assert exp.status_code == 200, exp.text
        exp_id = exp.json()["experiment_id"]
        run = call("POST", "/api/2.0/mlflow/runs/create", json={"experiment_id": exp_id})
        run_id = run.json()["run"]["info"]["run_id"]
        logged = call(
            "POST",
            "/api/2.0/mlflow/runs/log-metric",
            json={"run_id": run_id, "key": "auc", "value": 0.5 + len(team) / 100, "timestamp": 1, "step": 0},
        )
        assert logged.status_code == 200, logged.text
        model = call("POST", "/api/2.0/mlflow/registered-models/create", json={"name": "churn"})
        assert model.status_code == 200, model.text
        written[team] = {"experiment_id": exp_id, "run_id": run_id}
    return written


def read_workspaces(url: str, written: dict) -> dict:
    listed = requests.get(f"{url}/api/3.0/mlflow/workspaces", timeout=30).json()["workspaces"]
    seen = {"workspaces": sorted((w["name"], w.get("description")) for w in listed)}
    for team, ids in written.items():
        call = lambda method, path, **kw: _in_workspace(url, team, method, path, **kw)  # noqa: E731
        exp = call("GET", "/api/2.0/mlflow/experiments/get-by-name?experiment_name=churn").json()
        run = call("GET", f"/api/2.0/mlflow/runs/get?run_id={ids['run_id']}").json()["run"]
        model = call("GET", "/api/2.0/mlflow/registered-models/get?name=churn")
        seen[team] = {
            "experiment_id": exp["experiment"]["experiment_id"],
            "artifact_location": exp["experiment"]["artifact_location"],
            "metrics": run["data"]["metrics"],
            "model": model.json()["registered_model"]["name"],
        }
        # The other team's ids answer as if they did not exist.
        other = "team-b" if team == "team-a" else "team-a"
        foreign = written[other]
        for path in (
            f"/api/2.0/mlflow/experiments/get?experiment_id={foreign['experiment_id']}",
            f"/api/2.0/mlflow/runs/get?run_id={foreign['run_id']}",
        ):
            answer = call("GET", path)
            assert answer.status_code == 404, f"{team} {path}: {answer.status_code} {answer.text}"
            assert answer.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    return seen


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    "writer, reader",
    [("ferroflow", "mlflow"), ("mlflow", "ferroflow")],
    ids=["ferroflow-writes-mlflow-reads", "mlflow-writes-ferroflow-reads"],
)
def test_workspaces_read_back_equal_and_isolated_through_the_other_server(
    backend, writer, reader, tmp_path
):
    database = Database(backend, tmp_path)
    # Both servers turn workspaces on from MLFLOW_ENABLE_WORKSPACES.
    destination = LocalDestination(tmp_path / "artifacts")
    destination.server_env = {"MLFLOW_ENABLE_WORKSPACES": "true"}
    try:
        with running_server(
            _kind(writer), database, tmp_path, f"ws-writer-{writer}", destination
        ) as first:
            written = write_workspaces(first.url)
            expected = read_workspaces(first.url, written)
        with running_server(
            _kind(reader), database, tmp_path, f"ws-reader-{reader}", destination
        ) as second:
            assert read_workspaces(second.url, written) == expected
            # The reader keeps writing into the writer's workspaces.
            more = _in_workspace(
                second.url,
                "team-a",
                "POST",
                "/api/2.0/mlflow/runs/create",
                json={"experiment_id": written["team-a"]["experiment_id"]},
            )
            assert more.status_code == 200, more.text
    finally:
        database.drop()


def write_traces(url: str) -> dict:
    """Traces as the client writes them: nested spans with attributes and a failed child, tags
    and metadata, a trace made in a run, feedback and an expectation. Against `mlflow server` the
    spans go over OTLP into the database; against ferroflow (until it takes OTLP) they are
    uploaded as `traces.json` artifacts. Either way the other server must read them back."""
    mlflow.set_tracking_uri(url)
    mlflow.tracing.reset()  # the exporter is built for the tracking URI of its first span
    experiment_id = mlflow.set_experiment(unique_name("cross-traces")).experiment_id

    @mlflow.trace(span_type="TOOL")
    def lookup(city):
        raise LookupError(f"no weather for {city}")

    @mlflow.trace(name="agent", span_type="AGENT", attributes={"version": 2})
    def agent(question):
        with mlflow.start_span("plan", span_type="LLM") as span:
            span.set_inputs({"messages": [{"role": "user", "content": question}]})
            span.set_attributes({"s": "x", "i": 7, "f": 0.25, "b": True, "l": [1, "two"]})
            span.set_outputs({"choice": "lookup"})
        mlflow.update_current_trace(tags={"team": "search"}, metadata={"tenant": "acme"})
        try:
            return lookup("Oslo")
        except LookupError as e:
            return f"sorry: {e}"

    agent("weather?")
    first = mlflow.get_last_active_trace_id()
    with mlflow.start_run() as run:
        agent("again?")
    second = mlflow.get_last_active_trace_id()
    mlflow.log_feedback(trace_id=first, name="helpful", value=True, rationale="clear")
    mlflow.log_expectation(trace_id=first, name="expected", value={"answer": "sunny"})
    mlflow.tracing.reset()
    return {"experiment_id": experiment_id, "traces": [first, second], "run_id": run.info.run_id}


def read_traces(url: str, written: dict) -> dict:
    """Everything the client reads of the written traces, as plain data."""
    mlflow.set_tracking_uri(url)
    client = mlflow.MlflowClient(url)
    experiment_id = written["experiment_id"]
    found = client.search_traces(locations=[experiment_id], include_spans=False)
    in_run = mlflow.search_traces(
        locations=[experiment_id], run_id=written["run_id"], return_type="list"
    )
    traces = {}
    for trace_id in written["traces"]:
        trace = client.get_trace(trace_id)
        info = trace.info
        traces[trace_id] = {
            "state": info.state,
            "request_time": info.request_time,
            "execution_duration": info.execution_duration,
            "previews": (info.request_preview, info.response_preview),
            "tags": info.tags,
            "metadata": info.trace_metadata,
            "assessments": sorted(
                (a.name, repr(a.value), a.valid, a.rationale) for a in info.assessments
            ),
            "spans": [span.to_dict() for span in trace.data.spans],
        }
    return {
        "found": [t.info.trace_id for t in found],
        "in_run": [t.info.trace_id for t in in_run],
        "traces": traces,
    }


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    "writer, reader",
    [("ferroflow", "mlflow"), ("mlflow", "ferroflow")],
    ids=["ferroflow-writes-mlflow-reads", "mlflow-writes-ferroflow-reads"],
)
def test_traces_read_back_equal_through_the_other_server(
    backend, writer, reader, tmp_path, monkeypatch
):
    monkeypatch.setenv("MLFLOW_ENABLE_ASYNC_TRACE_LOGGING", "false")
    database = Database(backend, tmp_path)
    try:
        with running_server(_kind(writer), database, tmp_path, f"tr-writer-{writer}") as first:
            written = write_traces(first.url)
            expected = read_traces(first.url, written)
        with running_server(_kind(reader), database, tmp_path, f"tr-reader-{reader}") as second:
            actual = read_traces(second.url, written)
            for trace_id, want in expected["traces"].items():
                got = actual["traces"][trace_id]
                for field, value in want.items():
                    assert got[field] == value, f"{trace_id} {field}"
            assert actual == expected
            # The reader keeps writing: a tag on the writer's trace.
            mlflow.MlflowClient(second.url).set_trace_tag(written["traces"][0], "read", "yes")
    finally:
        mlflow.set_tracking_uri(None)
        database.drop()
