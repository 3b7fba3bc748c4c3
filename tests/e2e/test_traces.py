"""MLflow tracing with the real client: MLFLOW_API.md §2.4, §4.6, §5.8.

`@mlflow.trace` is how GenAI users meet the server: the client ships spans over OTLP
(`/v1/traces`, because `/version` says ≥ 3.4) and the trace info through StartTraceV3, then
reads everything back with `get_trace`/`search_traces`. Round trips here compare the spans the
client built with what the server returns, so any lost attribute, event or status shows.

Trace export is asynchronous by default. The `tracing` fixture turns that off
(MLFLOW_ENABLE_ASYNC_TRACE_LOGGING=false) so a trace is fully stored when the traced call
returns and the request order is fixed: every span over OTLP first, then StartTraceV3. The
round-trip test also runs with the default asynchronous export, flushed before reading, where
the two can arrive in either order.

Workspace isolation needs workspaces on, which the `server` fixture is not: tests/api/traces.rs
checks that no trace call (OTLP included) reaches another workspace's traces.
"""

import contextlib
import time

import pytest
import requests

import mlflow
from mlflow import MlflowClient
from mlflow.entities import (
    AssessmentSource,
    AssessmentSourceType,
    Expectation,
    Feedback,
    SpanStatusCode,
    SpanType,
    TraceState,
)

from conftest import raises_mlflow_error, unique_name

V3 = "/api/3.0/mlflow"
MISSING_TRACE = "tr-" + "0" * 32
ATTRIBUTES = {"s": "text", "i": 7, "f": 0.25, "b": True, "l": [1, "two"], "d": {"k": [1.5]}}


@pytest.fixture
def tracing(fluent, monkeypatch, request):
    """The fluent API on a fresh experiment; returns its id. Export is synchronous unless the
    test parametrizes `tracing` indirectly with "async"."""
    export = getattr(request, "param", "sync")
    monkeypatch.setenv("MLFLOW_ENABLE_ASYNC_TRACE_LOGGING", str(export == "async").lower())
    # The tracer provider reads the variable when it is built: rebuild it on the next span.
    mlflow.tracing.reset()
    yield mlflow.set_experiment(unique_name("traces")).experiment_id
    mlflow.flush_trace_async_logging()
    mlflow.tracing.reset()


def log_trace(name="step", *, tags=None, metadata=None, fail=False, seconds=0.0) -> str:
    """One finished single-span trace whose root is `name`; returns the trace id."""

    def body(question):
        mlflow.update_current_trace(tags=tags, metadata=metadata)
        time.sleep(seconds)  # a known minimum duration, not a wait for anything
        if fail:
            raise RuntimeError(f"{name} failed")
        return {"answer": question.upper()}

    with contextlib.suppress(RuntimeError):
        mlflow.trace(body, name=name)(f"q-{name}")
    return mlflow.get_last_active_trace_id()


def ids(traces) -> list[str]:
    return [t.info.trace_id for t in traces]


def search_ids(experiment_id: str, filter_string=None, order_by=None) -> list[str]:
    """Ids found by the fluent `search_traces`, in the server's order."""
    return ids(mlflow.search_traces(
        locations=[experiment_id], filter_string=filter_string, order_by=order_by,
        return_type="list",
    ))


def api(server, method: str, path: str, **kwargs) -> requests.Response:
    return requests.request(method, f"{server.url}{path}", timeout=60, **kwargs)


# --------------------------------------------------------------------------------------------
# Round trip
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("tracing", ["sync", "async"], indirect=True)
def test_nested_spans_round_trip_with_attributes_events_and_status(tracing):
    """Every span field the client recorded comes back unchanged, including a failed child."""
    live = {}

    @mlflow.trace(span_type=SpanType.TOOL)
    def lookup(city):
        live["lookup"] = mlflow.get_current_active_span()
        time.sleep(0.01)  # a known minimum duration: async export alone takes ~1 ms
        raise LookupError(f"no weather for {city}")

    @mlflow.trace(name="agent", span_type=SpanType.AGENT, attributes={"version": 2})
    def agent(question, city):
        live["agent"] = mlflow.get_current_active_span()
        with mlflow.start_span("plan", span_type=SpanType.LLM) as span:
            live["plan"] = span
            span.set_inputs({"messages": [{"role": "user", "content": question}]})
            span.set_attributes(ATTRIBUTES)
            span.set_outputs({"choice": "lookup", "score": 0.5})
        mlflow.update_current_trace(tags={"team": "search"}, metadata={"session": "s-1"})
        try:
            return lookup(city)
        except LookupError as e:  # the agent recovers, so the trace is OK
            return f"sorry: {e}"

    assert agent("weather?", city="Oslo") == "sorry: no weather for Oslo"
    trace_id = mlflow.get_last_active_trace_id()
    mlflow.flush_trace_async_logging()  # a no-op when export is synchronous

    got = mlflow.get_trace(trace_id)
    assert got is not None, "get_trace found nothing"
    by_name = {s.name: s for s in got.data.spans}
    assert sorted(by_name) == ["agent", "lookup", "plan"]
    # The whole span as the client built it: ids, parent, times, attributes, events, status.
    for name, span in live.items():
        assert by_name[name].to_dict() == span.to_dict(), name

    agent_span, plan, lookup_span = by_name["agent"], by_name["plan"], by_name["lookup"]
    assert agent_span.parent_id is None
    assert plan.parent_id == lookup_span.parent_id == agent_span.span_id
    assert {s.trace_id for s in got.data.spans} == {trace_id}
    assert (agent_span.span_type, plan.span_type, lookup_span.span_type) == ("AGENT", "LLM", "TOOL")
    assert agent_span.inputs == {"question": "weather?", "city": "Oslo"}
    assert agent_span.outputs == "sorry: no weather for Oslo"
    assert agent_span.attributes["version"] == 2
    assert plan.inputs == {"messages": [{"role": "user", "content": "weather?"}]}
    assert plan.outputs == {"choice": "lookup", "score": 0.5}
    assert {k: plan.attributes[k] for k in ATTRIBUTES} == ATTRIBUTES
    assert plan.status.status_code == SpanStatusCode.OK
    assert lookup_span.status.status_code == SpanStatusCode.ERROR
    assert lookup_span.status.description == "LookupError: no weather for Oslo"
    (event,) = lookup_span.events
    assert event.name == "exception"
    assert event.attributes["exception.type"] == "LookupError"
    assert event.attributes["exception.message"] == "no weather for Oslo"
    assert "Traceback" in event.attributes["exception.stacktrace"]

    info = got.info
    assert info.trace_id.startswith("tr-") and len(info.trace_id) == 35
    assert info.experiment_id == tracing
    assert info.state == TraceState.OK
    assert info.request_preview == '{"question": "weather?", "city": "Oslo"}'
    assert info.response_preview == '"sorry: no weather for Oslo"'
    assert info.tags["team"] == "search"
    assert info.tags["mlflow.traceName"] == "agent"
    assert info.tags["mlflow.artifactLocation"].endswith(f"/{tracing}/traces/{trace_id}/artifacts")
    assert info.trace_metadata["session"] == "s-1"
    assert info.trace_metadata["mlflow.trace_schema.version"] == "3"
    assert info.execution_duration >= 10
    assert abs(info.request_time - agent_span.start_time_ns // 1_000_000) <= 1


def test_exception_in_root_makes_the_trace_an_error(tracing):
    """A root span that raises turns the trace ERROR and leaves no response preview."""
    trace_id = log_trace("broken", fail=True)

    got = mlflow.get_trace(trace_id)
    assert got.info.state == TraceState.ERROR
    assert got.info.request_preview == '{"question": "q-broken"}'
    assert got.info.response_preview is None
    (root,) = got.data.spans
    assert root.status.status_code == SpanStatusCode.ERROR
    assert root.status.description == "RuntimeError: broken failed"
    assert [e.name for e in root.events] == ["exception"]
    assert root.outputs is None


# --------------------------------------------------------------------------------------------
# Search
# --------------------------------------------------------------------------------------------


@pytest.fixture
def four_traces(tracing):
    """alpha, beta, gamma (ERROR), slow, in that order: one traced call after another, so their
    request times strictly increase (each export is a few HTTP round trips)."""
    made = {
        "alpha": log_trace("alpha", tags={"env": "prod-eu"}, metadata={"tenant": "acme"}),
        "beta": log_trace("beta", tags={"env": "prod-us"}, metadata={"tenant": "globex"}),
        "gamma": log_trace("gamma", tags={"env": "Staging"}, fail=True),
        "slow": log_trace("slow", seconds=0.6),
    }
    return tracing, made


def test_search_traces_filters(four_traces):
    """The filter grammar of SearchTraceUtils, each clause against the same four traces."""
    experiment_id, t = four_traces
    first = MlflowClient().get_trace(t["alpha"]).info.request_time
    cases = {
        "trace.status = 'OK'": {"alpha", "beta", "slow"},
        "trace.status = 'ERROR'": {"gamma"},
        f"trace.timestamp_ms > {first}": {"beta", "gamma", "slow"},
        "trace.execution_time_ms > 500": {"slow"},
        "trace.execution_time_ms >= 0": {"alpha", "beta", "gamma", "slow"},
        "tags.env = 'prod-eu'": {"alpha"},
        "tags.env != 'prod-eu'": {"beta", "gamma"},  # slow has no `env` tag at all
        "tags.env LIKE 'prod-%'": {"alpha", "beta"},
        "tags.env LIKE 'staging'": set(),
        "tags.env ILIKE 'staging'": {"gamma"},
        "metadata.tenant = 'acme'": {"alpha"},
        "request_metadata.tenant LIKE '%o%'": {"beta"},
        "trace.name = 'beta'": {"beta"},
        f"trace.request_id IN ('{t['alpha']}', '{t['slow']}')": {"alpha", "slow"},
        "tags.`mlflow.traceName` = 'gamma'": {"gamma"},
        "trace.status = 'OK' AND tags.env LIKE 'prod%' AND metadata.tenant = 'globex'": {"beta"},
        "tags.env IS NULL": {"slow"},
    }
    names = {v: k for k, v in t.items()}
    for filter_string, expected in cases.items():
        found = search_ids(experiment_id, filter_string)
        assert {names[i] for i in found} == expected, filter_string
        assert len(found) == len(set(found)), filter_string


def test_search_traces_order_pandas_and_pages(four_traces):
    """Default order is newest first; ASC reverses it; pages of two walk everything once."""
    experiment_id, t = four_traces
    created = [t["alpha"], t["beta"], t["gamma"], t["slow"]]
    assert search_ids(experiment_id) == created[::-1]
    assert search_ids(experiment_id, order_by=["timestamp_ms DESC"]) == created[::-1]
    assert search_ids(experiment_id, order_by=["timestamp_ms ASC"]) == created
    assert search_ids(experiment_id, "trace.status = 'OK'", ["timestamp_ms ASC"]) == [
        t["alpha"], t["beta"], t["slow"]
    ]

    df = mlflow.search_traces(locations=[experiment_id], filter_string="trace.name = 'alpha'")
    assert list(df["trace_id"]) == [t["alpha"]]
    row = df.iloc[0]
    assert row["state"] == TraceState.OK
    assert row["request"] == {"question": "q-alpha"}
    assert row["response"] == {"answer": "Q-ALPHA"}
    assert row["tags"]["env"] == "prod-eu" and row["trace_metadata"]["tenant"] == "acme"
    assert [s["name"] for s in row["spans"]] == ["alpha"]

    client = MlflowClient()
    pages, token = [], None
    while True:
        page = client.search_traces(
            locations=[experiment_id], max_results=2, page_token=token, include_spans=False
        )
        pages.append(ids(page))
        token = page.token
        if not token:
            break
        assert len(pages) < 10, "page tokens never ran out"
    # MLflow hands out a token whenever a page is full, so its last page here is empty;
    # ferroflow looks one row ahead and ends on the last full page. Either walk is whole.
    if pages[-1] == []:
        pages.pop()
    assert pages == [[t["slow"], t["gamma"]], [t["beta"], t["alpha"]]]


# --------------------------------------------------------------------------------------------
# Tags
# --------------------------------------------------------------------------------------------


def test_trace_tags_set_overwrite_rename_and_delete(tracing):
    """Tags change after the trace is stored; `mlflow.traceName` renames it for search too."""
    trace_id = log_trace("tagged", tags={"stage": "draft"})
    client = MlflowClient()

    client.set_trace_tag(trace_id, "stage", "final")
    client.set_trace_tag(trace_id, "owner", "ana")
    mlflow.set_trace_tag(trace_id, "empty", "")
    client.set_trace_tag(trace_id, "mlflow.traceName", "renamed")
    tags = client.get_trace(trace_id).info.tags
    assert {k: tags[k] for k in ("stage", "owner", "empty")} == {
        "stage": "final", "owner": "ana", "empty": ""
    }
    assert tags["mlflow.traceName"] == "renamed"
    assert search_ids(tracing, "trace.name = 'renamed'") == [trace_id]
    assert search_ids(tracing, "tags.owner = 'ana'") == [trace_id]

    client.delete_trace_tag(trace_id, "owner")
    mlflow.delete_trace_tag(trace_id, "stage")
    tags = client.get_trace(trace_id).info.tags
    assert "owner" not in tags and "stage" not in tags and tags["empty"] == ""
    assert search_ids(tracing, "tags.owner = 'ana'") == []
    with raises_mlflow_error("RESOURCE_DOES_NOT_EXIST"):
        client.delete_trace_tag(trace_id, "owner")


# --------------------------------------------------------------------------------------------
# Assessments
# --------------------------------------------------------------------------------------------


def test_feedback_and_expectations_log_read_update_override_delete(tracing):
    """The assessment lifecycle: values of every JSON kind, override, update and delete."""
    trace_id = log_trace("judged")
    human = AssessmentSource(source_type="HUMAN", source_id="ana@example.com")
    values = {"helpful": True, "score": 0.75, "label": "good", "detail": {"tone": "ok", "n": 2}}
    logged = {
        name: mlflow.log_feedback(
            trace_id=trace_id, name=name, value=value, rationale=f"why {name}", source=human,
            metadata={"round": "1"},
        )
        for name, value in values.items()
    }
    expected = mlflow.log_expectation(
        trace_id=trace_id, name="answer", value={"text": "Q-JUDGED"}, metadata={"by": "hand"}
    )
    failed = mlflow.log_feedback(
        trace_id=trace_id, name="judge", error=TimeoutError("judge timed out"),
        source=AssessmentSource(source_type=AssessmentSourceType.LLM_JUDGE, source_id="gpt"),
    )

    stored = {a.name: a for a in mlflow.get_trace(trace_id).info.assessments}
    assert sorted(stored) == sorted([*values, "answer", "judge"])
    for name, value in values.items():
        a = stored[name]
        assert isinstance(a, Feedback) and a.value == value, name
        assert a.assessment_id == logged[name].assessment_id and a.trace_id == trace_id
        assert a.rationale == f"why {name}" and a.metadata == {"round": "1"}
        assert (a.source.source_type, a.source.source_id) == ("HUMAN", "ana@example.com")
        assert a.valid is True and a.overrides is None and a.error is None
        assert a.create_time_ms == a.last_update_time_ms > 0
    assert isinstance(stored["answer"], Expectation)
    assert stored["answer"].value == {"text": "Q-JUDGED"}
    assert stored["answer"].source.source_type == "HUMAN"  # log_expectation's default source
    judge = stored["judge"]
    assert judge.value is None and judge.source.source_type == "LLM_JUDGE"
    assert judge.error.error_code == "TimeoutError"
    assert judge.error.error_message == "judge timed out"
    assert mlflow.get_assessment(trace_id, failed.assessment_id).error.error_code == "TimeoutError"

    got = mlflow.get_assessment(trace_id, expected.assessment_id)
    assert got.value == {"text": "Q-JUDGED"} and got.metadata == {"by": "hand"}
    updated = mlflow.update_assessment(
        trace_id, expected.assessment_id, Expectation(name="answer", value="q-judged")
    )
    assert updated.assessment_id == expected.assessment_id and updated.value == "q-judged"
    again = mlflow.get_assessment(trace_id, expected.assessment_id)
    assert again.value == "q-judged" and again.last_update_time_ms >= again.create_time_ms

    score_id = logged["score"].assessment_id
    override = mlflow.override_feedback(
        trace_id=trace_id, assessment_id=score_id, value=0.25, rationale="too generous",
        source=human,
    )
    assert override.assessment_id != score_id and override.overrides == score_id
    assert mlflow.get_assessment(trace_id, score_id).valid is False
    new = mlflow.get_assessment(trace_id, override.assessment_id)
    assert (new.name, new.value, new.valid, new.overrides) == ("score", 0.25, True, score_id)

    # Deleting the override restores the original (MLflow's SqlAlchemyStore.delete_assessment).
    mlflow.delete_assessment(trace_id, override.assessment_id)
    assert mlflow.get_assessment(trace_id, score_id).valid is True
    with raises_mlflow_error("RESOURCE_DOES_NOT_EXIST"):
        mlflow.get_assessment(trace_id, override.assessment_id)
    mlflow.delete_assessment(trace_id, override.assessment_id)  # deleting twice is no error
    remaining = [a.name for a in mlflow.get_trace(trace_id).info.assessments]
    assert sorted(remaining) == sorted([*values, "answer", "judge"])


# --------------------------------------------------------------------------------------------
# Runs
# --------------------------------------------------------------------------------------------


def test_traces_made_in_a_run_or_linked_to_it_are_found_by_run_id(tracing):
    """A trace made inside a run carries `mlflow.sourceRun`; a linked one does not, but the
    store's run_id filter also follows links (trace -> run entity associations)."""
    with mlflow.start_run() as run:
        inside = log_trace("inside")
    outside = log_trace("outside")
    run_id = run.info.run_id
    client = MlflowClient()

    assert client.get_trace(inside).info.trace_metadata["mlflow.sourceRun"] == run_id
    by_run = mlflow.search_traces(locations=[tracing], run_id=run_id, return_type="list")
    assert ids(by_run) == [inside]

    client.link_traces_to_run([outside], run_id)
    client.link_traces_to_run([outside], run_id)  # linking twice adds nothing
    # Linking writes an association row, not metadata.
    assert "mlflow.sourceRun" not in client.get_trace(outside).info.trace_metadata
    by_run = mlflow.search_traces(locations=[tracing], run_id=run_id, return_type="list")
    assert ids(by_run) == [outside, inside]
    assert search_ids(tracing, f"trace.run_id = '{run_id}'") == [outside, inside]
    # Surprising but MLflow's: the metadata spelling with `=` is the same run filter, links too.
    assert search_ids(tracing, f"metadata.`mlflow.sourceRun` = '{run_id}'") == [outside, inside]
    assert search_ids(tracing, f"metadata.`mlflow.sourceRun` LIKE '{run_id}'") == [inside]


# --------------------------------------------------------------------------------------------
# Deletion
# --------------------------------------------------------------------------------------------


def test_delete_traces_by_age_count_and_ids(tracing):
    """delete_traces counts what it removed; removed traces leave search and get_trace."""
    made = [log_trace(f"t{i}") for i in range(5)]
    client = MlflowClient()
    newest = client.get_trace(made[-1]).info.request_time

    # The oldest first when max_traces caps a timestamp delete.
    assert client.delete_traces(tracing, max_timestamp_millis=newest, max_traces=2) == 2
    assert search_ids(tracing, order_by=["timestamp_ms ASC"]) == made[2:]
    assert client.delete_traces(tracing, trace_ids=[made[3], MISSING_TRACE]) == 1
    assert client.delete_traces(tracing, trace_ids=[made[3]]) == 0
    assert search_ids(tracing, order_by=["timestamp_ms ASC"]) == [made[2], made[4]]
    # Everything up to and including the oldest remaining timestamp.
    oldest = client.get_trace(made[2]).info.request_time
    assert client.delete_traces(tracing, max_timestamp_millis=oldest) == 1
    assert search_ids(tracing) == [made[4]]

    for gone in made[:4]:
        with raises_mlflow_error("RESOURCE_DOES_NOT_EXIST"):
            client.get_trace(gone)
        assert mlflow.get_trace(gone) is None  # the fluent API logs a warning instead


# --------------------------------------------------------------------------------------------
# Hostile REST
# --------------------------------------------------------------------------------------------


def hostile_requests(experiment_id: str, trace_id: str) -> list:
    """(method, path, request kwargs, status, error_code) as `mlflow server` answers them."""
    where = [{"type": "MLFLOW_EXPERIMENT", "mlflow_experiment": {"experiment_id": experiment_id}}]
    missing = f"{V3}/traces/{MISSING_TRACE}"
    search, delete = f"{V3}/traces/search", "/api/2.0/mlflow/traces/delete-traces"
    feedback = {"assessment_name": "x", "trace_id": MISSING_TRACE, "feedback": {"value": 1},
                "source": {"source_type": "HUMAN", "source_id": "a"}}
    bad = 400, "INVALID_PARAMETER_VALUE"
    return [
        ("GET", missing, {}, 404, "RESOURCE_DOES_NOT_EXIST"),
        ("GET", f"{V3}/traces/get", {"params": {"trace_id": MISSING_TRACE}},
         404, "RESOURCE_DOES_NOT_EXIST"),
        ("POST", f"{missing}/assessments", {"json": {"assessment": feedback}},
         404, "RESOURCE_DOES_NOT_EXIST"),
        ("POST", search, {"json": {"locations": where, "max_results": 501}}, *bad),
        ("POST", search, {"json": {"locations": where, "max_results": 0}}, *bad),
        ("POST", search, {"json": {"max_results": 10}}, *bad),
        ("POST", search, {"json": {"locations": where, "filter": "trace.status = "}}, *bad),
        ("POST", search, {"json": {"locations": where, "filter": "foo.bar = 'x'"}}, *bad),
        ("POST", search, {"json": {"locations": where, "filter": "tags.env ~ 'x'"}}, *bad),
        ("POST", search, {"json": {"locations": where, "filter": "trace.name IN ('a')"}}, *bad),
        ("POST", search, {"json": {"locations": where, "order_by": ["bogus DESC"]}}, *bad),
        ("POST", search, {"json": {"locations": where, "page_token": "not a token"}}, *bad),
        # MLflow reads an unparsable body as `{}`, so the complaint is the missing `trace`.
        ("POST", f"{V3}/traces", {"data": b'{"trace": {',
                                  "headers": {"Content-Type": "application/json"}}, *bad),
        ("POST", delete, {"json": {"experiment_id": experiment_id}}, *bad),
        ("POST", delete, {"json": {"experiment_id": experiment_id, "max_timestamp_millis": 1,
                                   "request_ids": [trace_id]}}, *bad),
        ("POST", "/api/2.0/mlflow/traces/link-to-run",
         {"json": {"trace_ids": [trace_id] * 101, "run_id": "0" * 32}}, *bad),
        ("PATCH", f"/api/2.0/mlflow/traces/{trace_id}/tags", {"json": {"value": "v"}}, *bad),
        ("PATCH", f"/api/2.0/mlflow/traces/{trace_id}/tags",
         {"json": {"key": "k" * 251, "value": "v"}}, *bad),
        ("PATCH", f"{V3}/traces/{trace_id}/tags",
         {"json": {"key": "mlflow.trace.spansLocation", "value": "x"}}, *bad),
    ]


def test_rest_errors_use_mlflow_codes_never_500(server, tracing):
    """Plain requests that a client would never send get MLflow's error envelope."""
    trace_id = log_trace("target")
    for method, path, kwargs, status, code in hostile_requests(tracing, trace_id):
        resp = api(server, method, path, **kwargs)
        assert resp.status_code == status, (method, path, kwargs, resp.text)
        assert resp.json()["error_code"] == code, (method, path, resp.text)
    # The trace survived all of it.
    assert search_ids(tracing) == [trace_id]
    where = [{"type": "MLFLOW_EXPERIMENT", "mlflow_experiment": {"experiment_id": tracing}}]
    ok = api(server, "POST", f"{V3}/traces/search", json={"locations": where, "max_results": 500})
    assert ok.status_code == 200 and [t["trace_id"] for t in ok.json()["traces"]] == [trace_id]


def test_rest_oversized_trace_tag_value_is_truncated(server, tracing):
    """MLflow truncates long tag values instead of refusing them (MLFLOW_TRUNCATE_LONG_VALUES)."""
    trace_id = log_trace("limits")
    for path, key, letter in [
        (f"/api/2.0/mlflow/traces/{trace_id}/tags", "huge", "v"),
        (f"{V3}/traces/{trace_id}/tags", "huge3", "w"),
    ]:
        resp = api(server, "PATCH", path, json={"key": key, "value": letter * 100_000})
        assert resp.status_code == 200, resp.text
    info = api(server, "GET", f"{V3}/traces/{trace_id}").json()["trace"]["trace_info"]
    # The store keeps 8000 characters; MLflow's TraceInfo.to_proto cuts tag values to 4096.
    assert info["tags"]["huge"] == "v" * 4096
    assert info["tags"]["huge3"] == "w" * 4096


def test_otlp_ingest_refuses_garbage_and_a_missing_experiment_header(server, tracing):
    """A body that is not OTLP, and spans without their experiment, are client errors. MLflow's
    FastAPI route words them as `{"detail"}` (and 422 for the missing header); ferroflow answers
    MLflow's error envelope, 400. Neither is retried by an exporter."""
    otlp = {"Content-Type": "application/x-protobuf"}
    resp = api(server, "POST", "/v1/traces", data=b"garbage",
               headers={**otlp, "x-mlflow-experiment-id": tracing})
    assert resp.status_code == 400, resp.text
    assert "detail" in resp.json() or resp.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    resp = api(server, "POST", "/v1/traces", data=b"", headers=otlp)
    assert resp.status_code in (400, 422), resp.text
    assert "detail" in resp.json() or resp.json()["error_code"] == "INVALID_PARAMETER_VALUE"

@pytest.mark.parametrize("compression", ["none", "gzip"])
def test_spans_from_a_plain_opentelemetry_exporter_land_in_their_experiment(
    server, tracing, compression
):
    """An OpenTelemetry SDK with its own OTLP/HTTP exporter (no MLflow client) sends spans with
    the experiment header: they become a trace of that experiment, whose record comes from the
    spans (root state, times), readable through the MLflow client like any other."""
    from opentelemetry.exporter.otlp.proto.http import Compression
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.trace import Status, StatusCode

    exporter = OTLPSpanExporter(
        endpoint=f"{server.url}/v1/traces",
        headers={"x-mlflow-experiment-id": tracing},
        compression=Compression.Gzip if compression == "gzip" else Compression.NoCompression,
    )
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("e2e")
    with tracer.start_as_current_span("request", attributes={"http.route": "/chat", "n": 3}):
        with tracer.start_as_current_span("db") as child:
            child.set_attribute("rows", [1, 2])
            child.set_status(Status(StatusCode.ERROR, "timeout"))
    provider.shutdown()

    found = MlflowClient().search_traces(locations=[tracing])
    assert len(found) == 1
    trace = MlflowClient().get_trace(found[0].info.trace_id)
    assert trace.info.state == TraceState.OK  # the root span's state
    assert trace.info.execution_duration is not None
    spans = {span.name: span for span in trace.data.spans}
    assert set(spans) == {"request", "db"}
    assert spans["db"].parent_id == spans["request"].span_id
    assert spans["request"].attributes["http.route"] == "/chat"
    assert spans["request"].attributes["n"] == 3
    assert spans["db"].attributes["rows"] == [1, 2]
    assert spans["db"].status.status_code == "ERROR"
    assert spans["db"].status.description == "timeout"
