"""Starts, waits for and stops one server process on a free loopback port: the part the e2e
suite (tests/e2e/conftest.py) and the benchmark harness (benches/servers.py) share.

It owns the `ferroflow server` command line, the process group a server runs in (so stopping
it also ends any workers it forked, and nothing else), its log file and the wait for
`GET /health`. It knows nothing of pytest or of measurements: callers turn `Exited` and a
`False` from `wait_ready` into their own failure, and add their own servers (`mlflow server`,
FastTrackML, emulators) through `launch`.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Callable, Sequence

import requests

HOST = "127.0.0.1"


class Exited(RuntimeError):
    """The process ended before it answered."""

    def __init__(self, returncode: int):
        super().__init__(f"exited with code {returncode}")
        self.returncode = returncode


def free_port() -> int:
    """A port nothing listens on right now (the OS's pick for port 0)."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def ferroflow_command(binary: str | Path, port: int, backend_store_uri: str,
                      artifacts_destination: str, extra_args: Sequence[str] = ()) -> list[str]:
    """`ferroflow server` on HOST:port with a backend store and a proxied artifacts destination;
    `extra_args` go last (a variant's flags, such as `--enable-workspaces`)."""
    return [str(binary), "server", "--host", HOST, "--port", str(port),
            "--backend-store-uri", backend_store_uri,
            "--artifacts-destination", artifacts_destination, *extra_args]


def launch(cmd: list[str], log_path: Path, env: dict[str, str] | None = None,
           cwd: Path | None = None) -> subprocess.Popen:
    """Starts `cmd` with stdout and stderr appended to `log_path` (after a `$ cmd` line).

    A new session makes the process its own process group, so `stop_group` can end the
    workers it forks (MLflow's uvicorn children) and nothing else.
    """
    with open(log_path, "ab") as log:
        log.write(f"$ {' '.join(cmd)}\n".encode())
        log.flush()
        return subprocess.Popen(cmd, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)


def health_ok(resp: requests.Response) -> bool:
    """What ferroflow and MLflow answer on /health once they serve."""
    return resp.status_code == 200 and resp.text.strip() == "OK"


def answers(proc: subprocess.Popen, probe_url: str,
            ready: Callable[[requests.Response], bool] = health_ok) -> bool:
    """Whether a GET of `probe_url` satisfies `ready` now; raises `Exited` if the process is
    gone (then no answer will ever come)."""
    if proc.poll() is not None:
        raise Exited(proc.returncode)
    try:
        return ready(requests.get(probe_url, timeout=2))
    except requests.RequestException:
        return False


def wait_ready(proc: subprocess.Popen, probe_url: str, timeout: float,
               ready: Callable[[requests.Response], bool] = health_ok,
               interval: float = 0.1) -> bool:
    """Polls `answers` until it holds (True) or `timeout` seconds pass (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if answers(proc, probe_url, ready):
            return True
        time.sleep(interval)
    return False


def wait_for_group_exit(proc: subprocess.Popen, seconds: float) -> bool:
    """Whether the process group led by `proc` is gone within `seconds`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        proc.poll()  # reap the group leader so it does not linger as a zombie
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    return False


def stop_group(proc: subprocess.Popen, term_grace: float = 15, kill_grace: float = 10) -> bool:
    """SIGTERM to the process group, then SIGKILL if it is still there after `term_grace`
    seconds; whether it is gone. The whole group goes, so forked workers release the port
    and the database too."""
    for sig, grace in ((signal.SIGTERM, term_grace), (signal.SIGKILL, kill_grace)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        if wait_for_group_exit(proc, grace):
            return True
    return False


def log_tail(log_path: Path, lines: int = 60) -> str:
    """The last lines of a server's log, for a failure report."""
    try:
        text = log_path.read_text(errors="replace")
    except OSError as e:
        return f"(no log: {e})"
    return "\n".join(text.splitlines()[-lines:])
