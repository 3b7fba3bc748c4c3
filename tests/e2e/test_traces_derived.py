"""What the server derives from spans, the legacy v2 trace calls, and the richer trace filters.

MLFLOW_API.md §2.4 and §5.8; every expectation below was read off `mlflow server` 3.17.2 (see
the module's reference mode in conftest.py).

- Derivation: spans that reach `/v1/traces` (from the stock client, or a bare OTLP protobuf
  POST with no StartTraceV3 at all) fill the trace record: token usage summed over the span
  tree without double counting nested LLM spans, cost, session, user, name, previews, tags,
  state and time range. StartTraceV3 marks the record finalized (`mlflow.trace.infoFinalized`),
  and from then on its values win over anything later spans imply.
- Legacy v2 StartTrace/EndTrace (`POST /api/2.0/mlflow/traces`, `PATCH .../traces/{id}`): the
  fallback a 3.x client uses against a server without StartTraceV3, with lists of {key, value}.
- Search: `RLIKE` (unanchored, case-sensitive regular expressions) on tags, metadata, names and
  spans; `feedback.<name>` / `expectation.<name>` against the assessment's JSON value; `prompt =`.

Usage and cost are compared as the exact JSON strings MLflow hands back in `trace_metadata`
(`json.dumps` spacing, a fixed key order), because clients and the UI parse those strings.
"""

import base64
import datetime
import json
import re
import secrets
import time

import pytest
import requests

import mlflow
from mlflow import MlflowClient
from mlflow.entities import AssessmentSource, SpanType, TraceState

from conftest import raises_mlflow_error, unique_name

V2 = "/api/2.0/mlflow"
V3 = "/api/3.0/mlflow"
OTLP_OK, OTLP_ERROR = 1, 2  # opentelemetry.proto.trace.v1.Status.StatusCode
TOKEN_USAGE, COST = "mlflow.trace.tokenUsage", "mlflow.trace.cost"
SESSION, USER = "mlflow.trace.session", "mlflow.trace.user"
FINALIZED = "mlflow.trace.infoFinalized"


@pytest.fixture
def tracing(fluent, monkeypatch):
    """The fluent API on a fresh experiment with synchronous export; returns its id."""
    monkeypatch.setenv("MLFLOW_ENABLE_ASYNC_TRACE_LOGGING", "false")
    mlflow.tracing.reset()  # the tracer provider reads the variable when it is built
    yield mlflow.set_experiment(unique_name("derived")).experiment_id
    mlflow.tracing.reset()


def api(server, method: str, path: str, **kwargs) -> requests.Response:
    return requests.request(method, f"{server.url}{path}", timeout=60, **kwargs)


def usage(input_tokens, output_tokens, total_tokens, **cache) -> str:
    """The `mlflow.trace.tokenUsage` / `mlflow.chat.tokenUsage` JSON as MLflow writes it."""
    return json.dumps(dict(input_tokens=input_tokens, output_tokens=output_tokens,
                           total_tokens=total_tokens, **cache))


def cost(input_cost, output_cost, total_cost) -> str:
    return json.dumps(dict(input_cost=input_cost, output_cost=output_cost, total_cost=total_cost))


# --------------------------------------------------------------------------------------------
# Bare OTLP: protobuf built by hand, no MLflow client, no StartTraceV3
# --------------------------------------------------------------------------------------------


def any_value(value):
    from opentelemetry.proto.common.v1 import common_pb2

    out = common_pb2.AnyValue()
    if isinstance(value, bool):
        out.bool_value = value
    elif isinstance(value, int):
        out.int_value = value
    elif isinstance(value, float):
        out.double_value = value
    elif isinstance(value, str):
        out.string_value = value
    elif isinstance(value, list):
        out.array_value.values.extend(any_value(v) for v in value)
    else:
        raise TypeError(value)
    return out


class OtlpTrace:
    """One OTLP trace id and the spans sent for it; times are nanoseconds from `t0`."""

    def __init__(self):
        self.trace_id = secrets.token_bytes(16)
        self.mlflow_id = "tr-" + self.trace_id.hex()
        self.t0 = time.time_ns()
        self.span_ids: dict[str, bytes] = {}

    def span_id(self, name: str) -> bytes:
        return self.span_ids.setdefault(name, secrets.token_bytes(8))

    def span(self, name, parent=None, start_ms=0, end_ms=1, attributes=None, status=OTLP_OK):
        from opentelemetry.proto.common.v1 import common_pb2
        from opentelemetry.proto.trace.v1 import trace_pb2

        span = trace_pb2.Span(
            trace_id=self.trace_id,
            span_id=self.span_id(name),
            parent_span_id=self.span_id(parent) if parent else b"",
            name=name,
            start_time_unix_nano=self.t0 + start_ms * 1_000_000,
            end_time_unix_nano=self.t0 + end_ms * 1_000_000,
        )
        for key, value in (attributes or {}).items():
            span.attributes.append(common_pb2.KeyValue(key=key, value=any_value(value)))
        span.status.code = status
        return span

    def ms(self, offset_ms=0) -> int:
        return self.t0 // 1_000_000 + offset_ms


def post_otlp(server, experiment_id: str, spans: list, resource: dict | None = None):
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )
    from opentelemetry.proto.common.v1 import common_pb2

    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    for key, value in (resource or {}).items():
        resource_spans.resource.attributes.append(
            common_pb2.KeyValue(key=key, value=any_value(value))
        )
    resource_spans.scope_spans.add().spans.extend(spans)
    resp = api(
        server, "POST", "/v1/traces", data=request.SerializeToString(),
        headers={"Content-Type": "application/x-protobuf", "x-mlflow-experiment-id": experiment_id},
    )
    assert resp.status_code == 200, resp.text
    return resp


def info_json(server, trace_id: str) -> dict:
    """GetTraceInfoV3: the record alone, also while the trace is still IN_PROGRESS (which
    `get_trace` would wait for)."""
    resp = api(server, "GET", f"{V3}/traces/{trace_id}")
    assert resp.status_code == 200, resp.text
    info = resp.json()["trace"]["trace_info"]
    info.setdefault("trace_metadata", {})
    info.setdefault("tags", {})
    return info


def rfc3339(ms: int) -> str:
    return (datetime.datetime.fromtimestamp(ms / 1000, datetime.timezone.utc)
            .isoformat(timespec="milliseconds").replace("+00:00", "Z"))


def start_trace_v3(server, experiment_id, trace_id, request_time_ms, duration_ms, state="OK",
                   metadata=None, tags=None, **extra) -> dict:
    """StartTraceV3 as the client sends it (a finished record)."""
    body = {"trace": {"trace_info": {
        "trace_id": trace_id,
        "trace_location": {"type": "MLFLOW_EXPERIMENT",
                           "mlflow_experiment": {"experiment_id": experiment_id}},
        "request_time": rfc3339(request_time_ms),
        "execution_duration": f"{duration_ms / 1000}s",
        "state": state,
        "trace_metadata": metadata or {},
        "tags": tags or {},
        **extra,
    }}}
    resp = api(server, "POST", f"{V3}/traces", json=body)
    assert resp.status_code == 200, resp.text
    return resp.json()["trace"]["trace_info"]


# --------------------------------------------------------------------------------------------
# A. Derivation from spans
# --------------------------------------------------------------------------------------------


def test_client_trace_reports_usage_cost_session_and_user(tracing):
    """The stock client: a rollup LLM span around another LLM span counts once; usage, cost,
    session and user come back in trace_metadata in MLflow's spelling, and the promoted keys
    can be searched."""

    @mlflow.trace(span_type=SpanType.AGENT)
    def agent(question):
        mlflow.update_current_trace(session_id="sess-42", user="ana", metadata={"k": "v"})
        with mlflow.start_span("rollup", span_type=SpanType.LLM) as rollup:
            rollup.set_attribute("mlflow.chat.tokenUsage",
                                 {"input_tokens": 100, "output_tokens": 50, "total_tokens": 150})
            with mlflow.start_span("inner", span_type=SpanType.LLM) as inner:  # inside the rollup
                inner.set_attribute("mlflow.chat.tokenUsage",
                                    {"input_tokens": 60, "output_tokens": 30, "total_tokens": 90})
        with mlflow.start_span("chat", span_type=SpanType.CHAT_MODEL) as chat:
            chat.set_attribute("mlflow.chat.tokenUsage", {
                "input_tokens": 7, "output_tokens": 3, "total_tokens": 10,
                "cache_read_input_tokens": 2,
            })
            chat.set_attribute("mlflow.llm.cost",
                               {"input_cost": 0.25, "output_cost": 0.5, "total_cost": 0.75})
        return {"answer": question.upper()}

    agent("why?")
    trace_id = mlflow.get_last_active_trace_id()

    info = MlflowClient().get_trace(trace_id).info
    assert info.token_usage == {
        "input_tokens": 107, "output_tokens": 53, "total_tokens": 160,
        "cache_read_input_tokens": 2,
    }
    metadata = info.trace_metadata
    assert metadata[TOKEN_USAGE] == usage(107, 53, 160, cache_read_input_tokens=2)
    assert metadata[COST] == cost(0.25, 0.5, 0.75)
    assert metadata[SESSION] == "sess-42"
    assert metadata[USER] == "ana"
    assert metadata["k"] == "v"
    assert metadata[FINALIZED] == "true"  # StartTraceV3 arrived
    assert info.state == TraceState.OK
    assert info.tags["mlflow.traceName"] == "agent"
    assert info.request_preview == '{"question": "why?"}'
    assert info.response_preview == '{"answer": "WHY?"}'

    def found(filter_string):
        return [t.info.trace_id for t in mlflow.search_traces(
            locations=[tracing], filter_string=filter_string, return_type="list")]

    assert found("metadata.`mlflow.trace.session` = 'sess-42'") == [trace_id]
    assert found("metadata.`mlflow.trace.session` RLIKE '^sess-[0-9]+$'") == [trace_id]
    assert found("metadata.`mlflow.trace.session` = 'sess-4'") == []
    assert found("metadata.`mlflow.trace.user` = 'ana'") == [trace_id]
    # Usage and cost match only their canonical spelling, as a whole.
    assert found(f"metadata.`{TOKEN_USAGE}` = '{metadata[TOKEN_USAGE]}'") == [trace_id]
    compact = metadata[TOKEN_USAGE].replace(" ", "")
    assert found(f"metadata.`{TOKEN_USAGE}` = '{compact}'") == []
    assert found(f"metadata.`{TOKEN_USAGE}` != '{compact}'") == [trace_id]
    assert found(f"metadata.`{TOKEN_USAGE}` IS NOT NULL") == [trace_id]
    assert found(f"metadata.`{COST}` = '{cost(0.25, 0.5, 0.75)}'") == [trace_id]
    assert found(f"metadata.`{COST}` IS NULL") == []
    for bad in (f"metadata.`{TOKEN_USAGE}` LIKE '%1%'", f"metadata.`{COST}` RLIKE '0'"):
        with raises_mlflow_error("INVALID_PARAMETER_VALUE"):
            found(bad)
    with raises_mlflow_error("INVALID_PARAMETER_VALUE"):
        mlflow.search_traces(locations=[tracing], order_by=[f"metadata.`{TOKEN_USAGE}` DESC"])


def test_otlp_spans_alone_make_a_trace_with_derived_info(server, tracing):
    """A plain OTLP export with no StartTraceV3: the server fills the trace record from the
    spans, translating OpenInference and OTel GenAI attributes on the way in."""
    t = OtlpTrace()
    messages = {"messages": [{"role": "system", "content": "be brief"},
                             {"role": "user", "content": "What is 2+2?"}]}
    spans = [
        t.span("agent", start_ms=0, end_ms=40, attributes={
            "openinference.span.kind": "AGENT",
            "input.value": json.dumps(messages),
            "output.value": "four",
            "session.id": "sess-otlp",
            "user.id": "bob",
            "mlflow.traceTag.team": "blue",
            "mlflow.traceTag.mlflow.traceName": "otlp-agent",
        }),
        # OTel GenAI: no total, so input + output; the cache count is kept.
        t.span("chat", parent="agent", start_ms=1, end_ms=10, attributes={
            "gen_ai.operation.name": "chat",
            "gen_ai.usage.input_tokens": 11,
            "gen_ai.usage.output_tokens": 4,
            "gen_ai.usage.cache_read.input_tokens": 3,
        }),
        # A rollup parent carries its child's usage already: the child must not count again.
        t.span("rollup", parent="agent", start_ms=11, end_ms=30, attributes={
            "openinference.span.kind": "CHAIN",
            "mlflow.chat.tokenUsage": usage(100, 50, 150),
        }),
        t.span("inner", parent="rollup", start_ms=12, end_ms=29, attributes={
            "openinference.span.kind": "LLM",
            "llm.token_count.prompt": 60,
            "llm.token_count.completion": 30,
            "llm.token_count.total": 90,
        }),
        t.span("priced", parent="agent", start_ms=31, end_ms=45, attributes={
            "mlflow.chat.tokenUsage": usage(1, 2, 3),
            "mlflow.llm.cost": cost(0.25, 0.5, 0.75),
        }),
    ]
    resource = {"service.name": "svc-e2e", "deployment.environment": "test", "replicas": 3,
                "team": "red", "telemetry.sdk.language": "python", "mlflow.secret": "no"}
    post_otlp(server, tracing, spans, resource)

    trace = MlflowClient().get_trace(t.mlflow_id)
    info = trace.info
    assert info.trace_id == t.mlflow_id
    assert info.experiment_id == tracing
    assert info.state == TraceState.OK
    assert info.request_time == t.ms(0)
    assert info.execution_duration == 45  # first start to last end, whichever span
    assert info.trace_metadata == {
        TOKEN_USAGE: usage(112, 56, 168, cache_read_input_tokens=3),
        COST: cost(0.25, 0.5, 0.75),
        SESSION: "sess-otlp",
        USER: "bob",
    }
    assert info.token_usage["total_tokens"] == 168
    tags = dict(info.tags)
    assert tags.pop("mlflow.artifactLocation").endswith(f"/traces/{t.mlflow_id}/artifacts")
    assert tags == {
        "mlflow.traceName": "otlp-agent",
        "mlflow.trace.spansLocation": "TRACKING_STORE",
        "team": "blue",  # the span's own tag wins over the resource attribute
        "service.name": "svc-e2e",
        "deployment.environment": "test",
        "replicas": "3",
    }
    # The last user message, and the plain string output as JSON.
    assert info.request_preview == "What is 2+2?"
    assert info.response_preview == '"four"'

    by_name = {s.name: s for s in trace.data.spans}
    assert {n: s.span_type for n, s in by_name.items()} == {
        "agent": "AGENT", "chat": "CHAT_MODEL", "rollup": "CHAIN", "inner": "LLM",
        "priced": None,
    }
    # The translated usage is stored on the span itself.
    assert by_name["chat"].attributes["mlflow.chat.tokenUsage"] == {
        "input_tokens": 11, "output_tokens": 4, "total_tokens": 15, "cache_read_input_tokens": 3,
    }
    assert by_name["inner"].attributes["mlflow.chat.tokenUsage"] == {
        "input_tokens": 60, "output_tokens": 30, "total_tokens": 90,
    }
    assert by_name["agent"].inputs == messages
    assert by_name["agent"].outputs == "four"


def test_otlp_batches_are_recomputed_never_double_counted(server, tracing):
    """Spans of one trace in several requests, a request sent twice, a rollup parent after its
    children, the root last: usage follows the whole span tree, the first session wins, and
    the trace stays IN_PROGRESS until its root arrives."""
    t = OtlpTrace()
    leaf = t.span("leaf", parent="rollup", start_ms=2, end_ms=5,
                  attributes={"mlflow.chat.tokenUsage": usage(10, 5, 15)})

    post_otlp(server, tracing, [leaf])
    info = info_json(server, t.mlflow_id)
    assert info["state"] == "IN_PROGRESS"
    assert info["trace_metadata"] == {TOKEN_USAGE: usage(10, 5, 15)}
    assert "mlflow.traceName" not in info["tags"]
    assert info["tags"]["mlflow.trace.spansLocation"] == "TRACKING_STORE"

    post_otlp(server, tracing, [leaf])  # a retried export
    assert info_json(server, t.mlflow_id)["trace_metadata"] == {TOKEN_USAGE: usage(10, 5, 15)}

    post_otlp(server, tracing, [t.span("leaf2", parent="rollup", start_ms=3, end_ms=6, attributes={
        "gen_ai.usage.input_tokens": 1, "gen_ai.usage.output_tokens": 1,
        "gen_ai.conversation.id": "conv-1",
    })])
    assert info_json(server, t.mlflow_id)["trace_metadata"] == {
        TOKEN_USAGE: usage(11, 6, 17), SESSION: "conv-1",
    }

    # The rollup's own total replaces its children's; a second session id is ignored.
    post_otlp(server, tracing, [t.span("rollup", parent="agent", start_ms=1, end_ms=8, attributes={
        "mlflow.chat.tokenUsage": usage(100, 50, 150), "session.id": "later",
    })])
    info = info_json(server, t.mlflow_id)
    assert info["state"] == "IN_PROGRESS"
    assert info["trace_metadata"] == {TOKEN_USAGE: usage(100, 50, 150), SESSION: "conv-1"}

    reply = {"messages": [{"role": "user", "content": "hi"},
                          {"role": "assistant", "content": "reply"}]}
    post_otlp(server, tracing, [t.span("agent", start_ms=0, end_ms=9, status=OTLP_ERROR, attributes={
        "input.value": "hello", "output.value": json.dumps(reply), "user.id": "u1",
    })])
    info = MlflowClient().get_trace(t.mlflow_id).info
    assert info.state == TraceState.ERROR  # the root span's status
    assert info.trace_metadata == {
        TOKEN_USAGE: usage(100, 50, 150), SESSION: "conv-1", USER: "u1",
    }
    assert info.request_time == t.ms(0)
    assert info.execution_duration == 9
    assert info.request_preview == '"hello"'
    assert info.response_preview == "reply"  # the last assistant message
    # Without a `mlflow.traceTag.mlflow.traceName` attribute an OTLP trace has no name.
    assert "mlflow.traceName" not in info.tags
    assert sorted(s.name for s in MlflowClient().get_trace(t.mlflow_id).data.spans) == [
        "agent", "leaf", "leaf2", "rollup",
    ]


def test_start_trace_v3_values_are_authoritative_over_spans(server, tracing):
    """StartTraceV3 finalizes the record: its time, state, usage and session win whether spans
    came before or after it; what it left out, later spans may still fill in."""
    span_usage = {"mlflow.chat.tokenUsage": usage(10, 5, 15), "session.id": "span-sess"}

    # Spans first, then the client's record (the stock client's order).
    first = OtlpTrace()
    post_otlp(server, tracing, [first.span("root", end_ms=9, attributes=span_usage)])
    assert info_json(server, first.mlflow_id)["trace_metadata"] == {
        TOKEN_USAGE: usage(10, 5, 15), SESSION: "span-sess",
    }
    start_trace_v3(server, tracing, first.mlflow_id, first.ms(-1000), 5000, state="ERROR",
                   metadata={TOKEN_USAGE: usage(1, 2, 3), SESSION: "client-sess"},
                   tags={"mlflow.traceName": "from-client"})
    # A late span that starts earlier, ends later and carries usage changes none of it.
    post_otlp(server, tracing, [first.span("late", parent="root", start_ms=-5000, end_ms=60000,
                                           attributes={"mlflow.chat.tokenUsage": usage(7, 7, 14)})])
    info = MlflowClient().get_trace(first.mlflow_id).info
    assert info.request_time == first.ms(-1000)
    assert info.execution_duration == 5000
    assert info.state == TraceState.ERROR
    assert info.trace_metadata == {
        TOKEN_USAGE: usage(1, 2, 3), SESSION: "client-sess", FINALIZED: "true",
    }
    assert info.tags["mlflow.traceName"] == "from-client"

    # The record first, without usage or session: the spans supply those, not the times.
    second = OtlpTrace()
    start_trace_v3(server, tracing, second.mlflow_id, second.ms(0), 9, metadata={"k": "v"},
                   request_preview="client-preview")
    post_otlp(server, tracing, [second.span("root", start_ms=-1000, end_ms=9, attributes={
        **span_usage, "mlflow.spanInputs": '"in"', "mlflow.spanOutputs": '"out"',
    })])
    info = MlflowClient().get_trace(second.mlflow_id).info
    assert info.request_time == second.ms(0)
    assert info.execution_duration == 9
    assert info.trace_metadata == {
        "k": "v", FINALIZED: "true", TOKEN_USAGE: usage(10, 5, 15), SESSION: "span-sess",
    }
    assert info.request_preview == "client-preview"  # set by the client: kept
    assert info.response_preview == '"out"'  # left empty by the client: derived

    # The record first, with usage: the spans' usage is ignored, their session is not.
    third = OtlpTrace()
    start_trace_v3(server, tracing, third.mlflow_id, third.ms(0), 9,
                   metadata={TOKEN_USAGE: usage(1, 2, 3)})
    post_otlp(server, tracing, [third.span("root", end_ms=9, attributes=span_usage)])
    assert info_json(server, third.mlflow_id)["trace_metadata"] == {
        TOKEN_USAGE: usage(1, 2, 3), SESSION: "span-sess", FINALIZED: "true",
    }


def test_reserved_metadata_is_stored_canonically(server, tracing):
    """Usage and cost are kept as numbers, not text: whatever JSON the client sends comes back
    in one spelling, with unknown keys and unusable values left out."""
    t = OtlpTrace()
    returned = start_trace_v3(server, tracing, t.mlflow_id, t.ms(0), 5, metadata={
        TOKEN_USAGE: '{"total_tokens":15,"input_tokens":10,"foo":3,"output_tokens":"5"}',
        COST: '{"total_cost": 1, "input_cost": 0.00001, "output_cost": 0.99999}',
        SESSION: "s-1",
    })
    expected = {
        TOKEN_USAGE: '{"input_tokens": 10, "output_tokens": 5, "total_tokens": 15}',
        COST: '{"input_cost": 1e-05, "output_cost": 0.99999, "total_cost": 1.0}',
        SESSION: "s-1",
        FINALIZED: "true",
    }
    assert returned["trace_metadata"] == expected
    assert info_json(server, t.mlflow_id)["trace_metadata"] == expected

    odd = OtlpTrace()
    start_trace_v3(server, tracing, odd.mlflow_id, odd.ms(0), 5, metadata={
        TOKEN_USAGE: '{"input_tokens": 2.0, "output_tokens": 2.5, "total_tokens": true}',
        COST: "[1]",
    })
    assert info_json(server, odd.mlflow_id)["trace_metadata"] == {
        TOKEN_USAGE: '{"input_tokens": 2}', FINALIZED: "true",
    }

    resp = api(server, "POST", f"{V3}/traces", json={"trace": {"trace_info": {
        "trace_id": OtlpTrace().mlflow_id,
        "trace_location": {"type": "MLFLOW_EXPERIMENT",
                           "mlflow_experiment": {"experiment_id": tracing}},
        "request_time": rfc3339(t.ms(0)), "execution_duration": "0.005s", "state": "OK",
        "trace_metadata": {SESSION: "s" * 251},
    }}})
    assert resp.status_code == 400, resp.text
    assert resp.json()["error_code"] == "INVALID_PARAMETER_VALUE"


# --------------------------------------------------------------------------------------------
# B. Legacy v2 StartTrace / EndTrace
# --------------------------------------------------------------------------------------------


def as_map(entries) -> dict:
    return {e["key"]: e["value"] for e in entries or []}


def test_v2_start_and_end_trace_round_trip(server, tracing):
    """StartTrace makes an IN_PROGRESS record with a 32-hex request id; EndTrace sets the
    duration and status and merges metadata and tags; the record and the spans uploaded to
    its artifact location read back through the v2, v3 and client APIs."""
    start_ms = int(time.time() * 1000)
    resp = api(server, "POST", f"{V2}/traces", json={
        "experiment_id": tracing,
        "timestamp_ms": start_ms,
        "request_metadata": [{"key": "m1", "value": "v1"}, {"key": SESSION, "value": "sess-v2"},
                             {"key": TOKEN_USAGE, "value": usage(3, 4, 7)}],
        "tags": [{"key": "t1", "value": "x"}, {"key": "mlflow.traceName", "value": "legacy"}],
    })
    assert resp.status_code == 200, resp.text
    started = resp.json()["trace_info"]
    request_id = started["request_id"]
    assert re.fullmatch(r"[0-9a-f]{32}", request_id), request_id  # no `tr-` prefix
    assert started["experiment_id"] == tracing
    assert started["timestamp_ms"] == start_ms
    assert started["execution_time_ms"] == 0  # NULL until EndTrace, sent as 0
    assert started["status"] == "IN_PROGRESS"
    assert as_map(started["request_metadata"]) == {
        "m1": "v1", SESSION: "sess-v2", TOKEN_USAGE: usage(3, 4, 7),
    }
    tags = as_map(started["tags"])
    location = tags.pop("mlflow.artifactLocation")
    assert location.endswith(f"/{tracing}/traces/{request_id}/artifacts")
    assert tags == {"t1": "x", "mlflow.traceName": "legacy"}
    got = api(server, "GET", f"{V2}/traces/{request_id}/info")
    assert got.status_code == 200 and got.json()["trace_info"]["status"] == "IN_PROGRESS"
    assert got.json()["trace_info"]["execution_time_ms"] == 0

    # What a v2-era client does between the two calls: upload the spans as traces.json.
    b64 = lambda raw: base64.b64encode(raw).decode()  # noqa: E731
    span = {
        "trace_id": b64(secrets.token_bytes(16)), "span_id": b64(secrets.token_bytes(8)),
        "parent_span_id": None, "name": "legacy",
        "start_time_unix_nano": start_ms * 1_000_000,
        "end_time_unix_nano": (start_ms + 250) * 1_000_000,
        "events": [], "status": {"code": "STATUS_CODE_OK", "message": ""},
        "attributes": {"mlflow.traceRequestId": json.dumps(request_id),
                       "mlflow.spanType": json.dumps("CHAIN"),
                       "mlflow.spanInputs": json.dumps({"q": 1}),
                       "mlflow.spanOutputs": json.dumps("done")},
    }
    assert location.startswith("mlflow-artifacts:/"), location
    upload = api(server, "PUT", "/api/2.0/mlflow-artifacts/artifacts/"
                 f"{location.removeprefix('mlflow-artifacts:/')}/traces.json",
                 data=json.dumps({"spans": [span]}))
    assert upload.status_code == 200, upload.text

    resp = api(server, "PATCH", f"{V2}/traces/{request_id}", json={
        "timestamp_ms": start_ms + 250, "status": "OK",
        "request_metadata": [{"key": "m2", "value": "v2"}, {"key": "m1", "value": "v1b"}],
        "tags": [{"key": "t2", "value": "y"}],
    })
    assert resp.status_code == 200, resp.text
    ended = resp.json()["trace_info"]
    assert ended["request_id"] == request_id and ended["experiment_id"] == tracing
    assert ended["timestamp_ms"] == start_ms
    assert ended["execution_time_ms"] == 250
    assert ended["status"] == "OK"
    expected_metadata = {"m1": "v1b", "m2": "v2", SESSION: "sess-v2", TOKEN_USAGE: usage(3, 4, 7)}
    assert as_map(ended["request_metadata"]) == expected_metadata
    assert as_map(ended["tags"]) == {
        "t1": "x", "t2": "y", "mlflow.traceName": "legacy", "mlflow.artifactLocation": location,
    }
    info = api(server, "GET", f"{V2}/traces/{request_id}/info").json()["trace_info"]
    assert {k: info[k] for k in ("request_id", "timestamp_ms", "execution_time_ms", "status")} == {
        "request_id": request_id, "timestamp_ms": start_ms, "execution_time_ms": 250,
        "status": "OK",
    }
    assert as_map(info["request_metadata"]) == expected_metadata

    v3 = info_json(server, request_id)
    assert v3["trace_id"] == request_id and v3["state"] == "OK"
    assert v3["execution_duration"] == "0.250s"
    assert v3["trace_metadata"] == expected_metadata

    trace = MlflowClient().get_trace(request_id)
    assert trace.info.request_time == start_ms
    assert trace.info.execution_duration == 250
    assert trace.info.state == TraceState.OK
    assert trace.info.trace_metadata == expected_metadata
    assert trace.info.token_usage == {"input_tokens": 3, "output_tokens": 4, "total_tokens": 7}
    assert trace.info.tags["mlflow.traceName"] == "legacy"
    (root,) = trace.data.spans
    assert (root.name, root.span_type, root.inputs, root.outputs) == (
        "legacy", "CHAIN", {"q": 1}, "done",
    )
    found = mlflow.search_traces(locations=[tracing], filter_string="trace.name = 'legacy'",
                                 return_type="list")
    assert [t.info.trace_id for t in found] == [request_id]


def test_v2_calls_from_the_legacy_client(server, tracing):
    """The 3.x client's own v2 fallback (RestStore.deprecated_*_trace_v2) against the server."""
    from mlflow.entities.trace_status import TraceStatus

    store = MlflowClient()._tracking_client.store
    start_ms = int(time.time() * 1000)
    started = store.deprecated_start_trace_v2(
        experiment_id=tracing, timestamp_ms=start_ms, request_metadata={"a": "1"},
        tags={"b": "2"},
    )
    assert started.experiment_id == tracing and started.timestamp_ms == start_ms
    assert started.status == TraceStatus.IN_PROGRESS
    assert started.request_metadata == {"a": "1"}
    assert started.tags["b"] == "2"
    ended = store.deprecated_end_trace_v2(
        request_id=started.request_id, timestamp_ms=start_ms + 40, status=TraceStatus.ERROR,
        request_metadata={"c": "3"}, tags={"mlflow.traceName": "fallback"},
    )
    assert ended.request_id == started.request_id
    assert ended.execution_time_ms == 40
    assert ended.status == TraceStatus.ERROR
    assert ended.request_metadata == {"a": "1", "c": "3"}
    assert ended.tags["b"] == "2" and ended.tags["mlflow.traceName"] == "fallback"
    with raises_mlflow_error("RESOURCE_DOES_NOT_EXIST"):
        store.deprecated_end_trace_v2(
            request_id="0" * 32, timestamp_ms=start_ms, status=TraceStatus.OK,
            request_metadata={}, tags={},
        )


def test_v2_trace_calls_reject_bad_requests_with_mlflow_codes(server, tracing):
    """The validation `mlflow server` applies to the v2 calls (none of these is a 500)."""
    now = int(time.time() * 1000)
    gone = MlflowClient().create_experiment(unique_name("gone"))
    MlflowClient().delete_experiment(gone)
    start = f"{V2}/traces"
    bad = 400, "INVALID_PARAMETER_VALUE"
    cases = [
        ("POST", start, {"experiment_id": "999999999", "timestamp_ms": now},
         404, "RESOURCE_DOES_NOT_EXIST"),
        ("POST", start, {"experiment_id": gone, "timestamp_ms": now}, *bad),
        ("POST", start, {"experiment_id": int(tracing), "timestamp_ms": now}, *bad),
        ("POST", start, {"experiment_id": tracing, "timestamp_ms": "soon"}, *bad),
        ("POST", start, {"experiment_id": tracing, "timestamp_ms": now,
                         "request_metadata": {"a": "b"}}, *bad),
        ("POST", start, {"experiment_id": tracing, "timestamp_ms": now,
                         "tags": [{"value": "no key"}]}, *bad),
        ("POST", start, {"experiment_id": tracing, "timestamp_ms": now,
                         "tags": [{"key": "mlflow.traceName", "value": "n" * 4097}]}, *bad),
        ("PATCH", f"{start}/{'0' * 32}", {"timestamp_ms": now, "status": "OK"},
         404, "RESOURCE_DOES_NOT_EXIST"),
        ("PATCH", f"{start}/tr-{'0' * 32}", {"timestamp_ms": now, "status": "OK"},
         404, "RESOURCE_DOES_NOT_EXIST"),
        ("GET", f"{start}/{'0' * 32}/info", None, 404, "RESOURCE_DOES_NOT_EXIST"),
    ]
    for method, path, body, status, code in cases:
        resp = api(server, method, path, json=body)
        assert resp.status_code == status, (method, path, body, resp.text)
        assert resp.json()["error_code"] == code, (method, path, body, resp.text)

    ok = api(server, "POST", start, json={"experiment_id": tracing, "timestamp_ms": now})
    request_id = ok.json()["trace_info"]["request_id"]
    for body in ({"timestamp_ms": "late", "status": "OK"},
                 {"timestamp_ms": now, "status": "OK", "tags": {"k": "v"}}):
        resp = api(server, "PATCH", f"{start}/{request_id}", json=body)
        assert resp.status_code == 400, (body, resp.text)
        assert resp.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    # A tag without a value is stored empty; the status is a name or its enum number.
    resp = api(server, "PATCH", f"{start}/{request_id}",
               json={"timestamp_ms": now + 5, "status": 2, "tags": [{"key": "empty"}]})
    assert resp.status_code == 200, resp.text
    assert resp.json()["trace_info"]["status"] == "ERROR"
    assert as_map(resp.json()["trace_info"]["tags"])["empty"] == ""


# --------------------------------------------------------------------------------------------
# C. Search: RLIKE, feedback / expectation, prompt
# --------------------------------------------------------------------------------------------


def log_trace(name, tags, metadata, span_type=SpanType.CHAIN) -> str:
    def body(question):
        mlflow.update_current_trace(tags=tags, metadata=metadata)
        return question

    mlflow.trace(body, name=name, span_type=span_type)("q")
    return mlflow.get_last_active_trace_id()


@pytest.fixture
def three_traces(tracing):
    """a (alpha-1, prod-eu), b (beta-22, prod-us, an LLM root), c (gamma, staging)."""
    made = {
        "a": log_trace("alpha-1", {"env": "prod-eu"}, {"tenant": "acme-01"}),
        "b": log_trace("beta-22", {"env": "prod-us"}, {"tenant": "Globex"}, SpanType.LLM),
        "c": log_trace("gamma", {"env": "staging"}, {"tenant": "initech"}),
    }
    return tracing, made


def matcher(experiment_id, made):
    names = {v: k for k, v in made.items()}

    def found(filter_string) -> set:
        traces = mlflow.search_traces(
            locations=[experiment_id], filter_string=filter_string, return_type="list"
        )
        return {names[t.info.trace_id] for t in traces}

    return found


def test_search_traces_rlike(three_traces):
    """RLIKE is an unanchored, case-sensitive regular expression on the same columns as LIKE."""
    experiment_id, made = three_traces
    found = matcher(experiment_id, made)
    cases = {
        "tags.env RLIKE '^prod-(eu|us)$'": {"a", "b"},
        "tags.env RLIKE 'prod'": {"a", "b"},
        "tags.env RLIKE 'PROD'": set(),
        "tags.env rlike 'ging$'": {"c"},
        "tags.`env` RLIKE 'eu'": {"a"},
        "tags.env RLIKE '^eu'": set(),
        "tags.missing RLIKE '.*'": set(),
        "metadata.tenant RLIKE '^[a-z]+-[0-9]+$'": {"a"},
        "metadata.tenant RLIKE 'G.*x'": {"b"},
        "request_metadata.tenant RLIKE 'i'": {"c"},
        "trace.name RLIKE '^(alpha|beta)-[0-9]+$'": {"a", "b"},
        "name RLIKE 'a$'": {"c"},
        "tags.`mlflow.traceName` RLIKE 'amm'": {"c"},
        "trace.status RLIKE '^O'": {"a", "b", "c"},
        "trace.status RLIKE 'ERR'": set(),
        "trace.request_id RLIKE '^tr-[0-9a-f]{32}$'": {"a", "b", "c"},
        "span.name RLIKE '^beta'": {"b"},
        "span.type RLIKE 'LL'": {"b"},
        "span.attributes.mlflow.spanType RLIKE '^LLM$'": {"b"},
        "span.attributes.mlflow.spanType RLIKE 'HAI'": {"a", "c"},
        "tags.env RLIKE 'prod' AND metadata.tenant RLIKE '^G'": {"b"},
        "tags.env RLIKE 'prod' AND trace.name RLIKE 'gamma'": set(),
    }
    for filter_string, expected in cases.items():
        assert found(filter_string) == expected, filter_string

    for bad in ("span.content RLIKE 'q'", "trace.text RLIKE 'q'",
                "trace.timestamp_ms RLIKE '1'", f"metadata.`{TOKEN_USAGE}` RLIKE '1'",
                "tags.env RLIKE 'prod' OR tags.env = 'x'"):
        with raises_mlflow_error("INVALID_PARAMETER_VALUE"):
            found(bad)


def test_search_traces_by_feedback_and_expectation(three_traces):
    """`feedback.<name>` / `expectation.<name>` compare the assessment's JSON value: a quoted
    string for =, !=, LIKE, ILIKE and RLIKE (matching the raw value or its JSON string), an
    unquoted number for <, <=, >, >= (numbers only); only valid assessments count."""
    experiment_id, t = three_traces
    human = AssessmentSource(source_type="HUMAN", source_id="ana")
    for trace, name, value in [
        ("a", "quality", "good"), ("b", "quality", "bad"),
        ("a", "score", 0.9), ("b", "score", 0.3), ("c", "score", 5),
        ("a", "ok", True), ("b", "ok", False),
        ("c", "detail", {"k": "v"}),
    ]:
        mlflow.log_feedback(trace_id=t[trace], name=name, value=value, source=human)
    mlflow.log_expectation(trace_id=t["a"], name="answer", value="X")
    mlflow.log_expectation(trace_id=t["b"], name="answer", value={"text": "Y"})
    mlflow.log_expectation(trace_id=t["c"], name="answer", value=["a", 1])
    found = matcher(experiment_id, t)

    cases = {
        "feedback.quality = 'good'": {"a"},
        "feedback.quality = '\"good\"'": {"a"},
        "feedback.`quality` = 'good'": {"a"},
        "feedback.quality = 'Good'": set(),
        "feedback.quality != 'good'": {"b"},  # c has no quality feedback at all
        "feedback.quality LIKE 'go%'": set(),  # the stored text is "good", quotes included
        "feedback.quality LIKE '%go%'": {"a"},
        "feedback.quality ILIKE '%GOO%'": {"a"},
        "feedback.quality RLIKE '^good$'": set(),
        "feedback.quality RLIKE '^\"good\"$'": {"a"},
        "feedback.quality RLIKE 'oo|ba'": {"a", "b"},
        "feedback.quality IS NULL": {"c"},
        "feedback.quality IS NOT NULL": {"a", "b"},
        "feedback.score > 0.5": {"a", "c"},
        "feedback.score >= 0.3": {"a", "b", "c"},
        "feedback.score < 1": {"a", "b"},
        "feedback.score <= 0.3": {"b"},
        "feedback.score > 1": {"c"},
        "feedback.score = '0.9'": {"a"},
        # Numbers travel as a protobuf Value (a double): 5 is stored, and matched, as 5.0.
        "feedback.score = '5.0'": {"c"},
        "feedback.score = '5'": set(),
        "feedback.ok = 'true'": {"a"},
        "feedback.ok = 'True'": set(),
        "feedback.ok != 'true'": {"b"},
        "feedback.ok > 0": set(),  # booleans are not numbers
        "feedback.detail = '{\"k\": \"v\"}'": {"c"},
        "feedback.detail LIKE '%\"k\"%'": {"c"},
        "feedback.missing IS NULL": {"a", "b", "c"},
        "expectation.answer = 'X'": {"a"},
        "expectation.answer = '{\"text\": \"Y\"}'": {"b"},
        "expectation.answer = '[\"a\", 1]'": {"c"},
        "expectation.answer LIKE '%Y%'": {"b"},
        "expectation.answer RLIKE 'X|Y'": {"a", "b"},
        "expectation.answer IS NOT NULL": {"a", "b", "c"},
        "expectation.quality IS NULL": {"a", "b", "c"},  # feedback and expectation are apart
        "feedback.answer IS NOT NULL": set(),
        "feedback.quality = 'good' AND expectation.answer = 'X'": {"a"},
        "feedback.score > 0.5 AND tags.env RLIKE '^prod'": {"a"},
        "feedback.quality = 'good' AND tags.env = 'prod-us'": set(),
    }
    for filter_string, expected in cases.items():
        assert found(filter_string) == expected, filter_string

    # An overridden assessment stops counting; its override counts instead.
    original = next(a for a in mlflow.get_trace(t["b"]).info.assessments if a.name == "quality")
    mlflow.override_feedback(trace_id=t["b"], assessment_id=original.assessment_id,
                             value="good", source=human)
    assert found("feedback.quality = 'good'") == {"a", "b"}
    assert found("feedback.quality = 'bad'") == set()

    for bad in ("feedback.score = 0.9", "feedback.score > '0.5'", "feedback.quality IN ('good')",
                "assessment.quality = 'good'", "feedback = 'good'",
                "expectation.answer > 'X'"):
        with raises_mlflow_error("INVALID_PARAMETER_VALUE"):
            found(bad)


def test_search_traces_by_linked_prompt(server, three_traces):
    """`prompt = 'name/version'` finds traces linked to that prompt version (link-prompts);
    any other comparator or spelling is refused."""
    experiment_id, t = three_traces
    found = matcher(experiment_id, t)
    for trace, versions in (("a", [("greeting", "1")]), ("b", [("greeting", "2"), ("qa", "1")])):
        resp = api(server, "POST", f"{V2}/traces/link-prompts", json={
            "trace_id": t[trace],
            "prompt_versions": [{"name": n, "version": v} for n, v in versions],
        })
        assert resp.status_code == 200, resp.text

    assert found("prompt = 'greeting/1'") == {"a"}
    assert found("prompt = 'greeting/2'") == {"b"}
    assert found("prompt = 'qa/1' AND tags.env RLIKE 'us$'") == {"b"}
    assert found("prompt = 'greeting/3'") == set()
    for bad in ("prompt LIKE 'greeting/%'", "prompt = 'greeting'", "prompt != 'greeting/1'"):
        with raises_mlflow_error("INVALID_PARAMETER_VALUE"):
            found(bad)
