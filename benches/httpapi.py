"""HTTP helpers for seeding and setup: keep-alive sessions, one API call (JSON in and out,
retried on 5xx), and the thread loops that run calls in parallel. Measurements do not go
through here: the load drivers (drivers.py) time their own requests."""

from __future__ import annotations

import json
import threading
import time
from typing import TYPE_CHECKING, Callable

import requests

from harness import API, HTTP_TIMEOUT, JSON_HEADERS

if TYPE_CHECKING:
    from servers import Server


def new_session(headers: dict[str, str] | None = None) -> requests.Session:
    """A keep-alive session sending JSON, plus `headers` (a server's workspace header)."""
    s = requests.Session()
    s.headers.update(JSON_HEADERS)
    s.headers.update(headers or {})
    return s


class ApiError(Exception):
    def __init__(self, status: int, body: str):
        super().__init__(f"HTTP {status}: {body[:200]}")
        self.status = status


def call(server: Server, method: str, path: str, body=None, session=None, retries: int = 8):
    """One API call for seeding/setup: JSON in, JSON out, retried on 5xx (SQLite 'locked').
    Sends the server's headers (its workspace) whatever the session, `parallel`'s included."""
    session = session or server.sessions[0]
    data = json.dumps(body) if body is not None else None
    for attempt in range(retries + 1):
        try:
            r = session.request(method, server.base + API + path, data=data,
                                headers=server.headers, timeout=HTTP_TIMEOUT)
        except requests.ConnectionError:
            if attempt == retries:
                raise
            time.sleep(0.1 * 2 ** attempt)
            continue
        if r.status_code < 300:
            return r.json() if r.content else {}
        if r.status_code < 500 or attempt == retries:
            raise ApiError(r.status_code, r.text)
        time.sleep(0.05 * 2 ** attempt)


def in_parallel(fns: list[Callable[[], None]]) -> None:
    """Runs the functions on a thread each; re-raises the first error."""
    errors = []

    def run(fn):
        try:
            fn()
        except Exception as err:  # noqa: BLE001 - surfaced below
            errors.append(err)

    threads = [threading.Thread(target=run, args=(fn,)) for fn in fns]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


def parallel(n_items: int, fn: Callable[[requests.Session, int], None], threads: int = 8) -> None:
    """fn(session, i) for i in range(n_items), on `threads` threads; re-raises the first error."""
    lock, next_i, errors = threading.Lock(), [0], []
    sessions = [new_session() for _ in range(threads)]

    def worker(s):
        while not errors:
            with lock:
                i = next_i[0]
                next_i[0] += 1
            if i >= n_items:
                return
            try:
                fn(s, i)
            except Exception as err:  # noqa: BLE001 - surfaced below
                errors.append(err)

    ts = [threading.Thread(target=worker, args=(s,)) for s in sessions]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    for s in sessions:
        s.close()
    if errors:
        raise errors[0]
