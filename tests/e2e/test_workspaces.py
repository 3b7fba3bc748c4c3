"""Workspaces (issue 11) with the real client: WORKSPACES_AUTH.md §1.

A server started with workspaces on holds two teams, `team-a` and `team-b`, each with the same
experiment name, run shape, artifacts and a registered model `churn` with an alias. The client
reaches a workspace two ways: MLflow's `X-MLFLOW-WORKSPACE` header (`mlflow.set_workspace`) and
ferroflow's `/w/<name>` path prefix (a tracking URI `http://host:port/w/<name>`, which a 2.x
client or plain `requests` can use). Both must show the same workspace; neither may reach the
other team's rows, files or models.

Client workflows run in fresh `python -c` subprocesses: the client caches server-info and the
workspace (`set_workspace` also exports MLFLOW_WORKSPACE), so a process per selection is the
honest reproduction. Requests that check the wire (status, error code, message) use `requests`.

In reference mode (FERROFLOW_E2E_SERVER=mlflow, `mlflow server --enable-workspaces`) the `/w/`
prefix and the deliberate differences are skipped (`only_ferroflow`).
"""

from __future__ import annotations

import http.client
import json
import os
import re
import subprocess
import sys
import threading
import uuid
from dataclasses import dataclass, field

import pytest
import requests

from conftest import (
    BACKENDS,
    REFERENCE_MODE,
    SERVER_KIND,
    Database,
    LocalDestination,
    only_ferroflow,
    raises_mlflow_error,
    running_server,
)

HEADER = "X-MLFLOW-WORKSPACE"
API = "/api/2.0/mlflow"
CATALOG = "/api/3.0/mlflow/workspaces"
PROXY = "/api/2.0/mlflow-artifacts/artifacts"
TEAMS = ("team-a", "team-b")
# The prefix is ferroflow's own; the reference reaches workspaces by header only.
MODES = ("header",) if REFERENCE_MODE else ("header", "prefix")
# What each team's `churn` model predicts for MODEL_INPUT: team-b's learns the opposite rule,
# so a model loaded from the wrong workspace shows.
MODEL_INPUT = [[-3.0], [3.0]]
PREDICTIONS = {"team-a": [0, 1], "team-b": [1, 0]}


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


def call(server, method, path, workspace=None, prefix=None, **kwargs) -> requests.Response:
    """One request, in `workspace` by header and/or in `prefix` by the `/w/<name>` path."""
    base = server.url + (f"/w/{prefix}" if prefix else "")
    headers = {HEADER: workspace} if workspace else {}
    return requests.request(method, base + path, headers=headers, timeout=30, **kwargs)


def raw(server, method, path) -> tuple[int, str]:
    """A request sent byte for byte: `requests` would decode `%2e` and drop `..` segments."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        conn.request(method, path)
        resp = conn.getresponse()
        return resp.status, resp.read().decode(errors="replace")
    finally:
        conn.close()


def assert_raw_error(server, method, path, statuses, codes) -> None:
    status, text = raw(server, method, path)
    assert status in statuses, f"{method} {path} -> {status} {text[:300]}"
    assert json.loads(text)["error_code"] in codes, f"{method} {path} -> {status} {text[:300]}"


def describe(resp: requests.Response) -> str:
    req = resp.request
    body = f" {req.body[:200]!r}" if req.body else ""
    sent = req.headers.get(HEADER)
    answer = f"{resp.status_code} {resp.text[:300]}"
    return f"{req.method} {req.url}{body} [{HEADER}: {sent}] -> {answer}"


def assert_error(resp: requests.Response, status: int, code: str) -> dict:
    assert resp.status_code == status, describe(resp)
    body = resp.json()
    assert body["error_code"] == code, describe(resp)
    assert isinstance(body.get("message"), str) and body["message"], describe(resp)
    return body


def ok(resp: requests.Response) -> dict:
    assert resp.status_code == 200, describe(resp)
    return resp.json()


def proxy_path(artifact_uri: str) -> str:
    """The proxy path of an `mlflow-artifacts:` URI (`mlflow-artifacts:/x/y` -> `x/y`)."""
    assert artifact_uri.startswith("mlflow-artifacts:/"), artifact_uri
    return artifact_uri.removeprefix("mlflow-artifacts:").lstrip("/")


def scoped(workspace: str, path: str) -> str:
    """`path` spelled under `workspaces/<workspace>/`, where the server stores it."""
    prefix = f"workspaces/{workspace}/"
    return path if path.startswith(prefix) else prefix + path


def fill(template, ids: dict):
    """`template` (str, dict or list) with `{key}` replaced by ids[key]."""
    if isinstance(template, str):
        return template.format(**ids)
    if isinstance(template, dict):
        return {k: fill(v, ids) for k, v in template.items()}
    if isinstance(template, list):
        return [fill(v, ids) for v in template]
    return template


def new_name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


# The client workflows, run as `python -c SCRIPT <url> <workspace> <header|prefix>`; each
# prints one `RESULT:<json>` line.
_CLIENT_SETUP = """
import json, os, sys, tempfile
import numpy as np
import mlflow
from mlflow import MlflowClient

url, workspace, mode = sys.argv[1:4]
if mode == "header":
    mlflow.set_tracking_uri(url)
    mlflow.set_workspace(workspace)
else:  # a 2.x-style client: the workspace is in the tracking URI only
    assert mode == "prefix" and not os.environ.get("MLFLOW_WORKSPACE")
    mlflow.set_tracking_uri(f"{url}/w/{workspace}")
client = MlflowClient()
"""

TRAIN_SCRIPT = _CLIENT_SETUP + """
from sklearn.linear_model import LogisticRegression

sign = 1 if workspace == "team-a" else -1
X = np.array([[-2.0], [-1.0], [1.0], [2.0]])
y = (sign * X[:, 0] > 0).astype(int)
experiment = mlflow.set_experiment("churn-training")
only_experiment_id = client.create_experiment(f"{workspace}-only", tags={"owner": workspace})
with mlflow.start_run(run_name="train") as run:
    mlflow.log_params({"C": "0.5", "workspace": workspace})
    for step, loss in enumerate([0.9, 0.5, 0.2]):
        mlflow.log_metric("loss", loss, step=step)
    mlflow.set_tags({"team": workspace, "stage": "dev"})
    mlflow.log_input(mlflow.data.from_numpy(X, name="churn-x"), context="training")
    with tempfile.TemporaryDirectory() as tmp:
        notes = os.path.join(tmp, "notes.txt")
        with open(notes, "w") as f:
            f.write(f"notes of {workspace}\\n")
        mlflow.log_artifact(notes)
        plots = os.path.join(tmp, "plots")
        os.makedirs(os.path.join(plots, "nested"))
        with open(os.path.join(plots, "a.csv"), "w") as f:
            f.write("x,y\\n1,2\\n")
        with open(os.path.join(plots, "nested", "b.txt"), "w") as f:
            f.write(workspace)
        mlflow.log_artifacts(plots, "plots")
    model = LogisticRegression(C=0.5).fit(X, y)
    info = mlflow.sklearn.log_model(
        model, name="model", registered_model_name="churn", pip_requirements=["scikit-learn"]
    )
version = info.registered_model_version
client.set_registered_model_alias("churn", "champion", version)
only = mlflow.register_model(info.model_uri, f"{workspace}-only")
client.set_registered_model_alias(f"{workspace}-only", "champion", only.version)
client.set_registered_model_tag(f"{workspace}-only", "owner", workspace)
print("RESULT:" + json.dumps({
    "experiment_id": experiment.experiment_id,
    "experiment_location": experiment.artifact_location,
    "only_experiment_id": only_experiment_id,
    "run_id": run.info.run_id,
    "artifact_uri": run.info.artifact_uri,
    "model_id": info.model_id,
    "version": str(version),
    "only_version": str(only.version),
}))
"""

VIEW_SCRIPT = _CLIENT_SETUP + """
def walk(run_id, path=None):
    out = []
    for f in client.list_artifacts(run_id, path):
        out.append((f.path, f.is_dir))
        if f.is_dir:
            out += walk(run_id, f.path)
    return out

exp = client.get_experiment_by_name("churn-training")
(run,) = client.search_runs([exp.experiment_id])
run_id = run.info.run_id
with tempfile.TemporaryDirectory() as tmp:
    local = mlflow.artifacts.download_artifacts(run_id=run_id, dst_path=tmp)
    files = {}
    for root, _, names in os.walk(local):
        for name in names:
            path = os.path.join(root, name)
            files[os.path.relpath(path, local)] = open(path).read()
champion = client.get_model_version_by_alias("churn", "champion")
loaded = mlflow.pyfunc.load_model("models:/churn@champion")
print("RESULT:" + json.dumps({
    "experiments": sorted(e.name for e in client.search_experiments()),
    "experiment_id": exp.experiment_id,
    "run_id": run_id,
    "run_name": run.info.run_name,
    "params": run.data.params,
    "metrics": run.data.metrics,
    "loss_history": [(m.step, m.value) for m in client.get_metric_history(run_id, "loss")],
    "tags": {k: v for k, v in run.data.tags.items() if not k.startswith("mlflow.")},
    "datasets": [d.dataset.name for d in run.inputs.dataset_inputs],
    "artifact_tree": sorted(walk(run_id)),
    "artifact_files": dict(sorted(files.items())),
    "logged_models": [m.model_id for m in client.search_logged_models([exp.experiment_id])],
    "registered_models": sorted(m.name for m in client.search_registered_models()),
    "champion": [champion.version, champion.run_id, champion.source],
    "predictions": [int(p) for p in loaded.predict(np.array(%r))],
}))
""" % (MODEL_INPUT,)


def run_clients(server, jobs: list[tuple[str, str, str]]) -> list[dict]:
    """Runs `(script, workspace, mode)` jobs in parallel subprocesses; their RESULT dicts."""
    unset = ("MLFLOW_WORKSPACE", "MLFLOW_TRACKING_URI")
    env = {k: v for k, v in os.environ.items() if k not in unset}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, server.url, workspace, mode],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for script, workspace, mode in jobs
    ]
    results = []
    for (_, workspace, mode), proc in zip(jobs, procs):
        out, err = proc.communicate(timeout=300)
        lines = [l for l in out.splitlines() if l.startswith("RESULT:")]
        assert proc.returncode == 0 and lines, (
            f"client in {workspace} by {mode} failed ({proc.returncode}):\n{err[-4000:]}"
        )
        results.append(json.loads(lines[-1].removeprefix("RESULT:")))
    return results


# --------------------------------------------------------------------------------------------
# Fixtures: one workspaces server per backend, the two teams trained in it
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module", params=BACKENDS, ids=BACKENDS)
def ws_server(request, tmp_path_factory):
    """A server with workspaces on (ferroflow, or the reference), one per backend."""
    work_dir = tmp_path_factory.mktemp(f"{SERVER_KIND}-{request.param}-workspaces")
    database = Database(request.param, work_dir)
    # Both servers read MLFLOW_ENABLE_WORKSPACES; the destination's environment is the only
    # way into the shared launcher's command (conftest.Server), so it is turned on there.
    destination = LocalDestination(work_dir / "artifacts")
    destination.server_env = {"MLFLOW_ENABLE_WORKSPACES": "true"}
    assert "MLFLOW_WORKSPACE" not in os.environ  # the reference refuses to start with it
    try:
        with running_server(
            SERVER_KIND, database, work_dir, f"{SERVER_KIND}-{request.param}-workspaces",
            destination,
        ) as srv:
            yield srv
    finally:
        database.drop()


@dataclass
class Team:
    name: str
    mode: str  # how its data was written
    ids: dict = field(default_factory=dict)


@pytest.fixture(scope="module")
def teams(ws_server) -> dict[str, Team]:
    """team-a and team-b, created through MlflowClient's workspace calls and trained by the
    client: team-a selected by header, team-b by path prefix (by header in reference mode)."""
    for name in TEAMS:
        created = ws_server.client.create_workspace(name, description=f"{name} models")
        assert created.name == name
    teams = {"team-a": Team("team-a", "header"), "team-b": Team("team-b", MODES[-1])}
    results = run_clients(ws_server, [(TRAIN_SCRIPT, t.name, t.mode) for t in teams.values()])
    for team, ids in zip(teams.values(), results):
        team.ids = ids
    return teams


@pytest.fixture(scope="module")
def views(ws_server, teams) -> dict[tuple[str, str], dict]:
    """What the client sees in each team, selecting it each way."""
    jobs = [(VIEW_SCRIPT, team, mode) for team in TEAMS for mode in MODES]
    return {(team, mode): view for (_, team, mode), view in zip(jobs, run_clients(ws_server, jobs))}


# --------------------------------------------------------------------------------------------
# 1. The catalog through MlflowClient, and the same workflow in two workspaces
# --------------------------------------------------------------------------------------------


def test_catalog_through_the_client(ws_server):
    from mlflow.entities.workspace import WorkspaceDeletionMode

    client = ws_server.client
    name = new_name("cat")
    created = client.create_workspace(name, description="first", default_artifact_root="s3://b/x")
    assert (created.name, created.description, created.default_artifact_root) == (
        name, "first", "s3://b/x",
    )
    listed = [w.name for w in client.list_workspaces()]
    assert "default" in listed and name in listed and listed == sorted(listed)
    assert client.get_workspace(name).description == "first"

    updated = client.update_workspace(name, description="second")
    assert (updated.description, updated.default_artifact_root) == ("second", "s3://b/x")
    cleared = client.update_workspace(name, default_artifact_root="")
    assert (cleared.description, cleared.default_artifact_root) == ("second", None)

    with raises_mlflow_error("RESOURCE_ALREADY_EXISTS"):
        client.create_workspace(name)
    client.delete_workspace(name, mode=WorkspaceDeletionMode.RESTRICT)
    assert name not in [w.name for w in client.list_workspaces()]
    with raises_mlflow_error("RESOURCE_DOES_NOT_EXIST"):
        client.get_workspace(name)


def test_server_info_says_workspaces_are_enabled(ws_server):
    info = ok(call(ws_server, "GET", "/api/3.0/mlflow/server-info"))
    assert info["workspaces_enabled"] is True


@pytest.mark.parametrize("team", TEAMS)
@pytest.mark.parametrize("mode", MODES)
def test_the_client_sees_its_own_workspace(views, teams, team, mode):
    """Experiments, the run with its params/metrics/tags/inputs, artifacts (listed and
    downloaded), registered models and the model behind `models:/churn@champion`."""
    view, ids = views[(team, mode)], teams[team].ids
    assert view["experiments"] == sorted(["churn-training", f"{team}-only"])
    assert (view["experiment_id"], view["run_id"]) == (ids["experiment_id"], ids["run_id"])
    assert view["run_name"] == "train"
    assert view["params"] == {"C": "0.5", "workspace": team}
    assert view["metrics"] == {"loss": 0.2}
    assert view["loss_history"] == [[0, 0.9], [1, 0.5], [2, 0.2]]
    assert view["tags"] == {"team": team, "stage": "dev"}
    assert view["datasets"] == ["churn-x"]
    assert view["artifact_tree"] == [
        ["notes.txt", False],
        ["plots", True],
        ["plots/a.csv", False],
        ["plots/nested", True],
        ["plots/nested/b.txt", False],
    ]
    assert view["artifact_files"] == {
        "notes.txt": f"notes of {team}\n",
        "plots/a.csv": "x,y\n1,2\n",
        "plots/nested/b.txt": team,
    }
    assert view["logged_models"] == [ids["model_id"]]
    assert view["registered_models"] == sorted(["churn", f"{team}-only"])
    assert view["champion"][:2] == [ids["version"], ids["run_id"]]
    assert view["predictions"] == PREDICTIONS[team]


@only_ferroflow
@pytest.mark.parametrize("team", TEAMS)
def test_header_and_path_prefix_show_the_same_workspace(views, team):
    assert views[(team, "prefix")] == views[(team, "header")]


@only_ferroflow
def test_writing_by_header_and_by_prefix_gives_the_same_result(teams, views):
    """team-a was written by header, team-b by prefix: the same workflow, the same shapes."""
    assert (teams["team-a"].mode, teams["team-b"].mode) == ("header", "prefix")

    def shape(team: str) -> str:
        view = dict(views[(team, "header")])
        view.pop("predictions")  # differ by design
        text = json.dumps(view, sort_keys=True)
        for key, value in teams[team].ids.items():
            if key in ("run_id", "model_id"):
                text = text.replace(value, f"<{key}>")
        text = re.sub(r'"experiment_id": "\d+"', '"experiment_id": "<id>"', text)
        return text.replace(team, "<team>")

    assert shape("team-b") == shape("team-a")
    # Same experiment and model names, yet separate rows.
    a, b = teams["team-a"].ids, teams["team-b"].ids
    assert a["experiment_id"] != b["experiment_id"] and a["run_id"] != b["run_id"]
    assert (a["version"], b["version"]) == ("1", "1")


@pytest.mark.parametrize("team", TEAMS)
def test_new_experiments_live_under_the_workspace_artifact_root(ws_server, teams, team):
    """MLflow: `<root>/workspaces/<ws>/<experiment_id>` (sqlalchemy_workspace_store.py)."""
    ids = teams[team].ids
    exp_id = ids["experiment_id"]
    assert ids["experiment_location"] == f"mlflow-artifacts:/workspaces/{team}/{exp_id}"
    assert ids["artifact_uri"] == (
        f"mlflow-artifacts:/workspaces/{team}/{exp_id}/{ids['run_id']}/artifacts"
    )


def test_artifacts_are_stored_under_their_workspace_directory(ws_server, teams):
    tree = ws_server.destination.tree("")
    assert tree and all(path.startswith("workspaces/") for path in tree), sorted(tree)
    for team in TEAMS:
        ids = teams[team].ids
        run_dir = f"workspaces/{team}/{ids['experiment_id']}/{ids['run_id']}"
        assert tree[f"{run_dir}/artifacts/notes.txt"] == f"notes of {team}\n".encode()
        assert tree[f"{run_dir}/artifacts/plots/nested/b.txt"] == team.encode()


def test_a_workspace_artifact_root_is_used_without_suffix(ws_server, tmp_path):
    """A workspace's own `default_artifact_root` gives `<root>/<experiment_id>`."""
    name = new_name("rooted")
    root = (tmp_path / "rooted-root").as_uri()
    ws_server.client.create_workspace(name, default_artifact_root=root)
    created = ok(call(ws_server, "POST", f"{API}/experiments/create", name, json={"name": "e"}))
    exp = ok(call(ws_server, "GET", f"{API}/experiments/get", name,
                  params={"experiment_id": created["experiment_id"]}))["experiment"]
    assert exp["artifact_location"] == f"{root}/{created['experiment_id']}"


def test_an_explicit_artifact_location_is_refused(ws_server):
    """MLflow refuses `artifact_location` on experiment create when workspaces are on."""
    name = new_name("located")
    ws_server.client.create_workspace(name)
    resp = call(ws_server, "POST", f"{API}/experiments/create", name,
                json={"name": "e", "artifact_location": "s3://elsewhere/x"})
    assert_error(resp, 400, "INVALID_PARAMETER_VALUE")
    listed = ok(call(ws_server, "POST", f"{API}/experiments/search", name,
                     json={"max_results": 10}))
    assert listed.get("experiments", []) == []


# Routes that find the file from an entity (run, model version, logged model), not a path:
# MLflow scopes each under `workspaces/<ws>/` like the proxy (handlers.py, get_artifact_handler,
# _list_artifacts_for_proxied_run_artifact_root, get_model_version_artifact_handler,
# get_logged_model_artifact_handler). (path, params from team-a's ids, expected text in body)
ENTITY_ARTIFACT_ROUTES = {
    "run-file": ("/get-artifact", {"run_id": "{run_id}", "path": "notes.txt"}, "notes of team-a"),
    "run-list": (f"{API}/artifacts/list", {"run_id": "{run_id}"}, '"notes.txt"'),
    "run-list-dir": (f"{API}/artifacts/list", {"run_id": "{run_id}", "path": "plots"}, "a.csv"),
    "model-version-file": ("/model-versions/get-artifact",
                           {"name": "team-a-only", "version": "1", "path": "MLmodel"}, "flavors"),
    "logged-model-file": ("/ajax-api/2.0/mlflow/logged-models/{model_id}/artifacts/files",
                          {"artifact_file_path": "MLmodel"}, "flavors"),
}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("route", list(ENTITY_ARTIFACT_ROUTES))
def test_artifacts_served_from_an_entity_in_its_workspace(ws_server, teams, route, mode):
    path, params, expected = ENTITY_ARTIFACT_ROUTES[route]
    ids = teams["team-a"].ids
    selection = {"workspace": "team-a"} if mode == "header" else {"prefix": "team-a"}
    resp = call(ws_server, "GET", fill(path, ids), **selection, params=fill(params, ids))
    assert resp.status_code == 200 and expected in resp.text, describe(resp)


# --------------------------------------------------------------------------------------------
# 2. A 2.x-style client: only the path prefix
# --------------------------------------------------------------------------------------------


@only_ferroflow
def test_plain_requests_reach_a_workspace_by_path_prefix(ws_server, teams):
    ids = teams["team-a"].ids
    def get(route, **params):
        return ok(call(ws_server, "GET", route, prefix="team-a", params=params))

    exp = get(f"{API}/experiments/get-by-name", experiment_name="churn-training")["experiment"]
    assert exp["experiment_id"] == ids["experiment_id"]
    runs = ok(call(ws_server, "POST", f"{API}/runs/search", prefix="team-a",
                   json={"experiment_ids": [ids["experiment_id"]]}))["runs"]
    assert [r["info"]["run_id"] for r in runs] == [ids["run_id"]]
    alias = get(f"{API}/registered-models/alias", name="churn", alias="champion")
    assert alias["model_version"]["run_id"] == ids["run_id"]
    listed = get(PROXY, path=proxy_path(ids["artifact_uri"]))
    assert sorted(f["path"] for f in listed["files"]) == ["notes.txt", "plots"]
    file = call(ws_server, "GET", f"{PROXY}/{proxy_path(ids['artifact_uri'])}/notes.txt",
                prefix="team-a")
    assert (file.status_code, file.text) == (200, "notes of team-a\n"), describe(file)
    assert get("/api/3.0/mlflow/server-info")["workspaces_enabled"] is True
    for path in ("/health", "/version"):
        assert call(ws_server, "GET", path, prefix="team-a").status_code == 200

    # The other prefix is the other workspace.
    other = call(ws_server, "GET", f"{API}/experiments/get", prefix="team-b",
                 params={"experiment_id": ids["experiment_id"]})
    assert_error(other, 404, "RESOURCE_DOES_NOT_EXIST")


@only_ferroflow
def test_the_client_without_a_workspace_uses_the_prefixed_tracking_uri(ws_server, teams, tmp_path):
    from mlflow import MlflowClient

    ids = teams["team-a"].ids
    assert "MLFLOW_WORKSPACE" not in os.environ
    client = MlflowClient(tracking_uri=f"{ws_server.url}/w/team-a")
    assert client.get_experiment_by_name("churn-training").experiment_id == ids["experiment_id"]
    assert client.get_experiment_by_name("team-b-only") is None
    assert client.get_model_version_by_alias("churn", "champion").run_id == ids["run_id"]
    local = client.download_artifacts(ids["run_id"], "notes.txt", str(tmp_path))
    assert open(local).read() == "notes of team-a\n"


@only_ferroflow
def test_header_and_prefix_must_agree(ws_server, teams):
    same = call(ws_server, "GET", f"{API}/experiments/search", "team-a", "team-a",
                params={"max_results": 10})
    assert {e["name"] for e in ok(same)["experiments"]} == {"churn-training", "team-a-only"}
    resp = call(ws_server, "GET", f"{API}/experiments/search", "team-b", "team-a",
                params={"max_results": 10})
    assert_error(resp, 400, "INVALID_PARAMETER_VALUE")


# --------------------------------------------------------------------------------------------
# 3. Isolation: team-b, by header, with team-a's ids, names and paths
# --------------------------------------------------------------------------------------------

# Ids that exist nowhere, of each kind the cases name: team-b's answer for team-a's id must
# be the answer for these (the same code and message), so a 404 tells nothing about team-a.
UNKNOWN = {
    "exp": "987654321",
    "exp_name": "no-such-experiment",
    "run": "0123456789abcdef0123456789abcdef",
    "model": "m-0123456789abcdef0123456789abcdef",
    "rm": "no-such-model",
}


def a_ids(teams) -> dict[str, str]:
    a, b = teams["team-a"].ids, teams["team-b"].ids
    return {
        "exp": a["experiment_id"],
        "exp_name": "team-a-only",
        "run": a["run_id"],
        "model": a["model_id"],
        "rm": "team-a-only",
        "b_run": b["run_id"],
        "b_model": b["model_id"],
    }


@dataclass
class Probe:
    """A request team-b makes with team-a's identifiers; MLflow answers as if they did not
    exist: 404 RESOURCE_DOES_NOT_EXIST."""

    method: str
    path: str
    params: dict | None = None
    body: dict | None = None
    status: int | None = 404  # None: whatever the answer for an unknown id is
    control: bool = True  # a GET team-a itself gets a 200 for (so the probe names something)

    def keys(self) -> set[str]:
        """The identifiers this probe names."""
        return set(re.findall(r"(?<!\{)\{(\w+)\}", json.dumps([self.path, self.params, self.body])))

    def send(self, server, ids, workspace="team-b"):
        return call(server, self.method, fill(self.path, ids), workspace,
                    params=fill(self.params, ids), json=fill(self.body, ids))


NOT_FOUND_PROBES = {
    # experiments
    "experiments-get": Probe("GET", f"{API}/experiments/get", {"experiment_id": "{exp}"}),
    "experiments-get-by-name": Probe("GET", f"{API}/experiments/get-by-name",
                                     {"experiment_name": "{exp_name}"}),
    "experiments-update": Probe("POST", f"{API}/experiments/update",
                                body={"experiment_id": "{exp}", "new_name": "renamed-by-b"}),
    "experiments-set-tag": Probe("POST", f"{API}/experiments/set-experiment-tag",
                                 body={"experiment_id": "{exp}", "key": "by", "value": "b"}),
    "experiments-delete": Probe("POST", f"{API}/experiments/delete", body={"experiment_id": "{exp}"}),
    "runs-create-in-experiment": Probe("POST", f"{API}/runs/create", body={"experiment_id": "{exp}"}),
    # runs
    "runs-get": Probe("GET", f"{API}/runs/get", {"run_id": "{run}"}),
    "runs-update": Probe("POST", f"{API}/runs/update", body={"run_id": "{run}", "status": "FAILED"}),
    "runs-log-metric": Probe("POST", f"{API}/runs/log-metric", body={
        "run_id": "{run}", "key": "loss", "value": 9.0, "timestamp": 1, "step": 9}),
    "runs-log-batch": Probe("POST", f"{API}/runs/log-batch", body={
        "run_id": "{run}", "metrics": [{"key": "loss", "value": 9.0, "timestamp": 1, "step": 9}],
        "params": [{"key": "by", "value": "b"}], "tags": [{"key": "team", "value": "b"}]}),
    "runs-log-param": Probe("POST", f"{API}/runs/log-parameter",
                            body={"run_id": "{run}", "key": "by", "value": "b"}),
    "runs-set-tag": Probe("POST", f"{API}/runs/set-tag",
                          body={"run_id": "{run}", "key": "team", "value": "b"}),
    "runs-delete-tag": Probe("POST", f"{API}/runs/delete-tag", body={"run_id": "{run}", "key": "team"}),
    "runs-delete": Probe("POST", f"{API}/runs/delete", body={"run_id": "{run}"}),
    # metric history
    "metrics-history": Probe("GET", f"{API}/metrics/get-history",
                             {"run_id": "{run}", "metric_key": "loss"}),
    "metrics-bulk-interval": Probe("GET", f"{API}/metrics/get-history-bulk-interval",
                                   {"run_ids": "{run}", "metric_key": "loss", "max_results": 10}),
    # datasets / inputs
    "runs-log-inputs": Probe("POST", f"{API}/runs/log-inputs", body={"run_id": "{run}", "datasets": [
        {"dataset": {"name": "d", "digest": "abc", "source_type": "local", "source": "{{}}"}}]}),
    # logged models
    "logged-models-get": Probe("GET", f"{API}/logged-models/{{model}}"),
    "logged-models-create-in-experiment": Probe("POST", f"{API}/logged-models",
                                                body={"experiment_id": "{exp}"}),
    "logged-models-finalize": Probe("PATCH", f"{API}/logged-models/{{model}}",
                                    body={"model_id": "{model}", "status": "LOGGED_MODEL_READY"}),
    "logged-models-set-tags": Probe("PATCH", f"{API}/logged-models/{{model}}/tags",
                                    body={"tags": [{"key": "by", "value": "b"}]}),
    "logged-models-delete": Probe("DELETE", f"{API}/logged-models/{{model}}"),
    "runs-outputs-a-run": Probe("POST", f"{API}/runs/outputs",
                                body={"run_id": "{run}", "models": [{"model_id": "{b_model}", "step": 0}]}),
    # MLflow does not look the model up (any id links, 200): only "as for an unknown id" holds.
    "runs-outputs-a-model": Probe("POST", f"{API}/runs/outputs", status=None,
                                  body={"run_id": "{b_run}", "models": [{"model_id": "{model}", "step": 0}]}),
    # registered models, versions, aliases, tags
    "registered-models-get": Probe("GET", f"{API}/registered-models/get", {"name": "{rm}"}),
    "model-versions-get": Probe("GET", f"{API}/model-versions/get", {"name": "{rm}", "version": "1"}),
    "model-versions-download-uri": Probe("GET", f"{API}/model-versions/get-download-uri",
                                         {"name": "{rm}", "version": "1"}),
    "aliases-get": Probe("GET", f"{API}/registered-models/alias", {"name": "{rm}", "alias": "champion"}),
    "latest-versions": Probe("POST", f"{API}/registered-models/get-latest-versions", body={"name": "{rm}"}),
    "registered-models-update": Probe("PATCH", f"{API}/registered-models/update",
                                      body={"name": "{rm}", "description": "by b"}),
    "registered-models-set-tag": Probe("POST", f"{API}/registered-models/set-tag",
                                       body={"name": "{rm}", "key": "by", "value": "b"}),
    "registered-models-delete-tag": Probe("DELETE", f"{API}/registered-models/delete-tag",
                                          body={"name": "{rm}", "key": "owner"}),
    "model-versions-create": Probe("POST", f"{API}/model-versions/create",
                                   body={"name": "{rm}", "source": "s3://bucket/model"}),
    "model-versions-update": Probe("PATCH", f"{API}/model-versions/update",
                                   body={"name": "{rm}", "version": "1", "description": "by b"}),
    "model-versions-set-tag": Probe("POST", f"{API}/model-versions/set-tag",
                                    body={"name": "{rm}", "version": "1", "key": "by", "value": "b"}),
    "aliases-set": Probe("POST", f"{API}/registered-models/alias",
                         body={"name": "{rm}", "alias": "by-b", "version": "1"}),
    "aliases-delete": Probe("DELETE", f"{API}/registered-models/alias",
                            body={"name": "{rm}", "alias": "champion"}),
    "registered-models-rename": Probe("POST", f"{API}/registered-models/rename",
                                      body={"name": "{rm}", "new_name": "renamed-by-b"}),
    "model-versions-delete": Probe("DELETE", f"{API}/model-versions/delete",
                                   body={"name": "{rm}", "version": "1"}),
    "registered-models-delete": Probe("DELETE", f"{API}/registered-models/delete", body={"name": "{rm}"}),
    # artifacts found through an entity (their own-workspace side is
    # test_artifacts_served_from_an_entity_in_its_workspace)
    "artifacts-list-by-run": Probe("GET", f"{API}/artifacts/list", {"run_id": "{run}"},
                                   control=False),
    "get-artifact-by-run": Probe("GET", "/get-artifact", {"run_id": "{run}", "path": "notes.txt"},
                                 control=False),
    "model-versions-get-artifact": Probe("GET", "/model-versions/get-artifact",
                                         {"name": "{rm}", "version": "1", "path": "MLmodel"},
                                         control=False),
    "logged-models-artifact": Probe("GET", "/ajax-api/2.0/mlflow/logged-models/{model}/artifacts/files",
                                    {"artifact_file_path": "MLmodel"}, control=False),
}


def _answer(resp: requests.Response, ids: dict) -> tuple:
    """Status, error code and text with the named ids replaced by their names."""
    try:
        body = resp.json()
        code, text = body.get("error_code"), body.get("message", "")
    except ValueError:
        code, text = None, resp.text
    for key, value in sorted(ids.items(), key=lambda kv: -len(kv[1])):
        text = re.sub(rf"(?<![\w-]){re.escape(value)}(?![\w-])", f"<{key}>", text)
    return resp.status_code, code, text


@pytest.fixture(scope="module")
def a_snapshot(ws_server, teams):
    """team-a as team-a sees it, taken before the isolation probes run."""
    return snapshot_team_a(ws_server, teams)


def snapshot_team_a(server, teams) -> dict:
    ids = teams["team-a"].ids
    def get(route, **params):
        return ok(call(server, "GET", route, "team-a", params=params))

    def post(route, body):
        return ok(call(server, "POST", route, "team-a", json=body))

    run_dir = scoped("team-a", proxy_path(ids["artifact_uri"]))
    return {
        "experiments": post(f"{API}/experiments/search", {"max_results": 100}),
        "run": get(f"{API}/runs/get", run_id=ids["run_id"]),
        "history": get(f"{API}/metrics/get-history", run_id=ids["run_id"], metric_key="loss"),
        "logged_model": get(f"{API}/logged-models/{ids['model_id']}"),
        "registered_models": get(f"{API}/registered-models/search"),
        "versions": get(f"{API}/model-versions/search"),
        "aliases": [get(f"{API}/registered-models/alias", name=n, alias="champion")
                    for n in ("churn", "team-a-only")],
        "files": {p: c for p, c in server.destination.tree("workspaces/team-a").items()},
        "listing": get(PROXY, path=run_dir),
    }


@pytest.mark.parametrize("case", list(NOT_FOUND_PROBES))
def test_team_b_cannot_reach_team_a_by_id(ws_server, teams, a_snapshot, case):
    probe = NOT_FOUND_PROBES[case]
    ids = a_ids(teams)
    if probe.method == "GET" and probe.control:
        ok(probe.send(ws_server, ids, "team-a"))
    got = probe.send(ws_server, ids)
    if probe.status is not None:
        assert_error(got, probe.status, "RESOURCE_DOES_NOT_EXIST")
    # MLflow's answer for a row that does not exist at all (e.g. "No Experiment with id=..").
    expected = probe.send(ws_server, {**ids, **UNKNOWN})
    used = probe.keys() & UNKNOWN.keys()
    assert _answer(got, {k: ids[k] for k in used}) == _answer(
        expected, {k: UNKNOWN[k] for k in used}
    ), f"{describe(got)}\nunknown id: {describe(expected)}"


def test_team_b_searches_never_show_team_a(ws_server, teams, a_snapshot):
    a, b = teams["team-a"].ids, teams["team-b"].ids

    def post(path, body):
        return ok(call(ws_server, "POST", f"{API}{path}", "team-b", json=body))

    def get(path, **params):
        return ok(call(ws_server, "GET", f"{API}{path}", "team-b", params=params))

    assert post("/runs/search", {"experiment_ids": [a["experiment_id"]]}).get("runs", []) == []
    exps = post("/experiments/search", {"max_results": 100})["experiments"]
    assert sorted(e["name"] for e in exps) == ["churn-training", "team-b-only"]
    assert a["experiment_id"] not in {e["experiment_id"] for e in exps}
    # MLflow filters logged models to the workspace's experiments: nothing, not an error.
    models = post("/logged-models/search", {"experiment_ids": [a["experiment_id"]]})
    assert models.get("models", []) == []

    rms = get("/registered-models/search")["registered_models"]
    assert sorted(m["name"] for m in rms) == ["churn", "team-b-only"]
    versions = get("/model-versions/search")["model_versions"]
    assert {v["run_id"] for v in versions} == {b["run_id"]}
    for search in (f"run_id='{a['run_id']}'", "name='team-a-only'"):
        assert get("/model-versions/search", filter=search).get("model_versions", []) == []


def test_team_b_churn_is_its_own(ws_server, teams):
    """The same name resolves inside the caller's workspace: `models:/churn/1` and
    `models:/churn@champion` from team-b are team-b's, never team-a's."""
    b = teams["team-b"].ids
    version = ok(call(ws_server, "GET", f"{API}/model-versions/get", "team-b",
                      params={"name": "churn", "version": "1"}))["model_version"]
    assert version["run_id"] == b["run_id"]
    alias = ok(call(ws_server, "GET", f"{API}/registered-models/alias", "team-b",
                    params={"name": "churn", "alias": "champion"}))["model_version"]
    assert alias["run_id"] == b["run_id"]
    uri = ok(call(ws_server, "GET", f"{API}/model-versions/get-download-uri", "team-b",
                  params={"name": "churn", "version": "1"}))["artifact_uri"]
    assert b["model_id"] in uri and "team-a" not in uri


@pytest.mark.parametrize("action", ["list", "download", "upload", "delete"])
def test_team_b_cannot_touch_team_a_artifacts_through_the_proxy(ws_server, teams, a_snapshot,
                                                                 action):
    """MLflow: a proxied path naming another workspace is 400 INVALID_PARAMETER_VALUE
    (`_get_workspace_scoped_repo_path_if_enabled`)."""
    run_dir = scoped("team-a", proxy_path(teams["team-a"].ids["artifact_uri"]))
    file = f"{PROXY}/{run_dir}/notes.txt"
    resp = {
        "list": lambda: call(ws_server, "GET", PROXY, "team-b", params={"path": run_dir}),
        "download": lambda: call(ws_server, "GET", file, "team-b"),
        "upload": lambda: call(ws_server, "PUT", file, "team-b", data=b"by team-b"),
        "delete": lambda: call(ws_server, "DELETE", file, "team-b"),
    }[action]()
    assert_error(resp, 400, "INVALID_PARAMETER_VALUE")


def test_an_unprefixed_proxy_path_stays_in_the_callers_workspace(ws_server, teams):
    """A path without `workspaces/` is the caller's own: team-a's relative path from team-b
    finds team-b's (empty) directory, never team-a's files."""
    ids = teams["team-a"].ids
    relative = proxy_path(ids["artifact_uri"]).removeprefix("workspaces/team-a/")
    listed = ok(call(ws_server, "GET", PROXY, "team-b", params={"path": relative}))
    assert listed.get("files", []) == []
    file = call(ws_server, "GET", f"{PROXY}/{relative}/notes.txt", "team-b")
    assert file.status_code != 200 and "notes of team-a" not in file.text, describe(file)


def test_team_a_is_unchanged_after_team_b_tried(ws_server, teams, a_snapshot):
    """Runs after the probes above (file order): nothing team-b sent changed team-a."""
    assert snapshot_team_a(ws_server, teams) == a_snapshot


# --------------------------------------------------------------------------------------------
# 4. Bad input and catalog edge cases
# --------------------------------------------------------------------------------------------

BAD_NAMES = {
    "reserved-api": "api",
    "reserved-workspaces": "workspaces",
    "reserved-ajax-api": "ajax-api",
    "reserved-static-files": "static-files",
    "too-long": "a" * 64,
    "too-short": "a",
    "upper-case": "Team-A",
    "dot-dot": "..",
    "percent-encoded": "%2e%2e",
    "underscore": "team_a",
    "leading-hyphen": "-team",
    "slash": "a/b",
    "empty": "",
}


@pytest.mark.parametrize("name", list(BAD_NAMES.values()), ids=list(BAD_NAMES))
def test_bad_workspace_names_are_refused_by_the_catalog(ws_server, name):
    resp = call(ws_server, "POST", CATALOG, json={"name": name})
    assert_error(resp, 400, "INVALID_PARAMETER_VALUE")
    assert name not in [w["name"] for w in ok(call(ws_server, "GET", CATALOG))["workspaces"]]


def test_the_longest_name_is_63_characters(ws_server):
    name = "a" * 63
    assert call(ws_server, "POST", CATALOG, json={"name": name}).status_code == 201
    assert call(ws_server, "DELETE", f"{CATALOG}/{name}").status_code == 204


def test_the_client_validates_names_before_sending(ws_server):
    with raises_mlflow_error("INVALID_PARAMETER_VALUE"):
        ws_server.client.create_workspace("Team-A")


@pytest.mark.parametrize(
    "name", ["..", "Team-A", "api", "a" * 64], ids=["dot-dot", "upper-case", "reserved", "too-long"]
)
def test_bad_workspace_names_are_refused_in_the_header(ws_server, name):
    resp = call(ws_server, "GET", f"{API}/experiments/search", name, params={"max_results": 1})
    assert_error(resp, 400, "INVALID_PARAMETER_VALUE")


def test_an_unknown_workspace_in_the_header_is_not_found(ws_server):
    resp = call(ws_server, "GET", f"{API}/experiments/search", "no-such-team",
                params={"max_results": 1})
    body = assert_error(resp, 404, "RESOURCE_DOES_NOT_EXIST")
    assert body["message"] == "Workspace 'no-such-team' not found"


@only_ferroflow
@pytest.mark.parametrize(
    "segment, status, code",
    [
        ("%2e%2e", 400, "INVALID_PARAMETER_VALUE"),
        ("%2E%2E", 400, "INVALID_PARAMETER_VALUE"),
        ("Team-A", 400, "INVALID_PARAMETER_VALUE"),
        ("api", 400, "INVALID_PARAMETER_VALUE"),
        ("a" * 64, 400, "INVALID_PARAMETER_VALUE"),
        ("no-such-team", 404, "RESOURCE_DOES_NOT_EXIST"),
    ],
    ids=["pct-dot-dot", "pct-DOT-DOT", "upper-case", "reserved", "too-long", "unknown"],
)
def test_bad_workspace_names_in_the_path_prefix(ws_server, teams, segment, status, code):
    path = f"/w/{segment}{API}/experiments/search?max_results=1"
    assert_raw_error(ws_server, "GET", path, (status,), (code,))


@only_ferroflow
@pytest.mark.parametrize("path", [f"/w/..{API}/experiments/search", f"/w/{API}/experiments/search",
                                  f"/w/%2e%2e/w/team-a{API}/experiments/search"],
                         ids=["dot-dot", "empty", "pct-dot-dot-then-team-a"])
def test_dot_dot_and_empty_prefixes_are_never_a_workspace(ws_server, teams, path):
    assert_raw_error(ws_server, "GET", path, (400, 404),
                     ("INVALID_PARAMETER_VALUE", "RESOURCE_DOES_NOT_EXIST", "ENDPOINT_NOT_FOUND"))


@pytest.mark.parametrize("segment", ["%2e%2e", "..", "Team-A"])
@pytest.mark.parametrize("method", ["GET", "PATCH", "DELETE"])
def test_bad_names_in_catalog_paths(ws_server, segment, method):
    """A catalog path naming no valid workspace is an error (and changes nothing)."""
    assert_raw_error(ws_server, method, f"{CATALOG}/{segment}", (400, 404),
                     ("INVALID_PARAMETER_VALUE", "RESOURCE_DOES_NOT_EXIST", "ENDPOINT_NOT_FOUND"))
    assert ok(call(ws_server, "GET", f"{CATALOG}/default"))["workspace"]["name"] == "default"


@pytest.mark.parametrize("method", ["POST", "DELETE"])
def test_the_default_workspace_cannot_be_created_or_deleted(ws_server, method):
    """(MLflow lets its description be updated.)"""
    path, body = {
        "POST": (CATALOG, {"name": "default"}),
        "DELETE": (f"{CATALOG}/default", None),
    }[method]
    assert_error(call(ws_server, method, path, json=body), 400, "INVALID_PARAMETER_VALUE")
    ok(call(ws_server, "GET", f"{CATALOG}/default"))


def test_deleting_default_through_the_client_is_refused(ws_server):
    with raises_mlflow_error("INVALID_PARAMETER_VALUE"):
        ws_server.client.delete_workspace("default")


def _workspace_with_content(server) -> tuple[str, str, str]:
    """A new workspace holding an experiment with a run and a registered model."""
    name = new_name("full")
    server.client.create_workspace(name)
    exp_id = ok(call(server, "POST", f"{API}/experiments/create", name, json={"name": "e"}))[
        "experiment_id"
    ]
    run_id = ok(call(server, "POST", f"{API}/runs/create", name, json={"experiment_id": exp_id}))[
        "run"]["info"]["run_id"]
    ok(call(server, "POST", f"{API}/registered-models/create", name, json={"name": "m"}))
    return name, exp_id, run_id


def test_restrict_delete_of_a_non_empty_workspace_is_refused(ws_server):
    name, exp_id, run_id = _workspace_with_content(ws_server)
    resp = call(ws_server, "DELETE", f"{CATALOG}/{name}", params={"mode": "RESTRICT"})
    # MLflow answers 500, which its client retries: a 400 here, deliberately.
    if REFERENCE_MODE:
        assert resp.status_code == 500, describe(resp)
        assert resp.json()["error_code"] == "INVALID_STATE"
    else:
        assert_error(resp, 400, "INVALID_STATE")
    # The default mode is RESTRICT.
    assert call(ws_server, "DELETE", f"{CATALOG}/{name}").status_code in (400, 500)
    assert ok(call(ws_server, "GET", f"{CATALOG}/{name}"))["workspace"]["name"] == name
    ok(call(ws_server, "GET", f"{API}/experiments/get", name, params={"experiment_id": exp_id}))
    ok(call(ws_server, "GET", f"{API}/runs/get", name, params={"run_id": run_id}))
    ok(call(ws_server, "GET", f"{API}/registered-models/get", name, params={"name": "m"}))


def test_cascade_delete_then_recreate_gives_an_empty_workspace(ws_server):
    name, exp_id, run_id = _workspace_with_content(ws_server)
    ws_server.client.delete_workspace(name, mode="CASCADE")
    assert_error(call(ws_server, "GET", f"{CATALOG}/{name}"), 404, "RESOURCE_DOES_NOT_EXIST")

    ws_server.client.create_workspace(name)
    exps = ok(call(ws_server, "POST", f"{API}/experiments/search", name, json={"max_results": 10}))
    assert exps.get("experiments", []) == []
    assert ok(call(ws_server, "GET", f"{API}/registered-models/search", name)).get(
        "registered_models", []) == []
    assert_error(call(ws_server, "GET", f"{API}/experiments/get", name,
                      params={"experiment_id": exp_id}), 404, "RESOURCE_DOES_NOT_EXIST")
    assert_error(call(ws_server, "GET", f"{API}/runs/get", name, params={"run_id": run_id}),
                 404, "RESOURCE_DOES_NOT_EXIST")
    # The name is free again for an experiment and a model.
    ok(call(ws_server, "POST", f"{API}/experiments/create", name, json={"name": "e"}))
    ok(call(ws_server, "POST", f"{API}/registered-models/create", name, json={"name": "m"}))


def test_set_default_delete_moves_the_content_to_default(ws_server):
    name, exp_id, run_id = _workspace_with_content(ws_server)
    # Names must be free in `default` to move there.
    ok(call(ws_server, "POST", f"{API}/experiments/update", name,
            json={"experiment_id": exp_id, "new_name": new_name("moved")}))
    ok(call(ws_server, "POST", f"{API}/registered-models/rename", name,
            json={"name": "m", "new_name": (moved_model := new_name("moved"))}))
    ws_server.client.delete_workspace(name, mode="SET_DEFAULT")
    assert_error(call(ws_server, "GET", f"{CATALOG}/{name}"), 404, "RESOURCE_DOES_NOT_EXIST")
    ok(call(ws_server, "GET", f"{API}/experiments/get", params={"experiment_id": exp_id}))
    ok(call(ws_server, "GET", f"{API}/runs/get", params={"run_id": run_id}))
    ok(call(ws_server, "GET", f"{API}/registered-models/get", params={"name": moved_model}))


def test_concurrent_creates_of_one_name_make_one_workspace(ws_server):
    for _ in range(5):
        name = new_name("race")
        barrier = threading.Barrier(2)
        answers: list[requests.Response] = []

        def create():
            barrier.wait()
            answers.append(call(ws_server, "POST", CATALOG, json={"name": name}))

        threads = [threading.Thread(target=create) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        statuses = sorted(r.status_code for r in answers)
        assert statuses == [201, 400], [describe(r) for r in answers]
        loser = next(r for r in answers if r.status_code == 400)
        assert loser.json()["error_code"] == "RESOURCE_ALREADY_EXISTS", describe(loser)
        names = [w["name"] for w in ok(call(ws_server, "GET", CATALOG))["workspaces"]]
        assert names.count(name) == 1


# --------------------------------------------------------------------------------------------
# 5. Workspaces off (the suite's usual server)
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("method, path", [("GET", CATALOG), ("POST", CATALOG),
                                          ("GET", f"{CATALOG}/default"),
                                          ("GET", "/ajax-api/3.0/mlflow/workspaces")])
def test_without_workspaces_the_catalog_is_unavailable(server, method, path):
    body = {"name": "team-a"} if method == "POST" else None
    resp = requests.request(method, f"{server.url}{path}", json=body, timeout=30)
    assert resp.status_code == 503, describe(resp)


def test_without_workspaces_server_info_says_so(server):
    assert ok(requests.get(f"{server.url}/api/3.0/mlflow/server-info", timeout=30))[
        "workspaces_enabled"] is False


@only_ferroflow
@pytest.mark.parametrize("path", [f"/w/team-a{API}/experiments/search?max_results=1",
                                  "/w/team-a/health", f"/w/x{CATALOG}"])
def test_without_workspaces_a_prefixed_path_is_endpoint_not_found(server, path):
    resp = requests.get(f"{server.url}{path}", timeout=30)
    assert_error(resp, 404, "ENDPOINT_NOT_FOUND")
