"""The REST API seen through raw `requests`, for what notebooks and other clients send
(MLFLOW_API.md §1.2-§1.5, §3): wire conventions, response shapes, and hostile input.

Every hostile request must get an MLflow-shaped 4xx and write nothing; each test reads the
data back to prove the second half.
"""

import json

import pytest
import requests
from packaging.version import Version

from conftest import MAX_DOUBLE, only_ferroflow, unique_name

API = "/api/2.0/mlflow"
UNKNOWN_RUN_ID = "0123456789abcdef0123456789abcdef"
LONG_KEY = "k" * 10_000


class Rest:
    """Thin `requests` wrapper bound to one server."""

    def __init__(self, url):
        self.url = url
        self.session = requests.Session()

    def post(self, path, body=None, prefix=API, **kwargs):
        if body is not None:
            kwargs["json"] = body
        return self.session.post(f"{self.url}{prefix}/{path}", timeout=60, **kwargs)

    def get(self, path, params=None, prefix=API):
        return self.session.get(f"{self.url}{prefix}/{path}", params=params, timeout=60)

    def ok(self, resp):
        assert resp.status_code == 200, f"{resp.status_code}: {resp.text[:500]}"
        assert resp.headers["Content-Type"].startswith("application/json")
        return resp.json()

    def new_experiment(self):
        return self.ok(self.post("experiments/create", {"name": unique_name("rest")}))[
            "experiment_id"
        ]

    def new_run(self, experiment_id=None):
        experiment_id = experiment_id or self.new_experiment()
        body = {"experiment_id": experiment_id, "start_time": 1_000}
        return self.ok(self.post("runs/create", body))["run"]["info"]["run_id"]

    def run(self, run_id):
        return self.ok(self.get("runs/get", {"run_id": run_id}))["run"]

    def data(self, run_id):
        """The run's data as plain dicts, to compare before and after a rejected write."""
        data = self.run(run_id)["data"]
        return {
            "metrics": {m["key"]: m["value"] for m in data.get("metrics", [])},
            "params": {p["key"]: p["value"] for p in data.get("params", [])},
            "tags": {t["key"]: t["value"] for t in data.get("tags", [])},
        }


@pytest.fixture
def rest(server):
    return Rest(server.url)


def assert_mlflow_error(resp, status, error_code):
    """An MLflow error envelope: JSON {"error_code": ..., "message": ...} with the HTTP status."""
    assert resp.status_code == status, (
        f"expected {status} {error_code}, got {resp.status_code}: {resp.text[:500]}"
    )
    assert resp.headers["Content-Type"].startswith("application/json"), resp.text[:300]
    body = resp.json()
    assert body["error_code"] == error_code, body
    assert isinstance(body["message"], str) and body["message"], body


# ---------------------------------------------------------------------------- plain endpoints


def test_health_answers_plain_ok(server):
    resp = requests.get(f"{server.url}/health", timeout=10)
    assert resp.status_code == 200
    assert resp.text.strip() == "OK"


def test_version_is_a_version_string(server):
    resp = requests.get(f"{server.url}/version", timeout=10)
    assert resp.status_code == 200
    Version(resp.text.strip())  # the tracing client parses it to decide about OTLP export


@pytest.mark.parametrize("prefix", ["/api/3.0/mlflow", "/ajax-api/3.0/mlflow"])
def test_server_info_is_a_json_object(server, prefix):
    resp = requests.get(f"{server.url}{prefix}/server-info", timeout=10)
    assert resp.status_code == 200
    assert resp.headers["Content-Type"].startswith("application/json")
    info = resp.json()
    assert isinstance(info, dict)
    # The artifact client reads these flags; local storage cannot do multipart uploads.
    for flag in ("multipart_uploads_enabled", "multipart_downloads_enabled", "workspaces_enabled"):
        assert isinstance(info.get(flag, False), bool), (flag, info)
    assert not info.get("multipart_uploads_enabled", False)
    assert not info.get("workspaces_enabled", False)


def test_api_and_ajax_api_prefixes_reach_the_same_endpoints(rest):
    ajax = "/ajax-api/2.0/mlflow"
    exp_id = rest.ok(rest.post("experiments/create", {"name": unique_name("ajax")}, prefix=ajax))[
        "experiment_id"
    ]
    run_id = rest.ok(rest.post("runs/create", {"experiment_id": exp_id}))["run"]["info"]["run_id"]
    rest.ok(
        rest.post("runs/set-tag", {"run_id": run_id, "key": "via", "value": "ajax"}, prefix=ajax)
    )
    via_api = rest.ok(rest.get("runs/get", {"run_id": run_id}))
    via_ajax = rest.ok(rest.get("runs/get", {"run_id": run_id}, prefix=ajax))
    assert via_api == via_ajax
    assert {"key": "via", "value": "ajax"} in via_api["run"]["data"]["tags"]


def test_unknown_route_is_404(server):
    for path in ("/no-such-page", f"{API}/no-such-endpoint"):
        assert requests.get(f"{server.url}{path}", timeout=10).status_code == 404


@only_ferroflow  # MLflow answers unknown routes with Flask's HTML 404 page.
def test_unknown_route_is_404_json_endpoint_not_found(server):
    for path in ("/no-such-page", f"{API}/no-such-endpoint"):
        resp = requests.get(f"{server.url}{path}", timeout=10)
        assert_mlflow_error(resp, 404, "ENDPOINT_NOT_FOUND")


# ---------------------------------------------------------------------------- response shapes


def test_run_json_shape(rest):
    exp_id = rest.new_experiment()
    created = rest.ok(rest.post("runs/create", {"experiment_id": exp_id, "start_time": 1_234}))[
        "run"
    ]
    assert created["info"]["status"] == "RUNNING"  # status is always present
    run_id = created["info"]["run_id"]
    rest.ok(rest.post("runs/log-parameter", {"run_id": run_id, "key": "n", "value": "5"}))
    rest.ok(
        rest.post(
            "runs/log-metric", {"run_id": run_id, "key": "m", "value": 2, "timestamp": 9, "step": 0}
        )
    )

    info = rest.run(run_id)["info"]
    assert info["run_id"] == run_id and isinstance(run_id, str)
    assert info["run_uuid"] == run_id  # legacy alias, still read by old clients
    assert info["experiment_id"] == exp_id and isinstance(exp_id, str)
    assert info["status"] == "RUNNING"
    assert info["lifecycle_stage"] == "active"
    assert info["start_time"] == 1_234 and isinstance(info["start_time"], int)  # int64 as a number
    assert "end_time" not in info  # unset while running
    assert isinstance(info["run_name"], str) and info["run_name"]
    assert info["artifact_uri"] == f"mlflow-artifacts:/{exp_id}/{run_id}/artifacts"

    data = rest.run(run_id)["data"]
    assert data["params"] == [{"key": "n", "value": "5"}]  # param values are JSON strings
    assert data["metrics"] == [{"key": "m", "value": 2.0, "timestamp": 9, "step": 0}]
    assert {"key": "mlflow.runName", "value": info["run_name"]} in data["tags"]

    finished = rest.ok(
        rest.post("runs/update", {"run_id": run_id, "status": "FINISHED", "end_time": 2_000})
    )
    assert finished["run_info"]["status"] == "FINISHED"
    assert finished["run_info"]["end_time"] == 2_000


def test_experiment_json_shape(rest):
    name = unique_name("shape")
    exp_id = rest.ok(
        rest.post("experiments/create", {"name": name, "tags": [{"key": "a", "value": "b"}]})
    )["experiment_id"]
    assert isinstance(exp_id, str) and exp_id.isdigit()
    exp = rest.ok(rest.get("experiments/get", {"experiment_id": exp_id}))["experiment"]
    assert exp["experiment_id"] == exp_id
    assert exp["name"] == name
    assert exp["lifecycle_stage"] == "active"
    assert exp["artifact_location"] == f"mlflow-artifacts:/{exp_id}"
    assert isinstance(exp["creation_time"], int) and isinstance(exp["last_update_time"], int)
    assert exp["tags"] == [{"key": "a", "value": "b"}]
    by_name = rest.ok(rest.get("experiments/get-by-name", {"experiment_name": name}))["experiment"]
    assert by_name == exp


def test_empty_results_are_empty_objects(rest):
    exp_id = rest.new_experiment()
    run_id = rest.new_run(exp_id)
    assert (
        rest.ok(rest.post("runs/search", {"experiment_ids": [exp_id], "filter": "params.x = 'y'"}))
        == {}
    )
    assert rest.ok(rest.post("runs/search", {"experiment_ids": ["987654321"]})) == {}
    none = {"max_results": 10, "filter": f"name = '{unique_name('none')}'"}
    assert rest.ok(rest.post("experiments/search", none)) == {}
    assert rest.ok(rest.get("metrics/get-history", {"run_id": run_id, "metric_key": "nope"})) == {}
    for write in (
        rest.post("runs/log-parameter", {"run_id": run_id, "key": "p", "value": "v"}),
        rest.post("runs/set-tag", {"run_id": run_id, "key": "t", "value": "v"}),
        rest.post("runs/log-batch", {"run_id": run_id}),
    ):
        assert rest.ok(write) == {}


def test_already_exists_is_http_400(rest):
    name = unique_name("dup")
    rest.ok(rest.post("experiments/create", {"name": name}))
    assert_mlflow_error(
        rest.post("experiments/create", {"name": name}), 400, "RESOURCE_ALREADY_EXISTS"
    )


def test_get_by_name_of_an_unknown_experiment_is_404(rest):
    resp = rest.get("experiments/get-by-name", {"experiment_name": unique_name("missing")})
    assert_mlflow_error(resp, 404, "RESOURCE_DOES_NOT_EXIST")


# ---------------------------------------------------------------------------- request encodings


def test_lower_camel_case_field_names_are_accepted(rest):
    exp_id = rest.new_experiment()
    created = rest.ok(
        rest.post("runs/create", {"experimentId": exp_id, "startTime": "4321", "runName": "camel"})
    )["run"]["info"]
    assert (created["experiment_id"], created["start_time"], created["run_name"]) == (
        exp_id,
        4321,
        "camel",
    )
    updated = rest.ok(rest.post("runs/update", {"run_id": created["run_id"], "endTime": 9999}))
    assert updated["run_info"]["end_time"] == 9999
    found = rest.ok(
        rest.post(
            "experiments/search",
            {"maxResults": 5, "viewType": "ALL", "filter": f"experiment_id = '{exp_id}'"},
        )
    )
    assert [e["experiment_id"] for e in found["experiments"]] == [exp_id]


def test_run_id_only_in_lower_camel_case_is_accepted_or_cleanly_rejected(rest):
    run_id = rest.new_run()
    resp = rest.post(
        "runs/log-metric", {"runId": run_id, "key": "camel", "value": 1, "timestamp": 1}
    )
    # MLflow parses `runId` but checks required fields by their snake_case name, so it answers
    # 400 "Missing value for required parameter 'run_id'". Accepting the alias is just as good.
    if resp.status_code == 200:
        assert rest.data(run_id)["metrics"] == {"camel": 1.0}
    else:
        assert_mlflow_error(resp, 400, "INVALID_PARAMETER_VALUE")
        assert rest.data(run_id)["metrics"] == {}


def test_run_name_conflicting_with_its_tag_is_rejected(rest):
    exp_id = rest.new_experiment()
    body = {
        "experiment_id": exp_id,
        "run_name": "a",
        "tags": [{"key": "mlflow.runName", "value": "b"}],
    }
    assert_mlflow_error(rest.post("runs/create", body), 400, "INVALID_PARAMETER_VALUE")
    assert (
        rest.ok(rest.post("runs/search", {"experiment_ids": [exp_id], "run_view_type": "ALL"}))
        == {}
    )


def test_a_field_spelled_both_ways_is_rejected(rest):
    run_id = rest.new_run()
    body = {"run_id": run_id, "runId": run_id, "key": "both", "value": 1, "timestamp": 1}
    assert_mlflow_error(rest.post("runs/log-metric", body), 400, "INVALID_PARAMETER_VALUE")
    assert rest.data(run_id)["metrics"] == {}


def test_int64_as_numeric_strings_and_special_double_strings(rest):
    run_id = rest.new_run()
    for key, value in (
        ("plain", "2.5"),
        ("nan", "NaN"),
        ("inf", "Infinity"),
        ("ninf", "-Infinity"),
    ):
        body = {"run_id": run_id, "key": key, "value": value, "timestamp": "7", "step": "3"}
        rest.ok(rest.post("runs/log-metric", body))
    batch = {
        "run_id": run_id,
        "metrics": [{"key": "batched", "value": "NaN", "timestamp": "8", "step": "-2"}],
    }
    rest.ok(rest.post("runs/log-batch", batch))

    metrics = {m["key"]: m for m in rest.run(run_id)["data"]["metrics"]}
    assert metrics["plain"] == {"key": "plain", "value": 2.5, "timestamp": 7, "step": 3}
    assert metrics["nan"]["value"] == "NaN"  # NaN is the JSON string "NaN"
    assert metrics["inf"]["value"] == MAX_DOUBLE  # +/-Infinity come back clamped, as numbers
    assert metrics["ninf"]["value"] == -MAX_DOUBLE
    assert metrics["batched"] == {"key": "batched", "value": "NaN", "timestamp": 8, "step": -2}
    history = rest.ok(rest.get("metrics/get-history", {"run_id": run_id, "metric_key": "nan"}))
    assert history == {"metrics": [{"key": "nan", "value": "NaN", "timestamp": 7, "step": 3}]}


def test_content_type_with_charset_is_accepted(rest):
    run_id = rest.new_run()
    body = json.dumps({"run_id": run_id, "key": "p", "value": "v"})
    resp = rest.post(
        "runs/log-parameter", data=body, headers={"Content-Type": "application/json; charset=utf-8"}
    )
    rest.ok(resp)
    assert rest.data(run_id)["params"] == {"p": "v"}


def test_get_reads_repeated_query_keys_and_ignores_unknown_ones(rest):
    prefix = unique_name("get-query")
    ids = [
        rest.ok(rest.post("experiments/create", {"name": f"{prefix}-{s}"}))["experiment_id"]
        for s in "ab"
    ]
    params = [
        ("max_results", "10"),
        ("filter", f"name LIKE '{prefix}-%'"),
        ("order_by", "name DESC"),
        ("order_by", "experiment_id ASC"),
        ("view_type", "ALL"),
        ("no_such_field", "ignored"),
    ]
    found = rest.ok(rest.get("experiments/search", params))["experiments"]
    assert [e["experiment_id"] for e in found] == ids[::-1]

    run_id = rest.new_run()
    # The Python client sends both run_uuid and run_id on run GETs; either alone works too.
    for query in ({"run_uuid": run_id, "run_id": run_id}, {"run_uuid": run_id}, {"run_id": run_id}):
        assert rest.ok(rest.get("runs/get", query))["run"]["info"]["run_id"] == run_id


def test_get_reads_python_style_booleans(rest, client):
    exp_id = rest.new_experiment()
    # The only GET with a bool field is the logged-model read.
    model_id = client.create_logged_model(exp_id, name="bool-model").model_id
    client.delete_logged_model(model_id)
    # `requests` turns Python booleans into "True"/"False".
    for flag in (True, "true", "TRUE"):
        resp = rest.get(f"logged-models/{model_id}", {"allow_deleted": flag})
        assert rest.ok(resp)["model"]["info"]["model_id"] == model_id
    resp = rest.get(f"logged-models/{model_id}", {"allow_deleted": False})
    assert_mlflow_error(resp, 404, "RESOURCE_DOES_NOT_EXIST")


# ---------------------------------------------------------------------------- hostile input


def test_malformed_json_is_rejected_and_writes_nothing(rest):
    run_id = rest.new_run()
    before = rest.data(run_id)
    broken = '{"run_id": "%s", "key": "p", "value": "v"' % run_id  # no closing brace
    resp = rest.post(
        "runs/log-parameter", data=broken, headers={"Content-Type": "application/json"}
    )
    # MLflow reads an unparsable body as {} and reports the missing run_id.
    assert_mlflow_error(resp, 400, "INVALID_PARAMETER_VALUE")
    assert rest.data(run_id) == before


@pytest.mark.parametrize(
    "endpoint, body",
    [
        ("runs/log-metric", {"key": "m", "value": "abc", "timestamp": 1}),
        ("runs/log-metric", {"key": "m", "value": 1, "timestamp": "yesterday"}),
        ("runs/log-metric", {"key": "m", "value": 1, "timestamp": 1, "step": "two"}),
        ("runs/log-parameter", {"key": "p", "value": 5}),
        ("runs/log-parameter", {"key": 5, "value": "v"}),
        ("runs/set-tag", {"key": "t", "value": {"nested": 1}}),
        ("runs/log-batch", {"metrics": "not-a-list"}),
        ("runs/update", {"end_time": "later"}),
    ],
    ids=[
        "metric-value-str",
        "timestamp-str",
        "step-str",
        "param-value-int",
        "param-key-int",
        "tag-value-object",
        "batch-metrics-str",
        "end-time-str",
    ],
)
def test_wrong_types_are_rejected_and_write_nothing(rest, endpoint, body):
    run_id = rest.new_run()
    before = rest.run(run_id)
    assert_mlflow_error(
        rest.post(endpoint, {"run_id": run_id, **body}), 400, "INVALID_PARAMETER_VALUE"
    )
    assert rest.run(run_id) == before


@only_ferroflow
def test_wrong_types_inside_log_batch_entries_are_rejected(rest):
    # Deliberately stricter than MLflow 3.17, which silently stores such entries with
    # default values (value 0.0, timestamp 0, param value "") and answers 200.
    run_id = rest.new_run()
    before = rest.run(run_id)
    for body in (
        {"metrics": [{"key": "a", "value": "x", "timestamp": 1}]},
        {"metrics": [{"key": "b", "value": 1, "timestamp": "zz"}]},
        {"params": [{"key": "c", "value": 7}]},
    ):
        assert_mlflow_error(
            rest.post("runs/log-batch", {"run_id": run_id, **body}), 400, "INVALID_PARAMETER_VALUE"
        )
    # MLflow answers a list-valued metric with a 500 HTML page.
    body = {"run_id": run_id, "key": "m", "value": [1], "timestamp": 1}
    assert_mlflow_error(rest.post("runs/log-metric", body), 400, "INVALID_PARAMETER_VALUE")
    assert rest.run(run_id) == before


def test_missing_required_fields_are_rejected(rest):
    run_id = rest.new_run()
    for endpoint, body in (
        ("runs/log-metric", {"run_id": run_id, "key": "m", "value": 1}),
        ("runs/log-metric", {"run_id": run_id, "value": 1, "timestamp": 1}),
        ("runs/log-parameter", {"key": "p", "value": "v"}),
        ("runs/log-batch", {"run_id": run_id, "metrics": [{"key": "m", "value": 1}]}),
        ("runs/log-batch", {"run_id": run_id, "params": [{"value": "no-key"}]}),
        ("experiments/create", {}),
    ):
        assert_mlflow_error(rest.post(endpoint, body), 400, "INVALID_PARAMETER_VALUE")
    assert rest.data(run_id)["metrics"] == {} and rest.data(run_id)["params"] == {}


def test_unknown_ids(rest):
    exp_id = rest.new_experiment()
    for endpoint, body in (
        ("runs/log-metric", {"run_id": UNKNOWN_RUN_ID, "key": "m", "value": 1, "timestamp": 1}),
        ("runs/log-parameter", {"run_id": UNKNOWN_RUN_ID, "key": "p", "value": "v"}),
        ("runs/set-tag", {"run_id": UNKNOWN_RUN_ID, "key": "t", "value": "v"}),
        ("runs/log-batch", {"run_id": UNKNOWN_RUN_ID, "params": [{"key": "p", "value": "v"}]}),
        ("runs/update", {"run_id": UNKNOWN_RUN_ID, "status": "FINISHED"}),
        ("runs/delete", {"run_id": UNKNOWN_RUN_ID}),
        ("runs/create", {"experiment_id": "987654321"}),
        ("experiments/delete", {"experiment_id": "987654321"}),
    ):
        assert_mlflow_error(rest.post(endpoint, body), 404, "RESOURCE_DOES_NOT_EXIST")
    assert_mlflow_error(
        rest.get("runs/get", {"run_id": UNKNOWN_RUN_ID}), 404, "RESOURCE_DOES_NOT_EXIST"
    )
    assert_mlflow_error(
        rest.get("runs/get", {"run_id": "../../etc/passwd"}), 404, "RESOURCE_DOES_NOT_EXIST"
    )
    assert_mlflow_error(
        rest.get("experiments/get", {"experiment_id": "987654321"}), 404, "RESOURCE_DOES_NOT_EXIST"
    )
    # A non-integer experiment id is malformed rather than unknown.
    assert_mlflow_error(
        rest.get("experiments/get", {"experiment_id": "abc"}), 400, "INVALID_PARAMETER_VALUE"
    )
    assert rest.ok(rest.post("runs/search", {"experiment_ids": [exp_id]})) == {}


@pytest.mark.parametrize(
    "batch",
    [
        {"metrics": [{"key": "m", "value": i, "timestamp": 1, "step": i} for i in range(1001)]},
        {"params": [{"key": f"p{i}", "value": "v"} for i in range(101)]},
        {"tags": [{"key": f"t{i}", "value": "v"} for i in range(101)]},
        {  # every list within its own limit, 1010 entities in total
            "metrics": [{"key": "m", "value": i, "timestamp": 1, "step": i} for i in range(950)],
            "params": [{"key": f"p{i}", "value": "v"} for i in range(60)],
        },
    ],
    ids=["1001-metrics", "101-params", "101-tags", "1010-entities"],
)
def test_over_limit_log_batch_is_rejected_and_writes_nothing(rest, batch):
    run_id = rest.new_run()
    before = rest.data(run_id)
    assert_mlflow_error(
        rest.post("runs/log-batch", {"run_id": run_id, **batch}), 400, "INVALID_PARAMETER_VALUE"
    )
    assert rest.data(run_id) == before


@pytest.mark.parametrize(
    "endpoint, body",
    [
        ("runs/log-parameter", {"key": LONG_KEY, "value": "v"}),
        ("runs/log-metric", {"key": LONG_KEY, "value": 1, "timestamp": 1}),
        ("runs/set-tag", {"key": LONG_KEY, "value": "v"}),
        (
            "runs/log-batch",
            {"params": [{"key": "ok", "value": "v"}, {"key": LONG_KEY, "value": "v"}]},
        ),
        (
            "runs/log-batch",
            {
                "params": [{"key": "ok", "value": "v"}],
                "metrics": [{"key": LONG_KEY, "value": 1, "timestamp": 1}],
            },
        ),
        (
            "runs/log-batch",
            {"tags": [{"key": "ok", "value": "v"}, {"key": LONG_KEY, "value": "v"}]},
        ),
    ],
    ids=["param", "metric", "tag", "batch-param", "batch-metric", "batch-tag"],
)
def test_10000_character_keys_are_rejected_and_write_nothing(rest, endpoint, body):
    run_id = rest.new_run()
    before = rest.data(run_id)
    assert_mlflow_error(
        rest.post(endpoint, {"run_id": run_id, **body}), 400, "INVALID_PARAMETER_VALUE"
    )
    assert rest.data(run_id) == before


def test_10000_character_experiment_name_and_tag_key_are_rejected(rest):
    assert_mlflow_error(
        rest.post("experiments/create", {"name": "n" * 10_000}), 400, "INVALID_PARAMETER_VALUE"
    )
    exp_id = rest.new_experiment()
    body = {"experiment_id": exp_id, "key": LONG_KEY, "value": "v"}
    assert_mlflow_error(
        rest.post("experiments/set-experiment-tag", body), 400, "INVALID_PARAMETER_VALUE"
    )
    exp = rest.ok(rest.get("experiments/get", {"experiment_id": exp_id}))["experiment"]
    assert "tags" not in exp or exp["tags"] == []


def test_invalid_key_names_are_rejected(rest):
    run_id = rest.new_run()
    for key in ("bad key!", "../escape", "/absolute"):
        body = {"run_id": run_id, "key": key, "value": 1, "timestamp": 1}
        assert_mlflow_error(rest.post("runs/log-metric", body), 400, "INVALID_PARAMETER_VALUE")
    assert rest.data(run_id)["metrics"] == {}


def test_long_param_and_tag_values_are_truncated(rest):
    # MLflow truncates (MLFLOW_TRUNCATE_LONG_VALUES, on by default) rather than rejecting.
    run_id = rest.new_run()
    rest.ok(rest.post("runs/log-parameter", {"run_id": run_id, "key": "p", "value": "v" * 7_000}))
    rest.ok(rest.post("runs/set-tag", {"run_id": run_id, "key": "t", "value": "w" * 9_000}))
    data = rest.data(run_id)
    assert data["params"]["p"] == "v" * 6_000
    assert data["tags"]["t"] == "w" * 8_000


def test_duplicate_param_keys_in_one_batch_are_rejected_and_write_nothing(rest):
    run_id = rest.new_run()
    before = rest.data(run_id)
    batch = {
        "run_id": run_id,
        "params": [
            {"key": "other", "value": "1"},
            {"key": "dup", "value": "v"},
            {"key": "dup", "value": "v"},
        ],
    }
    assert_mlflow_error(rest.post("runs/log-batch", batch), 400, "INVALID_PARAMETER_VALUE")
    assert rest.data(run_id) == before


def test_resent_writes_are_idempotent(rest):
    # The client retries log-batch, log-metric and set-tag on 5xx, so a resend must not duplicate.
    run_id = rest.new_run()
    batch = {
        "run_id": run_id,
        "metrics": [{"key": "m", "value": 1.5, "timestamp": 5, "step": 1}],
        "params": [{"key": "p", "value": "v"}],
        "tags": [{"key": "t", "value": "v"}],
    }
    for _ in range(2):
        rest.ok(rest.post("runs/log-batch", batch))
        rest.ok(
            rest.post(
                "runs/log-metric",
                {"run_id": run_id, "key": "m", "value": 1.5, "timestamp": 5, "step": 1},
            )
        )
    history = rest.ok(rest.get("metrics/get-history", {"run_id": run_id, "metric_key": "m"}))
    assert history == {"metrics": [{"key": "m", "value": 1.5, "timestamp": 5, "step": 1}]}
    data = rest.data(run_id)
    assert data["params"] == {"p": "v"} and data["tags"]["t"] == "v"


def test_writes_to_a_deleted_run_are_rejected_and_write_nothing(rest):
    run_id = rest.new_run()
    rest.ok(rest.post("runs/set-tag", {"run_id": run_id, "key": "keep", "value": "1"}))
    rest.ok(rest.post("runs/delete", {"run_id": run_id}))
    before = rest.run(run_id)
    assert before["info"]["lifecycle_stage"] == "deleted"
    for endpoint, body in (
        ("runs/log-metric", {"key": "m", "value": 1, "timestamp": 1}),
        ("runs/log-parameter", {"key": "p", "value": "v"}),
        ("runs/set-tag", {"key": "t", "value": "v"}),
        ("runs/delete-tag", {"key": "keep"}),
        ("runs/log-batch", {"metrics": [{"key": "m", "value": 1, "timestamp": 1}]}),
        ("runs/update", {"status": "FINISHED", "end_time": 5}),
    ):
        assert_mlflow_error(
            rest.post(endpoint, {"run_id": run_id, **body}), 400, "INVALID_PARAMETER_VALUE"
        )
    assert rest.run(run_id) == before


@pytest.mark.parametrize("content_type", [None, "text/plain"], ids=["missing", "text-plain"])
def test_post_without_json_content_type_is_rejected(rest, content_type):
    run_id = rest.new_run()
    body = json.dumps({"run_id": run_id, "key": "p", "value": "v"})
    headers = {"Content-Type": content_type} if content_type else {}
    resp = rest.post("runs/log-parameter", data=body, headers=headers)
    assert_mlflow_error(resp, 400, "INVALID_PARAMETER_VALUE")
    assert rest.data(run_id)["params"] == {}


def test_negative_metric_timestamp_is_rejected(rest):
    run_id = rest.new_run()
    single = {"run_id": run_id, "key": "m", "value": 1, "timestamp": -5}
    assert_mlflow_error(rest.post("runs/log-metric", single), 400, "INVALID_PARAMETER_VALUE")
    batch = {"run_id": run_id, "metrics": [{"key": "m", "value": 1, "timestamp": -1}]}
    assert_mlflow_error(rest.post("runs/log-batch", batch), 400, "INVALID_PARAMETER_VALUE")
    assert rest.data(run_id)["metrics"] == {}


@pytest.mark.parametrize("max_results", [0, 50_001, -1])
def test_out_of_range_max_results_is_rejected(rest, max_results):
    exp_id = rest.new_experiment()
    runs = {"experiment_ids": [exp_id], "max_results": max_results}
    assert_mlflow_error(rest.post("runs/search", runs), 400, "INVALID_PARAMETER_VALUE")
    experiments = {"max_results": max_results}
    assert_mlflow_error(
        rest.post("experiments/search", experiments), 400, "INVALID_PARAMETER_VALUE"
    )


def test_max_results_at_the_limit_is_accepted(rest):
    exp_id = rest.new_experiment()
    rest.new_run(exp_id)
    found = rest.ok(rest.post("runs/search", {"experiment_ids": [exp_id], "max_results": 50_000}))
    assert len(found["runs"]) == 1
    rest.ok(rest.post("experiments/search", {"max_results": 50_000}))


def test_non_positive_history_max_results_is_rejected(rest):
    run_id = rest.new_run()
    query = {"run_id": run_id, "metric_key": "m", "max_results": 0}
    assert_mlflow_error(rest.get("metrics/get-history", query), 400, "INVALID_PARAMETER_VALUE")


def test_garbage_page_token_is_rejected(rest):
    exp_id = rest.new_experiment()
    body = {"experiment_ids": [exp_id], "page_token": "not-a-token"}
    assert_mlflow_error(rest.post("runs/search", body), 400, "INVALID_PARAMETER_VALUE")


def test_bad_search_filter_is_rejected(rest):
    exp_id = rest.new_experiment()
    for flt in (
        "metrics.acc > 'abc'",
        "params.p = 'a' OR params.p = 'b'",
        "tags.t = 'x'; DROP TABLE runs",
    ):
        body = {"experiment_ids": [exp_id], "filter": flt}
        assert_mlflow_error(rest.post("runs/search", body), 400, "INVALID_PARAMETER_VALUE")
    rest.ok(rest.post("runs/search", {"experiment_ids": [exp_id]}))  # the store is intact
