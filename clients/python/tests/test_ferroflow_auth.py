"""ferroflow_auth against a stub token endpoint (http.server in a thread); no ferroflow needed."""

import json
import os
import select
import signal
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

import pytest
import requests

import ferroflow_auth
from ferroflow_auth import FerroflowAuthError, FerroflowBearerAuth, _server

KEY = "ffk_abcdefghijkl_s3cr3t-SECRET-part"


class Stub:
    """`POST .../oauth/token` issuing tok-1, tok-2, ...; `GET /api/...` checks the token."""

    def __init__(self):
        self.lock = threading.Lock()
        self.exchanges = []  # (path, content type, form) per exchange
        self.issued_at = {}  # token -> wall time issued
        self.lifetime = 3600
        self.delay = 0.0
        self.refusal = None  # (status, message) answered instead of a token
        self.busy = 0  # 429s to answer before issuing
        self.refused_tokens = set()  # tokens the API answers 401 invalid_token for
        self.api_calls = []  # Authorization header per API call

        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def reply(self, status, body, headers=()):
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in headers:
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
                form = {k: v[0] for k, v in parse_qs(body).items()}
                time.sleep(stub.delay)
                with stub.lock:
                    stub.exchanges.append((self.path, self.headers.get("Content-Type"), form))
                    if stub.busy:
                        stub.busy -= 1
                        return self.reply(429, {"error_code": "REQUEST_LIMIT_EXCEEDED",
                                                "message": "slow down"}, [("Retry-After", "0")])
                    if stub.refusal:
                        status, message = stub.refusal
                        return self.reply(status, {"error_code": "UNAUTHENTICATED",
                                                   "message": message})
                    token = f"tok-{len(stub.issued_at) + 1}"
                    stub.issued_at[token] = time.time()
                self.reply(200, {"access_token": token, "token_type": "Bearer",
                                 "expires_in": stub.lifetime, "scope": form.get("scope")},
                           [("Cache-Control", "no-store")])

            def do_GET(self):
                header = self.headers.get("Authorization", "")
                with stub.lock:
                    stub.api_calls.append(header)
                if header.removeprefix("Bearer ") in stub.refused_tokens:
                    return self.reply(401, {"error_code": "UNAUTHENTICATED",
                                            "message": "The access token expired"},
                                      [("WWW-Authenticate", 'Bearer error="invalid_token"')])
                self.reply(200, {"ok": True})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()


@pytest.fixture
def stub(monkeypatch):
    server = Stub()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"{server.url}/w/team-a")
    monkeypatch.setenv("FERROFLOW_API_KEY", KEY)
    monkeypatch.delenv("MLFLOW_WORKSPACE", raising=False)
    ferroflow_auth._tokens.clear()
    yield server
    server.server.shutdown()
    server.server.server_close()
    ferroflow_auth._tokens.clear()


def bearer():
    """The Authorization header the plugin puts on a request."""
    request = requests.Request("GET", "http://example.invalid/").prepare()
    return FerroflowBearerAuth()(request).headers["Authorization"]


def test_the_key_and_workspace_are_sent_form_encoded_to_the_root(stub):
    assert bearer() == "Bearer tok-1"
    [(path, content_type, form)] = stub.exchanges
    assert path == "/oauth/token"
    assert content_type == "application/x-www-form-urlencoded"
    assert form == {"grant_type": "client_credentials", "client_secret": KEY, "scope": "team-a"}


def test_workspace_from_mlflow_workspace_when_the_uri_names_none(stub, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", stub.url + "/")
    monkeypatch.setenv("MLFLOW_WORKSPACE", "team-b")
    bearer()
    assert stub.exchanges[-1][2]["scope"] == "team-b"


def test_the_uri_workspace_wins_over_mlflow_workspace(stub, monkeypatch):
    monkeypatch.setenv("MLFLOW_WORKSPACE", "team-b")
    bearer()
    assert stub.exchanges[-1][2]["scope"] == "team-a"


def test_no_workspace_leaves_scope_out(stub, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", stub.url)
    bearer()
    assert "scope" not in stub.exchanges[-1][2]


@pytest.mark.parametrize(
    "uri, root, workspace",
    [
        ("http://h:5000", "http://h:5000", None),
        ("http://h:5000/", "http://h:5000", None),
        ("http://h:5000/w/team-a", "http://h:5000", "team-a"),
        ("http://h:5000/w/team-a/", "http://h:5000", "team-a"),
        ("https://h/mlflow/w/team-a", "https://h/mlflow", "team-a"),
        ("https://h/mlflow/", "https://h/mlflow", None),
        ("https://h/w/x/w/team-a", "https://h/w/x", "team-a"),
        ("http://user:pw@H:5000/w/team-a", "http://h:5000", "team-a"),
        ("http://[::1]:5000/w/team-a", "http://[::1]:5000", "team-a"),
    ],
)
def test_server_root_and_workspace_from_the_tracking_uri(uri, root, workspace, monkeypatch):
    monkeypatch.delenv("MLFLOW_WORKSPACE", raising=False)
    assert _server(uri) == (root, workspace)


def test_a_non_http_tracking_uri_is_a_clear_error_that_hides_the_uri():
    with pytest.raises(FerroflowAuthError, match="http\\(s\\) tracking URI") as err:
        _server("databricks://profile-with-secret")
    assert "profile-with-secret" not in str(err.value)


def test_many_calls_share_one_exchange(stub):
    assert {bearer() for _ in range(50)} == {"Bearer tok-1"}
    assert len(stub.exchanges) == 1


def test_another_workspace_gets_its_own_token(stub, monkeypatch):
    bearer()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"{stub.url}/w/team-b")
    assert bearer() == "Bearer tok-2"
    assert [form["scope"] for _, _, form in stub.exchanges] == ["team-a", "team-b"]


def test_short_tokens_are_replaced_well_before_they_expire(stub):
    stub.lifetime = 1  # refreshed after half its life
    deadline = time.time() + 2.2
    while time.time() < deadline:
        token = bearer().removeprefix("Bearer ")
        age = time.time() - stub.issued_at[token]
        assert age < 0.5 + 0.1, f"{token} used at {age:.2f} s of a 1 s life"
        time.sleep(0.02)
    assert 4 <= len(stub.exchanges) <= 6  # about one per 0.5 s, not one per call


def test_twenty_threads_at_once_cause_one_exchange(stub):
    stub.delay = 0.3  # all threads arrive while the exchange is in flight
    barrier = threading.Barrier(20)
    results = []

    def worker():
        barrier.wait()
        results.append(bearer())

    threads = [threading.Thread(target=worker) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert results == ["Bearer tok-1"] * 20
    assert len(stub.exchanges) == 1


def in_child(fn):
    """Runs fn in a forked child (killed after 10 s) and returns what it printed."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        os.close(read_end)
        signal.alarm(10)
        try:
            os.write(write_end, str(fn()).encode())
            os._exit(0)
        except BaseException as exc:
            os.write(write_end, repr(exc).encode())
            os._exit(1)
    os.close(write_end)
    ready, _, _ = select.select([read_end], [], [], 15)
    output = os.read(read_end, 1000).decode() if ready else "timeout"
    os.close(read_end)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, output
    return output


def test_a_child_forked_while_the_lock_is_held_still_gets_a_token(stub):
    # As if another thread were mid-exchange at the moment of the fork.
    with ferroflow_auth._lock:
        output = in_child(bearer)
    assert output == "Bearer tok-1"
    assert len(stub.exchanges) == 1


def test_a_forked_child_reuses_the_parents_valid_token(stub):
    assert bearer() == "Bearer tok-1"
    assert in_child(bearer) == "Bearer tok-1"
    assert len(stub.exchanges) == 1


@pytest.mark.parametrize(
    "status, message",
    [(401, "Invalid API key"), (401, "The API key was revoked"),
     (403, "The key's principal has no role in workspace 'team-a'")],
)
def test_a_refused_key_is_a_clear_error_without_the_key(stub, status, message):
    stub.refusal = (status, message)
    with pytest.raises(FerroflowAuthError) as err:
        bearer()
    text = str(err.value)
    assert "FERROFLOW_API_KEY" in text and message in text and f"HTTP {status}" in text
    assert f"{stub.url}/oauth/token" in text
    assert KEY not in text and "s3cr3t" not in text
    assert err.value.__cause__ is None


def test_a_key_echoed_by_the_server_is_redacted(stub):
    stub.refusal = (401, f"bad key {KEY}")
    with pytest.raises(FerroflowAuthError) as err:
        bearer()
    assert KEY not in str(err.value) and "bad key ***" in str(err.value)


def test_credentials_in_the_tracking_uri_stay_out_of_errors(stub, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", stub.url.replace("//", "//me:pw@") + "/w/team-a")
    stub.refusal = (401, "Invalid API key")
    with pytest.raises(FerroflowAuthError) as err:
        bearer()
    assert "pw" not in str(err.value)


def test_a_missing_key_is_a_clear_error(stub, monkeypatch):
    monkeypatch.delenv("FERROFLOW_API_KEY")
    with pytest.raises(FerroflowAuthError, match="FERROFLOW_API_KEY is not set"):
        bearer()
    assert stub.exchanges == []


def test_an_unreachable_server_is_a_clear_error(stub, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9/w/team-a")
    monkeypatch.setattr(ferroflow_auth, "Retry", lambda **kw: 0)  # no retry backoff in tests
    with pytest.raises(FerroflowAuthError, match="Could not reach http://127.0.0.1:9/oauth/token"):
        bearer()


def test_rate_limited_exchanges_are_retried(stub):
    stub.busy = 2
    assert bearer() == "Bearer tok-1"
    assert len(stub.exchanges) == 3


def test_a_token_the_server_refuses_is_replaced_once(stub):
    stub.refused_tokens.add("tok-1")
    response = requests.get(f"{stub.url}/api/2.0/x", auth=FerroflowBearerAuth())
    assert response.status_code == 200
    assert stub.api_calls == ["Bearer tok-1", "Bearer tok-2"]
    assert [r.status_code for r in response.history] == [401]
    assert bearer() == "Bearer tok-2"  # the replacement is cached


def test_a_refused_replacement_is_not_retried_again(stub):
    stub.refused_tokens.update({"tok-1", "tok-2"})
    response = requests.get(f"{stub.url}/api/2.0/x", auth=FerroflowBearerAuth())
    assert response.status_code == 401
    assert len(stub.api_calls) == 2


def test_mlflow_finds_the_plugin_and_its_requests_carry_the_token(stub, monkeypatch):
    pytest.importorskip("mlflow")
    from mlflow.tracking.request_auth.registry import fetch_auth
    from mlflow.utils.credentials import get_default_host_creds
    from mlflow.utils.rest_utils import http_request

    assert isinstance(fetch_auth("ferroflow"), FerroflowBearerAuth)
    monkeypatch.setenv("MLFLOW_TRACKING_AUTH", "ferroflow")
    creds = get_default_host_creds(os.environ["MLFLOW_TRACKING_URI"])
    for _ in range(3):
        assert http_request(creds, "/api/2.0/mlflow/x", "GET").status_code == 200
    assert stub.api_calls == ["Bearer tok-1"] * 3
    assert len(stub.exchanges) == 1
