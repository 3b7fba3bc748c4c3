"""Trace metrics: `POST /api/3.0/mlflow/traces/metrics` (MLflow's QueryTraceMetrics), the
aggregations behind the web UI's experiment Overview (Usage, Quality and Tool calls tabs) and the
trace totals of its Traces tab. Each test below names the UI chart whose queries (as the 3.17.2
UI sends them, recorded in a browser) it replays.

Traces are made with the client's explicit-time API (`MlflowClient.start_trace/start_span/
end_span/end_trace` with `start_time_ns`/`end_time_ns`), so request times, durations and span
times are fixed and every expected value here is exact, not timing-dependent. Export is
synchronous (MLFLOW_ENABLE_ASYNC_TRACE_LOGGING=false), so a trace is stored when end_trace returns.

Answers worth knowing (MLflow's, checked here):
- `time_bucket` is the bucket start, epoch-aligned (floor(ts / interval) * interval), in UTC as
  Python's `datetime.isoformat()` renders it: "2025-03-01T01:00:00+00:00".
- Data points come ordered by time bucket, then by each dimension in request order (ascending).
- Percentile keys are `P<float>` ("P50.0", "P99.9"): linear interpolation (numpy's default).
- Groups whose aggregate is NULL are dropped, so an ungrouped COUNT over nothing is one point of
  0, while an AVG/SUM over nothing is no point at all (the answer is then `{}`).
- Nothing pages: there is never a `next_page_token`; `max_results` only truncates.
"""

from __future__ import annotations

import contextlib
import uuid

import pytest
import requests

import mlflow
from mlflow import MlflowClient
from mlflow.entities import AssessmentSource

from conftest import only_ferroflow, unique_name

V3 = "/api/3.0/mlflow"
METRICS = f"{V3}/traces/metrics"
AJAX_METRICS = "/ajax-api/3.0/mlflow/traces/metrics"

MS = 1_000_000  # nanoseconds per millisecond
MINUTE, HOUR, DAY = 60_000, 3_600_000, 86_400_000  # in ms
BASE = 1_740_787_200_000  # 2025-03-01T00:00:00Z
RANGE = {"start_time_ms": BASE, "end_time_ms": BASE + 2 * DAY - 1}
HOUR_0 = "2025-03-01T00:00:00+00:00"
HOUR_1 = "2025-03-01T01:00:00+00:00"
DAY_1 = "2025-03-01T00:00:00+00:00"
DAY_2 = "2025-03-02T00:00:00+00:00"
DAY_2_HOUR_1 = "2025-03-02T01:00:00+00:00"

TRACE_METRIC_NAMES = [
    "trace_count", "session_count", "latency", "input_tokens", "output_tokens", "total_tokens",
    "cache_read_input_tokens", "cache_creation_input_tokens",
]


# --------------------------------------------------------------------------------------------
# Data: four traces at fixed times in one experiment, one more in a neighbour experiment
# --------------------------------------------------------------------------------------------

# (name, offset from BASE in ms, duration ms, state, tag `team`, LLM span, TOOL span)
#   LLM span: (input tokens, output tokens, model, total cost) or None
#   TOOL span: (duration ms, status) or None
TRACES = [
    ("alpha", 10 * MINUTE, 100, "OK", "red", (10, 5, "gpt-a", 0.25), (30, "OK")),
    ("alpha", 20 * MINUTE, 200, "OK", "blue", (20, 10, "gpt-b", 0.5), (50, "ERROR")),
    ("beta", 70 * MINUTE, 300, "ERROR", "red", (5, 1, "gpt-b", 0.125), None),
    ("beta", DAY + 60 * MINUTE, 400, "OK", "blue", None, None),
]


@contextlib.contextmanager
def synchronous_tracing(server):
    """The fluent API and the client's tracer pointed at `server`, exporting synchronously."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_ENABLE_ASYNC_TRACE_LOGGING", "false")
        mlflow.set_tracking_uri(server.url)
        mlflow.tracing.reset()  # the tracer provider reads the variable when it is built
        try:
            yield
        finally:
            mlflow.flush_trace_async_logging()
            mlflow.tracing.reset()


def log_fixed_trace(client, experiment_id, name, offset_ms, duration_ms, state, team, llm, tool):
    """One AGENT-rooted trace at BASE + offset_ms lasting duration_ms; returns its id."""
    t0 = (BASE + offset_ms) * MS
    root = client.start_trace(
        name, span_type="AGENT", experiment_id=experiment_id, start_time_ns=t0,
        tags={"team": team},
    )
    if llm:
        input_tokens, output_tokens, model, cost = llm
        span = client.start_span(
            "chat", trace_id=root.trace_id, parent_id=root.span_id, span_type="LLM",
            start_time_ns=t0 + 1 * MS,
            attributes={
                "mlflow.chat.tokenUsage": {
                    "input_tokens": input_tokens,
                    "output_tokens": output_tokens,
                    "total_tokens": input_tokens + output_tokens,
                },
                "mlflow.llm.model": model,
                "mlflow.llm.provider": "acme",
                "mlflow.llm.cost": {"input_cost": cost / 2, "output_cost": cost / 2,
                                    "total_cost": cost},
            },
        )
        client.end_span(root.trace_id, span.span_id, end_time_ns=t0 + 11 * MS)
    if tool:
        tool_ms, status = tool
        span = client.start_span(
            "lookup", trace_id=root.trace_id, parent_id=root.span_id, span_type="TOOL",
            start_time_ns=t0 + 20 * MS,
        )
        client.end_span(root.trace_id, span.span_id, status=status,
                        end_time_ns=t0 + (20 + tool_ms) * MS)
    client.end_trace(root.trace_id, status=state, end_time_ns=t0 + duration_ms * MS)
    return root.trace_id


@pytest.fixture(scope="module")
def data(server):
    """The four TRACES (with feedback and an expectation) in experiment `main`, and one more
    trace in experiment `other` at the same time; stored once per backend."""
    client = MlflowClient(tracking_uri=server.url)
    main = client.create_experiment(unique_name("metrics"))
    other = client.create_experiment(unique_name("metrics-other"))
    with synchronous_tracing(server):
        ids = [log_fixed_trace(client, main, *spec) for spec in TRACES]
        log_fixed_trace(client, other, "alpha", 15 * MINUTE, 1000, "OK", "red", None, None)
        human = AssessmentSource(source_type="HUMAN", source_id="ana@example.com")
        for trace_id, name, value in [
            (ids[0], "correct", True), (ids[1], "correct", False),
            (ids[2], "score", 0.5), (ids[3], "score", 1.0),
        ]:
            mlflow.log_feedback(trace_id=trace_id, name=name, value=value, source=human)
        mlflow.log_expectation(trace_id=ids[3], name="expected", value="x")
    stored = {t.info.trace_id: t.info for t in client.search_traces(locations=[main])}
    # What the rest of the module relies on: the times and durations we gave.
    for trace_id, (_, offset, duration, state, *_rest) in zip(ids, TRACES):
        assert stored[trace_id].request_time == BASE + offset
        assert stored[trace_id].execution_duration == duration
        assert stored[trace_id].state == state
    return main, other, ids


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


def aggregation(spec: str) -> dict:
    """"COUNT" -> {"aggregation_type": "COUNT"}; "P90" -> a PERCENTILE with percentile_value 90."""
    if spec.startswith("P"):
        return {"aggregation_type": "PERCENTILE", "percentile_value": float(spec[1:])}
    return {"aggregation_type": spec}


def body(experiment_ids, metric_name, aggregations, view_type="TRACES", **fields) -> dict:
    """A QueryTraceMetrics body as the UI builds it (enum names as strings)."""
    out = {
        "experiment_ids": list(experiment_ids),
        "view_type": view_type,
        "metric_name": metric_name,
        "aggregations": [aggregation(a) for a in aggregations],
    }
    out.update({k: v for k, v in fields.items() if v is not None})
    return out


def post(server, payload, path=METRICS) -> requests.Response:
    return requests.post(f"{server.url}{path}", json=payload, timeout=60)


def query(server, *args, path=METRICS, **kwargs) -> list[dict]:
    """The data points of a query that must succeed, in the server's order."""
    resp = post(server, body(*args, **kwargs), path)
    assert resp.status_code == 200, resp.text
    answer = resp.json()
    assert "next_page_token" not in answer, answer
    points = answer.get("data_points", [])
    for point in points:
        assert point["metric_name"] == args[1], point
    return points


def rows(points) -> list[tuple[dict, dict]]:
    """(dimensions, values) of each point; absent maps read as {}."""
    return [(p.get("dimensions", {}), p["values"]) for p in points]


def approx_rows(expected):
    return [(dims, pytest.approx(values)) for dims, values in expected]


# --------------------------------------------------------------------------------------------
# Usage tab
# --------------------------------------------------------------------------------------------


def test_trace_count_by_status_per_time_bucket(server, data):
    """The Traces and Errors charts: COUNT of trace_count by trace_status per time bucket.
    Buckets are epoch-aligned UTC starts; points are ordered by bucket, then status."""
    main, _, _ = data
    points = query(server, [main], "trace_count", ["COUNT"], time_interval_seconds=3600,
                   dimensions=["trace_status"], **RANGE)
    assert rows(points) == [
        ({"time_bucket": HOUR_0, "trace_status": "OK"}, {"COUNT": 2}),
        ({"time_bucket": HOUR_1, "trace_status": "ERROR"}, {"COUNT": 1}),
        ({"time_bucket": DAY_2_HOUR_1, "trace_status": "OK"}, {"COUNT": 1}),
    ]

    points = query(server, [main], "trace_count", ["COUNT"], time_interval_seconds=86400, **RANGE)
    assert rows(points) == [
        ({"time_bucket": DAY_1}, {"COUNT": 3}),
        ({"time_bucket": DAY_2}, {"COUNT": 1}),
    ]
    # A minute-sized bucket starts on the minute, whatever the seconds of the range start.
    points = query(server, [main], "trace_count", ["COUNT"], time_interval_seconds=60,
                   start_time_ms=BASE + 10 * MINUTE - 1234, end_time_ms=BASE + 30 * MINUTE)
    assert rows(points) == [
        ({"time_bucket": "2025-03-01T00:10:00+00:00"}, {"COUNT": 1}),
        ({"time_bucket": "2025-03-01T00:20:00+00:00"}, {"COUNT": 1}),
    ]


def test_trace_count_by_name_and_status_is_ordered_by_each_dimension(server, data):
    main, _, _ = data
    points = query(server, [main], "trace_count", ["COUNT"],
                   dimensions=["trace_name", "trace_status"])
    assert rows(points) == [
        ({"trace_name": "alpha", "trace_status": "OK"}, {"COUNT": 2}),
        ({"trace_name": "beta", "trace_status": "ERROR"}, {"COUNT": 1}),
        ({"trace_name": "beta", "trace_status": "OK"}, {"COUNT": 1}),
    ]
    points = query(server, [main], "trace_count", ["COUNT"],
                   dimensions=["trace_status", "trace_name"])
    assert rows(points) == [
        ({"trace_status": "ERROR", "trace_name": "beta"}, {"COUNT": 1}),
        ({"trace_status": "OK", "trace_name": "alpha"}, {"COUNT": 2}),
        ({"trace_status": "OK", "trace_name": "beta"}, {"COUNT": 1}),
    ]


def test_trace_count_totals_time_range_and_experiments(server, data):
    """The Traces tab's total (no dimensions, no buckets): one point without `dimensions`.
    start_time_ms and end_time_ms both include their millisecond; experiments add up."""
    main, other, _ = data
    assert rows(query(server, [main], "trace_count", ["COUNT"])) == [({}, {"COUNT": 4})]
    assert rows(query(server, [other], "trace_count", ["COUNT"])) == [({}, {"COUNT": 1})]
    assert rows(query(server, [main, other], "trace_count", ["COUNT"])) == [({}, {"COUNT": 5})]

    first, second = BASE + 10 * MINUTE, BASE + 20 * MINUTE
    inclusive = query(server, [main], "trace_count", ["COUNT"],
                      start_time_ms=first, end_time_ms=second)
    assert rows(inclusive) == [({}, {"COUNT": 2})]
    inside = query(server, [main], "trace_count", ["COUNT"],
                   start_time_ms=first + 1, end_time_ms=second - 1)
    assert rows(inside) == [({}, {"COUNT": 0})]  # COUNT over nothing is still a point
    only_start = query(server, [main], "trace_count", ["COUNT"], start_time_ms=BASE + HOUR)
    assert rows(only_start) == [({}, {"COUNT": 2})]


def test_latency_average_and_percentiles(server, data):
    """The Latency chart: P50/P90/P99 per bucket plus the overall AVG. Percentiles interpolate
    linearly between the two nearest durations; their keys are `P<float>`."""
    main, other, _ = data
    points = query(server, [main], "latency", ["P50", "P90", "P99"], time_interval_seconds=3600,
                   **RANGE)
    assert rows(points) == approx_rows([
        ({"time_bucket": HOUR_0}, {"P50.0": 150.0, "P90.0": 190.0, "P99.0": 199.0}),
        ({"time_bucket": HOUR_1}, {"P50.0": 300.0, "P90.0": 300.0, "P99.0": 300.0}),
        ({"time_bucket": DAY_2_HOUR_1}, {"P50.0": 400.0, "P90.0": 400.0, "P99.0": 400.0}),
    ])
    assert rows(query(server, [main], "latency", ["AVG"], **RANGE)) == [({}, {"AVG": 250.0})]

    points = query(server, [main], "latency", ["AVG", "MIN", "MAX", "P50", "P90", "P99", "P99.9"])
    assert rows(points) == approx_rows([({}, {
        "AVG": 250.0, "MIN": 100.0, "MAX": 400.0,
        "P50.0": 250.0, "P90.0": 370.0, "P99.0": 397.0, "P99.9": 399.7,
    })])
    points = query(server, [main], "latency", ["AVG"], dimensions=["trace_name"])
    assert rows(points) == [({"trace_name": "alpha"}, {"AVG": 150.0}),
                            ({"trace_name": "beta"}, {"AVG": 350.0})]
    # Both experiments: durations 100, 200, 300, 400 and 1000.
    assert rows(query(server, [main, other], "latency", ["AVG"])) == [({}, {"AVG": 400.0})]


def test_token_usage_sums_averages_and_percentiles(server, data):
    """The Token Usage and Tokens per Trace charts. Token counts are the trace's own usage
    (the sum over its LLM spans, as the client records it in `mlflow.trace.tokenUsage`); a
    trace without usage takes no part, and a metric nobody has gives no points at all."""
    main, _, _ = data
    for metric, total in [("input_tokens", 35), ("output_tokens", 16)]:
        points = query(server, [main], metric, ["SUM"], time_interval_seconds=86400, **RANGE)
        # The second day's only trace has no token usage: no point, not a zero.
        assert rows(points) == [({"time_bucket": DAY_1}, {"SUM": total})], metric

    points = query(server, [main], "total_tokens", ["SUM", "AVG"], **RANGE)
    assert rows(points) == approx_rows([({}, {"SUM": 51.0, "AVG": 17.0})])
    points = query(server, [main], "total_tokens", ["P50", "P90", "P99"],
                   time_interval_seconds=86400, **RANGE)
    assert rows(points) == approx_rows([
        ({"time_bucket": DAY_1}, {"P50.0": 15.0, "P90.0": 27.0, "P99.0": 29.7}),
    ])
    points = query(server, [main], "input_tokens", ["MIN", "MAX", "AVG"],
                   dimensions=["trace_name"])
    assert rows(points) == approx_rows([
        ({"trace_name": "alpha"}, {"MIN": 10.0, "MAX": 20.0, "AVG": 15.0}),
        ({"trace_name": "beta"}, {"MIN": 5.0, "MAX": 5.0, "AVG": 5.0}),
    ])

    for metric in ["cache_read_input_tokens", "cache_creation_input_tokens"]:
        resp = post(server, body([main], metric, ["SUM"], time_interval_seconds=86400, **RANGE))
        assert resp.status_code == 200 and resp.json() == {}, (metric, resp.text)


def test_llm_cost_by_model(server, data):
    """The Cost charts: SUM of the LLM spans' total_cost by model, overall and per bucket."""
    main, _, _ = data
    points = query(server, [main], "total_cost", ["SUM"], view_type="SPANS",
                   dimensions=["span_model_name"], **RANGE)
    assert rows(points) == approx_rows([
        ({"span_model_name": "gpt-a"}, {"SUM": 0.25}),
        ({"span_model_name": "gpt-b"}, {"SUM": 0.625}),
    ])
    points = query(server, [main], "total_cost", ["SUM"], view_type="SPANS",
                   dimensions=["span_model_name"], time_interval_seconds=3600, **RANGE)
    assert rows(points) == approx_rows([
        ({"time_bucket": HOUR_0, "span_model_name": "gpt-a"}, {"SUM": 0.25}),
        ({"time_bucket": HOUR_0, "span_model_name": "gpt-b"}, {"SUM": 0.5}),
        ({"time_bucket": HOUR_1, "span_model_name": "gpt-b"}, {"SUM": 0.125}),
    ])
    points = query(server, [main], "total_cost", ["SUM"], view_type="SPANS",
                   dimensions=["span_model_provider"])
    assert rows(points) == approx_rows([({"span_model_provider": "acme"}, {"SUM": 0.875})])


def test_filters_narrow_every_view(server, data):
    """Each filter is one `<view>.<entity>[.<key>] = "<value>"` clause (the UI quotes with
    double quotes; single quotes work too); several filters are ANDed."""
    main, _, _ = data

    def count(*filters):
        return query(server, [main], "trace_count", ["COUNT"], filters=list(filters))[0]["values"]

    assert count('trace.status = "ERROR"') == {"COUNT": 1}
    assert count("trace.status = 'OK'") == {"COUNT": 3}
    assert count('trace.tag.team = "red"') == {"COUNT": 2}
    assert count('trace.tag.`mlflow.traceName` = "alpha"') == {"COUNT": 2}
    assert count('trace.tag.team = "red"', 'trace.status = "OK"') == {"COUNT": 1}
    assert count('trace.tag.team = "nobody"') == {"COUNT": 0}

    # The Usage tab's filters reach token and span queries too.
    points = query(server, [main], "total_tokens", ["SUM"], filters=['trace.status = "ERROR"'])
    assert rows(points) == [({}, {"SUM": 6.0})]
    points = query(server, [main], "span_count", ["COUNT"], view_type="SPANS",
                   dimensions=["span_type"], filters=['trace.tag.team = "red"'])
    assert rows(points) == [({"span_type": "AGENT"}, {"COUNT": 2}),
                            ({"span_type": "LLM"}, {"COUNT": 2}),
                            ({"span_type": "TOOL"}, {"COUNT": 1})]
    points = query(server, [main], "span_count", ["COUNT"], view_type="SPANS",
                   filters=['span.name = "chat"', 'span.status = "OK"'])
    assert rows(points) == [({}, {"COUNT": 3})]


# --------------------------------------------------------------------------------------------
# Tool calls tab
# --------------------------------------------------------------------------------------------


def test_tool_call_counts_errors_and_latency(server, data):
    """The Tool calls tab: span metrics filtered to `span.type = "TOOL"`. Span latency is
    (end - start) in whole milliseconds; spans are bucketed by their own start time."""
    main, _, _ = data
    tools = ['span.type = "TOOL"']
    points = query(server, [main], "span_count", ["COUNT"], view_type="SPANS", filters=tools,
                   dimensions=["span_name", "span_status"], **RANGE)
    assert rows(points) == [({"span_name": "lookup", "span_status": "ERROR"}, {"COUNT": 1}),
                            ({"span_name": "lookup", "span_status": "OK"}, {"COUNT": 1})]
    points = query(server, [main], "span_count", ["COUNT"], view_type="SPANS", filters=tools,
                   dimensions=["span_name", "span_status"], time_interval_seconds=86400, **RANGE)
    assert rows(points) == [
        ({"time_bucket": DAY_1, "span_name": "lookup", "span_status": "ERROR"}, {"COUNT": 1}),
        ({"time_bucket": DAY_1, "span_name": "lookup", "span_status": "OK"}, {"COUNT": 1}),
    ]
    points = query(server, [main], "span_count", ["COUNT"], view_type="SPANS", filters=tools,
                   dimensions=["span_name"], time_interval_seconds=3600, **RANGE)
    assert rows(points) == [({"time_bucket": HOUR_0, "span_name": "lookup"}, {"COUNT": 2})]

    points = query(server, [main], "latency", ["AVG"], view_type="SPANS", filters=tools, **RANGE)
    assert rows(points) == [({}, {"AVG": 40.0})]
    points = query(server, [main], "latency", ["AVG"], view_type="SPANS", filters=tools,
                   dimensions=["span_name"], **RANGE)
    assert rows(points) == [({"span_name": "lookup"}, {"AVG": 40.0})]
    points = query(server, [main], "latency", ["AVG"], view_type="SPANS", filters=tools,
                   dimensions=["span_name"], time_interval_seconds=86400, **RANGE)
    assert rows(points) == [({"time_bucket": DAY_1, "span_name": "lookup"}, {"AVG": 40.0})]

    # Every span, by type: the AGENT roots, the LLM calls and the tools.
    points = query(server, [main], "latency", ["MIN", "MAX"], view_type="SPANS",
                   dimensions=["span_name"])
    assert rows(points) == approx_rows([
        ({"span_name": "alpha"}, {"MIN": 100.0, "MAX": 200.0}),
        ({"span_name": "beta"}, {"MIN": 300.0, "MAX": 400.0}),
        ({"span_name": "chat"}, {"MIN": 10.0, "MAX": 10.0}),
        ({"span_name": "lookup"}, {"MIN": 30.0, "MAX": 50.0}),
    ])


# --------------------------------------------------------------------------------------------
# Quality tab
# --------------------------------------------------------------------------------------------


def test_assessment_counts_and_values(server, data):
    """The Quality tab: feedback counts by name and JSON value, and average values per bucket
    (booleans count as 1/0). Assessments are bucketed by their trace's request time."""
    main, _, _ = data
    feedback = ['assessment.type = "feedback"']
    points = query(server, [main], "assessment_count", ["COUNT"], view_type="ASSESSMENTS",
                   dimensions=["assessment_name", "assessment_value"], filters=feedback, **RANGE)
    assert rows(points) == [
        ({"assessment_name": "correct", "assessment_value": "false"}, {"COUNT": 1}),
        ({"assessment_name": "correct", "assessment_value": "true"}, {"COUNT": 1}),
        ({"assessment_name": "score", "assessment_value": "0.5"}, {"COUNT": 1}),
        ({"assessment_name": "score", "assessment_value": "1.0"}, {"COUNT": 1}),
    ]
    points = query(server, [main], "assessment_value", ["AVG"], view_type="ASSESSMENTS",
                   dimensions=["assessment_name"], filters=feedback, time_interval_seconds=86400,
                   **RANGE)
    assert rows(points) == approx_rows([
        ({"time_bucket": DAY_1, "assessment_name": "correct"}, {"AVG": 0.5}),
        ({"time_bucket": DAY_1, "assessment_name": "score"}, {"AVG": 0.5}),
        ({"time_bucket": DAY_2, "assessment_name": "score"}, {"AVG": 1.0}),
    ])
    # Without a type filter the expectation counts too (its value is JSON: a quoted string).
    points = query(server, [main], "assessment_count", ["COUNT"], view_type="ASSESSMENTS",
                   dimensions=["assessment_name"])
    assert rows(points) == [({"assessment_name": "correct"}, {"COUNT": 2}),
                            ({"assessment_name": "expected"}, {"COUNT": 1}),
                            ({"assessment_name": "score"}, {"COUNT": 2})]
    points = query(server, [main], "assessment_count", ["COUNT"], view_type="ASSESSMENTS",
                   dimensions=["assessment_value"], filters=['assessment.name = "expected"'])
    assert rows(points) == [({"assessment_value": '"x"'}, {"COUNT": 1})]


def test_overridden_feedback_is_not_counted_twice(server, fluent):
    """An override marks the original invalid: only valid assessments are aggregated."""
    client = MlflowClient(tracking_uri=server.url)
    experiment = client.create_experiment(unique_name("metrics-override"))
    with synchronous_tracing(server):
        trace_id = log_fixed_trace(client, experiment, "judged", 0, 10, "OK", "red", None, None)
        original = mlflow.log_feedback(trace_id=trace_id, name="score", value=0.2)
        mlflow.override_feedback(trace_id=trace_id, assessment_id=original.assessment_id,
                                 value=0.8)
    points = query(server, [experiment], "assessment_value", ["AVG"], view_type="ASSESSMENTS",
                   dimensions=["assessment_name"])
    assert rows(points) == approx_rows([({"assessment_name": "score"}, {"AVG": 0.8})])
    points = query(server, [experiment], "assessment_count", ["COUNT"], view_type="ASSESSMENTS")
    assert rows(points) == [({}, {"COUNT": 1})]


# --------------------------------------------------------------------------------------------
# Sessions, runs and trace states
# --------------------------------------------------------------------------------------------


def test_session_count_and_metadata_filters(server, fluent, monkeypatch):
    """The Traces tab's session total (distinct `mlflow.trace.session`), and the UI's metadata
    filters: user and session (Usage tab), `mlflow.sourceRun` (a run's traces)."""
    monkeypatch.setenv("MLFLOW_ENABLE_ASYNC_TRACE_LOGGING", "false")
    mlflow.tracing.reset()
    experiment = mlflow.set_experiment(unique_name("metrics-sessions")).experiment_id

    def traced(session=None, user=None):
        @mlflow.trace(name="turn")
        def turn():
            metadata = {"mlflow.trace.session": session, "mlflow.trace.user": user}
            mlflow.update_current_trace(metadata={k: v for k, v in metadata.items() if v})
            return "ok"

        turn()
        return mlflow.get_last_active_trace_id()

    traced("s1", "ana")
    traced("s1", "ana")
    traced("s2", "bob")
    with mlflow.start_run() as run:
        traced()
    mlflow.tracing.reset()

    assert rows(query(server, [experiment], "session_count", ["COUNT"])) == [({}, {"COUNT": 2})]
    assert rows(query(server, [experiment], "trace_count", ["COUNT"])) == [({}, {"COUNT": 4})]

    def count(filter_string):
        points = query(server, [experiment], "trace_count", ["COUNT"], filters=[filter_string])
        return points[0]["values"]["COUNT"]

    assert count('trace.metadata.`mlflow.trace.session` = "s1"') == 2
    assert count('trace.metadata.`mlflow.trace.user` = "ana"') == 2
    assert count('trace.metadata.`mlflow.trace.user` = "bob"') == 1
    assert count(f'trace.metadata.`mlflow.sourceRun` = "{run.info.run_id}"') == 1
    # Without backticks the key is everything after `metadata.`.
    assert count('trace.metadata.mlflow.trace.user = "ana"') == 2
    points = query(server, [experiment], "session_count", ["COUNT"],
                   filters=['trace.metadata.`mlflow.trace.user` = "bob"'])
    assert rows(points) == [({}, {"COUNT": 1})]


def start_trace_v3(server, experiment_id, request_time, state, duration=None, name=None) -> str:
    """StartTraceV3 over REST, for states and fields the client would not produce."""
    trace_id = "tr-" + uuid.uuid4().hex
    info = {
        "trace_id": trace_id,
        "trace_location": {"type": "MLFLOW_EXPERIMENT",
                           "mlflow_experiment": {"experiment_id": experiment_id}},
        "request_time": request_time,
        "state": state,
        "tags": {"mlflow.traceName": name} if name else {},
    }
    if duration is not None:
        info["execution_duration"] = duration
    resp = requests.post(f"{server.url}{V3}/traces", json={"trace": {"trace_info": info}},
                         timeout=60)
    assert resp.status_code == 200, resp.text
    return trace_id


def test_every_state_counts_and_missing_values_drop_out(server, client):
    """trace_count counts every state, IN_PROGRESS included; a trace without a name is left
    out of the trace_name grouping, one without a duration out of latency."""
    experiment = client.create_experiment(unique_name("metrics-states"))
    start_trace_v3(server, experiment, "2025-03-01T00:00:01Z", "OK", "0.100s", "a")
    start_trace_v3(server, experiment, "2025-03-01T00:00:02.500Z", "ERROR", "1.5s")
    start_trace_v3(server, experiment, "2025-03-01T00:00:03Z", "IN_PROGRESS", name="c")

    points = query(server, [experiment], "trace_count", ["COUNT"], dimensions=["trace_status"])
    assert rows(points) == [({"trace_status": "ERROR"}, {"COUNT": 1}),
                            ({"trace_status": "IN_PROGRESS"}, {"COUNT": 1}),
                            ({"trace_status": "OK"}, {"COUNT": 1})]
    points = query(server, [experiment], "trace_count", ["COUNT"], dimensions=["trace_name"])
    assert rows(points) == [({"trace_name": "a"}, {"COUNT": 1}),
                            ({"trace_name": "c"}, {"COUNT": 1})]
    points = query(server, [experiment], "latency", ["AVG", "MIN", "MAX"])
    assert rows(points) == [({}, {"AVG": 800.0, "MIN": 100.0, "MAX": 1500.0})]
    points = query(server, [experiment], "latency", ["AVG"], dimensions=["trace_name"])
    assert rows(points) == [({"trace_name": "a"}, {"AVG": 100.0})]
    # One-second buckets: the millisecond part of a request time is floored away.
    points = query(server, [experiment], "trace_count", ["COUNT"], time_interval_seconds=1,
                   start_time_ms=BASE, end_time_ms=BASE + MINUTE)
    assert [p["dimensions"]["time_bucket"] for p in points] == [
        "2025-03-01T00:00:01+00:00", "2025-03-01T00:00:02+00:00", "2025-03-01T00:00:03+00:00",
    ]


# --------------------------------------------------------------------------------------------
# Empty answers, limits, the ajax twin
# --------------------------------------------------------------------------------------------


def test_empty_experiment(server, client):
    """Nothing to aggregate: an ungrouped COUNT is one point of 0; AVG, SUM and anything
    grouped or bucketed give no points, which MLflow writes as `{}`."""
    experiment = client.create_experiment(unique_name("metrics-empty"))
    assert rows(query(server, [experiment], "trace_count", ["COUNT"])) == [({}, {"COUNT": 0})]
    for payload in [
        body([experiment], "latency", ["AVG"]),
        body([experiment], "total_tokens", ["SUM", "AVG"]),
        body([experiment], "trace_count", ["COUNT"], dimensions=["trace_status"]),
        body([experiment], "trace_count", ["COUNT"], time_interval_seconds=3600, **RANGE),
        body([experiment], "span_count", ["COUNT"], view_type="SPANS", dimensions=["span_name"]),
        body([experiment], "assessment_value", ["AVG"], view_type="ASSESSMENTS"),
    ]:
        resp = post(server, payload)
        assert resp.status_code == 200 and resp.json() == {}, (payload, resp.text)
    # An experiment that does not exist is simply empty.
    assert rows(query(server, ["987654321"], "trace_count", ["COUNT"])) == [({}, {"COUNT": 0})]


def test_max_results_truncates_and_never_pages(server, data):
    main, _, _ = data
    points = query(server, [main], "trace_count", ["COUNT"], dimensions=["trace_name"],
                   max_results=1)
    assert rows(points) == [({"trace_name": "alpha"}, {"COUNT": 2})]
    points = query(server, [main], "trace_count", ["COUNT"], dimensions=["trace_name"],
                   max_results=1000, page_token="ignored")
    assert len(points) == 2
    resp = post(server, body([main], "trace_count", ["COUNT"], dimensions=["trace_name"],
                             max_results=0))
    assert resp.status_code == 200 and resp.json() == {}, resp.text


def test_ajax_api_twin_answers_the_same(server, data):
    """The UI calls /ajax-api/3.0/...; it is the same endpoint as /api/3.0/..."""
    main, _, _ = data
    payload = body([main], "trace_count", ["COUNT"], time_interval_seconds=86400,
                   dimensions=["trace_status"], **RANGE)
    api, ajax = post(server, payload), post(server, payload, AJAX_METRICS)
    assert api.status_code == ajax.status_code == 200, (api.text, ajax.text)
    assert ajax.json() == api.json() and api.json()["data_points"]


def test_numbers_may_come_as_strings(server, data):
    """int64 fields in proto JSON may be strings (the UI sends numbers)."""
    main, _, _ = data
    points = query(server, [main], "trace_count", ["COUNT"], time_interval_seconds="86400",
                   start_time_ms=str(BASE), end_time_ms=str(BASE + 2 * DAY - 1),
                   max_results="10")
    assert rows(points) == [({"time_bucket": DAY_1}, {"COUNT": 3}),
                            ({"time_bucket": DAY_2}, {"COUNT": 1})]


# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------


def _metric_list(names):
    return "[" + ", ".join(f"'{n}'" for n in names) + "]"


# (name, changes to a valid trace_count body, exact message or None, substring)
INVALID = [
    ("unknown trace metric", {"metric_name": "bogus"},
     f"metric_name must be one of {_metric_list(TRACE_METRIC_NAMES)}, got 'bogus'", None),
    ("trace metric on spans", {"view_type": "SPANS"},
     "metric_name must be one of ['span_count', 'latency', 'input_cost', 'output_cost', "
     "'total_cost'], got 'trace_count'", None),
    ("assessment metric names", {"view_type": "ASSESSMENTS"},
     "metric_name must be one of ['assessment_count', 'assessment_value'], got 'trace_count'",
     None),
    ("SUM of trace_count", {"aggregations": [{"aggregation_type": "SUM"}]},
     "Found invalid aggregation_type(s): ['SUM']. Supported aggregation types: ['COUNT']", None),
    ("COUNT of latency", {"metric_name": "latency"},
     "Found invalid aggregation_type(s): ['COUNT']. "
     "Supported aggregation types: ['AVG', 'MAX', 'MIN', 'PERCENTILE']", None),
    ("span dimension on traces", {"dimensions": ["span_name"]},
     "Found invalid dimension(s): ['span_name']. Supported dimensions: ['trace_name', "
     "'trace_status']", None),
    ("dimension of session_count", {"metric_name": "session_count", "dimensions": ["trace_name"]},
     "Found invalid dimension(s): ['trace_name']. Supported dimensions: []", None),
    ("buckets without a range", {"time_interval_seconds": 60},
     "start_time_ms and end_time_ms are required if time_interval_seconds is set", None),
    ("buckets without an end", {"time_interval_seconds": 60, "start_time_ms": 0},
     "start_time_ms and end_time_ms are required if time_interval_seconds is set", None),
    ("missing view_type", {"view_type": None},
     "Missing value for required parameter 'view_type'. "
     "See the API docs for more information about request parameters.", None),
    ("missing metric_name", {"metric_name": None}, None, "'metric_name'"),
    ("missing aggregations", {"aggregations": None}, None, "'aggregations'"),
    ("missing experiment_ids", {"experiment_ids": None}, None, "'experiment_ids'"),
    ("experiment id not a number", {"experiment_ids": ["abc"]},
     "Invalid experiment ID 'abc'. Experiment ID must be a valid integer.", None),
    ("filter with !=", {"filters": ['trace.status != "OK"']},
     "Invalid comparator: '!=', only '=' operator is supported", None),
    ("filter with AND", {"filters": ['trace.status = "OK" AND trace.status = "OK"']},
     "Invalid clause(s) in filter string: AND", None),
    ("span filter on traces", {"filters": ['span.type = "TOOL"']},
     "Filtering by span is only supported for SPANS view type, got TRACES", None),
    ("assessment filter on traces", {"filters": ['assessment.name = "x"']}, None,
     "Filtering by assessment is only supported for ASSESSMENTS view type"),
    ("unknown trace entity", {"filters": ['trace.name = "alpha"']},
     "Invalid entity 'name' specified for view type 'trace'. "
     "Valid entities are ['status', 'tag', 'metadata']", None),
    ("unknown filter view", {"filters": ['foo.bar = "x"']}, None, "Invalid view type 'foo'"),
    ("tag without key", {"filters": ['trace.tag = "x"']},
     "Filtering by tag requires a key, e.g. 'trace.tag.<key> = <value>'", None),
    ("status with key", {"filters": ['trace.status.x = "x"']},
     "Filtering by status does not require a key, use 'trace.status' instead", None),
    ("unquoted value", {"filters": ["trace.status = OK"]}, None, "not quoted"),
    ("empty filter", {"filters": [""]}, "Invalid filter: ''. Expected one filter clause.", None),
    ("dimensions not a list", {"dimensions": "trace_name"}, None, "'dimensions'"),
    ("metric_name not a string", {"metric_name": 5}, None, "'metric_name'"),
    ("interval not a number", {"time_interval_seconds": "abc", "start_time_ms": 0,
                               "end_time_ms": 1}, None, "'time_interval_seconds'"),
]


@pytest.mark.parametrize("changes,message,fragment",
                         [case[1:] for case in INVALID], ids=[case[0] for case in INVALID])
def test_invalid_queries_answer_invalid_parameter_value(server, data, changes, message, fragment):
    main, _, _ = data
    payload = body([main], "trace_count", ["COUNT"])
    payload.update(changes)
    payload = {k: v for k, v in payload.items() if v is not None}
    resp = post(server, payload)
    assert resp.status_code == 400, resp.text
    error = resp.json()
    assert error["error_code"] == "INVALID_PARAMETER_VALUE", error
    if message is not None:
        assert error["message"] == message
    else:
        assert fragment in error["message"], error


def test_no_aggregations_is_a_client_error(server, data):
    """MLflow answers 400 (with error_code BAD_REQUEST: SQLAlchemy found nothing to select)."""
    main, _, _ = data
    resp = post(server, body([main], "trace_count", []))
    assert resp.status_code == 400, resp.text
    assert resp.json()["error_code"] in ("BAD_REQUEST", "INVALID_PARAMETER_VALUE")


@only_ferroflow
@pytest.mark.parametrize("aggregations", [
    [{"aggregation_type": "PERCENTILE"}],
    [{"aggregation_type": "PERCENTILE", "percentile_value": 150}],
    [{"aggregation_type": "PERCENTILE", "percentile_value": -1}],
    [{"aggregation_type": "AVG", "percentile_value": 50}],
], ids=["no percentile_value", "above 100", "below 0", "percentile_value on AVG"])
def test_bad_percentiles_are_400_not_500(server, data, aggregations):
    """MLflow raises a ValueError here and answers an HTML 500; a client error it is."""
    main, _, _ = data
    payload = {**body([main], "latency", []), "aggregations": aggregations}
    resp = post(server, payload)
    assert resp.status_code == 400, resp.text
    assert resp.json()["error_code"] == "INVALID_PARAMETER_VALUE"
