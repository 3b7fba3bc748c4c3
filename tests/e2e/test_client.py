"""`MlflowClient`: experiments, runs, batches, history, inputs and the errors it surfaces."""

import random

import mlflow
import pandas as pd
import pytest
import requests
from mlflow.entities import DatasetInput, InputTag, Metric, Param, RunStatus, RunTag, ViewType
from mlflow.exceptions import MlflowException

from conftest import raises_mlflow_error, unique_name

UNKNOWN_RUN_ID = "0123456789abcdef0123456789abcdef"
UNKNOWN_EXPERIMENT_ID = "987654321"


# ---------------------------------------------------------------------------- experiments


def test_experiment_create_get_and_get_by_name(client):
    name = unique_name("client-exp")
    exp_id = client.create_experiment(name, tags={"owner": "e2e", "empty": ""})
    assert isinstance(exp_id, str) and exp_id.isdigit()

    exp = client.get_experiment(exp_id)
    assert exp.experiment_id == exp_id
    assert exp.name == name
    assert exp.lifecycle_stage == "active"
    assert exp.tags == {"owner": "e2e", "empty": ""}
    assert exp.artifact_location == f"mlflow-artifacts:/{exp_id}"
    assert exp.creation_time > 0 and exp.last_update_time >= exp.creation_time

    assert client.get_experiment_by_name(name).experiment_id == exp_id
    # The client maps the server's 404 for an unknown name to None.
    assert client.get_experiment_by_name(unique_name("no-such-experiment")) is None


def test_experiment_rename_delete_and_restore(client):
    old, new = unique_name("client-old"), unique_name("client-new")
    exp_id = client.create_experiment(old)

    client.rename_experiment(exp_id, new)
    assert client.get_experiment(exp_id).name == new
    assert client.get_experiment_by_name(old) is None

    client.delete_experiment(exp_id)
    deleted = client.get_experiment(exp_id)  # get still answers for deleted experiments
    assert deleted.lifecycle_stage == "deleted"
    assert client.get_experiment_by_name(new).lifecycle_stage == "deleted"

    client.restore_experiment(exp_id)
    assert client.get_experiment(exp_id).lifecycle_stage == "active"


def test_deleting_an_experiment_deletes_its_runs_and_restoring_restores_them(client, experiment_id):
    run_id = client.create_run(experiment_id).info.run_id
    client.delete_experiment(experiment_id)
    assert client.get_run(run_id).info.lifecycle_stage == "deleted"
    client.restore_experiment(experiment_id)
    assert client.get_run(run_id).info.lifecycle_stage == "active"


def test_experiment_with_an_explicit_artifact_location(client):
    exp_id = client.create_experiment(
        unique_name("client-loc"), artifact_location="s3://bucket/some/prefix"
    )
    assert client.get_experiment(exp_id).artifact_location == "s3://bucket/some/prefix"
    run_id = client.create_run(exp_id).info.run_id
    assert client.get_run(run_id).info.artifact_uri == f"s3://bucket/some/prefix/{run_id}/artifacts"


def test_duplicate_experiment_name_is_resource_already_exists(client):
    name = unique_name("client-dup")
    exp_id = client.create_experiment(name)
    with raises_mlflow_error("RESOURCE_ALREADY_EXISTS") as excinfo:
        client.create_experiment(name)
    assert excinfo.value.get_http_status_code() == 400  # "already exists" is a 400 in MLflow

    # Names stay taken while the experiment is deleted.
    client.delete_experiment(exp_id)
    with raises_mlflow_error("RESOURCE_ALREADY_EXISTS"):
        client.create_experiment(name)


def test_rename_onto_an_existing_name_fails_and_changes_nothing(client):
    first, second = unique_name("client-a"), unique_name("client-b")
    first_id = client.create_experiment(first)
    client.create_experiment(second)
    with pytest.raises(MlflowException) as excinfo:
        client.rename_experiment(first_id, second)
    # MLflow leaks the unique-constraint violation as BAD_REQUEST (400); a clean
    # RESOURCE_ALREADY_EXISTS (also 400) is just as good for the client.
    assert excinfo.value.error_code in ("BAD_REQUEST", "RESOURCE_ALREADY_EXISTS")
    assert excinfo.value.get_http_status_code() == 400
    assert client.get_experiment(first_id).name == first


def test_experiment_tags_set_overwrite_and_delete(client, experiment_id):
    client.set_experiment_tag(experiment_id, "stage", "dev")
    client.set_experiment_tag(experiment_id, "stage", "prod")
    client.set_experiment_tag(experiment_id, "note", "")
    assert client.get_experiment(experiment_id).tags == {"stage": "prod", "note": ""}

    client.delete_experiment_tag(experiment_id, "stage")
    assert client.get_experiment(experiment_id).tags == {"note": ""}
    with raises_mlflow_error("RESOURCE_DOES_NOT_EXIST"):
        client.delete_experiment_tag(experiment_id, "stage")


def test_unknown_experiment_is_resource_does_not_exist(client):
    with raises_mlflow_error("RESOURCE_DOES_NOT_EXIST") as excinfo:
        client.get_experiment(UNKNOWN_EXPERIMENT_ID)
    assert excinfo.value.get_http_status_code() == 404
    for call in (
        lambda: client.delete_experiment(UNKNOWN_EXPERIMENT_ID),
        lambda: client.restore_experiment(UNKNOWN_EXPERIMENT_ID),
        lambda: client.rename_experiment(UNKNOWN_EXPERIMENT_ID, unique_name("x")),
        lambda: client.set_experiment_tag(UNKNOWN_EXPERIMENT_ID, "k", "v"),
        lambda: client.create_run(UNKNOWN_EXPERIMENT_ID),
    ):
        with raises_mlflow_error("RESOURCE_DOES_NOT_EXIST"):
            call()


def test_create_run_in_a_deleted_experiment_is_rejected(client, experiment_id):
    client.delete_experiment(experiment_id)
    with raises_mlflow_error("INVALID_PARAMETER_VALUE"):
        client.create_run(experiment_id)
    assert client.search_runs([experiment_id], run_view_type=ViewType.ALL) == []


# ---------------------------------------------------------------------------- search_experiments


@pytest.fixture
def three_experiments(client):
    """Three experiments sharing a unique prefix; returns (prefix, {name: id})."""
    prefix = unique_name("search-exp")
    ids = {}
    for suffix, group in (("a", "red"), ("b", "blue"), ("c", "red")):
        name = f"{prefix}-{suffix}"
        ids[name] = client.create_experiment(name, tags={"group": group})
    return prefix, ids


def test_search_experiments_filters_by_name_like_and_tags(client, three_experiments):
    prefix, ids = three_experiments
    found = client.search_experiments(filter_string=f"name LIKE '{prefix}-%'")
    assert sorted(e.name for e in found) == sorted(ids)

    red = client.search_experiments(
        filter_string=f"name LIKE '{prefix}-%' AND tags.group = 'red'", order_by=["name ASC"]
    )
    assert [e.name for e in red] == [f"{prefix}-a", f"{prefix}-c"]

    exact = client.search_experiments(filter_string=f"name = '{prefix}-b'")
    assert [e.experiment_id for e in exact] == [ids[f"{prefix}-b"]]


def test_search_experiments_order_by(client, three_experiments):
    prefix, ids = three_experiments
    flt = f"name LIKE '{prefix}-%'"
    desc = client.search_experiments(filter_string=flt, order_by=["name DESC"])
    assert [e.name for e in desc] == sorted(ids, reverse=True)
    # Default order: creation_time DESC, then experiment_id ASC.
    default = client.search_experiments(filter_string=flt)
    expected = sorted(default, key=lambda e: (-e.creation_time, int(e.experiment_id)))
    assert [e.experiment_id for e in default] == [e.experiment_id for e in expected]


def test_search_experiments_view_type(client, three_experiments):
    prefix, ids = three_experiments
    flt = f"name LIKE '{prefix}-%'"
    client.delete_experiment(ids[f"{prefix}-b"])

    def names(view_type):
        found = client.search_experiments(view_type=view_type, filter_string=flt)
        return sorted(e.name for e in found)

    assert names(ViewType.ACTIVE_ONLY) == [f"{prefix}-a", f"{prefix}-c"]
    assert names(ViewType.DELETED_ONLY) == [f"{prefix}-b"]
    assert names(ViewType.ALL) == sorted(ids)


def test_search_experiments_pages_with_max_results_and_page_token(client, three_experiments):
    prefix, ids = three_experiments
    kwargs = {
        "filter_string": f"name LIKE '{prefix}-%'",
        "order_by": ["name ASC"],
        "max_results": 2,
    }
    first = client.search_experiments(**kwargs)
    assert [e.name for e in first] == sorted(ids)[:2]
    assert first.token
    second = client.search_experiments(page_token=first.token, **kwargs)
    assert [e.name for e in second] == sorted(ids)[2:]
    assert not second.token


def test_search_experiments_with_a_bad_filter_is_invalid_parameter_value(client):
    with raises_mlflow_error("INVALID_PARAMETER_VALUE"):
        client.search_experiments(filter_string="name = unquoted")


# ---------------------------------------------------------------------------- runs


def test_create_run_and_get_run(client, experiment_id):
    run = client.create_run(
        experiment_id, start_time=1_700_000_000_000, tags={"k": "v"}, run_name="client-run"
    )
    info = run.info
    assert info.experiment_id == experiment_id
    assert info.status == "RUNNING"
    assert info.start_time == 1_700_000_000_000
    assert info.end_time is None
    assert info.run_name == "client-run"
    assert info.lifecycle_stage == "active"
    assert info.artifact_uri == f"mlflow-artifacts:/{experiment_id}/{info.run_id}/artifacts"

    got = client.get_run(info.run_id)
    assert got.info == info
    assert got.data.tags == {"k": "v", "mlflow.runName": "client-run"}
    assert got.data.metrics == {} and got.data.params == {}


def test_update_run_status_and_name(client, experiment_id):
    run_id = client.create_run(experiment_id, run_name="before").info.run_id
    client.update_run(run_id, status="KILLED")
    assert client.get_run(run_id).info.status == "KILLED"

    client.update_run(run_id, name="after")
    got = client.get_run(run_id)
    assert got.info.run_name == "after"
    assert got.data.tags["mlflow.runName"] == "after"
    assert got.info.status == "KILLED"

    # Renaming through the tag renames the run too.
    client.set_tag(run_id, "mlflow.runName", "via-tag")
    assert client.get_run(run_id).info.run_name == "via-tag"


def test_update_run_with_only_end_time_keeps_the_status(server, client, experiment_id):
    run_id = client.create_run(experiment_id).info.run_id
    client.update_run(run_id, status="KILLED")
    # The client always sends a status; notebooks and other clients may not (mlflow #8141).
    resp = requests.post(
        f"{server.url}/api/2.0/mlflow/runs/update", json={"run_id": run_id, "end_time": 12345}
    )
    assert resp.status_code == 200, resp.text
    assert resp.json()["run_info"]["status"] == "KILLED"
    info = client.get_run(run_id).info
    assert (info.status, info.end_time) == ("KILLED", 12345)


def test_set_terminated_sets_status_and_end_time(client, experiment_id):
    finished = client.create_run(experiment_id).info.run_id
    client.set_terminated(finished)
    info = client.get_run(finished).info
    assert info.status == "FINISHED"
    assert info.end_time >= info.start_time

    failed = client.create_run(experiment_id).info.run_id
    client.set_terminated(failed, status=RunStatus.to_string(RunStatus.FAILED), end_time=4242)
    info = client.get_run(failed).info
    assert (info.status, info.end_time) == ("FAILED", 4242)


def test_delete_and_restore_run(client, experiment_id):
    run_id = client.create_run(experiment_id).info.run_id
    client.delete_run(run_id)
    assert client.get_run(run_id).info.lifecycle_stage == "deleted"
    # Deleting twice is harmless (the client retries deletes).
    client.delete_run(run_id)
    assert client.search_runs([experiment_id]) == []

    client.restore_run(run_id)
    assert client.get_run(run_id).info.lifecycle_stage == "active"
    assert [r.info.run_id for r in client.search_runs([experiment_id])] == [run_id]


def test_log_batch_is_chunked_by_the_client_and_stored_completely(client, experiment_id):
    run_id = client.create_run(experiment_id).info.run_id
    metrics = [Metric("m", float(i), 1_000 + i, i) for i in range(2_500)]
    metrics += [Metric(f"k{i}", i * 0.5, 5_000, 0) for i in range(20)]
    params = [Param(f"p{i}", str(i)) for i in range(150)]
    tags = [RunTag(f"t{i}", f"v{i}") for i in range(120)]
    # Over every per-request limit (1000 metrics, 100 params, 100 tags): the client splits it.
    client.log_batch(run_id, metrics=metrics, params=params, tags=tags)

    data = client.get_run(run_id).data
    assert data.params == {f"p{i}": str(i) for i in range(150)}
    assert {f"t{i}": f"v{i}" for i in range(120)}.items() <= data.tags.items()
    assert data.metrics == {"m": 2_499.0, **{f"k{i}": i * 0.5 for i in range(20)}}
    history = client.get_metric_history(run_id, "m")
    assert [(m.step, m.value, m.timestamp) for m in history] == [
        (i, float(i), 1_000 + i) for i in range(2_500)
    ]


def test_relogging_a_param_with_the_same_value_is_fine_a_new_value_is_rejected(
    client, experiment_id
):
    run_id = client.create_run(experiment_id).info.run_id
    client.log_param(run_id, "p", "1")
    client.log_param(run_id, "p", "1")
    client.log_batch(run_id, params=[Param("p", "1")])
    with raises_mlflow_error("INVALID_PARAMETER_VALUE") as excinfo:
        client.log_param(run_id, "p", "2")
    assert excinfo.value.get_http_status_code() == 400
    with raises_mlflow_error("INVALID_PARAMETER_VALUE"):
        client.log_batch(run_id, params=[Param("p", "3")])
    assert client.get_run(run_id).data.params == {"p": "1"}


def test_set_tag_overwrites_and_delete_tag_removes(client, experiment_id):
    run_id = client.create_run(experiment_id).info.run_id
    client.set_tag(run_id, "t", "1")
    client.set_tag(run_id, "t", "2")
    assert client.get_run(run_id).data.tags["t"] == "2"
    client.delete_tag(run_id, "t")
    assert "t" not in client.get_run(run_id).data.tags
    with raises_mlflow_error("RESOURCE_DOES_NOT_EXIST"):
        client.delete_tag(run_id, "t")


def test_metric_history_of_30000_points_is_paged_completely_and_in_order(client, experiment_id):
    run_id = client.create_run(experiment_id).info.run_id
    points = [Metric("loss", step * 0.5, 1_000_000 + step, step) for step in range(30_000)]
    shuffled = points[:]
    random.Random(7).shuffle(shuffled)  # the server, not the logging order, sorts the history
    client.log_batch(run_id, metrics=shuffled)

    # The client asks for pages of 25,000 and follows next_page_token.
    history = client.get_metric_history(run_id, "loss")
    assert len(history) == 30_000
    assert [(m.key, m.step, m.timestamp, m.value) for m in history] == [
        (m.key, m.step, m.timestamp, m.value) for m in points
    ]
    assert client.get_run(run_id).data.metrics == {"loss": 29_999 * 0.5}
    assert client.get_metric_history(run_id, "no-such-metric") == []


def test_log_inputs_dataset_is_visible_in_run_inputs(client, experiment_id):
    run_id = client.create_run(experiment_id).info.run_id
    frame = pd.DataFrame({"x": [1.0, 2.0, 3.0], "label": ["a", "b", "a"]})
    dataset = mlflow.data.from_pandas(frame, source="s3://bucket/train.csv", name="train-ds")
    entity = dataset._to_mlflow_entity()
    dataset_input = DatasetInput(entity, tags=[InputTag("mlflow.data.context", "training")])
    client.log_inputs(run_id, datasets=[dataset_input])
    client.log_inputs(run_id, datasets=[dataset_input])  # same input again: not duplicated

    inputs = client.get_run(run_id).inputs.dataset_inputs
    assert len(inputs) == 1
    got = inputs[0].dataset
    assert (got.name, got.digest, got.source_type) == ("train-ds", entity.digest, "s3")
    assert got.source == entity.source
    assert got.schema == entity.schema
    assert got.profile == entity.profile
    assert [(t.key, t.value) for t in inputs[0].tags] == [("mlflow.data.context", "training")]


def test_unknown_run_is_resource_does_not_exist(client):
    for call in (
        lambda: client.get_run(UNKNOWN_RUN_ID),
        lambda: client.log_metric(UNKNOWN_RUN_ID, "m", 1.0),
        lambda: client.log_param(UNKNOWN_RUN_ID, "p", "v"),
        lambda: client.set_tag(UNKNOWN_RUN_ID, "t", "v"),
        lambda: client.log_batch(UNKNOWN_RUN_ID, metrics=[Metric("m", 1.0, 1, 0)]),
        lambda: client.update_run(UNKNOWN_RUN_ID, status="FINISHED"),
        lambda: client.delete_run(UNKNOWN_RUN_ID),
        lambda: client.restore_run(UNKNOWN_RUN_ID),
    ):
        with raises_mlflow_error("RESOURCE_DOES_NOT_EXIST") as excinfo:
            call()
        assert excinfo.value.get_http_status_code() == 404


def test_writes_to_a_deleted_run_are_rejected_and_nothing_is_written(client, experiment_id):
    run_id = client.create_run(experiment_id).info.run_id
    client.delete_run(run_id)
    for call in (
        lambda: client.log_metric(run_id, "m", 1.0),
        lambda: client.log_param(run_id, "p", "v"),
        lambda: client.set_tag(run_id, "t", "v"),
        lambda: client.log_batch(
            run_id, metrics=[Metric("b", 1.0, 1, 0)], params=[Param("q", "1")]
        ),
        lambda: client.update_run(run_id, status="FINISHED"),
        lambda: client.set_terminated(run_id),
    ):
        with raises_mlflow_error("INVALID_PARAMETER_VALUE"):
            call()
    client.restore_run(run_id)
    got = client.get_run(run_id)
    assert got.info.status == "RUNNING"
    assert got.data.metrics == {} and got.data.params == {}
    assert "t" not in got.data.tags
