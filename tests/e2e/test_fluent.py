"""The fluent API (`mlflow.*`): MLFLOW_API.md §5.1 and §5.2."""

import math
import re

import mlflow
import pytest

from conftest import MAX_DOUBLE, unique_name

pytestmark = pytest.mark.usefixtures("fluent")

RUN_ID = re.compile(r"^[0-9a-f]{32}$")


def test_set_experiment_creates_a_new_experiment_then_reuses_it(fluent):
    name = unique_name("fluent-exp")

    created = mlflow.set_experiment(name)
    assert created.name == name
    assert created.lifecycle_stage == "active"
    assert created.experiment_id.isdigit()
    # With --artifacts-destination (proxied artifacts) the root is mlflow-artifacts:/<id>.
    assert created.artifact_location == f"mlflow-artifacts:/{created.experiment_id}"

    again = mlflow.set_experiment(name)
    assert again.experiment_id == created.experiment_id

    by_id = mlflow.set_experiment(experiment_id=created.experiment_id)
    assert by_id.name == name


def test_run_logs_params_metrics_tags_and_finishes(fluent):
    experiment = mlflow.set_experiment(unique_name("fluent-run"))

    with mlflow.start_run(run_name="my-run") as run:
        assert mlflow.active_run().info.run_id == run.info.run_id
        mlflow.log_param("lr", 0.1)
        mlflow.log_params({"epochs": 5, "optimizer": "adam"})
        mlflow.log_metric("loss", 1.5, step=0)
        mlflow.log_metric("loss", 0.5, step=1)
        mlflow.log_metrics({"acc": 0.9, "f1": 0.75}, step=3)
        mlflow.set_tag("team", "vision")
        mlflow.set_tags({"a": "1", "b": 2})

    assert mlflow.active_run() is None
    got = mlflow.get_run(run.info.run_id)
    assert RUN_ID.match(got.info.run_id)
    assert got.info.experiment_id == experiment.experiment_id
    assert got.info.status == "FINISHED"
    assert got.info.lifecycle_stage == "active"
    assert got.info.run_name == "my-run"
    assert got.info.end_time is not None and got.info.end_time >= got.info.start_time
    assert got.info.artifact_uri == (
        f"mlflow-artifacts:/{experiment.experiment_id}/{got.info.run_id}/artifacts"
    )
    assert got.data.params == {"lr": "0.1", "epochs": "5", "optimizer": "adam"}
    assert got.data.metrics == {"loss": 0.5, "acc": 0.9, "f1": 0.75}
    tags = got.data.tags
    assert tags["mlflow.runName"] == "my-run"
    assert {"team": "vision", "a": "1", "b": "2"}.items() <= tags.items()
    # The client's own context tags arrive with runs/create.
    assert tags["mlflow.source.type"] == "LOCAL"
    assert "mlflow.source.name" in tags
    assert tags["mlflow.user"] == got.info.user_id

    history = mlflow.MlflowClient().get_metric_history(run.info.run_id, "loss")
    assert [(m.step, m.value) for m in history] == [(0, 1.5), (1, 0.5)]


def test_run_without_a_name_gets_a_generated_one(fluent):
    mlflow.set_experiment(unique_name("fluent-noname"))
    with mlflow.start_run() as run:
        pass
    got = mlflow.get_run(run.info.run_id)
    assert got.info.run_name, "the server generates a run name"
    assert got.data.tags["mlflow.runName"] == got.info.run_name
    assert run.info.run_name == got.info.run_name


def test_exception_inside_start_run_marks_the_run_failed(fluent):
    mlflow.set_experiment(unique_name("fluent-fail"))
    with pytest.raises(RuntimeError, match="training crashed"):
        with mlflow.start_run() as run:
            mlflow.log_param("p", "before-crash")
            raise RuntimeError("training crashed")
    got = mlflow.get_run(run.info.run_id)
    assert got.info.status == "FAILED"
    assert got.info.end_time is not None
    assert got.data.params == {"p": "before-crash"}


def test_end_run_with_explicit_status(fluent):
    mlflow.set_experiment(unique_name("fluent-killed"))
    run = mlflow.start_run()
    mlflow.end_run(status="KILLED")
    assert mlflow.get_run(run.info.run_id).info.status == "KILLED"


def test_resuming_a_finished_run_reopens_it(fluent):
    mlflow.set_experiment(unique_name("fluent-resume"))
    with mlflow.start_run() as run:
        mlflow.log_metric("m", 1.0, step=0)
    with mlflow.start_run(run_id=run.info.run_id) as resumed:
        assert resumed.info.run_id == run.info.run_id
        assert mlflow.get_run(run.info.run_id).info.status == "RUNNING"
        mlflow.log_metric("m", 2.0, step=1)
    got = mlflow.get_run(run.info.run_id)
    assert got.info.status == "FINISHED"
    assert got.data.metrics == {"m": 2.0}


def test_runs_without_an_experiment_land_in_default_experiment_0(fluent):
    with mlflow.start_run() as run:
        mlflow.log_metric("m", 1.0)
    assert run.info.experiment_id == "0"
    default = mlflow.get_experiment("0")
    assert default.name == "Default"
    assert default.lifecycle_stage == "active"
    assert default.artifact_location == "mlflow-artifacts:/0"
    assert mlflow.get_run(run.info.run_id).info.experiment_id == "0"


def test_nested_run_records_its_parent(fluent):
    mlflow.set_experiment(unique_name("fluent-nested"))
    with mlflow.start_run(run_name="parent") as parent:
        with mlflow.start_run(run_name="child", nested=True) as child:
            mlflow.log_metric("child_metric", 2.0)
        assert mlflow.active_run().info.run_id == parent.info.run_id
    got_child = mlflow.get_run(child.info.run_id)
    got_parent = mlflow.get_run(parent.info.run_id)
    assert got_child.data.tags["mlflow.parentRunId"] == parent.info.run_id
    assert "mlflow.parentRunId" not in got_parent.data.tags
    assert got_child.info.status == got_parent.info.status == "FINISHED"
    children = mlflow.search_runs(
        filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'", output_format="list"
    )
    assert [r.info.run_id for r in children] == [child.info.run_id]


def test_latest_metric_is_chosen_by_step_before_timestamp(fluent):
    mlflow.set_experiment(unique_name("fluent-latest"))
    with mlflow.start_run() as run:
        # A higher step wins even though it was logged with an older timestamp.
        mlflow.log_metric("by_step", 10.0, step=5, timestamp=2_000)
        mlflow.log_metric("by_step", 20.0, step=1, timestamp=3_000)
        # Same step: the newer timestamp wins, whatever the logging order.
        mlflow.log_metric("by_time", 1.0, step=2, timestamp=5_000)
        mlflow.log_metric("by_time", 2.0, step=2, timestamp=4_000)
    metrics = mlflow.get_run(run.info.run_id).data.metrics
    assert metrics == {"by_step": 10.0, "by_time": 1.0}


def test_nan_and_infinite_metrics_round_trip(fluent):
    mlflow.set_experiment(unique_name("fluent-nan"))
    with mlflow.start_run() as run:
        mlflow.log_metric("nan", float("nan"))
        mlflow.log_metric("inf", float("inf"))
        mlflow.log_metrics({"ninf": float("-inf"), "batched_nan": float("nan")})
    metrics = mlflow.get_run(run.info.run_id).data.metrics
    assert math.isnan(metrics["nan"])
    assert math.isnan(metrics["batched_nan"])
    # MLflow clamps +/-Infinity to the largest finite double.
    assert metrics["inf"] == MAX_DOUBLE
    assert metrics["ninf"] == -MAX_DOUBLE
    history = mlflow.MlflowClient().get_metric_history(run.info.run_id, "nan")
    assert len(history) == 1 and math.isnan(history[0].value)


def test_params_and_tags_come_back_as_strings(fluent):
    mlflow.set_experiment(unique_name("fluent-strings"))
    with mlflow.start_run() as run:
        mlflow.log_params({"int": 5, "float": 0.25, "bool": True, "none": None, "text": "x"})
        mlflow.set_tags({"num": 3, "empty": ""})
    data = mlflow.get_run(run.info.run_id).data
    assert data.params == {"int": "5", "float": "0.25", "bool": "True", "none": "None", "text": "x"}
    assert data.tags["num"] == "3"
    assert data.tags["empty"] == ""


def test_async_logging_delivers_every_value_after_flush(fluent):
    mlflow.set_experiment(unique_name("fluent-async"))
    with mlflow.start_run() as run:
        for step in range(50):
            mlflow.log_metric("async_loss", 1.0 / (step + 1), step=step, synchronous=False)
        mlflow.log_param("async_param", "v", synchronous=False)
        mlflow.set_tag("async_tag", "t", synchronous=False)
        mlflow.flush_async_logging()
    got = mlflow.get_run(run.info.run_id)
    assert got.data.metrics["async_loss"] == 1.0 / 50
    assert got.data.params["async_param"] == "v"
    assert got.data.tags["async_tag"] == "t"
    history = mlflow.MlflowClient().get_metric_history(run.info.run_id, "async_loss")
    assert sorted(m.step for m in history) == list(range(50))


def test_last_active_run_reads_the_finished_run(fluent):
    mlflow.set_experiment(unique_name("fluent-last"))
    with mlflow.start_run() as run:
        mlflow.log_metric("m", 3.0)
    last = mlflow.last_active_run()
    assert last.info.run_id == run.info.run_id
    assert last.info.status == "FINISHED"
    assert last.data.metrics == {"m": 3.0}
