"""--ferroflow-token: the `ferroflow` server runs with `--auth token`, and every request to it
carries `Authorization: Bearer <token>` (Server.headers: its sessions, `call`, the wrk scripts).
Right after the server starts, an admin API key is made with the server's own binary
(`ferroflow key create ... --admin`, which prints only the key) on the server's database, and
exchanged at POST /oauth/token for a token (scoped to --ferroflow-workspace when given). A check
then proves the door is shut without the header and open with it.

Neither the key nor the token is printed, logged or stored: the key lives in a local variable,
the token in the server's headers, and wrk reads it from its environment, not from the script."""

from __future__ import annotations

import subprocess
from typing import TYPE_CHECKING

import requests

from harness import API, HTTP_TIMEOUT

if TYPE_CHECKING:
    from servers import Server

AUTH_HEADER = "Authorization"
TOKEN_PATH = "/oauth/token"
PRINCIPAL = "bench"
# wrk scripts read the header's value from here (drivers.py), so it is never written to disk.
WRK_AUTH_ENV = "FF_BENCH_AUTHORIZATION"


def auth_token_on(args: tuple[str, ...]) -> bool:
    """Whether `ferroflow server` flags hold `--auth token` (or `--auth=token`)."""
    pairs = zip(args, args[1:])
    return "--auth=token" in args or any(a == "--auth" and b == "token" for a, b in pairs)


def create_admin_key(server: Server) -> str:
    """`<binary> key create --backend-store-uri URI --principal bench --admin`: the key, which
    the command prints alone on stdout. Errors show its stderr, never its stdout."""
    cmd = [str(server.build.binary), "key", "create", "--backend-store-uri", server.store_uri(),
           "--principal", PRINCIPAL, "--admin"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120,
                         stdin=subprocess.DEVNULL, cwd=server.dir)
    key = out.stdout.strip()
    if out.returncode != 0 or not key or len(key.split()) != 1:
        raise RuntimeError(f"{server.name}: `{server.build.binary.name} key create --admin` "
                           f"failed (exit {out.returncode}): {out.stderr.strip()[-500:]}")
    return key


def exchange(server: Server, key: str, scope: str = "default") -> tuple[str, int]:
    """POST /oauth/token (client credentials, form-encoded): the token and its lifetime (s)."""
    r = requests.post(server.base + TOKEN_PATH, timeout=HTTP_TIMEOUT,
                      data={"grant_type": "client_credentials", "client_secret": key,
                            "scope": scope})
    try:
        body = r.json() if r.status_code == 200 else {}
    except ValueError:
        body = {}
    token = body.get("access_token")
    if not token:
        hint = " (start it with --ferroflow-args='--auth token')" if r.status_code == 501 else ""
        raise RuntimeError(f"{server.name}: POST {TOKEN_PATH} (scope {scope!r}) answered "
                           f"HTTP {r.status_code}{hint}: {r.text[:300]}")
    return token, int(body.get("expires_in", 0))


def check_auth(server: Server) -> str:
    """experiments/search answers 401 without a token and 200 with the server's headers.
    Raises if not; returns a log line (which names no secret)."""
    url = server.base + API + "/experiments/search"
    bare = {k: v for k, v in server.headers.items() if k != AUTH_HEADER}
    without = requests.post(url, json={"max_results": 1}, headers=bare, timeout=HTTP_TIMEOUT)
    with_token = requests.post(url, json={"max_results": 1}, headers=server.headers,
                               timeout=HTTP_TIMEOUT)
    if without.status_code != 401 or with_token.status_code != 200:
        raise RuntimeError(f"{server.name}: the token does not open the door: without it "
                           f"HTTP {without.status_code} (want 401), with it HTTP "
                           f"{with_token.status_code} (want 200): {with_token.text[:300]}")
    return f"{server.name}: 401 without the token, 200 with it"
