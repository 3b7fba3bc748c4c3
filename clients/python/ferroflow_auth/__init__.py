"""ferroflow auth for the stock MLflow client: ``MLFLOW_TRACKING_AUTH=ferroflow``.

The API key in ``FERROFLOW_API_KEY`` is exchanged at ``<server>/oauth/token`` for a
short-lived access token, which every request then carries as ``Authorization: Bearer``.

How MLflow 3.17.2 uses this plugin, which shapes the design:

- ``mlflow.tracking.request_auth.registry`` instantiates every provider of the entry-point
  group ``mlflow.request_auth_provider`` once per process, at its first import, and only
  turns ``ImportError``/``AttributeError`` into a warning. So importing this module and
  building the provider must be cheap and must never raise, whatever the environment.
- ``mlflow.utils.rest_utils.http_request`` calls ``fetch_auth`` -> ``get_auth()`` on every
  request (artifact transfers included), and passes the result to ``requests`` as ``auth=``.
  MLflow's own retries (429, 5xx) resend the request prepared with the same header.
- So the token is cached per process here, refreshed ahead of expiry, and fetched lazily
  when ``requests`` prepares the request.
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
import time
from typing import NamedTuple
from urllib.parse import urlsplit, urlunsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

try:  # The documented base class; duck typing is all MLflow needs, so mlflow stays optional.
    from mlflow.tracking.request_auth.abstract_request_auth_provider import (
        RequestAuthProvider as _ProviderBase,
    )
except ImportError:  # pragma: no cover - mlflow not installed
    _ProviderBase = object

__version__ = "0.1.0"
__all__ = ["FerroflowAuthError", "FerroflowBearerAuth", "FerroflowRequestAuthProvider"]

API_KEY_ENV = "FERROFLOW_API_KEY"
# A workspace chosen by the tracking URI's path (`http://host/w/<ws>`), as the server routes it.
_WORKSPACE_SUFFIX = re.compile(r"^(?P<prefix>.*?)/w/(?P<workspace>[^/]+)/*$")
_EXCHANGE_TIMEOUT_SECONDS = 30


class FerroflowAuthError(Exception):
    """The API key could not be exchanged for a token. Never carries the key or a token."""


class _Token(NamedTuple):
    value: str
    refresh_at: float  # wall-clock seconds


class _Server(NamedTuple):
    root: str  # scheme://host[:port][/prefix], without credentials or /w/<ws>
    workspace: str | None


# Tokens by (server root, workspace, key digest): a process may switch tracking URI or workspace.
_tokens: dict[tuple[str, str | None, str], _Token] = {}
# One exchange at a time, so many threads needing a token at once cause a single exchange.
_lock = threading.Lock()


def _reset_lock_after_fork() -> None:
    # A fork copies the lock in whatever state another parent thread held it, with that
    # thread gone: the child gets a fresh one. The cached tokens stay: a bearer token is not
    # bound to a process, and forked workers (data loaders, pools) would otherwise each spend
    # an exchange from the key's rate limit.
    global _lock
    _lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_lock_after_fork)


def _refresh_margin(lifetime: float) -> float:
    """Seconds before expiry at which a token is replaced.

    A tenth of the lifetime but at least 10 s covers requests in flight (6 min for the 1-hour
    default). Capped at half the lifetime, so short tokens (5 s in tests) are still used for a
    while rather than exchanged on every request. The server truncates `iat` to whole seconds,
    so a token may die up to 1 s before `expires_in` says; half of a 5 s token leaves 1.5 s.
    """
    return min(max(10.0, lifetime / 10), lifetime / 2)


def _tracking_uri() -> str:
    # `mlflow.set_tracking_uri` also exports MLFLOW_TRACKING_URI, so the variable is usually
    # enough; `mlflow.get_tracking_uri` adds MLflow's default when it is unset.
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    if uri:
        return uri
    try:
        import mlflow
    except ImportError:  # pragma: no cover - mlflow not installed
        return ""
    return mlflow.get_tracking_uri() or ""


def _server(tracking_uri: str) -> _Server:
    """The server root and workspace named by a tracking URI.

    `/oauth/token` lives at the root: the URI without a `/w/<ws>` suffix. The workspace is that
    suffix, else `MLFLOW_WORKSPACE` (what the stock client sends as `X-MLFLOW-WORKSPACE`), else
    none, and the server picks its default.
    """
    parts = urlsplit(tracking_uri)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        # Only the scheme is shown: the URI may hold credentials.
        raise FerroflowAuthError(
            "MLFLOW_TRACKING_AUTH=ferroflow needs an http(s) tracking URI such as "
            f"http://host:5000/w/<workspace>; the tracking URI's scheme is '{parts.scheme}'"
        )
    path = parts.path.rstrip("/")
    workspace = os.environ.get("MLFLOW_WORKSPACE") or None
    if match := _WORKSPACE_SUFFIX.match(path):
        path, workspace = match["prefix"], match["workspace"]
    # Userinfo is dropped: the exchange authenticates with the key alone, and the root shows
    # up in error messages.
    netloc = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    if parts.port is not None:
        netloc = f"{netloc}:{parts.port}"
    return _Server(urlunsplit((parts.scheme, netloc, path, "", "")), workspace)


def _api_key() -> str:
    key = os.environ.get(API_KEY_ENV, "").strip()
    if not key:
        raise FerroflowAuthError(
            f"{API_KEY_ENV} is not set: MLFLOW_TRACKING_AUTH=ferroflow exchanges that API key "
            "for tokens (create one with `ferroflow key create`)"
        )
    return key


def _exchange(server: _Server, key: str) -> _Token:
    """One `POST /oauth/token` (RFC 6749 client credentials, form-encoded)."""
    url = f"{server.root}/oauth/token"
    form = {"grant_type": "client_credentials", "client_secret": key}
    if server.workspace:
        form["scope"] = server.workspace
    # 429 (the server's per-key limit) and brief outages are retried, honouring Retry-After,
    # as MLflow does for its own calls. A session per exchange: exchanges are rare, and a
    # shared pool would hand a forked child its parent's sockets.
    retry = Retry(
        total=3,
        status_forcelist=(429, 502, 503, 504),
        allowed_methods=None,
        backoff_factor=0.5,
        raise_on_status=False,
    )
    started = time.time()
    try:
        with requests.Session() as session:
            session.mount(url, HTTPAdapter(max_retries=retry))
            response = session.post(
                url,
                data=form,
                headers={"Accept": "application/json"},
                timeout=_EXCHANGE_TIMEOUT_SECONDS,
            )
    except requests.RequestException as exc:
        # requests' own text names only the URL, which holds no credentials.
        raise FerroflowAuthError(
            f"Could not reach {url} to exchange {API_KEY_ENV}: {exc}"
        ) from None
    try:
        body = response.json()
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    token, lifetime = body.get("access_token"), body.get("expires_in")
    if response.status_code != 200 or not isinstance(token, str) or not token:
        # The server's message says which: invalid, revoked or expired key, no role in the
        # workspace. Redacted anyway, in case a proxy echoes the request.
        message = str(body.get("message") or response.reason or "no message").replace(key, "***")
        where = f" for workspace '{server.workspace}'" if server.workspace else ""
        raise FerroflowAuthError(
            f"Exchanging {API_KEY_ENV}{where} at {url} failed (HTTP {response.status_code}): "
            f"{message}"
        )
    # RFC 6749 makes expires_in optional; without it, assume a short life and ask again soon.
    lifetime = float(lifetime) if isinstance(lifetime, (int, float)) and lifetime > 0 else 60.0
    # Timed from before the request, so the estimate errs early. Wall clock, as the server
    # checks `exp` by its own: the monotonic clock stops while a laptop sleeps.
    return _Token(token, started + lifetime - _refresh_margin(lifetime))


def _cache_key(server: _Server, key: str) -> tuple[str, str | None, str]:
    return (server.root, server.workspace, hashlib.sha256(key.encode()).hexdigest())


def _token(stale: str | None = None) -> str:
    """A valid access token for the current tracking URI and workspace, exchanged if needed.

    `stale` is a token the server just refused: replaced even if it looks fresh here.
    """
    server, key = _server(_tracking_uri()), _api_key()
    cache_key = _cache_key(server, key)
    cached = _tokens.get(cache_key)
    if cached and cached.value != stale and time.time() < cached.refresh_at:
        return cached.value
    with _lock:
        # Another thread may have refreshed it while this one waited for the lock.
        cached = _tokens.get(cache_key)
        if cached and cached.value != stale and time.time() < cached.refresh_at:
            return cached.value
        fresh = _exchange(server, key)
        _tokens[cache_key] = fresh
        return fresh.value


class FerroflowBearerAuth(requests.auth.AuthBase):
    """Sets `Authorization: Bearer <token>` on each request as `requests` prepares it."""

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {_token()}"
        request.register_hook("response", self._retry_refused_token)
        return request

    @staticmethod
    def _retry_refused_token(response: requests.Response, **kwargs) -> requests.Response:
        """Resends once with a new token if the server refused this one (RFC 6750
        `invalid_token`): a clock jump, a token outliving MLflow's retry backoff, or a server
        restarted with new signing keys. The refresh margin makes this rare."""
        request = response.request
        challenge = response.headers.get("WWW-Authenticate", "")
        if (
            response.status_code != 401
            or "invalid_token" not in challenge
            or getattr(request, "_ferroflow_retried", False)
            # A streamed body (an artifact file) has been consumed and cannot be resent.
            or not (request.body is None or isinstance(request.body, (bytes, str)))
        ):
            return response
        used = request.headers.get("Authorization", "").removeprefix("Bearer ")
        retry = request.copy()
        retry.headers["Authorization"] = f"Bearer {_token(stale=used)}"
        retry._ferroflow_retried = True
        response.content  # noqa: B018 - read the body so the connection can be reused
        response.close()
        resent = response.connection.send(retry, **kwargs)
        resent.history.append(response)
        resent.request = retry
        return resent


class FerroflowRequestAuthProvider(_ProviderBase):
    """MLflow's request-auth plugin, selected by `MLFLOW_TRACKING_AUTH=ferroflow`."""

    def get_name(self) -> str:
        return "ferroflow"

    def get_auth(self) -> FerroflowBearerAuth:
        # Called per request; all state lives in the module-level token cache.
        return FerroflowBearerAuth()
