"""Access with tokens (issue 12): API keys, workspace tokens, roles and refusals, end to end.

One server per backend runs with `--auth token` and workspaces on (FERROFLOW_AUTH=token and
MLFLOW_ENABLE_WORKSPACES=true, passed like test_workspaces.py does, through the destination's
environment). Principals and keys are made with `ferroflow key create` on the server's database;
keys are exchanged for tokens at `POST /oauth/token`.

What the stock client sends (WORKSPACES_AUTH.md §2): Basic from MLFLOW_TRACKING_USERNAME/PASSWORD,
else Bearer from MLFLOW_TRACKING_TOKEN; userinfo in the tracking URI becomes Basic through
`requests`. The server takes the token as Bearer or as the Basic password, so all three work.
Client workflows run in fresh `python -c` subprocesses (the client caches credentials, server-info
and the workspace per process); checks of the wire (status, error code, headers) use `requests`.

ferroflow only: MLflow has no tokens (its basic-auth app is another protocol).

Elsewhere: the rate limits of /oauth/token and the signatures of multipart part URLs
(tests/api/access.rs); the `MLFLOW_TRACKING_AUTH` plugin, tracking URIs, `exec` and the init
script (test_reaching.py).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import sqlite3
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

from conftest import (
    BACKENDS,
    REFERENCE_MODE,
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
KEYS = "/api/3.0/ferroflow/keys"
AUDIT = "/api/3.0/ferroflow/audit"
PROXY = "/api/2.0/mlflow-artifacts/artifacts"
TEAM, OTHER_TEAM = "team-a", "team-b"
# Principal -> the `key create` arguments that make it; NONE sends no credentials.
PRINCIPALS = {
    "READ": ["--workspace", TEAM, "--role", "READ"],
    "EDIT": ["--workspace", TEAM, "--role", "EDIT"],
    "MANAGE": ["--workspace", TEAM, "--role", "MANAGE"],
    "admin": ["--admin"],
}
NONE = "none"
# How the server says an expired token is refused, and where to get a new one.
EXPIRED_MESSAGE = "The access token expired"
# A valid experiments search body (an unset max_results reads as 0, which is refused).
SEARCH = {"max_results": 5}


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


def new_name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def ferroflow(*args: str) -> str:
    """`ferroflow <args>` (a CLI command, not the server); its stdout, stripped."""
    proc = subprocess.run([_ferroflow_bin(), *args], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, f"ferroflow {args[:2]} failed ({proc.returncode}): {proc.stderr}"
    return proc.stdout.strip()


def b64url(data: bytes | str) -> str:
    if isinstance(data, str):
        data = data.encode()
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def jwt_parts(token: str) -> tuple[dict, dict, str]:
    """A JWT's header, claims and (still encoded) signature."""
    header, claims, signature = token.split(".")
    return json.loads(unb64url(header)), json.loads(unb64url(claims)), signature


def unsigned(header: dict, claims: dict) -> str:
    """`header.claims`, the JWS signing input."""
    return f"{b64url(json.dumps(header))}.{b64url(json.dumps(claims))}"


def describe(resp: requests.Response) -> str:
    req = resp.request
    body = f" {req.body[:200]!r}" if req.body else ""
    return f"{req.method} {req.url}{body} -> {resp.status_code} {resp.text[:300]}"


def assert_error(resp: requests.Response, status: int, code: str) -> str:
    """An MLflow-shaped JSON error; its message."""
    assert resp.status_code == status, describe(resp)
    assert resp.headers.get("content-type", "").startswith("application/json"), describe(resp)
    body = resp.json()
    assert body["error_code"] == code, describe(resp)
    assert isinstance(body.get("message"), str) and body["message"], describe(resp)
    return body["message"]


def assert_refused_token(resp: requests.Response) -> str:
    """401 UNAUTHENTICATED for a token that was sent, with RFC 6750's challenge."""
    message = assert_error(resp, 401, "UNAUTHENTICATED")
    challenge = resp.headers.get("WWW-Authenticate", "")
    assert challenge.startswith("Bearer") and 'error="invalid_token"' in challenge, (
        f"WWW-Authenticate: {challenge!r}; {describe(resp)}"
    )
    return message


def ok(resp: requests.Response, status: int = 200) -> dict:
    assert resp.status_code == status, describe(resp)
    return resp.json() if resp.content else {}


def client_env(**extra: str) -> dict[str, str]:
    """The environment of a client subprocess: ours without any MLflow credentials or
    workspace, plus `extra`."""
    drop = ("MLFLOW_TRACKING_", "MLFLOW_WORKSPACE")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    env.update(extra)
    return env


@dataclass
class Deployment:
    """A `--auth token` server with workspaces, its database, keys and the tokens it issued."""

    server: Server
    database: Database
    work_dir: Path
    keys: dict[str, str] = field(default_factory=dict)  # principal -> API key
    tokens: dict[str, str] = field(default_factory=dict)  # principal -> token for TEAM
    # Every key and token handed out, and every server that ran on this database: the
    # secrets-in-logs test looks for the former in the logs of the latter.
    secrets: list[str] = field(default_factory=list)
    servers: list[Server] = field(default_factory=list)

    def create_key(self, principal: str, *grant: str) -> str:
        key = ferroflow("key", "create", "--backend-store-uri", self.database.uri,
                        "--principal", principal, *grant)
        assert key.startswith("ffk_") and "\n" not in key, "key create prints only the key"
        self.secrets.append(key)
        return key

    def exchange(self, key: str, scope: str = TEAM, server: Server | None = None) -> dict:
        """The token response for `key` in `scope` (form-encoded, as RFC 6749 has it)."""
        resp = token_request(server or self.server, client_secret=key, scope=scope)
        body = ok(resp)
        self.secrets.append(body["access_token"])
        return body

    def token(self, key: str, scope: str = TEAM) -> str:
        return self.exchange(key, scope)["access_token"]

    def call(self, method: str, path: str, token: str | None = None, workspace: str | None = TEAM,
             prefix: str | None = None, server: Server | None = None,
             **kwargs) -> requests.Response:
        """One request with `token` as Bearer, in `workspace` by header and/or `prefix` by path."""
        base = (server or self.server).url + (f"/w/{prefix}" if prefix else "")
        headers = dict(kwargs.pop("headers", {}))
        if workspace:
            headers[HEADER] = workspace
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        return requests.request(method, base + path, headers=headers, timeout=30, **kwargs)

    def as_admin(self, method: str, path: str, **kwargs) -> dict:
        resp = self.call(method, path, self.tokens["admin"], **kwargs)
        return ok(resp, 201 if (method, path) == ("POST", CATALOG) else 200)


def token_request(server: Server, json_body: bool = False, path: str = "/oauth/token",
                  **fields: str) -> requests.Response:
    """The key exchange at `path` (`/oauth/token`, or the tracking-uri call that takes its body)."""
    fields.setdefault("grant_type", "client_credentials")
    url = f"{server.url}{path}"
    if json_body:
        return requests.post(url, json=fields, timeout=30)
    return requests.post(url, data=fields, timeout=30)


def auth_server_env(**extra: str) -> dict[str, str]:
    env = {
        "MLFLOW_ENABLE_WORKSPACES": "true",
        "FERROFLOW_AUTH": "token",
        # Request lines logged too (tower-http's trace layer), so the secrets-in-logs test
        # reads what an operator who turned request logging on would keep.
        "RUST_LOG": "info,tower_http=debug",
    }
    env.update(extra)
    return env


# --------------------------------------------------------------------------------------------
# Fixtures: one token-auth server per backend, its principals and a seeded team-a
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module", params=BACKENDS, ids=BACKENDS)
def deployment(request, tmp_path_factory):
    work_dir = tmp_path_factory.mktemp(f"ferroflow-{request.param}-access")
    database = Database(request.param, work_dir)
    destination = LocalDestination(work_dir / "artifacts")
    destination.server_env = auth_server_env()
    try:
        with running_server("ferroflow", database, work_dir, f"ferroflow-{request.param}-access",
                            destination) as srv:
            dep = Deployment(srv, database, work_dir, servers=[srv])
            dep.keys["admin"] = dep.create_key("root", "--admin")
            dep.tokens["admin"] = dep.token(dep.keys["admin"], scope="default")
            for team in (TEAM, OTHER_TEAM):  # the catalog, as an admin uses it
                dep.as_admin("POST", CATALOG, json={"name": team})
            for principal, grant in PRINCIPALS.items():
                if principal != "admin":
                    dep.keys[principal] = dep.create_key(principal.lower() + "-user", *grant)
                dep.tokens[principal] = dep.token(dep.keys[principal], scope=TEAM)
            yield dep
    finally:
        database.drop()


@pytest.fixture(scope="module")
def seeded(deployment) -> dict:
    """In team-a, made by the admin: an experiment, a run with a metric and an artifact."""
    dep = deployment
    exp_id = dep.as_admin("POST", f"{API}/experiments/create",
                          json={"name": new_name("seed")})["experiment_id"]
    run = dep.as_admin("POST", f"{API}/runs/create", json={"experiment_id": exp_id})["run"]
    run_id = run["info"]["run_id"]
    dep.as_admin("POST", f"{API}/runs/log-metric", json={
        "run_id": run_id, "key": "loss", "value": 0.5, "timestamp": 1, "step": 0})
    uri = run["info"]["artifact_uri"]
    assert uri.startswith(f"mlflow-artifacts:/workspaces/{TEAM}/"), uri
    artifacts = uri.removeprefix("mlflow-artifacts:").lstrip("/")
    dep.as_admin("PUT", f"{PROXY}/{artifacts}/seed.txt", data=b"seed")
    return {"experiment_id": exp_id, "run_id": run_id, "artifacts": artifacts}


# --------------------------------------------------------------------------------------------
# 1. The stock client, authenticating each way the issue promises
# --------------------------------------------------------------------------------------------

CLIENT_SCRIPT = """
import json, os, sys, tempfile
import numpy as np
import mlflow
from mlflow import MlflowClient
from sklearn.linear_model import LogisticRegression

tracking_uri, experiment_name, model_name = sys.argv[1:4]
mlflow.set_tracking_uri(tracking_uri)
client = MlflowClient()
mlflow.set_experiment(experiment_name)
X = np.array([[-2.0], [-1.0], [1.0], [2.0]])
y = (X[:, 0] > 0).astype(int)
with mlflow.start_run() as run:
    mlflow.log_params({"C": "0.5"})
    for step, loss in enumerate([0.9, 0.4]):
        mlflow.log_metric("loss", loss, step=step)
    with tempfile.TemporaryDirectory() as tmp:
        notes = os.path.join(tmp, "notes.txt")
        with open(notes, "w") as f:
            f.write("written with a token")
        mlflow.log_artifact(notes)
    info = mlflow.sklearn.log_model(
        LogisticRegression().fit(X, y), name="model", registered_model_name=model_name,
        pip_requirements=["scikit-learn"],
    )
got = client.get_run(run.info.run_id)
with tempfile.TemporaryDirectory() as tmp:
    path = mlflow.artifacts.download_artifacts(
        run_id=run.info.run_id, artifact_path="notes.txt", dst_path=tmp)
    notes = open(path).read()
version = client.get_model_version(model_name, info.registered_model_version)
loaded = mlflow.pyfunc.load_model(f"models:/{model_name}/{version.version}")
print("RESULT:" + json.dumps({
    "experiment_id": run.info.experiment_id,
    "run_id": run.info.run_id,
    "params": got.data.params,
    "history": [(m.step, m.value) for m in client.get_metric_history(run.info.run_id, "loss")],
    "notes": notes,
    "version": [version.version, version.run_id, version.status],
    "predictions": [int(p) for p in loaded.predict(np.array([[-3.0], [3.0]]))],
}))
"""


def client_auth(dep: Deployment, way: str) -> tuple[str, dict[str, str]]:
    """The tracking URI and environment of a client authenticating `way` with an EDIT token."""
    token, url, prefixed = dep.tokens["EDIT"], dep.server.url, f"{dep.server.url}/w/{TEAM}"
    if way == "token-env":
        return prefixed, {"MLFLOW_TRACKING_TOKEN": token}
    if way == "basic-env":
        return prefixed, {"MLFLOW_TRACKING_USERNAME": "x", "MLFLOW_TRACKING_PASSWORD": token}
    if way == "uri-userinfo":
        return prefixed.replace("http://", f"http://token:{token}@", 1), {}
    if way == "token-env+MLFLOW_WORKSPACE":  # the workspace by header, not in the URI
        return url, {"MLFLOW_TRACKING_TOKEN": token, "MLFLOW_WORKSPACE": TEAM}
    raise ValueError(way)


CLIENT_WAYS = ("token-env", "basic-env", "uri-userinfo", "token-env+MLFLOW_WORKSPACE")


@pytest.fixture(scope="module")
def client_runs(deployment) -> dict[str, dict]:
    """The client workflow once per way, in parallel: way -> names, result, output."""
    jobs = {}
    for way in CLIENT_WAYS:
        uri, env = client_auth(deployment, way)
        names = {"experiment": new_name("client"), "model": new_name("model")}
        proc = subprocess.Popen(
            [sys.executable, "-c", CLIENT_SCRIPT, uri, names["experiment"], names["model"]],
            env=client_env(**env), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        jobs[way] = (names, proc)
    runs = {}
    for way, (names, proc) in jobs.items():
        out, err = proc.communicate(timeout=300)
        lines = [line for line in out.splitlines() if line.startswith("RESULT:")]
        result = json.loads(lines[-1].removeprefix("RESULT:")) if lines else None
        runs[way] = {**names, "result": result, "returncode": proc.returncode,
                     "output": out + err}
    return runs


@pytest.mark.parametrize("way", CLIENT_WAYS)
def test_the_stock_client_logs_and_registers_with_a_token(deployment, client_runs, way):
    run = client_runs[way]
    assert run["returncode"] == 0 and run["result"], (
        f"client ({way}) failed ({run['returncode']}):\n{run['output'][-4000:]}"
    )
    result = run["result"]
    assert result["params"] == {"C": "0.5"}
    assert result["history"] == [[0, 0.9], [1, 0.4]]
    assert result["notes"] == "written with a token"
    assert result["version"] == ["1", result["run_id"], "READY"]
    assert result["predictions"] == [0, 1]
    # Written in team-a, where the token is for, and nowhere else.
    exp = deployment.as_admin("GET", f"{API}/experiments/get-by-name",
                              params={"experiment_name": run["experiment"]})["experiment"]
    assert exp["experiment_id"] == result["experiment_id"]
    model = deployment.as_admin("GET", f"{API}/registered-models/get",
                                params={"name": run["model"]})["registered_model"]
    assert model["name"] == run["model"]
    elsewhere = deployment.call("GET", f"{API}/experiments/get-by-name", deployment.tokens["admin"],
                                workspace=OTHER_TEAM, params={"experiment_name": run["experiment"]})
    assert_error(elsewhere, 404, "RESOURCE_DOES_NOT_EXIST")


@pytest.mark.parametrize("way", ["prefix", "MLFLOW_WORKSPACE"])
def test_the_stock_client_gets_its_own_workspace(deployment, way):
    """`MlflowClient.get_workspace` sends no workspace header (rest_utils.py leaves it off
    `/mlflow/workspaces` endpoints): a member of team-a asking about team-a must still pass,
    whether the tracking URI has the prefix or the workspace comes from MLFLOW_WORKSPACE."""
    script = (
        "import sys; from mlflow import MlflowClient\n"
        "print('RESULT:' + MlflowClient(sys.argv[1]).get_workspace(sys.argv[2]).name)\n"
    )
    url, env = f"{deployment.server.url}/w/{TEAM}", {}
    if way == "MLFLOW_WORKSPACE":
        url, env = deployment.server.url, {"MLFLOW_WORKSPACE": TEAM}
    env = client_env(MLFLOW_TRACKING_TOKEN=deployment.tokens["READ"], **env)
    proc = subprocess.run([sys.executable, "-c", script, url, TEAM],
                          env=env, capture_output=True, text=True, timeout=120)
    assert f"RESULT:{TEAM}" in proc.stdout, proc.stderr[-2000:]


def test_a_member_cannot_read_another_workspace_from_the_catalog(deployment):
    resp = deployment.call("GET", f"{CATALOG}/{OTHER_TEAM}", deployment.tokens["READ"],
                           workspace=None, prefix=TEAM)
    assert_error(resp, 403, "PERMISSION_DENIED")


# --------------------------------------------------------------------------------------------
# 2. Role x endpoint family
# --------------------------------------------------------------------------------------------


@dataclass
class Cell:
    """One endpoint of a family. `kind` says what it needs (read, write, catalog-read,
    catalog-write, token); `send(dep, credential, ids)` makes the request with the principal's
    credential: its token, or for the token endpoint its API key (None: no credentials)."""

    family: str
    action: str
    kind: str
    send: callable
    # What a principal let through gets, when not the kind's usual answer.
    passed: int | None = None


def _log_batch(dep, token, ids):
    return dep.call("POST", f"{API}/runs/log-batch", token, json={
        "run_id": ids["run_id"],
        "metrics": [{"key": "m", "value": 1.0, "timestamp": 1, "step": 1}],
        "tags": [{"key": "by", "value": "matrix"}]})


def _exchange(dep, key, ids):
    fields = {"scope": TEAM} if key is None else {"scope": TEAM, "client_secret": key}
    resp = token_request(dep.server, **fields)
    if resp.status_code == 200:
        dep.secrets.append(resp.json()["access_token"])
    return resp


MATRIX = [
    Cell("experiments", "search", "read", lambda d, t, ids: d.call(
        "POST", f"{API}/experiments/search", t, json=SEARCH)),
    Cell("experiments", "create", "write", lambda d, t, ids: d.call(
        "POST", f"{API}/experiments/create", t, json={"name": new_name("m")})),
    Cell("runs", "get", "read", lambda d, t, ids: d.call(
        "GET", f"{API}/runs/get", t, params={"run_id": ids["run_id"]})),
    Cell("runs", "create", "write", lambda d, t, ids: d.call(
        "POST", f"{API}/runs/create", t, json={"experiment_id": ids["experiment_id"]})),
    Cell("runs", "log-batch", "write", _log_batch),
    Cell("metrics", "get-history", "read", lambda d, t, ids: d.call(
        "GET", f"{API}/metrics/get-history", t,
        params={"run_id": ids["run_id"], "metric_key": "loss"})),
    Cell("artifacts", "list", "read", lambda d, t, ids: d.call(
        "GET", PROXY, t, params={"path": ids["artifacts"]})),
    Cell("artifacts", "download", "read", lambda d, t, ids: d.call(
        "GET", f"{PROXY}/{ids['artifacts']}/seed.txt", t)),
    Cell("artifacts", "upload", "write", lambda d, t, ids: d.call(
        "PUT", f"{PROXY}/{ids['artifacts']}/{new_name('up')}.txt", t, data=b"x")),
    # A local destination has no multipart uploads (501, as MLflow answers): past the door.
    Cell("artifacts", "multipart create", "write", lambda d, t, ids: d.call(
        "POST", f"{PROXY.replace('/artifacts', '')}/mpu/create/{ids['artifacts']}", t,
        json={"path": f"{new_name('big')}.bin", "num_parts": 2}), passed=501),
    Cell("logged models", "search", "read", lambda d, t, ids: d.call(
        "POST", f"{API}/logged-models/search", t, json={"experiment_ids": [ids["experiment_id"]]})),
    Cell("logged models", "create", "write", lambda d, t, ids: d.call(
        "POST", f"{API}/logged-models", t,
        json={"experiment_id": ids["experiment_id"], "name": new_name("lm")})),
    Cell("registry", "search", "read", lambda d, t, ids: d.call(
        "GET", f"{API}/registered-models/search", t)),
    Cell("registry", "create", "write", lambda d, t, ids: d.call(
        "POST", f"{API}/registered-models/create", t, json={"name": new_name("rm")})),
    # The stock client sends no workspace header to the catalog.
    Cell("workspaces", "list", "catalog-read", lambda d, t, ids: d.call(
        "GET", CATALOG, t, workspace=None)),
    Cell("workspaces", "create", "catalog-write", lambda d, t, ids: d.call(
        "POST", CATALOG, t, workspace=None, json={"name": new_name("ws")})),
    Cell("keys", "list", "manage-read", lambda d, t, ids: d.call(
        "GET", KEYS, t)),
    Cell("keys", "create", "manage-write", lambda d, t, ids: d.call(
        "POST", KEYS, t, json={"principal": new_name("svc"), "role": "READ"})),
    Cell("audit", "read", "manage-read", lambda d, t, ids: d.call(
        "GET", AUDIT, t, params={"max_results": 5})),
    Cell("reaching", "init-script", "read", lambda d, t, ids: d.call(
        "GET", "/api/3.0/ferroflow/init-script", t)),
    Cell("token endpoint", "exchange", "token", _exchange),
    Cell("reaching", "tracking-uri", "token", lambda d, key, ids: token_request(
        d.server, path="/api/3.0/ferroflow/tracking-uri",
        **({"scope": TEAM} if key is None else {"scope": TEAM, "client_secret": key}))),
]
ROLES = ("READ", "EDIT", "MANAGE", "admin", NONE)


def expected_status(principal: str, kind: str) -> int:
    if principal == NONE:
        return 401  # token endpoint included: no client authentication (RFC 6749 §5.2)
    if kind == "token":
        return 200
    if kind == "catalog-write":
        return 201 if principal == "admin" else 403  # MLflow's catalog create is 201
    if kind.startswith("catalog"):
        # A member's list holds its own workspace only (as MLflow's basic-auth filters it).
        return 200
    if kind == "write" and principal == "READ":
        return 403
    if kind.startswith("manage") and principal in ("READ", "EDIT"):
        return 403
    if kind == "manage-write":
        return 201  # a new key is created
    return 200


ERROR_CODES = {401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED"}


def test_role_by_endpoint_family_matrix(deployment, seeded, tmp_path):
    """Every cell's status (and, for refusals, MLflow's error code), printed as a table."""
    rows, wrong = [], []
    for cell in MATRIX:
        row = []
        for principal in ROLES:
            credentials = deployment.keys if cell.kind == "token" else deployment.tokens
            resp = cell.send(deployment, credentials.get(principal), seeded)
            want = expected_status(principal, cell.kind)
            if want < 300 and cell.passed:
                want = cell.passed
            got = resp.status_code
            problem = got != want
            if not problem and got in ERROR_CODES:
                try:
                    problem = resp.json().get("error_code") != ERROR_CODES[got]
                except ValueError:
                    problem = True
            row.append(f"{got}" if not problem else f"**{got}** (want {want})")
            if problem:
                wrong.append(f"{principal} x {cell.family} {cell.action}: {describe(resp)}")
        rows.append(f"| {cell.family} | {cell.action} | " + " | ".join(row) + " |")
    table = "\n".join([
        f"Access matrix, {deployment.server.backend} (HTTP status; bold: not as expected)",
        "",
        "| family | endpoint | " + " | ".join(ROLES) + " |",
        "|---|---|" + "---|" * len(ROLES),
        *rows,
    ])
    out = tmp_path / f"access-matrix-{deployment.server.backend}.md"
    out.write_text(table + "\n")
    print(f"\n{table}\n(written to {out})")
    assert not wrong, "cells not as expected:\n" + "\n".join(wrong)


# --------------------------------------------------------------------------------------------
# 3. A token is bound to its workspace; the token endpoint's own refusals
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["header", "prefix", "header+prefix", "neither (default)"])
@pytest.mark.parametrize("principal", ["READ", "EDIT", "MANAGE"])
def test_a_team_a_token_is_refused_elsewhere(deployment, where, principal):
    workspace = {"header": OTHER_TEAM, "prefix": None, "header+prefix": OTHER_TEAM,
                 "neither (default)": None}[where]
    prefix = OTHER_TEAM if "prefix" in where else None
    token = deployment.tokens[principal]
    for method, path, kwargs in [
        ("POST", f"{API}/experiments/search", {"json": SEARCH}),
        ("POST", f"{API}/experiments/create", {"json": {"name": new_name("x")}}),
    ]:
        resp = deployment.call(method, path, token, workspace=workspace, prefix=prefix, **kwargs)
        message = assert_error(resp, 403, "PERMISSION_DENIED")
        assert TEAM in message, message


def test_the_token_endpoint(deployment):
    dep = deployment
    body = dep.exchange(dep.keys["READ"])
    assert body["token_type"] == "Bearer" and body["expires_in"] == 3600 and body["scope"] == TEAM
    assert body["tracking_uri"].endswith(f"/w/{TEAM}"), body
    header, claims, _ = jwt_parts(body["access_token"])
    assert header["typ"] == "at+jwt" and header["alg"] == "EdDSA"
    assert (claims["workspace"], claims["role"]) == (TEAM, "READ")
    assert claims["exp"] - claims["iat"] == 3600
    jwks = requests.get(f"{dep.server.url}/.well-known/jwks.json", timeout=30).json()
    assert header["kid"] in [k["kid"] for k in jwks["keys"]]
    assert all("d" not in k for k in jwks["keys"]), "the JWKS must not carry private parts"
    # JSON works as well as a form; the response is never cached.
    resp = token_request(dep.server, json_body=True, client_secret=dep.keys["EDIT"], scope=TEAM)
    assert ok(resp)["scope"] == TEAM and resp.headers.get("Cache-Control") == "no-store"
    dep.secrets.append(resp.json()["access_token"])

    key_id = dep.keys["READ"].split("_")[1]
    for secret in ("ffk_aaaaaaaaaaaa_" + "x" * 43, f"ffk_{key_id}_" + "y" * 43, "not-a-key"):
        message = assert_error(token_request(dep.server, client_secret=secret, scope=TEAM),
                               401, "UNAUTHENTICATED")
        assert message == "Invalid API key"
    assert_error(token_request(dep.server, client_secret=dep.keys["READ"], scope=OTHER_TEAM),
                 403, "PERMISSION_DENIED")
    assert_error(token_request(dep.server, client_secret=dep.keys["READ"], scope="no-such-team"),
                 404, "RESOURCE_DOES_NOT_EXIST")
    assert_error(token_request(dep.server, grant_type="password", client_secret=dep.keys["READ"]),
                 400, "INVALID_PARAMETER_VALUE")


def test_public_routes_and_the_missing_token_challenge(deployment):
    for path in ("/health", "/version", "/api/3.0/mlflow/server-info", "/.well-known/jwks.json"):
        assert deployment.call("GET", path).status_code == 200, path
    resp = deployment.call("POST", f"{API}/experiments/search", json=SEARCH)
    message = assert_error(resp, 401, "UNAUTHENTICATED")
    assert "/oauth/token" in message, message
    assert resp.headers.get("WWW-Authenticate") == 'Bearer realm="ferroflow"'
    # The token as the password of Basic, any username.
    basic = requests.post(f"{deployment.server.url}{API}/experiments/search", json=SEARCH,
                          auth=("anyone", deployment.tokens["READ"]), headers={HEADER: TEAM},
                          timeout=30)
    assert basic.status_code == 200, describe(basic)


# --------------------------------------------------------------------------------------------
# 4. A job that outlives its 5-second token
# --------------------------------------------------------------------------------------------

LONG_JOB_SCRIPT = """
import os, sys, time
from mlflow import MlflowClient

tracking_uri, experiment_name, pause = sys.argv[1], sys.argv[2], float(sys.argv[3])
print("READY", flush=True)
# The token arrives once the client is imported, so its 5 seconds are not spent importing.
os.environ["MLFLOW_TRACKING_TOKEN"] = sys.stdin.readline().strip()
client = MlflowClient(tracking_uri)
run = client.create_run(client.create_experiment(experiment_name))
client.log_metric(run.info.run_id, "loss", 1.0, step=0)
print("FIRST_OK", flush=True)
time.sleep(pause)
client.log_metric(run.info.run_id, "loss", 0.5, step=1)
print("SECOND_OK", flush=True)
"""


def test_a_job_outliving_its_token_fails_with_the_clear_401(deployment):
    """A second server on the same database (a replica sharing the signing key) with 5-second
    tokens; the client's second metric, 6 s after the token was issued, is refused."""
    dep = deployment
    destination = LocalDestination(dep.work_dir / "artifacts")
    destination.server_env = auth_server_env(FERROFLOW_TOKEN_TTL="5s")
    label = f"ferroflow-{dep.server.backend}-access-ttl5s"
    with running_server("ferroflow", dep.database, dep.work_dir, label, destination) as short:
        dep.servers.append(short)
        proc = subprocess.Popen(
            [sys.executable, "-c", LONG_JOB_SCRIPT, f"{short.url}/w/{TEAM}", new_name("long"), "6"],
            env=client_env(), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True,
        )
        assert proc.stdout.readline().strip() == "READY"
        issued = dep.exchange(dep.keys["EDIT"], server=short)
        assert issued["expires_in"] == 5
        proc.stdin.write(issued["access_token"] + "\n")
        proc.stdin.flush()
        out, err = proc.communicate(timeout=120)
        assert "FIRST_OK" in out, f"the first metric failed:\n{err[-3000:]}"
        assert proc.returncode != 0 and "SECOND_OK" not in out, out
        # What the user sees: the client's exception, carrying the server's words.
        assert EXPIRED_MESSAGE in err and "/oauth/token" in err, err[-3000:]
        assert "401" in err or "UNAUTHENTICATED" in err, err[-3000:]
        # On the wire: 401 with RFC 6750's invalid_token challenge.
        resp = dep.call("POST", f"{API}/experiments/search", issued["access_token"],
                        json=SEARCH, server=short)
        message = assert_refused_token(resp)
        assert message.startswith(EXPIRED_MESSAGE) and "POST /oauth/token" in message, message


# --------------------------------------------------------------------------------------------
# 5. Hostile tokens
# --------------------------------------------------------------------------------------------


def database_signing_key(database: Database, kid: str):
    """The server's Ed25519 signing key, read from the database as any database reader could
    (the documented cost of keeping the key there)."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    sql = "SELECT private_key_pem FROM ferroflow_signing_keys WHERE kid = "
    if database.backend == "sqlite":
        with sqlite3.connect(database.uri.removeprefix("sqlite:///")) as conn:
            (pem,) = conn.execute(sql + "?", (kid,)).fetchone()
    else:
        import psycopg2

        conn = psycopg2.connect(database.uri)
        try:
            with conn.cursor() as cur:
                cur.execute(sql + "%s", (kid,))
                (pem,) = cur.fetchone()
        finally:
            conn.close()
    der = base64.b64decode("".join(l for l in pem.splitlines() if not l.startswith("-----")))
    # PKCS#8 v2 (RFC 5958, with the public key attached), which `cryptography` refuses to
    # load: the seed is the 32 bytes of the inner OCTET STRING (04 20) in the outer (04 22).
    at = der.index(bytes([0x04, 0x22, 0x04, 0x20])) + 4
    return Ed25519PrivateKey.from_private_bytes(der[at:at + 32])


@dataclass
class Forge:
    """What a forger has: a real READ token of team-a (header, claims, signature), the
    public key from the JWKS, and the private key from the database (for `minted` cases)."""

    token: str
    header: dict
    claims: dict
    signature: str
    jwk: dict
    private: object
    other_token: str  # an EDIT token
    api_key: str  # the READ principal's key

    @property
    def escalated(self) -> dict:
        return {**self.claims, "role": "MANAGE", "admin": True}

    def resigned(self, header: dict, claims: dict) -> str:
        """The real token's signature under another header or claims."""
        return f"{unsigned(header, claims)}.{self.signature}"

    def hs256(self, secret: bytes) -> str:
        head = unsigned({"alg": "HS256", "typ": "at+jwt", "kid": self.header["kid"]},
                        self.escalated)
        return f"{head}.{b64url(hmac.new(secret, head.encode(), hashlib.sha256).digest())}"

    def public_pem(self) -> bytes:
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
        from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

        public = Ed25519PublicKey.from_public_bytes(unb64url(self.jwk["x"]))
        return public.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)

    def minted(self, header: dict | None = None, drop: str = "", **changes) -> str:
        """Signed with the server's own key: only what is changed is wrong."""
        claims = {k: v for k, v in {**self.claims, **changes}.items() if k != drop}
        head = unsigned(header or self.header, claims)
        return f"{head}.{b64url(self.private.sign(head.encode()))}"


def _in(seconds: int) -> int:
    return int(time.time()) + seconds


# Name -> a token built from what a forger has; each must be refused with a 401.
HOSTILE = {
    "alg none": lambda f: unsigned({**f.header, "alg": "none"}, f.escalated) + ".",
    "alg none, no signature part": lambda f: unsigned({"alg": "none"}, f.escalated),
    "HS256 keyed with the raw public key": lambda f: f.hs256(unb64url(f.jwk["x"])),
    "HS256 keyed with the JWK x": lambda f: f.hs256(f.jwk["x"].encode()),
    "HS256 keyed with the public key PEM": lambda f: f.hs256(f.public_pem()),
    "unknown kid": lambda f: f.resigned({**f.header, "kid": "00" * 8}, f.claims),
    "no kid": lambda f: f.resigned({"typ": "at+jwt", "alg": "EdDSA"}, f.claims),
    "tampered payload (READ -> MANAGE, admin)": lambda f: f.resigned(f.header, f.escalated),
    "tampered payload (another workspace)":
        lambda f: f.resigned(f.header, {**f.claims, "workspace": OTHER_TEAM}),
    "truncated signature": lambda f: f.token[:-10],
    "cut in half": lambda f: f.token[: len(f.token) // 2],
    "header and payload only": lambda f: f.token.rsplit(".", 1)[0],
    "another token's signature":
        lambda f: f.token.rsplit(".", 1)[0] + "." + f.other_token.rsplit(".", 1)[1],
    "garbage": lambda f: "garbage",
    "three dots of garbage": lambda f: "a.b.c",
    "not base64": lambda f: "!!!.???.###",
    "empty": lambda f: "",
    "6 KB": lambda f: f.resigned(f.header, {**f.claims, "pad": "x" * 6000}),
    "an API key instead of a token": lambda f: f.api_key,
    "minted: wrong iss": lambda f: f.minted(iss="someone-else"),
    "minted: wrong aud": lambda f: f.minted(aud="another-api"),
    "minted: nbf in an hour": lambda f: f.minted(nbf=_in(3600)),
    "minted: iat in an hour": lambda f: f.minted(iat=_in(3600)),
    "minted: typ JWT": lambda f: f.minted({**f.header, "typ": "JWT"}),
    "minted: no exp": lambda f: f.minted(drop="exp"),
    "minted: expired an hour ago": lambda f: f.minted(iat=_in(-7200), nbf=_in(-7200),
                                                      exp=_in(-3600)),
}


@pytest.fixture(scope="module")
def forge(deployment) -> Forge:
    token = deployment.tokens["READ"]
    header, claims, signature = jwt_parts(token)
    jwks = requests.get(f"{deployment.server.url}/.well-known/jwks.json", timeout=30).json()
    (jwk,) = [k for k in jwks["keys"] if k["kid"] == header["kid"]]
    private = database_signing_key(deployment.database, header["kid"])
    assert b64url(private.public_key().public_bytes_raw()) == jwk["x"], "not the JWKS key"
    return Forge(token, header, claims, signature, jwk, private,
                 deployment.tokens["EDIT"], deployment.keys["READ"])


def test_a_token_minted_with_the_database_key_passes(deployment, forge):
    """The control for the `minted:` cases: with the right claims it is accepted, so their
    refusals are the claims' doing, not the minting's."""
    token = forge.minted(jti=uuid.uuid4().hex)
    ok(deployment.call("POST", f"{API}/experiments/search", token, json=SEARCH))


@pytest.mark.parametrize("case", HOSTILE)
def test_hostile_tokens_are_refused(deployment, forge, case):
    """As Bearer and as the Basic password, on a write a READ token may not do (so an
    escalation that worked would show): 401 UNAUTHENTICATED JSON, never a 500."""
    token = HOSTILE[case](forge)
    target = f"{deployment.server.url}{API}/experiments/create"
    for auth in ("bearer", "basic"):
        headers = {HEADER: TEAM}
        if auth == "bearer":
            headers["Authorization"] = f"Bearer {token}"
        else:
            pair = base64.b64encode(f"x:{token}".encode()).decode()
            headers["Authorization"] = f"Basic {pair}"
        resp = requests.post(target, json={"name": new_name("hostile")}, headers=headers,
                             timeout=30)
        if case == "empty" and auth == "bearer":
            # `Bearer ` loses its trailing space on the wire: no token was sent at all, so
            # the plain challenge (without invalid_token) is right.
            assert_error(resp, 401, "UNAUTHENTICATED")
            continue
        message = assert_refused_token(resp)
        if case == "minted: expired an hour ago":
            assert message.startswith(EXPIRED_MESSAGE), message


def test_a_revoked_keys_tokens_stop_working(deployment):
    """Revoked with the CLI (by key, and by key id): the token is refused once the server has
    refreshed its revoked keys (every 15 s), and the key gets no new token at once."""
    dep = deployment
    key = dep.create_key("revokee", "--workspace", TEAM, "--role", "EDIT")
    token = dep.token(key)
    ok(dep.call("POST", f"{API}/experiments/search", token, json=SEARCH))
    ferroflow("key", "revoke", key, "--backend-store-uri", dep.database.uri)
    message = assert_error(token_request(dep.server, client_secret=key, scope=TEAM),
                           401, "UNAUTHENTICATED")
    assert "revoked" in message, message
    deadline = time.monotonic() + 20
    while True:
        resp = dep.call("POST", f"{API}/experiments/search", token, json=SEARCH)
        if resp.status_code != 200 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    message = assert_refused_token(resp)
    assert "revoked" in message, message

    other = dep.create_key("revokee", "--workspace", TEAM, "--role", "EDIT")
    ferroflow("key", "revoke", other.split("_")[1], "--backend-store-uri", dep.database.uri)
    assert_error(token_request(dep.server, client_secret=other, scope=TEAM), 401, "UNAUTHENTICATED")


def test_keys_of_a_deleted_principal_stop_working(deployment):
    """A key made over REST by a manager; the admin deletes its principal: no new token at once,
    and the token already issued is refused once the server has refreshed (every 15 s)."""
    dep = deployment
    name = new_name("leaver")
    made = dep.call("POST", KEYS, dep.tokens["MANAGE"], json={"principal": name, "role": "EDIT"})
    assert made.status_code == 201, describe(made)
    key = made.json()["key"]
    dep.secrets.append(key)
    token = dep.token(key)
    ok(dep.call("POST", f"{API}/experiments/search", token, json=SEARCH))
    ok(dep.call("DELETE", f"/api/3.0/ferroflow/principals/{name}", dep.tokens["admin"],
                workspace=None), 204)
    assert_error(token_request(dep.server, client_secret=key, scope=TEAM), 401, "UNAUTHENTICATED")
    deadline = time.monotonic() + 20
    while True:
        resp = dep.call("POST", f"{API}/experiments/search", token, json=SEARCH)
        if resp.status_code != 200 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert_refused_token(resp)


def test_writes_and_refusals_are_in_the_audit_log(deployment, seeded):
    """Each refusal (no token, a garbage token, READ writing, a token for another workspace)
    and a write, found by the request id the response carried, with principal and outcome."""
    dep = deployment
    create = {"name": new_name("audited")}
    sent = {
        "write": (dep.call("POST", f"{API}/experiments/create", dep.tokens["EDIT"], json=create),
                  "edit-user", 200),
        "no token": (dep.call("POST", f"{API}/runs/create", None,
                              json={"experiment_id": seeded["experiment_id"]}), None, 401),
        "garbage token": (dep.call("POST", f"{API}/experiments/search", "not.a.token",
                                   json=SEARCH), None, 401),
        "READ writing": (dep.call("POST", f"{API}/experiments/create", dep.tokens["READ"],
                                  json={"name": new_name("denied")}), "read-user", 403),
    }
    elsewhere = dep.call("POST", f"{API}/experiments/search", dep.tokens["READ"],
                         workspace=OTHER_TEAM, json=SEARCH)
    for what, (resp, _, status) in sent.items():
        assert resp.status_code == status, f"{what}: {describe(resp)}"
        assert resp.headers.get("x-request-id"), what
    assert elsewhere.status_code == 403, describe(elsewhere)
    wanted = {resp.headers["x-request-id"]: (what, principal, status)
              for what, (resp, principal, status) in sent.items()}
    deadline = time.monotonic() + 10
    while True:  # the writer flushes in the background
        events = ok(dep.call("GET", AUDIT, dep.tokens["MANAGE"],
                             params={"max_results": 200}))["events"]
        found = {e["request_id"]: e for e in events if e["request_id"] in wanted}
        if len(found) == len(wanted) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert set(found) == set(wanted), f"missing: {[wanted[r][0] for r in set(wanted) - set(found)]}"
    for request_id, (what, principal, status) in wanted.items():
        event = found[request_id]
        assert event["outcome"] == status, (what, event)
        assert event["workspace"] == TEAM, (what, event)
        if principal:
            assert event.get("principal") == principal, (what, event)
        assert event["action"].startswith("POST /api/2.0/mlflow/"), (what, event)
    # The refusal in the other workspace is that workspace's, and its managers' to read.
    other = ok(dep.call("GET", AUDIT, dep.tokens["admin"], workspace=OTHER_TEAM,
                        params={"max_results": 200}))["events"]
    assert any(e["request_id"] == elsewhere.headers["x-request-id"] for e in other)


# --------------------------------------------------------------------------------------------
# 6. Secrets never logged (last in the module: it reads what every test above left)
# --------------------------------------------------------------------------------------------


def test_no_key_or_token_is_ever_logged(deployment):
    assert len(deployment.secrets) > 10
    for srv in deployment.servers:
        log = srv.log_path.read_text(errors="replace")
        # Request logging was on, so a leak through it would show.
        assert "/oauth/token" in log, f"{srv.log_path} has no request lines: RUST_LOG ignored?"
        assert "ffk_" not in log, f"an API key is in {srv.log_path}"
        for secret in deployment.secrets:
            leaked = secret in log or secret.rsplit(".", 1)[-1] in log
            assert not leaked, f"a key or token ({secret[:12]}...) is in {srv.log_path}"


# --------------------------------------------------------------------------------------------
# 7. No auth on a non-loopback address needs saying so
# --------------------------------------------------------------------------------------------


def test_serving_0_0_0_0_without_auth_is_refused(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("FERROFLOW_")}
    cmd = [_ferroflow_bin(), "server", "--host", "0.0.0.0", "--port", str(_free_port()),
           "--backend-store-uri", f"sqlite:///{tmp_path / 'exposed.db'}",
           "--artifacts-destination", str(tmp_path / "artifacts")]
    try:
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=10)
    except subprocess.TimeoutExpired:
        pytest.fail("ferroflow served 0.0.0.0 without auth (still running after 10 s)")
    assert proc.returncode != 0
    said = proc.stdout + proc.stderr
    assert "--auth token" in said and "--insecure-no-auth" in said, said[-2000:]
