"""Shared fixtures for the end-to-end suite driven by the real `mlflow` Python client.

The suite is the contract ferroflow must satisfy. Every assertion is first checked against the
real `mlflow server` (reference mode), so a failure against ferroflow means ferroflow behaves
differently from MLflow there. The few assertions deliberately stricter than MLflow are marked
`only_ferroflow`.

Environment:
  FERROFLOW_E2E_SERVER       `ferroflow` (default) or `mlflow` (reference mode: the real server).
  FERROFLOW_BIN              ferroflow binary (default <repo>/target/debug/ferroflow).
  FERROFLOW_E2E_MLFLOW_BIN   `mlflow` CLI for the reference (default: next to this Python).
  FERROFLOW_TEST_PG_URL      PostgreSQL server URL without a database
                             (default postgresql://postgres@127.0.0.1:5432).
  FERROFLOW_E2E_STARTUP_TIMEOUT  seconds to wait for /health (default 30 for ferroflow,
                             120 for the reference, whose cold start takes ~20 s on 2 cores).
  FERROFLOW_E2E_CROSS_SELFTEST=1  run test_cross_compat.py in reference mode with mlflow on
                             both sides (checks that test itself).

Run: .venv/bin/python -m pytest tests/e2e [-k sqlite|postgres]
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
# The server launcher shared with the benchmark harness (benches/servers.py).
sys.path.insert(0, str(REPO_ROOT / "tests" / "support"))
import ferroflow_process  # noqa: E402
SERVER_KIND = os.environ.get("FERROFLOW_E2E_SERVER", "ferroflow").strip().lower()
if SERVER_KIND not in ("ferroflow", "mlflow"):
    raise pytest.UsageError(
        f"FERROFLOW_E2E_SERVER must be 'ferroflow' or 'mlflow', not {SERVER_KIND!r}"
    )
REFERENCE_MODE = SERVER_KIND == "mlflow"
BACKENDS = ("sqlite", "postgres")
PG_BASE_URL = os.environ.get(
    "FERROFLOW_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432"
).rstrip("/")

# Client settings, set before any test talks to a server:
# - no retries: a 5xx must fail the test at once instead of backing off for minutes;
# - no telemetry or progress bars: no outside traffic, quieter logs.
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "120")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

# What MLflow returns for +/-Infinity metric values (it clamps them to the largest double).
MAX_DOUBLE = 1.7976931348623157e308

only_ferroflow = pytest.mark.skipif(
    REFERENCE_MODE, reason="deliberately stricter than MLflow: checked against ferroflow only"
)


def unique_name(prefix: str) -> str:
    """An experiment (or other) name no other test uses."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


@contextlib.contextmanager
def raises_mlflow_error(error_code: str):
    """Expect an MlflowException carrying `error_code` (the client's view of the error envelope)."""
    from mlflow.exceptions import MlflowException

    with pytest.raises(MlflowException) as excinfo:
        yield excinfo
    assert excinfo.value.error_code == error_code, f"expected {error_code}, got: {excinfo.value}"


# --------------------------------------------------------------------------------------------
# Backend stores
# --------------------------------------------------------------------------------------------


class Database:
    """A fresh, empty backend store: a SQLite file, or a PostgreSQL database `ff_e2e_<hex>`."""

    def __init__(self, backend: str, tmp_dir: Path):
        self.backend = backend
        if backend == "sqlite":
            path = tmp_dir / "tracking.db"
            self.uri = f"sqlite:///{path}"
            # SQLAlchemy reads the same URI.
            self.mlflow_uri = self.uri
        elif backend == "postgres":
            self.name = f"ff_e2e_{uuid.uuid4().hex[:16]}"
            _pg_admin(f'CREATE DATABASE "{self.name}"')
            self.uri = f"{PG_BASE_URL}/{self.name}"
            # SQLAlchemy 2.1 maps plain `postgresql://` to psycopg 3; MLflow's documented driver
            # (and the one in requirements.txt) is psycopg2, so name it for the reference.
            self.mlflow_uri = self.uri.replace("postgresql://", "postgresql+psycopg2://", 1)
        else:
            raise ValueError(backend)

    def drop(self) -> None:
        if self.backend == "postgres":
            assert self.name.startswith("ff_e2e_")  # only ever drop our own databases
            _pg_admin(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


def _pg_admin(sql: str) -> None:
    import psycopg2

    parts = urlsplit(PG_BASE_URL)
    maintenance_url = urlunsplit(parts._replace(path="/postgres"))
    try:
        conn = psycopg2.connect(maintenance_url, connect_timeout=10)
    except psycopg2.OperationalError as e:
        pytest.fail(
            f"PostgreSQL at {PG_BASE_URL} (FERROFLOW_TEST_PG_URL) is unreachable: {e}",
            pytrace=False,
        )
    try:
        conn.autocommit = True  # CREATE/DROP DATABASE cannot run in a transaction
        with conn.cursor() as cur:
            cur.execute(sql)
    finally:
        conn.close()


# --------------------------------------------------------------------------------------------
# Server processes
# --------------------------------------------------------------------------------------------

# Servers that were alive during the current test; their log tails go into failure reports.
_SERVERS_IN_CURRENT_TEST: list["Server"] = []
_LIVE_SERVERS: list["Server"] = []


# Test files import it under this name.
_free_port = ferroflow_process.free_port


def _mlflow_bin() -> str:
    explicit = os.environ.get("FERROFLOW_E2E_MLFLOW_BIN")
    if explicit:
        return explicit
    beside_python = Path(sys.executable).parent / "mlflow"
    if beside_python.exists():
        return str(beside_python)
    return str(REPO_ROOT / ".venv" / "bin" / "mlflow")


def _ferroflow_bin() -> str:
    return os.environ.get("FERROFLOW_BIN", str(REPO_ROOT / "target" / "debug" / "ferroflow"))


class Server:
    """One tracking server process (ferroflow or the MLflow reference) on a free port."""

    def __init__(
        self,
        kind: str,
        database: Database,
        work_dir: Path,
        label: str = "",
        destination: "Destination | None" = None,
    ):
        self.kind = kind
        self.database = database
        self.backend = database.backend
        self.destination = destination or LocalDestination(work_dir / "artifacts")
        # The local destination's directory (where the server's own disk is inspected).
        self.artifacts_dir = work_dir / "artifacts"
        self.artifacts_dir.mkdir(parents=True, exist_ok=True)
        self.label = label or f"{kind}-{self.backend}-{self.destination.kind}"
        self.log_path = work_dir / f"{self.label}.log"
        self.port = 0
        self.url = ""
        self._proc: subprocess.Popen | None = None
        self._client = None

    def _command(self) -> tuple[list[str], dict[str, str]]:
        env = dict(os.environ)
        env.update(self.destination.server_env)
        if self.kind == "ferroflow":
            binary = _ferroflow_bin()
            if not Path(binary).exists():
                pytest.fail(
                    f"ferroflow binary not found at {binary}: run `cargo build` first, set "
                    "FERROFLOW_BIN, or use FERROFLOW_E2E_SERVER=mlflow for the reference",
                    pytrace=False,
                )
            env.setdefault("RUST_BACKTRACE", "1")
            # The shared contract checks `mlflow server`'s behaviour, which stores any
            # artifact_location; ferroflow's default policy has tests of its own.
            env.setdefault("FERROFLOW_ALLOWED_ARTIFACT_LOCATIONS", "*")
            cmd = ferroflow_process.ferroflow_command(
                binary, self.port, self.database.uri, self.destination.uri
            )
            return cmd, env
        # The background job runner (a huey pool of ~50 threads) plays no part in tracking.
        env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"
        listen = ["--host", ferroflow_process.HOST, "--port", str(self.port)]
        artifacts = ["--artifacts-destination", self.destination.uri]
        backend = ["--backend-store-uri", self.database.mlflow_uri]
        return [_mlflow_bin(), "server", *listen, *backend, *artifacts, "--workers", "1"], env

    def start(self) -> "Server":
        self.port = ferroflow_process.free_port()
        self.url = f"http://{ferroflow_process.HOST}:{self.port}"
        cmd, env = self._command()
        default_timeout = 30 if self.kind == "ferroflow" else 120
        timeout = float(os.environ.get("FERROFLOW_E2E_STARTUP_TIMEOUT", default_timeout))
        self._proc = ferroflow_process.launch(cmd, self.log_path, env=env)
        _LIVE_SERVERS.append(self)
        _SERVERS_IN_CURRENT_TEST.append(self)
        try:
            ready = ferroflow_process.wait_ready(self._proc, f"{self.url}/health", timeout)
        except ferroflow_process.Exited as e:
            self._fail_start(f"exited with code {e.returncode} before it was ready")
        if not ready:
            self._fail_start(f"did not answer GET /health with OK within {timeout:.0f} s")
        return self

    def _fail_start(self, why: str):
        tail = self.log_tail()
        self.stop()
        pytest.fail(
            f"{self.label} server {why}.\n--- log tail ({self.log_path}) ---\n{tail}", pytrace=False
        )

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if self in _LIVE_SERVERS:
            _LIVE_SERVERS.remove(self)
        if proc is not None:
            ferroflow_process.stop_group(proc)

    @property
    def client(self):
        from mlflow import MlflowClient

        if self._client is None:
            self._client = MlflowClient(tracking_uri=self.url, registry_uri=self.url)
        return self._client

    def log_tail(self, lines: int = 60) -> str:
        return ferroflow_process.log_tail(self.log_path, lines)

    def __repr__(self) -> str:
        return f"<Server {self.label} {self.url}>"


@contextlib.contextmanager
def running_server(
    kind: str, database: Database, work_dir: Path, label: str = "", destination=None
):
    server = Server(kind, database, work_dir, label, destination).start()
    try:
        yield server
    finally:
        server.stop()


# --------------------------------------------------------------------------------------------
# Artifact destinations: a local directory, S3 (moto server mode), Azure Blob (Azurite)
# --------------------------------------------------------------------------------------------


class Destination:
    """Where the server under test stores proxied artifacts, and a way for tests to look
    at what it stored there (paths relative to the destination)."""

    kind = "?"
    uri = ""
    server_env: dict[str, str] = {}

    def tree(self, rel: str) -> dict[str, bytes]:
        """Path relative to `rel` -> content, for every object under `rel`."""
        raise NotImplementedError

    def read(self, rel: str) -> bytes:
        return self.tree(rel.rsplit("/", 1)[0])[rel.rsplit("/", 1)[1]]

    def exists(self, rel: str) -> bool:
        """Whether anything (a file, or any file under it) is stored at `rel`."""
        return bool(self.tree(rel)) or self._is_file(rel)

    def _is_file(self, rel: str) -> bool:
        parent, _, name = rel.rpartition("/")
        return name in self.tree(parent)


class LocalDestination(Destination):
    kind = "local"

    def __init__(self, root: Path):
        self.root = root
        self.uri = str(root)
        self.server_env = {}

    def tree(self, rel: str) -> dict[str, bytes]:
        base = self.root / rel
        if not base.is_dir():
            return {}
        return {
            str(p.relative_to(base)): p.read_bytes()
            for p in sorted(base.rglob("*"))
            if p.is_file()
        }


def _start_emulator(name: str, cmd: list[str], url: str, log_path: Path, ready) -> subprocess.Popen:
    proc = ferroflow_process.launch(cmd, log_path)
    try:
        up = ferroflow_process.wait_ready(proc, url, 60, ready, interval=0.2)
    except ferroflow_process.Exited as e:
        pytest.fail(f"{name} exited with {e.returncode}: {log_path.read_text()[-2000:]}", pytrace=False)
    if up:
        return proc
    _stop_group(proc)
    pytest.fail(f"{name} did not start within 60 s: {log_path.read_text()[-2000:]}", pytrace=False)


def _stop_group(proc: subprocess.Popen) -> None:
    ferroflow_process.stop_group(proc, term_grace=10, kill_grace=5)


class S3Destination(Destination):
    """A bucket on moto's S3 server; credentials and endpoint in AWS's variables (and
    MLflow's MLFLOW_S3_ENDPOINT_URL for the reference server)."""

    kind = "s3"

    def __init__(self, endpoint: str, bucket: str, prefix: str):
        import boto3

        self.bucket = bucket
        self.prefix = prefix
        self.uri = f"s3://{bucket}/{prefix}"
        self.server_env = {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ENDPOINT_URL": endpoint,
            "MLFLOW_S3_ENDPOINT_URL": endpoint,
        }
        self.s3 = boto3.client(
            "s3",
            endpoint_url=endpoint,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            region_name="us-east-1",
        )

    def _key(self, rel: str) -> str:
        return f"{self.prefix}/{rel}".rstrip("/")

    def tree(self, rel: str) -> dict[str, bytes]:
        base = self._key(rel) + "/"
        out = {}
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=base):
            for obj in page.get("Contents", []):
                body = self.s3.get_object(Bucket=self.bucket, Key=obj["Key"])["Body"].read()
                out[obj["Key"][len(base) :]] = body
        return dict(sorted(out.items()))

    def _is_file(self, rel: str) -> bool:
        resp = self.s3.list_objects_v2(Bucket=self.bucket, Prefix=self._key(rel))
        return any(o["Key"] == self._key(rel) for o in resp.get("Contents", []))

    def etag(self, rel: str) -> str:
        return self.s3.head_object(Bucket=self.bucket, Key=self._key(rel))["ETag"]

    def multipart_uploads(self) -> list:
        return self.s3.list_multipart_uploads(Bucket=self.bucket).get("Uploads", [])


# Azurite's well-known development account (public, documented by Microsoft).
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)


class AzureDestination(Destination):
    """A container on Azurite, reached through AZURE_STORAGE_CONNECTION_STRING and named
    in the `wasbs://container@account.blob.core.windows.net/prefix` form MLflow takes."""

    kind = "azure"

    def __init__(self, blob_endpoint: str, container: str, prefix: str):
        from azure.storage.blob import BlobServiceClient

        self.prefix = prefix
        self.uri = f"wasbs://{container}@{AZURITE_ACCOUNT}.blob.core.windows.net/{prefix}"
        conn = (
            f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};"
            f"AccountKey={AZURITE_KEY};BlobEndpoint={blob_endpoint};"
        )
        self.server_env = {"AZURE_STORAGE_CONNECTION_STRING": conn}
        self.container = BlobServiceClient.from_connection_string(conn).get_container_client(container)

    def tree(self, rel: str) -> dict[str, bytes]:
        base = f"{self.prefix}/{rel}".rstrip("/") + "/"
        return {
            b.name[len(base) :]: self.container.download_blob(b.name).readall()
            for b in sorted(self.container.list_blobs(name_starts_with=base), key=lambda b: b.name)
        }

    def _is_file(self, rel: str) -> bool:
        return self.container.get_blob_client(f"{self.prefix}/{rel}").exists()


@pytest.fixture(scope="session")
def moto_endpoint(tmp_path_factory):
    """moto's S3 server on a free loopback port, for the session."""
    port = _free_port()
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    cmd = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    proc = _start_emulator("moto", cmd, f"http://127.0.0.1:{port}/moto-api/", log, lambda r: r.ok)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        _stop_group(proc)


AZURITE_BIN = REPO_ROOT / "tests" / "e2e" / "node" / "node_modules" / ".bin" / "azurite-blob"


@pytest.fixture(scope="session")
def azurite_endpoint(tmp_path_factory):
    """Azurite's blob service on a free loopback port (installed by scripts/setup-node.sh)."""
    if not AZURITE_BIN.exists():
        pytest.fail(f"{AZURITE_BIN} is missing: run scripts/setup-node.sh", pytrace=False)
    port = _free_port()
    work = tmp_path_factory.mktemp("azurite")
    cmd = [
        str(AZURITE_BIN),
        "--blobHost", "127.0.0.1",
        "--blobPort", str(port),
        "--location", str(work / "data"),
        "--skipApiVersionCheck",
        "--loose",
        "--silent",
    ]
    # Any HTTP answer (an auth error for an anonymous GET) means it is up.
    proc = _start_emulator(
        "azurite", cmd, f"http://127.0.0.1:{port}/{AZURITE_ACCOUNT}?comp=list", work / "azurite.log",
        lambda r: r.status_code < 500,
    )
    try:
        yield f"http://127.0.0.1:{port}/{AZURITE_ACCOUNT}"
    finally:
        _stop_group(proc)


def make_destination(kind: str, request, work_dir: Path) -> Destination:
    """A fresh destination of `kind` (a new bucket or container for cloud kinds)."""
    name = f"ff-{uuid.uuid4().hex[:12]}"
    if kind == "local":
        return LocalDestination(work_dir / "artifacts")
    if kind == "s3":
        dest = S3Destination(request.getfixturevalue("moto_endpoint"), name, "mlartifacts")
        dest.s3.create_bucket(Bucket=name)
        return dest
    if kind == "azure":
        dest = AzureDestination(request.getfixturevalue("azurite_endpoint"), name, "mlartifacts")
        dest.container.create_container()
        return dest
    raise ValueError(kind)


# --------------------------------------------------------------------------------------------
# Fixtures
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="session", params=BACKENDS, ids=BACKENDS)
def server(request, tmp_path_factory):
    """The server under test (ferroflow, or the MLflow reference), one per backend per session.

    Tests share it, so each one works in its own uniquely named experiment.
    """
    backend = request.param
    work_dir = tmp_path_factory.mktemp(f"{SERVER_KIND}-{backend}")
    database = Database(backend, work_dir)
    try:
        with running_server(SERVER_KIND, database, work_dir) as srv:
            yield srv
    finally:
        database.drop()


@pytest.fixture
def client(server):
    return server.client


@pytest.fixture
def experiment_id(client):
    """A fresh experiment for one test."""
    return client.create_experiment(unique_name("e2e"))


def _reset_fluent_state() -> None:
    import mlflow
    import mlflow.tracking.fluent as fluent_module
    from mlflow.environment_variables import MLFLOW_EXPERIMENT_ID, MLFLOW_EXPERIMENT_NAME

    while mlflow.active_run() is not None:
        try:
            mlflow.end_run()
        except Exception:  # the server may be why the test failed: just forget the runs
            fluent_module._active_run_stack.set([])
    fluent_module._active_experiment_id = None
    MLFLOW_EXPERIMENT_ID.unset()
    MLFLOW_EXPERIMENT_NAME.unset()


@pytest.fixture
def fluent(server):
    """The fluent API (`mlflow.*`) pointed at the server, with no active run or experiment."""
    import mlflow

    _reset_fluent_state()
    mlflow.set_tracking_uri(server.url)
    yield server
    _reset_fluent_state()


# --------------------------------------------------------------------------------------------
# Server log tails in failure reports
# --------------------------------------------------------------------------------------------


def pytest_runtest_setup(item):
    _SERVERS_IN_CURRENT_TEST[:] = list(_LIVE_SERVERS)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        for srv in _SERVERS_IN_CURRENT_TEST:
            report.sections.append(
                (f"{srv.label} server log tail ({srv.log_path})", srv.log_tail())
            )
