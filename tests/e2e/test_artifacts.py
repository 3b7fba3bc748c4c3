"""Artifacts through the proxy: MLFLOW_API.md §2.6, §2.9 (`/get-artifact`), §5.3, §7, §8 items 7, 12, 13.

The suite runs once per destination kind: a local directory (on SQLite and PostgreSQL), S3
(moto's server) and Azure Blob (Azurite), the cloud kinds on SQLite only (the destination does not
depend on the backend). `server.destination` is the server's `--artifacts-destination` and lets
tests look at what was stored; runs' artifact URIs are `mlflow-artifacts:/<exp>/<run>/artifacts`,
so everything goes through the proxy endpoints.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import mlflow
import pytest
import requests

from conftest import (
    Database,
    REFERENCE_MODE,
    SERVER_KIND,
    S3Destination,
    Server,
    _free_port,
    _start_emulator,
    _stop_group,
    make_destination,
    only_ferroflow,
    running_server,
    unique_name,
)

PROXY = "/api/2.0/mlflow-artifacts/artifacts"

# (backend, destination kind): every destination once, the local one on both backends.
SETUPS = [("sqlite", "local"), ("postgres", "local"), ("sqlite", "s3"), ("sqlite", "azure")]


@pytest.fixture(scope="module", params=SETUPS, ids=[f"{b}-{d}" for b, d in SETUPS])
def server(request, tmp_path_factory):
    """This module's server: conftest's, over each destination kind."""
    backend, kind = request.param
    work_dir = tmp_path_factory.mktemp(f"{SERVER_KIND}-{backend}-{kind}")
    database = Database(backend, work_dir)
    destination = make_destination(kind, request, work_dir)
    try:
        with running_server(SERVER_KIND, database, work_dir, destination=destination) as srv:
            yield srv
    finally:
        database.drop()


def local_only(server):
    if server.destination.kind != "local":
        pytest.skip("about the local filesystem destination")


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def tree(root: Path) -> dict[str, str]:
    """Relative path -> sha256 of every file under `root`."""
    return {
        str(p.relative_to(root)): sha256(p) for p in sorted(root.rglob("*")) if p.is_file()
    }


def stored_tree(server, rel: str) -> dict[str, str]:
    """Relative path -> sha256 of what the server stored under `rel` in its destination."""
    return {k: hashlib.sha256(v).hexdigest() for k, v in server.destination.tree(rel).items()}


def run_root(run) -> str:
    """A run's artifact root relative to the destination."""
    prefix = "mlflow-artifacts:/"
    assert run.info.artifact_uri.startswith(prefix), run.info.artifact_uri
    return run.info.artifact_uri[len(prefix) :]


@pytest.fixture
def source_tree(tmp_path) -> Path:
    """A nested directory with text, binary and empty files."""
    root = tmp_path / "src"
    (root / "sub" / "deeper").mkdir(parents=True)
    (root / "a.txt").write_text("alpha\n")
    (root / "data.bin").write_bytes(os.urandom(70_000))
    (root / "sub" / "b.json").write_text(json.dumps({"b": [1, 2, 3]}))
    (root / "sub" / "deeper" / "empty.dat").write_bytes(b"")
    (root / "sub" / "deeper" / "ünï côde.txt").write_text("unicode name\n")
    return root


def test_log_and_download_artifacts_byte_for_byte(fluent, client, source_tree, tmp_path):
    mlflow.set_experiment(unique_name("art"))
    with mlflow.start_run() as run:
        mlflow.log_artifact(str(source_tree / "a.txt"))
        mlflow.log_artifact(str(source_tree / "data.bin"), artifact_path="x/y")
        mlflow.log_artifacts(str(source_tree), artifact_path="tree")
    run_id = run.info.run_id

    top = client.list_artifacts(run_id)
    assert [(f.path, f.is_dir, f.file_size) for f in top] == [
        ("a.txt", False, 6),
        ("tree", True, None),
        ("x", True, None),
    ]
    # With a path, MlflowClient.list_artifacts first checks for a logged model of that name
    # (logged-models/search, not served yet); the artifact URI form lists the same way.
    nested = mlflow.artifacts.list_artifacts(artifact_uri=f"{run.info.artifact_uri}/tree/sub")
    assert [(f.path, f.is_dir) for f in nested] == [("sub/b.json", False), ("sub/deeper", True)]

    # A single file, then whole directories, compared by hash with what was logged. Through the
    # run's mlflow-artifacts: URI: `runs:/` downloads first call logged-models/search (§5.3),
    # which ferroflow does not serve yet.
    uri = run.info.artifact_uri

    def download(rel: str, dst: str) -> Path:
        return Path(
            mlflow.artifacts.download_artifacts(artifact_uri=f"{uri}/{rel}", dst_path=str(tmp_path / dst))
        )

    assert sha256(download("x/y/data.bin", "one")) == sha256(source_tree / "data.bin")
    assert tree(download("tree", "whole")) == tree(source_tree)
    assert tree(download("tree/sub", "sub")) == tree(source_tree / "sub")

    # What the server stored is exactly what was sent, where MLflow's layout puts it.
    assert stored_tree(fluent, f"{run_root(run)}/tree") == tree(source_tree)


def test_log_text_dict_and_figure(fluent, tmp_path):
    mlflow.set_experiment(unique_name("art-text"))
    with mlflow.start_run() as run:
        mlflow.log_text("some notes\n", "notes/t.txt")
        mlflow.log_dict({"k": [1, 2], "n": None}, "conf/d.json")
        mlflow.log_dict({"k": "v"}, "conf/d.yaml")
    uri = run.info.artifact_uri
    assert mlflow.artifacts.load_text(f"{uri}/notes/t.txt") == "some notes\n"
    assert mlflow.artifacts.load_dict(f"{uri}/conf/d.json") == {"k": [1, 2], "n": None}
    assert mlflow.artifacts.load_text(f"{uri}/conf/d.yaml") == "k: v\n"


def test_log_figure(fluent):
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    mlflow.set_experiment(unique_name("art-fig"))
    with mlflow.start_run() as run:
        mlflow.log_figure(fig, "plots/fig.png")
    plt.close(fig)
    stored = fluent.destination.read(f"{run_root(run)}/plots/fig.png")
    assert stored.startswith(b"\x89PNG")
    resp = requests.get(f"{fluent.url}{PROXY}/{run_root(run)}/plots/fig.png")
    assert resp.status_code == 200
    assert resp.headers["Content-Type"] == "image/png"
    assert resp.content == stored


def test_large_artifact_streams_through(fluent, tmp_path):
    """~50 MB up and down; the server must not hold it in memory."""
    big = tmp_path / "big.bin"
    with open(big, "wb") as f:
        for _ in range(50):
            f.write(os.urandom(1 << 20))
    mlflow.set_experiment(unique_name("art-big"))
    rss_before = _peak_rss_mib(fluent)
    with mlflow.start_run() as run:
        mlflow.log_artifact(str(big), "blobs")
    got = mlflow.artifacts.download_artifacts(
        artifact_uri=f"{run.info.artifact_uri}/blobs/big.bin", dst_path=str(tmp_path / "dl")
    )
    assert sha256(Path(got)) == sha256(big)
    rss_after = _peak_rss_mib(fluent)
    if rss_before is not None and rss_after is not None:
        assert rss_after - rss_before < 45, f"peak RSS grew {rss_after - rss_before} MiB"


def _peak_rss_mib(server) -> int | None:
    """The server's peak resident memory, from /proc (ferroflow only: one process)."""
    if REFERENCE_MODE or server._proc is None:
        return None
    try:
        status = Path(f"/proc/{server._proc.pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) // 1024
    return None


def test_proxy_rest_shapes(server):
    base = f"{server.url}{PROXY}"
    root = unique_name("shapes")
    put = requests.put(f"{base}/{root}/d/a.txt", data=b"hello world", headers={"Content-Type": "application/x-anything"})
    assert put.status_code == 200
    requests.put(f"{base}/{root}/d/e/b.bin", data=b"\x00\x01").raise_for_status()

    listing = requests.get(base, params={"path": f"{root}/d"}).json()
    assert listing == {
        "files": [
            {"path": "a.txt", "is_dir": False, "file_size": 11},
            {"path": "e", "is_dir": True},
        ]
    }
    # A file or a missing path lists as {}.
    assert requests.get(base, params={"path": f"{root}/d/a.txt"}).json() == {}
    assert requests.get(base, params={"path": f"{root}/missing"}).json() == {}

    got = requests.get(f"{base}/{root}/d/a.txt")
    assert got.status_code == 200
    assert got.content == b"hello world"
    assert got.headers["Content-Type"].startswith("text/plain")
    assert got.headers["Content-Disposition"] == "attachment; filename=a.txt"
    assert got.headers["X-Content-Type-Options"] == "nosniff"

    ranged = requests.get(f"{base}/{root}/d/a.txt", headers={"Range": "bytes=6-"})
    # mlflow server ignores Range on cloud destinations (a full 200); ferroflow honours it.
    if not (REFERENCE_MODE and server.destination.kind != "local"):
        assert ranged.status_code == 206
        assert ranged.content == b"world"
        assert ranged.headers["Content-Range"] == "bytes 6-10/11"
        assert requests.get(f"{base}/{root}/d/a.txt", headers={"Range": "bytes=50-"}).status_code == 416

    # mlflow server on cloud destinations answers these with a 500 (S3, missing) or a 200
    # (Azure, a "directory"); ferroflow answers as on a local destination.
    if not (REFERENCE_MODE and server.destination.kind != "local"):
        missing = requests.get(f"{base}/{root}/d/nope.txt")
        assert missing.status_code == 404
        assert missing.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"
        assert requests.get(f"{base}/{root}/d").status_code == 400

    # The same service under /ajax-api.
    ajax = requests.get(f"{server.url}/ajax-api/2.0/mlflow-artifacts/artifacts/{root}/d/a.txt")
    assert ajax.content == b"hello world"

    assert requests.delete(f"{base}/{root}/d").status_code == 200
    assert requests.get(base, params={"path": f"{root}/d"}).json() == {}
    assert not server.destination.exists(f"{root}/d")


def test_multipart_upload_is_not_implemented_on_local_storage(server):
    local_only(server)
    resp = requests.post(
        f"{server.url}/api/2.0/mlflow-artifacts/mpu/create/1/run/artifacts",
        json={"path": "big.bin", "num_parts": 2},
    )
    assert resp.status_code == 501
    assert resp.json()["error_code"] == "NOT_IMPLEMENTED"
    info = requests.get(f"{server.url}/api/3.0/mlflow/server-info").json()
    assert serving_flag(info) in (True, None)
    assert info.get("multipart_uploads_enabled", False) is False


def test_run_artifact_listing_and_ui_download(server, client, experiment_id):
    run_id = client.create_run(experiment_id).info.run_id
    client.log_text(run_id, "t\n", "dir/t.txt")
    client.log_text(run_id, "top\n", "top.txt")
    uri = client.get_run(run_id).info.artifact_uri

    listing = requests.get(
        f"{server.url}/api/2.0/mlflow/artifacts/list", params={"run_id": run_id, "path": "dir"}
    ).json()
    assert listing == {
        "root_uri": uri,
        "files": [{"path": "dir/t.txt", "is_dir": False, "file_size": 2}],
    }
    top = requests.get(f"{server.url}/api/2.0/mlflow/artifacts/list", params={"run_id": run_id}).json()
    assert [(f["path"], f["is_dir"]) for f in top["files"]] == [("dir", True), ("top.txt", False)]

    ui = requests.get(f"{server.url}/get-artifact", params={"run_uuid": run_id, "path": "dir/t.txt"})
    assert ui.status_code == 200
    assert ui.content == b"t\n"
    assert ui.headers["Content-Disposition"] == "attachment; filename=t.txt"


@only_ferroflow
def test_user_supplied_locations_are_not_read_by_the_server(server, client, tmp_path):
    """A run whose root is a server path or a cloud URL is not listed or served by the server."""
    local_only(server)
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "passwd").write_text("root:x:0:0\n")
    for location in (str(secret), f"file://{secret}", "s3://bucket/prefix", "http://169.254.169.254/x"):
        exp = client.create_experiment(unique_name("loc"), artifact_location=location)
        run_id = client.create_run(exp).info.run_id
        listing = requests.get(f"{server.url}/api/2.0/mlflow/artifacts/list", params={"run_id": run_id})
        assert listing.status_code == 400, (location, listing.text)
        assert listing.json()["error_code"] == "INVALID_PARAMETER_VALUE"
        ui = requests.get(f"{server.url}/get-artifact", params={"run_id": run_id, "path": "passwd"})
        assert ui.status_code == 400, (location, ui.text)
        assert "root:x" not in ui.text


# ------------------------------------------------------------------------------------------
# Hostile paths and bodies
# ------------------------------------------------------------------------------------------


def raw_request(server, method: str, path: str, body: bytes | None = None):
    """Send `path` byte for byte: requests/urllib3 would normalise `..` away."""
    netloc = urlsplit(server.url).netloc
    conn = http.client.HTTPConnection(netloc, timeout=30)
    try:
        conn.putrequest(method, path, skip_accept_encoding=True)
        conn.putheader("Content-Type", "application/octet-stream")
        conn.putheader("Content-Length", str(len(body or b"")))
        conn.endheaders(body)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def files_outside(root: Path, name: str) -> list[Path]:
    """Files called `name` in the test session's directory but not inside the destination
    `root`, or directly in /tmp or /etc (where the hostile paths below aim)."""
    session_dir = root.parent.parent
    found = [p for p in session_dir.rglob(name) if root not in p.parents]
    return found + [p for p in (Path("/tmp") / name, Path("/etc") / name) if p.exists()]


def serving_flag(info):
    """server-info's `artifact_serving_enabled`; MLflow 3.17.2 does not send it
    (3.18 does), so the reference may answer None. ferroflow always sends it."""
    flag = info.get("artifact_serving_enabled")
    assert flag is not None or REFERENCE_MODE, info
    return flag


HOSTILE_PUTS = [
    "{root}/../../{marker}",
    "1/../../../../tmp/{marker}",
    "%2e%2e/%2e%2e/{marker}",
    "%2E%2E%2F%2E%2E%2F{marker}",
    "%252e%252e/%252e%252e/{marker}",
    "/tmp/{marker}",
    "%2Ftmp%2F{marker}",
    "a%00/../../{marker}",
]


@pytest.mark.parametrize("template", HOSTILE_PUTS)
def test_hostile_upload_paths_are_refused(server, template):
    marker = unique_name("pwned")
    path = template.format(root="1", marker=marker)
    status, body = raw_request(server, "PUT", f"{PROXY}/{path}", b"owned")
    assert 400 <= status < 500, (path, status, body)
    assert files_outside(server.artifacts_dir, marker) == []


@only_ferroflow
@pytest.mark.parametrize(
    "path",
    ["a\\..\\..\\{marker}", "..%5C..%5C{marker}", "a%5Cb/{marker}", "a/{marker}%00.txt", "a//{marker}", "C:/{marker}"]
)
def test_stricter_than_mlflow_paths_are_refused(server, path):
    """Backslashes, NUL, empty segments and drive letters: MLflow leaves these to the OS."""
    marker = unique_name("pwned")
    status, body = raw_request(server, "PUT", f"{PROXY}/{path.format(marker=marker)}", b"x")
    assert status == 400, (path, status, body)
    assert json.loads(body)["error_code"] == "INVALID_PARAMETER_VALUE"
    assert not list(server.artifacts_dir.rglob(f"*{marker}*"))


@pytest.mark.parametrize(
    "method,path",
    [
        ("GET", PROXY + "/../../../../etc/passwd"),
        ("GET", PROXY + "/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd"),
        ("GET", PROXY + "//etc/passwd"),
        ("GET", PROXY + "?path=../../../../etc"),
        ("GET", PROXY + "?path=%2Fetc"),
        ("DELETE", PROXY + "/1/../../../victim"),
        ("GET", "/get-artifact?run_id=x&path=../../../../etc/passwd"),
    ],
)
def test_hostile_reads_and_deletes_are_refused(server, method, path):
    status, body = raw_request(server, method, path)
    assert 400 <= status < 500, (method, path, status, body)
    assert b"root:" not in body


@only_ferroflow
def test_symlinks_in_the_destination_are_not_followed(server, tmp_path):
    local_only(server)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("secret")
    link = server.artifacts_dir / unique_name("link")
    link.symlink_to(outside, target_is_directory=True)
    try:
        base = f"{server.url}{PROXY}/{link.name}"
        for resp in (
            requests.get(f"{base}/secret.txt"),
            requests.put(f"{base}/new.txt", data=b"x"),
            requests.delete(f"{base}/secret.txt"),
            requests.get(f"{server.url}{PROXY}", params={"path": link.name}),
        ):
            assert resp.status_code == 400, resp.text
            assert resp.json()["error_code"] == "INVALID_PARAMETER_VALUE"
        assert sorted(p.name for p in outside.iterdir()) == ["secret.txt"]
    finally:
        link.unlink()


@only_ferroflow
def test_interrupted_upload_leaves_nothing_under_the_final_name(server):
    """A client that hangs up mid-body: no partial object is visible."""
    name = f"{unique_name('cut')}/partial.bin"
    netloc = urlsplit(server.url).netloc
    conn = http.client.HTTPConnection(netloc, timeout=30)
    conn.putrequest("PUT", f"{PROXY}/{name}")
    conn.putheader("Content-Length", str(20 << 20))
    conn.endheaders()
    conn.send(os.urandom(8 << 20))  # 8 of the promised 20 MiB, then hang up
    conn.close()
    listing = requests.get(f"{server.url}{PROXY}", params={"path": name.split("/")[0]}).json()
    assert listing == {}
    assert requests.get(f"{server.url}{PROXY}/{name}").status_code == 404


# ------------------------------------------------------------------------------------------
# Server modes (one extra server each, SQLite only)
# ------------------------------------------------------------------------------------------


class ModeServer(Server):
    def __init__(self, extra: list[str], *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.extra = extra

    def _command(self):
        cmd, env = super()._command()
        if self.kind == "mlflow" and "--artifacts-only" in self.extra:
            # MLflow refuses a backend store in this mode; ferroflow ignores it.
            at = cmd.index("--backend-store-uri")
            del cmd[at : at + 2]
        return [*cmd, *self.extra], env


@pytest.fixture(params=["--no-serve-artifacts", "--artifacts-only"])
def mode_server(request, tmp_path, server):
    if server.backend != "sqlite" or server.destination.kind != "local":
        pytest.skip("server modes do not depend on the backend or destination")
    srv = ModeServer([request.param], SERVER_KIND, Database("sqlite", tmp_path), tmp_path, f"{SERVER_KIND}-mode")
    srv.start()
    try:
        yield request.param, srv
    finally:
        srv.stop()


def test_server_modes(mode_server):
    mode, srv = mode_server
    proxy = requests.get(f"{srv.url}{PROXY}", params={"path": "1"})
    tracking = requests.get(f"{srv.url}/api/2.0/mlflow/experiments/get", params={"experiment_id": "0"})
    info = requests.get(f"{srv.url}/api/3.0/mlflow/server-info").json()
    if mode == "--no-serve-artifacts":
        assert proxy.status_code == 503
        assert "--no-serve-artifacts" in proxy.text
        assert tracking.status_code == 200
        assert serving_flag(info) in (False, None)
    else:
        assert proxy.status_code == 200
        assert tracking.status_code == 503
        assert "--artifacts-only" in tracking.text
        assert serving_flag(info) in (True, None)


# ------------------------------------------------------------------------------------------
# Multipart uploads (mpu/create, parts, mpu/complete, mpu/abort)
# ------------------------------------------------------------------------------------------

MPU = "/api/2.0/mlflow-artifacts/mpu"


def multipart_expected(server) -> bool:
    """ferroflow does multipart exactly on cloud destinations; so does MLflow (S3 and Azure)."""
    return server.destination.kind != "local"


def test_server_info_advertises_multipart_when_it_works(server):
    info = requests.get(f"{server.url}/api/3.0/mlflow/server-info").json()
    assert info["multipart_uploads_enabled"] is multipart_expected(server)
    # The keys MLflow 3.17.2 sends.
    for key in ("store_type", "workspaces_enabled", "trace_archival_enabled", "multipart_downloads_enabled"):
        assert key in info, key


def test_600_mb_file_through_multipart(fluent, tmp_path, monkeypatch):
    """The client's proxy multipart path (10 MiB parts) where the destination has one; on a
    local destination the client gets 501 and falls back to one PUT. Hash-checked both ways."""
    if fluent.destination.kind == "azure" or fluent.backend != "sqlite":
        pytest.skip("S3 and local on SQLite cover the 600 MB case; Azure's is the smaller test")
    monkeypatch.setenv("MLFLOW_ENABLE_PROXY_MULTIPART_UPLOAD", "true")
    big = tmp_path / "big600.bin"
    block = os.urandom(1 << 20)
    with open(big, "wb") as f:
        for i in range(600):
            f.write(block[i:] + block[:i])  # distinct blocks, cheap to make
    mlflow.set_experiment(unique_name("art-mpu"))
    rss_before = _peak_rss_mib(fluent)
    with mlflow.start_run() as run:
        mlflow.log_artifact(str(big), "blobs")
    rss_after = _peak_rss_mib(fluent)
    rel = f"{run_root(run)}/blobs/big600.bin"
    if fluent.destination.kind == "s3":
        # An S3 multipart object's ETag is "<md5 of part md5s>-<parts>": 60 parts of 10 MiB.
        assert fluent.destination.etag(rel).strip('"').endswith("-60")
        assert fluent.destination.multipart_uploads() == []
    got = mlflow.artifacts.download_artifacts(
        artifact_uri=f"{run.info.artifact_uri}/blobs/big600.bin", dst_path=str(tmp_path / "dl")
    )
    assert sha256(Path(got)) == sha256(big)
    big.unlink()
    Path(got).unlink()
    if rss_before is not None and rss_after is not None:
        # Parts are held whole while they go to the store, 64 MiB of them at most.
        assert rss_after - rss_before < 100, f"peak RSS grew {rss_after - rss_before} MiB"


def test_multipart_protocol_by_hand(server):
    """create -> parts (to the URLs create returned) -> complete, in Azure and S3 alike; the
    object appears only on complete."""
    if not multipart_expected(server):
        pytest.skip("multipart needs a cloud destination")
    root = unique_name("mpu")
    part_size = 5 << 20  # S3's minimum for all parts but the last
    parts_data = [os.urandom(part_size), os.urandom(part_size), b"tail"]
    create = requests.post(
        f"{server.url}{MPU}/create/{root}/d", json={"path": "/local/dir/f.bin", "num_parts": 3}
    )
    assert create.status_code == 200, create.text
    body = create.json()
    creds = body["credentials"]
    assert [c["part_number"] for c in creds] == [1, 2, 3]
    parts = []
    for cred, data in reversed(list(zip(creds, parts_data))):  # any order
        resp = requests.put(cred["url"], data=data, headers=cred.get("headers") or {})
        assert resp.ok, resp.text  # Azure (the reference's presigned URLs) answers 201
        parts.append({"part_number": cred["part_number"], "etag": resp.headers.get("ETag", ""), "url": cred["url"]})
    assert not server.destination.exists(f"{root}/d/f.bin")
    done = requests.post(
        f"{server.url}{MPU}/complete/{root}/d",
        json={"path": "f.bin", "upload_id": body.get("upload_id"), "parts": sorted(parts, key=lambda p: p["part_number"])},
    )
    assert done.status_code == 200, done.text
    assert server.destination.read(f"{root}/d/f.bin") == b"".join(parts_data)


def test_aborted_multipart_upload_leaves_nothing(server):
    if not multipart_expected(server):
        pytest.skip("multipart needs a cloud destination")
    root = unique_name("mpu-abort")
    body = requests.post(f"{server.url}{MPU}/create/{root}", json={"path": "x.bin", "num_parts": 1}).json()
    requests.put(body["credentials"][0]["url"], data=b"partial").raise_for_status()
    abort = requests.post(f"{server.url}{MPU}/abort/{root}", json={"path": "x.bin", "upload_id": body.get("upload_id")})
    assert abort.status_code == 200, abort.text
    assert not server.destination.exists(f"{root}/x.bin")
    missing = requests.get(f"{server.url}{PROXY}/{root}/x.bin")
    # mlflow server answers a missing S3 object with a 500; ferroflow with MLflow's 404.
    assert missing.status_code == 404 or (REFERENCE_MODE and missing.status_code == 500)
    if server.destination.kind == "s3":
        assert all(u["Key"].find(root) < 0 for u in server.destination.multipart_uploads())


@only_ferroflow
def test_part_urls_follow_the_request(server):
    """Absolute URLs back at the server as the client reached it: /ajax-api, a reverse proxy's
    X-Forwarded-Proto/Host/Prefix, and file names that need encoding."""
    if not multipart_expected(server):
        pytest.skip("multipart needs a cloud destination")
    root = unique_name("mpu-url")

    def first_url(prefix: str, headers=None, name="a b.bin") -> str:
        resp = requests.post(
            f"{server.url}{prefix}/2.0/mlflow-artifacts/mpu/create/{root}",
            json={"path": name, "num_parts": 1},
            headers=headers or {},
        )
        assert resp.status_code == 200, resp.text
        return resp.json()["credentials"][0]["url"]

    url = first_url("/api")
    assert url.startswith(f"{server.url}/api/2.0/mlflow-artifacts/mpu/part/{root}/a%20b.bin?upload_id="), url
    assert url.endswith("&part_number=1")
    assert first_url("/ajax-api").startswith(f"{server.url}/ajax-api/2.0/mlflow-artifacts/mpu/part/")
    proxied = first_url(
        "/api",
        {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "mlflow.example.com", "X-Forwarded-Prefix": "/tracking"},
    )
    assert proxied.startswith("https://mlflow.example.com/tracking/api/2.0/mlflow-artifacts/mpu/part/"), proxied


@only_ferroflow
def test_hostile_multipart_requests_get_mlflow_errors(server):
    if not multipart_expected(server):
        pytest.skip("multipart needs a cloud destination")
    root = unique_name("mpu-hostile")

    def check(resp, status, code):
        assert resp.status_code == status, (resp.status_code, resp.text)
        assert resp.json()["error_code"] == code, resp.text

    # Path escapes in the URL or in the body's file name.
    for path, name in [("..%2F..%2Fetc", "x"), (f"{root}", "../../x"), (f"{root}", ".."), ("%2e%2e", "x")]:
        status, body = raw_request(
            server, "POST", f"{MPU}/create/{path}", json.dumps({"path": name, "num_parts": 1}).encode()
        )
        assert status == 400, (path, name, status, body)
    status, body = raw_request(server, "PUT", f"{MPU}/part/{root}/../../x?upload_id=u&part_number=1", b"x")
    assert 400 <= status < 500, (status, body)
    for num_parts in (0, -1, 10_001, "many"):
        check(requests.post(f"{server.url}{MPU}/create/{root}", json={"path": "f", "num_parts": num_parts}), 400, "INVALID_PARAMETER_VALUE")

    body = requests.post(f"{server.url}{MPU}/create/{root}", json={"path": "f.bin", "num_parts": 2}).json()
    url = body["credentials"][0]["url"]
    base, _, _ = url.partition("?")
    upload_id = body.get("upload_id") or ""
    for bad in ("0", "-1", "10001", "x"):
        check(requests.put(f"{base}?upload_id={upload_id}&part_number={bad}", data=b"x"), 400, "INVALID_PARAMETER_VALUE")
    check(requests.put(f"{base}?part_number=1", data=b"x"), 400, "INVALID_PARAMETER_VALUE")
    complete = f"{server.url}{MPU}/complete/{root}"
    for parts in ([], [{"part_number": 2, "etag": "e"}], [{"part_number": 1, "etag": "e"}] * 2):
        check(requests.post(complete, json={"path": "f.bin", "upload_id": upload_id, "parts": parts}), 400, "INVALID_PARAMETER_VALUE")
    if server.destination.kind == "s3":
        # An upload id the store does not know (Azure block blobs have none to check). Parts
        # and complete for one are not checked here: moto answers them with a 500 where S3
        # says 404 NoSuchUpload (which ferroflow maps to RESOURCE_DOES_NOT_EXIST).
        check(requests.post(f"{server.url}{MPU}/abort/{root}", json={"path": "f.bin", "upload_id": "nope"}), 404, "RESOURCE_DOES_NOT_EXIST")
    assert not server.destination.exists(f"{root}/f.bin")


# ------------------------------------------------------------------------------------------
# Artifact locations: --default-artifact-root and user-supplied artifact_location (§7)
# ------------------------------------------------------------------------------------------


class RootServer(Server):
    """A server with `--default-artifact-root`, which may name the server itself ({url})."""

    def __init__(self, root: str, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.root = root

    def _command(self):
        cmd, env = super()._command()
        return [*cmd, "--default-artifact-root", self.root.format(url=self.url)], env


@pytest.fixture
def sqlite_local(server):
    if server.backend != "sqlite" or server.destination.kind != "local":
        pytest.skip("artifact roots do not depend on the backend or destination")


def test_default_artifact_root_local_path(sqlite_local, tmp_path):
    root = tmp_path / "roots"
    srv = RootServer(str(root), SERVER_KIND, Database("sqlite", tmp_path), tmp_path, f"{SERVER_KIND}-root")
    srv.start()
    try:
        exp = srv.client.create_experiment(unique_name("root"))
        assert srv.client.get_experiment(exp).artifact_location == f"{root}/{exp}"
        run = srv.client.create_run(exp)
        assert run.info.artifact_uri == f"{root}/{exp}/{run.info.run_id}/artifacts"
        # The client writes such locations itself; the server does not serve them.
        srv.client.log_text(run.info.run_id, "direct\n", "d.txt")
        assert (root / exp / run.info.run_id / "artifacts" / "d.txt").read_text() == "direct\n"
        assert not list(srv.artifacts_dir.rglob("d.txt"))
    finally:
        srv.stop()


def test_default_artifact_root_proxied_http_url(sqlite_local, tmp_path):
    """An http(s) root at the proxy route: the client uploads through the proxy and the server
    lists and serves those runs from its destination (MLflow's
    `_is_servable_proxied_run_artifact_root`)."""
    srv = RootServer(
        "{url}/api/2.0/mlflow-artifacts/artifacts/proxied",
        SERVER_KIND,
        Database("sqlite", tmp_path),
        tmp_path,
        f"{SERVER_KIND}-httproot",
    )
    srv.start()
    try:
        exp = srv.client.create_experiment(unique_name("httproot"))
        run_id = srv.client.create_run(exp).info.run_id
        uri = srv.client.get_run(run_id).info.artifact_uri
        assert uri == f"{srv.url}/api/2.0/mlflow-artifacts/artifacts/proxied/{exp}/{run_id}/artifacts"
        srv.client.log_text(run_id, "via proxy\n", "p/t.txt")
        stored = srv.artifacts_dir / "proxied" / exp / run_id / "artifacts" / "p" / "t.txt"
        assert stored.read_text() == "via proxy\n"
        listing = requests.get(
            f"{srv.url}/api/2.0/mlflow/artifacts/list", params={"run_id": run_id, "path": "p"}
        ).json()
        assert listing["files"] == [{"path": "p/t.txt", "is_dir": False, "file_size": 10}]
        ui = requests.get(f"{srv.url}/get-artifact", params={"run_id": run_id, "path": "p/t.txt"})
        assert ui.content == b"via proxy\n"
    finally:
        srv.stop()


@only_ferroflow
def test_artifact_locations_outside_the_servers_roots_are_refused(
    sqlite_local, tmp_path, monkeypatch
):
    """By default a client may point an experiment only under the server's own roots: a
    shared experiment cannot send everyone's uploads to the server's files, a metadata
    address, a loopback service or another bucket."""
    monkeypatch.setenv("FERROFLOW_ALLOWED_ARTIFACT_LOCATIONS", "")
    with running_server(SERVER_KIND, Database("sqlite", tmp_path), tmp_path, "policy") as srv:
        for hostile in (
            "file:///etc",
            "/etc",
            "http://169.254.169.254/latest/meta-data",
            "http://127.0.0.1:6379",
            "s3://someone-elses-bucket/x",
            "mlflow-artifacts://evil.example.com/x",
        ):
            with pytest.raises(mlflow.exceptions.MlflowException) as refused:
                srv.client.create_experiment(unique_name("policy"), artifact_location=hostile)
            assert refused.value.error_code == "INVALID_PARAMETER_VALUE"
            assert "--allowed-artifact-locations" in refused.value.message
            assert hostile not in refused.value.message
        inside = srv.client.create_experiment(
            unique_name("inside"), artifact_location="mlflow-artifacts:/team-a"
        )
        run_id = srv.client.create_run(inside).info.run_id
        srv.client.log_text(run_id, "kept\n", "k.txt")
        assert srv.client.download_artifacts(run_id, "k.txt", str(tmp_path))


def test_user_supplied_artifact_locations_are_stored_as_given(sqlite_local, client, tmp_path):
    for location in ("s3://bucket/prefix", f"{tmp_path}/mine", "mlflow-artifacts:/custom"):
        exp = client.create_experiment(unique_name("given"), artifact_location=location)
        assert client.get_experiment(exp).artifact_location == location
        run = client.create_run(exp)
        assert run.info.artifact_uri == f"{location}/{run.info.run_id}/artifacts"


@only_ferroflow
def test_a_blob_store_outage_fails_only_artifact_calls(sqlite_local, tmp_path):
    """With the S3 store down, artifact calls answer 503 TEMPORARILY_UNAVAILABLE within seconds
    (the client retries those) and readiness says so; tracking goes on; once the store is back,
    uploads work again without a restart. A moto of its own: the shared one stays up."""
    port = _free_port()
    endpoint = f"http://127.0.0.1:{port}"

    def start_moto():
        cmd = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
        proc = _start_emulator("moto", cmd, f"{endpoint}/moto-api/", tmp_path / "moto.log",
                               lambda r: r.ok)
        destination.s3.create_bucket(Bucket="outage")  # moto keeps nothing across restarts
        return proc

    destination = S3Destination(endpoint, "outage", "root")
    moto = start_moto()
    try:
        with running_server(SERVER_KIND, Database("sqlite", tmp_path), tmp_path, "outage",
                            destination=destination) as srv:
            exp = srv.client.create_experiment(unique_name("outage"))
            run_id = srv.client.create_run(exp).info.run_id
            url = f"{srv.url}{PROXY}/{exp}/{run_id}/artifacts/a.txt"
            assert requests.put(url, data=b"before").status_code == 200

            _stop_group(moto)
            started = time.monotonic()
            during = requests.put(url, data=b"during", timeout=120)
            assert during.status_code == 503, during.text
            assert during.json()["error_code"] == "TEMPORARILY_UNAVAILABLE"
            assert "Retry-After" in during.headers
            assert time.monotonic() - started < 60
            assert requests.get(f"{srv.url}/ready").status_code == 503
            srv.client.log_metric(run_id, "still", 1.0)
            assert srv.client.get_run(run_id).data.metrics == {"still": 1.0}

            moto = start_moto()
            assert requests.put(url, data=b"after").status_code == 200
            assert requests.get(url).content == b"after"
            assert requests.get(f"{srv.url}/ready").status_code == 200
    finally:
        _stop_group(moto)
