"""Reaching a workspace from outside (issue "reaching a workspace"), end to end.

What a user does to point the stock client at a workspace of a `--auth token` server:

- a notebook pastes the first line of `ferroflow workspace tracking-uri WS` (a URI with a
  token in it) into `mlflow.set_tracking_uri`, or a shell evaluates its last two lines;
- a long job runs with the auth plugin (`MLFLOW_TRACKING_AUTH=ferroflow`, FERROFLOW_API_KEY),
  which renews 5-second tokens, while a bare token dies with the "expired" 401;
- a cluster runs `ferroflow workspace init-script WS` (the plugin installed into a fresh
  venv, Spark's env file and /etc/environment written under FERROFLOW_INIT_ROOT, twice);
- `ferroflow exec --workspace WS -- CMD` runs a command with the workspace wired in;
- `mlflow run` (MLflow Projects) with the plugin;
- the REST forms: `POST /api/3.0/ferroflow/tracking-uri`, `GET /api/3.0/ferroflow/init-script`,
  the host taken from `--public-url`, else X-Forwarded-*, else Host.

One server per backend (module scope) runs with tokens and workspaces on, passed through the
destination's environment as test_access.py does; a second one on the same database hands out
5-second tokens for the long job, which starts with the module's first test and runs behind
the others (its 22 s would otherwise be spent waiting). Keys are made with `ferroflow key
create`, one per client process (the server allows 30 exchanges per key per minute). Client
workflows run in fresh processes: the client caches credentials per process. Where a run,
experiment or model landed is checked over REST with an admin token, in every workspace.

Hostile requests the server must refuse: a forwarded host that is not a host (a quote, a
space, userinfo, a path) must not end up in the URIs handed out; `GET .../init-script` must
resolve the workspace a request names like every scoped route (unknown: 404, invalid: 400), so
that no name can break out of the quotes in spark-env.sh.

ferroflow only: MLflow has no tokens.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from conftest import (
    BACKENDS,
    REFERENCE_MODE,
    REPO_ROOT,
    Database,
    LocalDestination,
    Server,
    _ferroflow_bin,
    _free_port,
    running_server,
)

pytestmark = pytest.mark.skipif(REFERENCE_MODE, reason="tokens are ferroflow's own")

HEADER = "X-MLFLOW-WORKSPACE"
API = "/api/2.0/mlflow"
CATALOG = "/api/3.0/mlflow/workspaces"
TRACKING_URI_ROUTE = "/api/3.0/ferroflow/tracking-uri"
INIT_SCRIPT_ROUTE = "/api/3.0/ferroflow/init-script"
TEAM, OTHER_TEAM = "team-r", "team-s"
WORKSPACES = (TEAM, OTHER_TEAM, "default")
EXPIRED_MESSAGE = "The access token expired"
# The venv scripts/test.sh installs the plugin into; it has mlflow and shellcheck.
VENV_BIN = REPO_ROOT / ".venv" / "bin"
VENV_PYTHON = str(VENV_BIN / "python")
SHELLCHECK = str(VENV_BIN / "shellcheck")
# The long job: 4 token lifetimes and then some, a metric every half second.
TOKEN_TTL_SECONDS = 5
LONG_JOB_SECONDS = 22
# The three variables the init script writes, in both files.
CLUSTER_VARIABLES = {"MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "MLFLOW_TRACKING_AUTH"}


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


def new_name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def cli(*args: str, env: dict[str, str] | None = None, **kwargs) -> subprocess.CompletedProcess:
    """`ferroflow <args>`, whatever its exit code."""
    return subprocess.run([_ferroflow_bin(), *args], capture_output=True, text=True, timeout=120,
                          env=env if env is not None else client_env(), **kwargs)


def transcript(returncode: int, stdout: str, stderr: str) -> str:
    return f"exit {returncode}\n--- stdout\n{stdout[-3000:]}\n--- stderr\n{stderr[-4000:]}"


def said(proc: subprocess.CompletedProcess) -> str:
    return transcript(proc.returncode, proc.stdout, proc.stderr)


def client_env(**extra: str) -> dict[str, str]:
    """Our environment without any MLflow credentials, URIs, workspace or ferroflow key, plus
    `extra`: what a fresh shell of a user who set nothing has."""
    drop = ("MLFLOW_TRACKING_", "MLFLOW_REGISTRY_", "MLFLOW_WORKSPACE", "MLFLOW_RUN_ID",
            "MLFLOW_EXPERIMENT_", "FERROFLOW_API_KEY", "FERROFLOW_URL", "FERROFLOW_INIT_ROOT",
            "FERROFLOW_PYTHON")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    env["MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"] = "true"
    env.update(extra)
    return env


def claims(token: str) -> dict:
    part = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def describe(resp: requests.Response) -> str:
    req = resp.request
    return f"{req.method} {req.url} -> {resp.status_code} {resp.text[:300]}"


def ok(resp: requests.Response) -> dict:
    assert resp.status_code == 200, describe(resp)
    return resp.json()


def ok_text(resp: requests.Response) -> str:
    assert resp.status_code == 200, describe(resp)
    return resp.text


def assert_error(resp: requests.Response, status: int, code: str) -> str:
    assert resp.status_code == status, describe(resp)
    assert resp.headers.get("content-type", "").startswith("application/json"), describe(resp)
    assert resp.json()["error_code"] == code, describe(resp)
    return resp.json()["message"]


def shellcheck(script: str) -> None:
    proc = subprocess.run([SHELLCHECK, "-"], input=script, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0 and not proc.stdout, f"shellcheck:\n{proc.stdout}{proc.stderr}"


def script_uri(script: str) -> str:
    """The tracking URI an init script writes (its `tracking_uri='...'` line)."""
    found = re.findall(r"^tracking_uri='([^']*)'$", script, re.M)
    assert len(found) == 1, f"not one tracking_uri line in:\n{script[:1500]}"
    return found[0]


@dataclass
class Outcome:
    """A finished client process; `result` is the JSON of its last `RESULT:` line."""

    returncode: int
    stdout: str
    stderr: str
    result: dict | None

    def output(self) -> str:
        return transcript(self.returncode, self.stdout, self.stderr)


def start(cmd: list[str], env: dict[str, str], **kwargs) -> subprocess.Popen:
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, **kwargs)


def finish(proc: subprocess.Popen, timeout: float = 300) -> Outcome:
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        err += f"\n(killed after {timeout} s)"
    lines = [line for line in out.splitlines() if line.startswith("RESULT:")]
    result = json.loads(lines[-1].removeprefix("RESULT:")) if lines else None
    return Outcome(proc.returncode, out, err, result)


def run_client(cmd: list[str], env: dict[str, str], **kwargs) -> Outcome:
    return finish(start(cmd, env, **kwargs))


class FlaggedServer(Server):
    """A ferroflow server with extra command-line flags (conftest's Server passes none)."""

    def __init__(self, *args, extra_args: list[str], **kwargs):
        super().__init__(*args, **kwargs)
        self.extra_args = extra_args

    def _command(self):
        cmd, env = super()._command()
        return cmd + self.extra_args, env


def server_env(**extra: str) -> dict[str, str]:
    env = {"MLFLOW_ENABLE_WORKSPACES": "true", "FERROFLOW_AUTH": "token"}
    env.update(extra)
    return env


@dataclass
class Deployment:
    """A `--auth token` server with workspaces TEAM and OTHER_TEAM, and an admin."""

    server: Server
    database: Database
    work_dir: Path
    admin_token: str = ""

    @property
    def url(self) -> str:
        return self.server.url

    def new_key(self, role: str = "EDIT", workspace: str = TEAM) -> str:
        """A fresh key of a fresh principal: one per client process, for the rate limit."""
        proc = cli("key", "create", "--backend-store-uri", self.database.uri,
                   "--principal", new_name("user"), "--workspace", workspace, "--role", role)
        assert proc.returncode == 0, said(proc)
        key = proc.stdout.strip()
        assert key.startswith("ffk_"), said(proc)
        return key

    def token(self, key: str, scope: str = TEAM) -> str:
        return ok(requests.post(f"{self.url}/oauth/token", timeout=30, data={
            "grant_type": "client_credentials", "client_secret": key, "scope": scope,
        }))["access_token"]

    def admin(self, method: str, path: str, workspace: str = TEAM, **kwargs) -> requests.Response:
        headers = {"Authorization": f"Bearer {self.admin_token}", HEADER: workspace}
        return requests.request(method, self.url + path, headers=headers, timeout=30, **kwargs)

    def found_in(self, path: str, **params: str) -> list[str]:
        """The workspaces in which `GET path?params` finds something (200, else 404)."""
        found = []
        for workspace in WORKSPACES:
            resp = self.admin("GET", path, workspace, params=params)
            assert resp.status_code in (200, 404), describe(resp)
            if resp.status_code == 200:
                found.append(workspace)
        return found

    def assert_only_in(self, workspace: str, *, experiment: str | None = None,
                       run_id: str | None = None, model: str | None = None) -> None:
        """What the client made is in `workspace` and in no other (default included)."""
        if experiment:
            found = self.found_in(f"{API}/experiments/get-by-name", experiment_name=experiment)
            assert found == [workspace], f"experiment {experiment} found in {found}"
        if run_id:
            found = self.found_in(f"{API}/runs/get", run_id=run_id)
            assert found == [workspace], f"run {run_id} found in {found}"
        if model:
            found = self.found_in(f"{API}/registered-models/get", name=model)
            assert found == [workspace], f"model {model} found in {found}"
            found = self.found_in(f"{API}/model-versions/get", name=model, version="1")
            assert found == [workspace], f"version 1 of {model} found in {found}"

    def run(self, run_id: str) -> dict:
        return ok(self.admin("GET", f"{API}/runs/get", params={"run_id": run_id}))["run"]


def post_tracking_uri(url: str, json_body: bool = False, headers: dict | None = None,
                      **fields: str) -> requests.Response:
    fields.setdefault("grant_type", "client_credentials")
    target = url + TRACKING_URI_ROUTE
    if json_body:
        return requests.post(target, json=fields, headers=headers, timeout=30)
    return requests.post(target, data=fields, headers=headers, timeout=30)


# A run with a param and a metric, in the experiment named by argv[1], through the tracking
# URI of argv[2] when given, else the environment's. Reports what the process was given.
LOG_RUN_SCRIPT = r"""
import hashlib, json, os, sys
given = {k: v for k, v in os.environ.items() if k.startswith(("MLFLOW_", "FERROFLOW_"))}
import mlflow
if len(sys.argv) > 2:
    mlflow.set_tracking_uri(sys.argv[2])
mlflow.set_experiment(sys.argv[1])
with mlflow.start_run() as run:
    mlflow.log_param("p", "1")
    mlflow.log_metric("m", 1.0)
key = given.get("FERROFLOW_API_KEY")
print("RESULT:" + json.dumps({
    "run_id": run.info.run_id,
    "experiment_id": run.info.experiment_id,
    "names": sorted(given),
    "tracking_uri": given.get("MLFLOW_TRACKING_URI"),
    "registry_uri": given.get("MLFLOW_REGISTRY_URI"),
    "auth": given.get("MLFLOW_TRACKING_AUTH"),
    "key_sha256": hashlib.sha256(key.encode()).hexdigest() if key else None,
}))
"""


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


# --------------------------------------------------------------------------------------------
# Fixtures
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module", params=BACKENDS, ids=BACKENDS)
def deployment(request, tmp_path_factory):
    backend = request.param
    work_dir = tmp_path_factory.mktemp(f"ferroflow-{backend}-reaching")
    database = Database(backend, work_dir)
    destination = LocalDestination(work_dir / "artifacts")
    destination.server_env = server_env()
    try:
        with running_server("ferroflow", database, work_dir, f"ferroflow-{backend}-reaching",
                            destination) as srv:
            dep = Deployment(srv, database, work_dir)
            proc = cli("key", "create", "--backend-store-uri", database.uri,
                       "--principal", "root", "--admin")
            assert proc.returncode == 0, said(proc)
            dep.admin_token = dep.token(proc.stdout.strip(), scope="default")
            for team in (TEAM, OTHER_TEAM):
                resp = dep.admin("POST", CATALOG, "default", json={"name": team})
                assert resp.status_code == 201, describe(resp)
            yield dep
    finally:
        database.drop()


# --------------------------------------------------------------------------------------------
# 1. A notebook: the first line of `tracking-uri`, pasted; a shell: its last two lines
# --------------------------------------------------------------------------------------------

NOTEBOOK_SCRIPT = r"""
import json, os, sys, tempfile
import mlflow

class Echo(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input):
        return model_input

mlflow.set_tracking_uri(sys.argv[1])
mlflow.set_experiment(sys.argv[2])
with mlflow.start_run() as run:
    mlflow.log_param("alpha", "0.5")
    mlflow.log_metric("loss", 0.25, step=3)
    with tempfile.TemporaryDirectory() as tmp:
        notes = os.path.join(tmp, "notes.txt")
        with open(notes, "w") as f:
            f.write("from a notebook")
        mlflow.log_artifact(notes, artifact_path="docs")
    info = mlflow.pyfunc.log_model(name="model", python_model=Echo(), pip_requirements=["mlflow"],
                                   registered_model_name=sys.argv[3])
with tempfile.TemporaryDirectory() as tmp:
    notes = open(mlflow.artifacts.download_artifacts(
        run_id=run.info.run_id, artifact_path="docs/notes.txt", dst_path=tmp)).read()
print("RESULT:" + json.dumps({
    "run_id": run.info.run_id, "version": info.registered_model_version, "notes": notes,
}))
"""


@dataclass
class TrackingUriOutput:
    proc: subprocess.CompletedProcess
    key: str
    file: Path  # the output, as a user would save it

    @property
    def lines(self) -> list[str]:
        return self.proc.stdout.splitlines()


@pytest.fixture(scope="module")
def tracking_uri_output(deployment, tmp_path_factory) -> TrackingUriOutput:
    key = deployment.new_key()
    proc = cli("workspace", "tracking-uri", TEAM, "--url", deployment.url,
               env=client_env(FERROFLOW_API_KEY=key))
    out = tmp_path_factory.mktemp("tracking-uri") / "out.txt"
    out.write_text(proc.stdout)
    return TrackingUriOutput(proc, key, out)


@pytest.fixture(scope="module")
def notebook_runs(deployment, tracking_uri_output) -> dict[str, tuple[dict, Outcome]]:
    """The notebook (the pasted URI) and the shell (`eval` of lines 2-3), in parallel."""
    assert tracking_uri_output.proc.returncode == 0, said(tracking_uri_output.proc)
    notebook = {"experiment": new_name("notebook"), "model": new_name("model")}
    shell = {"experiment": new_name("shell")}
    jobs = {
        "notebook": (notebook, start(
            [VENV_PYTHON, "-c", NOTEBOOK_SCRIPT, tracking_uri_output.lines[0],
             notebook["experiment"], notebook["model"]], client_env())),
        "shell": (shell, start(
            ["bash", "-c", 'set -eu; eval "$(tail -n 2 "$1")"; exec "$2" -c "$3" "$4"', "bash",
             str(tracking_uri_output.file), VENV_PYTHON, LOG_RUN_SCRIPT, shell["experiment"]],
            client_env())),
    }
    return {name: (names, finish(proc)) for name, (names, proc) in jobs.items()}


@pytest.mark.usefixtures("long_jobs")  # started here: see `long_jobs`
def test_tracking_uri_prints_the_uri_alone_then_shell_lines(deployment, tracking_uri_output):
    proc, key = tracking_uri_output.proc, tracking_uri_output.key
    assert proc.returncode == 0, said(proc)
    assert not proc.stderr, said(proc)
    lines = tracking_uri_output.lines
    assert len(lines) == 3, said(proc)
    host = deployment.url.removeprefix("http://")
    match = re.fullmatch(rf"http://token:([A-Za-z0-9_.-]+)@{re.escape(host)}/w/{TEAM}", lines[0])
    assert match, lines[0]
    token = match[1]
    assert lines[1] == f"export MLFLOW_TRACKING_URI='{deployment.url}/w/{TEAM}'"
    assert lines[2] == f"export MLFLOW_TRACKING_TOKEN='{token}'"
    assert (claims(token)["workspace"], claims(token)["role"]) == (TEAM, "EDIT")
    assert key not in proc.stdout


def test_a_notebook_logs_and_registers_with_the_pasted_uri(deployment, notebook_runs):
    names, outcome = notebook_runs["notebook"]
    assert outcome.returncode == 0 and outcome.result, outcome.output()
    result = outcome.result
    assert result["notes"] == "from a notebook"
    assert result["version"] == "1"
    deployment.assert_only_in(TEAM, experiment=names["experiment"], run_id=result["run_id"],
                              model=names["model"])
    run = deployment.run(result["run_id"])
    assert {p["key"]: p["value"] for p in run["data"]["params"]} == {"alpha": "0.5"}
    assert [(m["key"], m["value"], m["step"]) for m in run["data"]["metrics"]] == [
        ("loss", 0.25, 3)]
    assert run["info"]["artifact_uri"].startswith(f"mlflow-artifacts:/workspaces/{TEAM}/")
    version = ok(deployment.admin("GET", f"{API}/model-versions/get",
                                  params={"name": names["model"], "version": "1"}))
    assert version["model_version"]["run_id"] == result["run_id"]


def test_the_shell_lines_evaluated_give_a_working_environment(deployment, notebook_runs):
    names, outcome = notebook_runs["shell"]
    assert outcome.returncode == 0 and outcome.result, outcome.output()
    assert outcome.result["tracking_uri"] == f"{deployment.url}/w/{TEAM}"
    assert "MLFLOW_TRACKING_TOKEN" in outcome.result["names"]
    deployment.assert_only_in(TEAM, experiment=names["experiment"],
                              run_id=outcome.result["run_id"])


@pytest.mark.parametrize("case", ["invalid key", "no role in the workspace", "no such workspace"])
def test_tracking_uri_with_a_refused_key(deployment, case):
    if case == "invalid key":
        key, workspace, message = "ffk_aaaaaaaaaaaa_" + "x" * 43, TEAM, "Invalid API key"
    elif case == "no role in the workspace":
        key, workspace, message = deployment.new_key(), OTHER_TEAM, "(HTTP 403"
    else:
        key, workspace, message = deployment.new_key(), "no-such-team", "not found"
    for how in ("--key", "FERROFLOW_API_KEY"):
        args = ["workspace", "tracking-uri", workspace, "--url", deployment.url]
        if how == "--key":
            proc = cli(*args, "--key", key)
        else:
            proc = cli(*args, env=client_env(FERROFLOW_API_KEY=key))
        assert proc.returncode == 1 and not proc.stdout, said(proc)
        assert proc.stderr.startswith("error: ") and message in proc.stderr, said(proc)
        assert f"{deployment.url}/oauth/token" in proc.stderr, said(proc)
        assert key not in proc.stderr, said(proc)


def test_tracking_uri_keeps_a_trailing_slash_out_of_the_uri(deployment):
    proc = cli("workspace", "tracking-uri", TEAM, "--url", deployment.url + "/",
               "--key", deployment.new_key())
    assert proc.returncode == 0, said(proc)
    assert proc.stdout.splitlines()[0].endswith(f"{deployment.server.port}/w/{TEAM}"), said(proc)
    assert proc.stdout.splitlines()[1] == f"export MLFLOW_TRACKING_URI='{deployment.url}/w/{TEAM}'"


# --------------------------------------------------------------------------------------------
# 2. The cluster init script
# --------------------------------------------------------------------------------------------


def render_init_script(url: str, workspace: str = TEAM) -> str:
    proc = cli("workspace", "init-script", workspace, "--url", url)
    assert proc.returncode == 0 and not proc.stderr, said(proc)
    return proc.stdout


def run_init_script(script: str, root: Path, python: str, key: str | None,
                    tmp: Path | None = None) -> subprocess.CompletedProcess:
    env = client_env(FERROFLOW_INIT_ROOT=str(root), FERROFLOW_PYTHON=python)
    if key is not None:
        env["FERROFLOW_API_KEY"] = key
    if tmp is not None:
        env["TMPDIR"] = str(tmp)
    return subprocess.run(["bash", "-s"], input=script, env=env, capture_output=True, text=True,
                          timeout=300)


def tree(root: Path) -> dict[str, tuple[bytes, int]]:
    """Every file under `root`: content and modification time (ns)."""
    return {str(p.relative_to(root)): (p.read_bytes(), p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*")) if p.is_file()}


def environment_file(path: Path) -> dict[str, str]:
    """The KEY="value" lines of an /etc/environment (pam_env's format); comments skipped."""
    variables = {}
    for line in path.read_text().splitlines():
        if not line or line.startswith("#"):
            continue
        match = re.fullmatch(r'([A-Za-z_][A-Za-z0-9_]*)="([^"]*)"', line)
        assert match, f"not KEY=\"value\": {line!r} in {path}"
        variables[match[1]] = match[2]
    return variables


def spark_env(path: Path) -> dict[str, str]:
    """The variables sourcing spark-env.sh exports, as bash sees them."""
    proc = subprocess.run(
        ["bash", "-c", 'set -a; . "$1"; env -0', "bash", str(path)], env={"PATH": "/usr/bin:/bin"},
        capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0 and not proc.stderr, said(proc)
    pairs = (item.split("=", 1) for item in proc.stdout.split("\0") if item)
    return {k: v for k, v in pairs if k.startswith("MLFLOW_")}


BEGIN = "# >>> ferroflow: written by its init script >>>"
END = "# <<< ferroflow <<<"


def test_the_init_script_installs_the_plugin_and_runs_twice_to_the_same_files(tmp_path):
    """No server needed: the script only installs and writes. The Python is a fresh venv
    without the plugin, so the install (from the sources the script carries, with setuptools
    from PyPI) really runs."""
    url = "https://mlflow.example.com"
    script = render_init_script(url)
    assert script.startswith("#!/usr/bin/env bash\n")
    shellcheck(script)
    key = "ffk_cluster00000_" + "s" * 43  # never sent anywhere: the script does not exchange

    venv = tmp_path / "venv"
    subprocess.run([VENV_PYTHON, "-m", "venv", str(venv)], check=True, timeout=120)
    python = str(venv / "bin" / "python")
    has_plugin = [python, "-c", "import ferroflow_auth; print(ferroflow_auth.__version__)"]
    assert subprocess.run(has_plugin, capture_output=True, timeout=60).returncode != 0

    root, tmp = tmp_path / "root", tmp_path / "tmp"
    (root / "etc").mkdir(parents=True)
    tmp.mkdir()
    (root / "etc" / "environment").write_text('PATH="/usr/local/bin:/usr/bin:/bin"\n')

    missing = run_init_script(script, root, python, key=None, tmp=tmp)
    assert missing.returncode != 0 and "FERROFLOW_API_KEY" in missing.stderr, said(missing)
    assert list(tree(root)) == ["etc/environment"], "written without a key"

    first = run_init_script(script, root, python, key, tmp=tmp)
    assert first.returncode == 0, said(first)
    installed = subprocess.run(has_plugin, capture_output=True, text=True, timeout=60)
    assert installed.returncode == 0, said(installed)
    plugin_version = re.search(r'__version__ = "([^"]+)"', (
        REPO_ROOT / "clients" / "python" / "ferroflow_auth" / "__init__.py").read_text())[1]
    assert installed.stdout.strip() == plugin_version
    group = "mlflow.request_auth_provider"
    entry_points = subprocess.run(
        [python, "-c", "from importlib.metadata import entry_points; "
                       f"print([e.value for e in entry_points(group='{group}')])"],
        capture_output=True, text=True, timeout=60)
    assert "ferroflow_auth:FerroflowRequestAuthProvider" in entry_points.stdout, said(entry_points)

    uri = f"{url}/w/{TEAM}"
    files = tree(root)
    assert set(files) == {"etc/environment", "databricks/spark/conf/spark-env.sh"}
    assert files["etc/environment"][0].decode() == "\n".join([
        'PATH="/usr/local/bin:/usr/bin:/bin"', BEGIN,
        f'MLFLOW_TRACKING_URI="{uri}"', f'MLFLOW_REGISTRY_URI="{uri}"',
        'MLFLOW_TRACKING_AUTH="ferroflow"', END, ""])
    assert spark_env(root / "databricks/spark/conf/spark-env.sh") == {
        "MLFLOW_TRACKING_URI": uri, "MLFLOW_REGISTRY_URI": uri, "MLFLOW_TRACKING_AUTH": "ferroflow"}
    for name, (content, _) in files.items():
        assert key.encode() not in content, f"the key is in {name}"
    assert not list(tmp.iterdir()), f"left behind in TMPDIR: {list(tmp.iterdir())}"

    time.sleep(0.05)  # a rewrite would show in the modification time
    second = run_init_script(script, root, python, key, tmp=tmp)
    assert second.returncode == 0, said(second)
    assert tree(root) == files, "the second run changed or rewrote a file"
    assert not list(tmp.iterdir()), f"left behind in TMPDIR: {list(tmp.iterdir())}"

    # Another server's script replaces the block: still one, the user's line kept.
    moved = run_init_script(render_init_script("https://other.example.com:8443"), root, python,
                            key, tmp=tmp)
    assert moved.returncode == 0, said(moved)
    environment = (root / "etc" / "environment").read_text()
    assert environment.count(BEGIN) == 1 and environment.count(END) == 1, environment
    assert environment.startswith('PATH="/usr/local/bin:/usr/bin:/bin"\n'), environment
    assert environment_file(root / "etc" / "environment")["MLFLOW_TRACKING_URI"] == (
        f"https://other.example.com:8443/w/{TEAM}")
    spark = (root / "databricks/spark/conf/spark-env.sh").read_text()
    assert spark.count(BEGIN) == 1 and "mlflow.example.com" not in spark, spark


def test_a_cluster_set_up_by_the_init_script_logs_to_its_workspace(deployment, tmp_path):
    """The venv already has the plugin (the script's skip path); the job's environment is
    exactly what /etc/environment says, plus the key a cluster secret would give."""
    root, key = tmp_path / "root", deployment.new_key()
    script = render_init_script(deployment.url)
    assert script_uri(script) == f"{deployment.url}/w/{TEAM}"
    proc = run_init_script(script, root, VENV_PYTHON, key)
    assert proc.returncode == 0, said(proc)
    variables = environment_file(root / "etc" / "environment")
    assert set(variables) == CLUSTER_VARIABLES
    assert spark_env(root / "databricks/spark/conf/spark-env.sh") == variables
    experiment = new_name("cluster")
    outcome = run_client([VENV_PYTHON, "-c", LOG_RUN_SCRIPT, experiment],
                         {**variables, "FERROFLOW_API_KEY": key})
    assert outcome.returncode == 0 and outcome.result, outcome.output()
    assert outcome.result["auth"] == "ferroflow"
    deployment.assert_only_in(TEAM, experiment=experiment, run_id=outcome.result["run_id"])


# --------------------------------------------------------------------------------------------
# 3. ferroflow exec
# --------------------------------------------------------------------------------------------

# What a caller's environment may hold that exec must not pass on.
STALE = {
    "MLFLOW_TRACKING_URI": "http://127.0.0.1:9/w/elsewhere",
    "MLFLOW_REGISTRY_URI": "http://127.0.0.1:9/w/elsewhere",
    "MLFLOW_TRACKING_USERNAME": "someone",
    "MLFLOW_TRACKING_PASSWORD": "a-password",
    "MLFLOW_TRACKING_TOKEN": "a.stale.token",
    "MLFLOW_TRACKING_AUTH": "basic",
    "MLFLOW_WORKSPACE": OTHER_TEAM,
}
CLEARED = ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_WORKSPACE")
# A command that only shows the MLflow and ferroflow variables it was given.
SHOW_ENV = ("import json, os; print('RESULT:' + json.dumps({k: v for k, v in os.environ.items() "
            "if k.startswith(('MLFLOW_', 'FERROFLOW_'))}))")


def exec_cmd(deployment, *command: str, workspace: str = TEAM) -> list[str]:
    return [_ferroflow_bin(), "exec", "--workspace", workspace, "--url", deployment.url, "--",
            *command]


def system_python_without_plugin() -> str:
    python = shutil.which("python3", path="/usr/bin:/bin")
    if not python:
        pytest.skip("no python3 in /usr/bin or /bin")
    if subprocess.run([python, "-c", "import ferroflow_auth"], capture_output=True).returncode == 0:
        pytest.skip(f"{python} has the plugin")
    return python


def test_exec_runs_a_python_with_the_plugin_in_its_workspace(deployment):
    key, experiment = deployment.new_key(), new_name("exec")
    outcome = run_client(exec_cmd(deployment, VENV_PYTHON, "-c", LOG_RUN_SCRIPT, experiment),
                         client_env(FERROFLOW_API_KEY=key, **STALE))
    assert outcome.returncode == 0 and outcome.result, outcome.output()
    assert "plugin is not installed" not in outcome.stderr, outcome.output()
    result, uri = outcome.result, f"{deployment.url}/w/{TEAM}"
    assert (result["tracking_uri"], result["registry_uri"]) == (uri, uri)
    assert result["auth"] == "ferroflow" and result["key_sha256"] == sha256(key)
    for name in (*CLEARED, "MLFLOW_TRACKING_TOKEN"):
        assert name not in result["names"], f"{name} passed on: {result['names']}"
    deployment.assert_only_in(TEAM, experiment=experiment, run_id=result["run_id"])


def test_exec_gives_a_python_without_the_plugin_one_token(deployment):
    python, key = system_python_without_plugin(), deployment.new_key()
    outcome = run_client(exec_cmd(deployment, python, "-c", SHOW_ENV),
                         client_env(FERROFLOW_API_KEY=key, **STALE))
    assert outcome.returncode == 0 and outcome.result is not None, outcome.output()
    given, uri = outcome.result, f"{deployment.url}/w/{TEAM}"
    assert (given["MLFLOW_TRACKING_URI"], given["MLFLOW_REGISTRY_URI"]) == (uri, uri)
    for name in (*CLEARED, "MLFLOW_TRACKING_AUTH", "FERROFLOW_API_KEY"):
        assert name not in given, f"{name} passed on: {sorted(given)}"
    assert key not in outcome.stdout
    token = given["MLFLOW_TRACKING_TOKEN"]
    assert token != STALE["MLFLOW_TRACKING_TOKEN"] and claims(token)["workspace"] == TEAM
    assert "plugin is not installed" in outcome.stderr and "3600 s" in outcome.stderr
    resp = requests.post(f"{uri}{API}/experiments/search", json={"max_results": 1}, timeout=30,
                         headers={"Authorization": f"Bearer {token}"})
    ok(resp)


@pytest.mark.parametrize("path_python", ["with the plugin", "without"])
def test_exec_asks_the_python3_on_the_path_for_other_commands(deployment, path_python):
    """`env` is no Python: the python3 first on the PATH decides the mode."""
    if path_python == "with the plugin":
        path = f"{VENV_BIN}:/usr/bin:/bin"
    else:
        system_python_without_plugin()
        path = "/usr/bin:/bin"
    proc = subprocess.run(exec_cmd(deployment, "env"), capture_output=True, text=True,
                          timeout=60, env=client_env(FERROFLOW_API_KEY=deployment.new_key(),
                                                     PATH=path))
    assert proc.returncode == 0, said(proc)
    names = {line.split("=", 1)[0] for line in proc.stdout.splitlines()}
    if path_python == "with the plugin":
        assert {"MLFLOW_TRACKING_AUTH", "FERROFLOW_API_KEY"} <= names, said(proc)
        assert "MLFLOW_TRACKING_TOKEN" not in names, said(proc)
    else:
        assert "MLFLOW_TRACKING_TOKEN" in names, said(proc)
        assert not names & {"MLFLOW_TRACKING_AUTH", "FERROFLOW_API_KEY"}, said(proc)


def test_exec_exit_codes_and_refusals(deployment, tmp_path):
    env = client_env(FERROFLOW_API_KEY=deployment.new_key())
    passthrough = subprocess.run(exec_cmd(deployment, VENV_PYTHON, "-c", "import sys; sys.exit(3)"),
                                 env=env, capture_output=True, text=True, timeout=60)
    assert passthrough.returncode == 3, said(passthrough)
    missing = subprocess.run(exec_cmd(deployment, str(tmp_path / "no-such-command")), env=env,
                             capture_output=True, text=True, timeout=60)
    assert missing.returncode == 127 and "could not run" in missing.stderr, said(missing)

    marker = tmp_path / "ran"
    touch = ["touch", str(marker)]
    refused = {
        "invalid key": ({"FERROFLOW_API_KEY": "ffk_aaaaaaaaaaaa_" + "x" * 43}, TEAM,
                        "Invalid API key"),
        "no role in the workspace": ({"FERROFLOW_API_KEY": deployment.new_key()}, OTHER_TEAM,
                                     "(HTTP 403"),
        "no key": ({}, TEAM, "FERROFLOW_API_KEY"),
        "invalid workspace name": ({"FERROFLOW_API_KEY": deployment.new_key()}, "Bad Name",
                                   "Bad Name"),
    }
    for case, (extra, workspace, message) in refused.items():
        proc = subprocess.run(exec_cmd(deployment, *touch, workspace=workspace),
                              env=client_env(**extra), capture_output=True, text=True, timeout=60)
        assert proc.returncode == 1 and message in proc.stderr, f"{case}: {said(proc)}"
        assert not marker.exists(), f"{case}: the command ran"
        key = extra.get("FERROFLOW_API_KEY")
        assert not key or key not in proc.stderr + proc.stdout, f"{case}: the key was printed"


# --------------------------------------------------------------------------------------------
# 4. MLflow Projects with the plugin
# --------------------------------------------------------------------------------------------

MLPROJECT = """\
name: reaching-project

entry_points:
  main:
    parameters:
      alpha: {type: float, default: 0.1}
    command: "python train.py --alpha {alpha}"
"""
TRAIN = """\
import argparse
import mlflow

parser = argparse.ArgumentParser()
parser.add_argument("--alpha", type=float)
mlflow.log_metric("score", parser.parse_args().alpha * 2)
"""


def test_mlflow_run_of_a_local_project_lands_in_the_workspace(deployment, tmp_path):
    project = tmp_path / "project"
    project.mkdir()
    (project / "MLproject").write_text(MLPROJECT)
    (project / "train.py").write_text(TRAIN)
    git_env = {**client_env(), "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1",
               "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
               "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com"}
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "the project"]):
        subprocess.run(["git", *args], cwd=project, env=git_env, check=True, timeout=60)
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=project, env=git_env, check=True,
                            capture_output=True, text=True).stdout.strip()

    experiment = new_name("project")
    env = client_env(MLFLOW_TRACKING_URI=f"{deployment.url}/w/{TEAM}",
                     MLFLOW_TRACKING_AUTH="ferroflow", FERROFLOW_API_KEY=deployment.new_key(),
                     PATH=f"{VENV_BIN}:{os.environ.get('PATH', '/usr/bin:/bin')}")
    outcome = run_client([str(VENV_BIN / "mlflow"), "run", str(project), "--env-manager", "local",
                          "-P", "alpha=0.5", "--experiment-name", experiment], env, cwd=tmp_path)
    assert outcome.returncode == 0, outcome.output()

    deployment.assert_only_in(TEAM, experiment=experiment)
    exp = ok(deployment.admin("GET", f"{API}/experiments/get-by-name",
                              params={"experiment_name": experiment}))["experiment"]
    runs = ok(deployment.admin("POST", f"{API}/runs/search",
                               json={"experiment_ids": [exp["experiment_id"]], "max_results": 10}))
    (run,) = runs["runs"]
    assert run["info"]["status"] == "FINISHED"
    data = run["data"]
    assert {p["key"]: p["value"] for p in data["params"]} == {"alpha": "0.5"}
    assert {m["key"]: m["value"] for m in data["metrics"]} == {"score": 1.0}
    tags = {t["key"]: t["value"] for t in data["tags"]}
    assert tags["mlflow.project.entryPoint"] == "main"
    assert tags["mlflow.source.type"] == "PROJECT"
    assert tags["mlflow.source.git.commit"] == commit
    assert tags["mlflow.project.backend"] == "local"


# --------------------------------------------------------------------------------------------
# 5. REST
# --------------------------------------------------------------------------------------------


def assert_tracking_uri_answer(resp: requests.Response, base: str, workspace: str = TEAM,
                               role: str = "EDIT") -> dict:
    """200, never cached, the URI with the token as userinfo and the same as variables."""
    body = ok(resp)
    assert resp.headers.get("Cache-Control") == "no-store", describe(resp)
    assert set(body) == {"tracking_uri", "expires_in", "environment"}, body
    assert body["expires_in"] == 3600
    env = body["environment"]
    assert set(env) == {"MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_TOKEN"}, env
    uri, token = f"{base}/w/{workspace}", env["MLFLOW_TRACKING_TOKEN"]
    assert env["MLFLOW_TRACKING_URI"] == uri
    scheme, rest = uri.split("://", 1)
    assert body["tracking_uri"] == f"{scheme}://token:{token}@{rest}"
    assert (claims(token)["workspace"], claims(token)["role"]) == (workspace, role)
    return body


def test_rest_tracking_uri(deployment):
    dep = deployment
    key = dep.new_key()
    assert_tracking_uri_answer(post_tracking_uri(dep.url, client_secret=key, scope=TEAM), dep.url)
    assert_tracking_uri_answer(
        post_tracking_uri(dep.url, json_body=True, client_secret=key, scope=TEAM), dep.url)
    # Under the workspace's prefix the scope may be left out.
    for json_body in (False, True):
        resp = post_tracking_uri(f"{dep.url}/w/{TEAM}", json_body=json_body, client_secret=key)
        assert_tracking_uri_answer(resp, dep.url)

    bad = "ffk_aaaaaaaaaaaa_" + "x" * 43
    message = assert_error(post_tracking_uri(dep.url, client_secret=bad, scope=TEAM),
                           401, "UNAUTHENTICATED")
    assert message == "Invalid API key" and bad not in message
    assert_error(post_tracking_uri(dep.url, scope=TEAM), 401, "UNAUTHENTICATED")
    assert_error(post_tracking_uri(f"{dep.url}/w/{OTHER_TEAM}", client_secret=key),
                 403, "PERMISSION_DENIED")
    assert_error(post_tracking_uri(dep.url, grant_type="password", client_secret=key, scope=TEAM),
                 400, "INVALID_PARAMETER_VALUE")


def test_rest_tracking_uri_answers_work_with_the_stock_client(deployment):
    """The URI as given (token in userinfo), and the environment as given."""
    dep = deployment
    by_uri = ok(post_tracking_uri(dep.url, client_secret=dep.new_key(), scope=TEAM))
    by_env = ok(post_tracking_uri(dep.url, client_secret=dep.new_key(), scope=TEAM))
    names = {"uri": new_name("rest-uri"), "env": new_name("rest-env")}
    jobs = {
        "uri": start([VENV_PYTHON, "-c", LOG_RUN_SCRIPT, names["uri"], by_uri["tracking_uri"]],
                     client_env()),
        "env": start([VENV_PYTHON, "-c", LOG_RUN_SCRIPT, names["env"]],
                     client_env(**by_env["environment"])),
    }
    for way, proc in jobs.items():
        outcome = finish(proc)
        assert outcome.returncode == 0 and outcome.result, f"{way}: {outcome.output()}"
        dep.assert_only_in(TEAM, experiment=names[way], run_id=outcome.result["run_id"])


def test_rest_init_script(deployment):
    dep = deployment
    token = dep.token(dep.new_key("READ"))
    bearer = {"Authorization": f"Bearer {token}"}
    resp = requests.get(f"{dep.url}/w/{TEAM}{INIT_SCRIPT_ROUTE}", headers=bearer, timeout=30)
    assert resp.status_code == 200, describe(resp)
    assert resp.headers["content-type"].startswith("text/x-shellscript"), describe(resp)
    assert script_uri(resp.text) == f"{dep.url}/w/{TEAM}"
    # The same script as the command line's for the same URL.
    assert resp.text == render_init_script(dep.url)
    by_header = requests.get(dep.url + INIT_SCRIPT_ROUTE, headers={**bearer, HEADER: TEAM},
                             timeout=30)
    assert by_header.status_code == 200 and by_header.text == resp.text, describe(by_header)

    anonymous = requests.get(f"{dep.url}/w/{TEAM}{INIT_SCRIPT_ROUTE}", timeout=30)
    assert_error(anonymous, 401, "UNAUTHENTICATED")
    other = dep.token(dep.new_key("READ", OTHER_TEAM), scope=OTHER_TEAM)
    resp = requests.get(f"{dep.url}/w/{TEAM}{INIT_SCRIPT_ROUTE}", timeout=30,
                        headers={"Authorization": f"Bearer {other}"})
    assert_error(resp, 403, "PERMISSION_DENIED")
    resp = requests.get(f"{dep.url}/w/{OTHER_TEAM}{INIT_SCRIPT_ROUTE}", headers=bearer, timeout=30)
    assert_error(resp, 403, "PERMISSION_DENIED")
    # A member naming a hostile workspace is refused before anything is rendered.
    resp = requests.get(dep.url + INIT_SCRIPT_ROUTE, timeout=30,
                        headers={**bearer, HEADER: "x';touch /tmp/ff-pwned;'"})
    assert resp.status_code in (400, 403), describe(resp)


FORWARDED = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "ml.corp.example:8443"}


def test_rest_answers_name_the_forwarded_host(deployment):
    dep = deployment
    key = dep.new_key("READ")
    resp = post_tracking_uri(dep.url, headers=FORWARDED, client_secret=key, scope=TEAM)
    assert_tracking_uri_answer(resp, "https://ml.corp.example:8443", role="READ")
    token = dep.token(key)
    resp = requests.get(f"{dep.url}/w/{TEAM}{INIT_SCRIPT_ROUTE}", timeout=30,
                        headers={**FORWARDED, "Authorization": f"Bearer {token}"})
    assert script_uri(ok_text(resp)) == f"https://ml.corp.example:8443/w/{TEAM}"
    # Only the scheme forwarded: the host is the request's.
    resp = post_tracking_uri(dep.url, headers={"X-Forwarded-Proto": "https"}, client_secret=key,
                             scope=TEAM)
    assert_tracking_uri_answer(resp, dep.url.replace("http://", "https://"), role="READ")


# Forwarded hosts that are not host[:port].
BAD_FORWARDED_HOSTS = {
    "a quote": "evil.example'; touch /tmp/ff-pwned; '",
    "a space": "a b",
    "userinfo": "user:pw@evil.example",
    "a path": "ml.example.com/../x",
}


@pytest.mark.parametrize("case", BAD_FORWARDED_HOSTS)
def test_a_bad_forwarded_host_cannot_inject_into_the_script(deployment, case):
    dep = deployment
    token = dep.token(dep.new_key("READ"))
    resp = requests.get(f"{dep.url}/w/{TEAM}{INIT_SCRIPT_ROUTE}", timeout=30, headers={
        "Authorization": f"Bearer {token}", "X-Forwarded-Host": BAD_FORWARDED_HOSTS[case]})
    if resp.status_code == 200:
        assert "ff-pwned" not in resp.text and "pw@" not in resp.text
        assert re.fullmatch(r"https?://[A-Za-z0-9.:\[\]-]+(/[A-Za-z0-9._~/-]*)?/w/" + TEAM,
                            script_uri(resp.text))
        shellcheck(resp.text)
    else:
        assert_error(resp, 400, "INVALID_PARAMETER_VALUE")


@pytest.mark.parametrize("case", BAD_FORWARDED_HOSTS)
def test_a_bad_forwarded_host_is_refused_or_ignored(deployment, case):
    """Either refused (400), or ignored for the request's own Host; never an address the
    server is not at."""
    dep = deployment
    resp = post_tracking_uri(dep.url, headers={"X-Forwarded-Host": BAD_FORWARDED_HOSTS[case]},
                             client_secret=dep.new_key(), scope=TEAM)
    if resp.status_code != 400:
        assert_tracking_uri_answer(resp, dep.url)


HOSTILE_WORKSPACES = {
    "unknown": ("path", "no-such-team", 404),
    "invalid in the path": ("path", "Bad%20Name", 400),
    "a quote in the header": ("header", "x';touch /tmp/ff-pwned;'$(touch /tmp/ff-pwned2)", 400),
}


@pytest.mark.parametrize("case", HOSTILE_WORKSPACES)
def test_an_admin_gets_no_init_script_for_a_workspace_that_cannot_be(deployment, case):
    """As every other workspace-scoped route answers: 404 for an unknown workspace, 400 for an
    invalid name."""
    where, name, status = HOSTILE_WORKSPACES[case]
    headers = {"Authorization": f"Bearer {deployment.admin_token}"}
    if where == "path":
        url = f"{deployment.url}/w/{name}{INIT_SCRIPT_ROUTE}"
    else:
        url, headers[HEADER] = deployment.url + INIT_SCRIPT_ROUTE, name
    resp = requests.get(url, headers=headers, timeout=30)
    assert_error(resp, status, "RESOURCE_DOES_NOT_EXIST" if status == 404
                 else "INVALID_PARAMETER_VALUE")


def test_a_server_with_a_public_url_hands_out_that_url(tmp_path):
    """`--public-url` wins over the forwarded headers and the Host, in both answers and in
    /oauth/token's tracking_uri. One more server, on SQLite only: nothing here is stored."""
    database = Database("sqlite", tmp_path)
    public = "https://mlflow.example.com"
    created = cli("workspace", "create", TEAM, "--backend-store-uri", database.uri)
    assert created.returncode == 0, said(created)
    made = cli("key", "create", "--backend-store-uri", database.uri, "--principal", "reader",
               "--workspace", TEAM, "--role", "READ")
    assert made.returncode == 0, said(made)
    key = made.stdout.strip()
    destination = LocalDestination(tmp_path / "artifacts")
    destination.server_env = server_env()
    srv = FlaggedServer("ferroflow", database, tmp_path, "ferroflow-sqlite-public-url",
                        destination, extra_args=["--public-url", public])
    srv.start()
    try:
        resp = post_tracking_uri(srv.url, headers=FORWARDED, client_secret=key, scope=TEAM)
        body = assert_tracking_uri_answer(resp, public, role="READ")
        resp = requests.post(f"{srv.url}/oauth/token", headers=FORWARDED, timeout=30, data={
            "grant_type": "client_credentials", "client_secret": key, "scope": TEAM})
        assert ok(resp)["tracking_uri"] == f"{public}/w/{TEAM}"
        token = body["environment"]["MLFLOW_TRACKING_TOKEN"]
        resp = requests.get(f"{srv.url}/w/{TEAM}{INIT_SCRIPT_ROUTE}", timeout=30,
                            headers={**FORWARDED, "Authorization": f"Bearer {token}"})
        script = ok_text(resp)
        assert script_uri(script) == f"{public}/w/{TEAM}"
        assert script == render_init_script(public)
    finally:
        srv.stop()
    # A public URL a client could not use is refused at start.
    for bad in ("http://u:p@mlflow.example.com", "mlflow.example.com", "https://h/it's"):
        cmd = [_ferroflow_bin(), "server", "--port", str(_free_port()),
               "--backend-store-uri", database.uri, "--artifacts-destination",
               str(tmp_path / "artifacts"), "--public-url", bad]
        try:
            proc = subprocess.run(cmd, env={**os.environ, **server_env()}, capture_output=True,
                                  text=True, timeout=30)
        except subprocess.TimeoutExpired:
            pytest.fail(f"ferroflow served with --public-url {bad!r}")
        assert proc.returncode != 0 and "public_url" in proc.stdout + proc.stderr, said(proc)


# --------------------------------------------------------------------------------------------
# 6. Hostile input on the command line (no server, or a port nothing listens on)
# --------------------------------------------------------------------------------------------

BAD_URLS = {
    "credentials": ("http://u:p@127.0.0.1:9", "must not carry credentials"),
    "a quote": ("http://127.0.0.1:9/it's", "may hold only"),
    "not http": ("ftp://127.0.0.1:9", "http(s)://host"),
    "a query": ("http://127.0.0.1:9/?a=1", "query"),
    "no scheme": ("127.0.0.1:9", "127.0.0.1:9"),
}
KEY = "ffk_hostile00000_" + "k" * 43


def commands(workspace: str, url: str, marker: Path) -> dict[str, list[str]]:
    return {
        "tracking-uri": ["workspace", "tracking-uri", workspace, "--url", url, "--key", KEY],
        "init-script": ["workspace", "init-script", workspace, "--url", url],
        "exec": ["exec", "--workspace", workspace, "--url", url, "--key", KEY, "--",
                 "touch", str(marker)],
    }


def assert_refused(proc: subprocess.CompletedProcess, message: str, marker: Path) -> None:
    assert proc.returncode == 1 and not proc.stdout, said(proc)
    assert proc.stderr.startswith("error: ") and message in proc.stderr, said(proc)
    assert KEY not in proc.stderr, said(proc)
    assert not marker.exists(), "exec ran the command"


@pytest.mark.parametrize("case", BAD_URLS)
def test_a_server_url_that_is_not_one_is_refused(case, tmp_path):
    url, message = BAD_URLS[case]
    marker = tmp_path / "ran"
    for args in commands(TEAM, url, marker).values():
        assert_refused(cli(*args), message, marker)


def test_an_invalid_workspace_name_is_refused(tmp_path):
    marker = tmp_path / "ran"
    for args in commands("Bad Name", "http://127.0.0.1:9", marker).values():
        assert_refused(cli(*args), "Workspace name 'Bad Name' must match", marker)
    # A quote in the name never reaches a script.
    proc = cli("workspace", "init-script", "x';touch /tmp/ff-pwned;'", "--url", "http://h")
    assert_refused(proc, "must match", marker)


def test_a_closed_port_is_could_not_reach(tmp_path):
    url, marker = f"http://127.0.0.1:{_free_port()}", tmp_path / "ran"
    for name in ("tracking-uri", "exec"):
        proc = cli(*commands(TEAM, url, marker)[name])
        assert_refused(proc, f"could not reach {url}/oauth/token", marker)


# --------------------------------------------------------------------------------------------
# 7. A job outliving many 5-second tokens with the plugin; one with a bare token dies
# --------------------------------------------------------------------------------------------

# Any failed call ends the job: the client makes no retries (conftest sets
# MLFLOW_HTTP_REQUEST_MAX_RETRIES=0, inherited here). Exchanges are counted.
PLUGIN_JOB_SCRIPT = r"""
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

experiment, seconds = sys.argv[1], float(sys.argv[2])
mlflow.set_experiment(experiment)
with mlflow.start_run() as run:
    step, started = 0, time.time()
    while time.time() - started < seconds:
        mlflow.log_metric("loss", 1.0 / (step + 1), step=step)
        step += 1
        time.sleep(0.5)
    elapsed = time.time() - started
history = mlflow.MlflowClient().get_metric_history(run.info.run_id, "loss")
print("RESULT:" + json.dumps({
    "run_id": run.info.run_id, "steps": step, "elapsed": elapsed,
    "history": sorted(m.step for m in history), "exchanges": exchanges,
}))
"""

# Imports first, then takes its environment (a tracking-uri answer's) from stdin, so the
# token's 5 seconds are not spent importing.
BARE_TOKEN_JOB_SCRIPT = r"""
import json, os, sys, time
from mlflow import MlflowClient

print("READY", flush=True)
os.environ.update(json.loads(sys.stdin.readline()))
client = MlflowClient()
run = client.create_run(client.create_experiment(sys.argv[1]))
client.log_metric(run.info.run_id, "loss", 1.0, step=0)
print("FIRST_OK", flush=True)
time.sleep(%d)
client.log_metric(run.info.run_id, "loss", 0.5, step=1)
print("SECOND_OK", flush=True)
""" % (TOKEN_TTL_SECONDS + 1)


@dataclass
class LongJobs:
    short: Server
    plugin: subprocess.Popen
    plugin_experiment: str
    bare: subprocess.Popen
    issued: dict


@pytest.fixture(scope="module")
def long_jobs(deployment):
    """Both jobs started on a second server (same database, so same keys and signing key)
    whose tokens live 5 s. Requested first by the module's first test, so that the jobs run
    while the other tests do; their test collects them."""
    dep = deployment
    destination = LocalDestination(dep.work_dir / "artifacts")
    destination.server_env = server_env(FERROFLOW_TOKEN_TTL=f"{TOKEN_TTL_SECONDS}s")
    label = f"ferroflow-{dep.server.backend}-reaching-ttl{TOKEN_TTL_SECONDS}s"
    with running_server("ferroflow", dep.database, dep.work_dir, label, destination) as short:
        experiment = new_name("long")
        plugin = start(
            [VENV_PYTHON, "-c", PLUGIN_JOB_SCRIPT, experiment, str(LONG_JOB_SECONDS)],
            client_env(MLFLOW_TRACKING_URI=f"{short.url}/w/{TEAM}",
                       MLFLOW_TRACKING_AUTH="ferroflow", FERROFLOW_API_KEY=dep.new_key()),
        )
        bare = start([VENV_PYTHON, "-c", BARE_TOKEN_JOB_SCRIPT, new_name("bare")], client_env(),
                     stdin=subprocess.PIPE)
        try:
            ready = bare.stdout.readline().strip()
            assert ready == "READY", ready + bare.stderr.read()[-3000:]
            # The environment the REST endpoint hands out, used as is.
            issued = ok(post_tracking_uri(short.url + f"/w/{TEAM}", client_secret=dep.new_key()))
            bare.stdin.write(json.dumps(issued["environment"]) + "\n")
            bare.stdin.flush()
            yield LongJobs(short, plugin, experiment, bare, issued)
        finally:
            for proc in (plugin, bare):
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()


def test_a_long_job_with_the_plugin_outlives_its_tokens(deployment, long_jobs):
    outcome = finish(long_jobs.plugin, timeout=LONG_JOB_SECONDS + 180)
    assert outcome.returncode == 0 and outcome.result, outcome.output()
    result = outcome.result
    assert result["elapsed"] >= LONG_JOB_SECONDS and result["steps"] >= LONG_JOB_SECONDS
    assert result["history"] == list(range(result["steps"])), result
    # A token per half-lifetime or so: at least one per lifetime the job spanned.
    assert result["exchanges"] >= LONG_JOB_SECONDS // TOKEN_TTL_SECONDS + 1, result
    deployment.assert_only_in(TEAM, experiment=long_jobs.plugin_experiment,
                              run_id=result["run_id"])
    history = ok(deployment.admin("GET", f"{API}/metrics/get-history",
                                  params={"run_id": result["run_id"], "metric_key": "loss"}))
    assert sorted(m["step"] for m in history["metrics"]) == list(range(result["steps"]))


def test_a_job_with_a_bare_token_fails_with_the_expired_401(long_jobs):
    assert long_jobs.issued["expires_in"] == TOKEN_TTL_SECONDS
    outcome = finish(long_jobs.bare, timeout=180)
    assert "FIRST_OK" in outcome.stdout, outcome.output()
    assert outcome.returncode != 0 and "SECOND_OK" not in outcome.stdout, outcome.output()
    assert EXPIRED_MESSAGE in outcome.stderr, outcome.output()
    assert "401" in outcome.stderr or "UNAUTHENTICATED" in outcome.stderr, outcome.output()
