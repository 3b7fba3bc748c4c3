"""MLflow 3 logged models with the real client: MLFLOW_API.md §2.3, §5.4, §5.5, §8.1.

`log_model` has no fallback without these endpoints, so the sklearn workflows here are the
ones users hit first: log a model in a run, load it back by `models:/m-...` and `runs:/`,
autolog, and the MlflowClient logged-model API with its search.
"""

import numpy as np
import pytest
import requests
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

import mlflow
from mlflow.entities import LoggedModelInput, LoggedModelStatus

from conftest import only_ferroflow, raises_mlflow_error, unique_name


@pytest.fixture(scope="module")
def iris():
    X, y = load_iris(return_X_y=True, as_frame=True)
    return X, y


@pytest.fixture(scope="module")
def trained(iris):
    X, y = iris
    return LogisticRegression(max_iter=500).fit(X, y)


def test_sklearn_log_model_then_load_predicts_like_the_trained_model(fluent, iris, trained):
    X, _ = iris
    experiment = mlflow.set_experiment(unique_name("lm-sklearn"))
    with mlflow.start_run() as run:
        info = mlflow.sklearn.log_model(trained, name="model", input_example=X.head(3))

    assert info.model_uri == f"models:/{info.model_id}"
    assert info.model_id.startswith("m-")
    expected = trained.predict(X)

    loaded = mlflow.pyfunc.load_model(info.model_uri)
    np.testing.assert_array_equal(loaded.predict(X), expected)
    # `runs:/` resolves through logged-models/search by name and source run.
    by_run = mlflow.pyfunc.load_model(f"runs:/{run.info.run_id}/model")
    np.testing.assert_array_equal(by_run.predict(X), expected)
    np.testing.assert_array_equal(mlflow.sklearn.load_model(info.model_uri).predict(X), expected)

    model = mlflow.get_logged_model(info.model_id)
    assert model.status == LoggedModelStatus.READY
    assert model.name == "model"
    assert model.source_run_id == run.info.run_id
    assert model.experiment_id == experiment.experiment_id
    assert model.artifact_location == (
        f"mlflow-artifacts:/{experiment.experiment_id}/models/{info.model_id}/artifacts"
    )
    outputs = mlflow.get_run(run.info.run_id).outputs.model_outputs
    assert [(o.model_id, o.step) for o in outputs] == [(info.model_id, 0)]


def test_autolog_records_params_metrics_dataset_and_model(fluent, iris):
    X, y = iris
    mlflow.set_experiment(unique_name("lm-autolog"))
    mlflow.sklearn.autolog()
    try:
        with mlflow.start_run() as run:
            LogisticRegression(max_iter=300, C=0.5).fit(X, y)
    finally:
        mlflow.sklearn.autolog(disable=True)

    got = mlflow.get_run(run.info.run_id)
    assert got.data.params["C"] == "0.5"
    assert got.data.params["max_iter"] == "300"
    assert got.data.metrics["training_score"] > 0.9
    contexts = [
        {t.key: t.value for t in d.tags}.get("mlflow.data.context")
        for d in got.inputs.dataset_inputs
    ]
    assert "train" in contexts

    (output,) = got.outputs.model_outputs
    model = mlflow.get_logged_model(output.model_id)
    assert model.status == LoggedModelStatus.READY
    assert model.source_run_id == run.info.run_id
    assert model.params["C"] == "0.5"
    scores = [m for m in model.metrics if m.key == "training_score"]
    assert scores and scores[0].model_id == output.model_id
    assert scores[0].run_id == run.info.run_id
    assert scores[0].dataset_digest, "autolog links training metrics to the dataset"
    assert scores[0].value == pytest.approx(got.data.metrics["training_score"])


def test_client_creates_tags_finalizes_and_deletes_a_model(client, experiment_id):
    run = client.create_run(experiment_id)
    model = client.create_logged_model(
        experiment_id,
        name="clf",
        source_run_id=run.info.run_id,
        tags={"team": "vision"},
        params={"alpha": "0.1"},
        model_type="classifier",
    )
    assert model.status == LoggedModelStatus.PENDING
    assert model.tags == {"team": "vision"}
    assert model.params == {"alpha": "0.1"}
    assert model.model_type == "classifier"
    assert model.creation_timestamp == model.last_updated_timestamp

    client.set_logged_model_tags(model.model_id, {"team": "nlp", "stage": "dev"})
    client.log_model_params(model.model_id, {"beta": "2"})
    client.delete_logged_model_tag(model.model_id, "stage")
    ready = client.finalize_logged_model(model.model_id, LoggedModelStatus.READY)
    assert ready.status == LoggedModelStatus.READY
    assert ready.last_updated_timestamp >= model.last_updated_timestamp

    got = client.get_logged_model(model.model_id)
    assert got.tags == {"team": "nlp"}
    assert got.params == {"alpha": "0.1", "beta": "2"}

    client.delete_logged_model(model.model_id)
    with raises_mlflow_error("RESOURCE_DOES_NOT_EXIST"):
        client.get_logged_model(model.model_id)
    assert client.search_logged_models([experiment_id]) == []


def test_unnamed_models_get_a_generated_name(client, experiment_id):
    model = client.create_logged_model(experiment_id)
    assert model.name and "/" not in model.name
    assert model.status == LoggedModelStatus.PENDING


def test_search_filters_orders_and_pages(client, experiment_id):
    run = client.create_run(experiment_id)
    ids = {}
    for name, acc, kind in [("a", 0.7, "x"), ("b", 0.9, "y"), ("c", 0.8, "x")]:
        model = client.create_logged_model(
            experiment_id, name=name, params={"kind": kind}, tags={"t": kind}
        )
        ids[name] = model.model_id
        client.log_metric(run.info.run_id, "acc", acc, model_id=model.model_id)
    client.create_logged_model(experiment_id, name="no-metrics")

    def names(models):
        return [m.name for m in models]

    by_acc = client.search_logged_models(
        [experiment_id], order_by=[{"field_name": "metrics.acc", "ascending": False}]
    )
    # Models without the metric sort last.
    assert names(by_acc) == ["b", "c", "a", "no-metrics"]
    assert names(client.search_logged_models([experiment_id], filter_string="metrics.acc > 0.75",
                                             order_by=[{"field_name": "name"}])) == ["b", "c"]
    assert names(client.search_logged_models([experiment_id], filter_string="params.kind = 'x'",
                                             order_by=[{"field_name": "name"}])) == ["a", "c"]
    assert names(client.search_logged_models([experiment_id], filter_string="tags.t != 'x'")) == [
        "b"
    ]
    assert names(client.search_logged_models([experiment_id], filter_string="name LIKE 'n%'")) == [
        "no-metrics"
    ]
    # Default order: newest first.
    assert names(client.search_logged_models([experiment_id]))[0] == "no-metrics"

    page = client.search_logged_models(
        [experiment_id], max_results=3, order_by=[{"field_name": "name", "ascending": True}]
    )
    assert names(page) == ["a", "b", "c"] and page.token
    rest = client.search_logged_models(
        [experiment_id],
        max_results=3,
        order_by=[{"field_name": "name", "ascending": True}],
        page_token=page.token,
    )
    assert names(rest) == ["no-metrics"] and not rest.token
    # A token belongs to its search.
    with raises_mlflow_error("INVALID_PARAMETER_VALUE"):
        client.search_logged_models([experiment_id], max_results=3, page_token=page.token)

    (fluent_hit,) = mlflow.search_logged_models(
        experiment_ids=[experiment_id], filter_string="name = 'b'", output_format="list"
    )
    assert fluent_hit.model_id == ids["b"]


def test_run_records_models_it_used(client, experiment_id):
    model = client.create_logged_model(experiment_id, name="upstream")
    run = client.create_run(experiment_id)
    client.log_inputs(run.info.run_id, models=[LoggedModelInput(model.model_id)])
    # Logged again (a client retry): still one edge.
    client.log_inputs(run.info.run_id, models=[LoggedModelInput(model.model_id)])
    inputs = client.get_run(run.info.run_id).inputs
    assert [m.model_id for m in inputs.model_inputs] == [model.model_id]


# --------------------------------------------------------------------------------------------
# The REST contract and hostile requests
# --------------------------------------------------------------------------------------------


def _api(server, method, path, **kwargs):
    return requests.request(method, f"{server.url}/api/2.0/mlflow{path}", timeout=30, **kwargs)


def test_rest_shapes_of_a_logged_model(server, experiment_id):
    created = _api(server, "POST", "/logged-models", json={"experiment_id": experiment_id})
    assert created.status_code == 200
    info = created.json()["model"]["info"]
    assert info["status"] == "LOGGED_MODEL_PENDING"
    assert info["experiment_id"] == experiment_id
    assert isinstance(info["creation_timestamp_ms"], int)
    model_id = info["model_id"]

    patched = _api(
        server,
        "PATCH",
        f"/logged-models/{model_id}",
        json={"model_id": model_id, "status": "LOGGED_MODEL_READY"},
    )
    assert patched.status_code == 200
    assert patched.json()["model"]["info"]["status"] == "LOGGED_MODEL_READY"

    tags = _api(
        server,
        "PATCH",
        f"/logged-models/{model_id}/tags",
        json={"tags": [{"key": "a b", "value": "1"}]},
    )
    assert tags.status_code == 200
    removed = _api(server, "DELETE", f"/logged-models/{model_id}/tags/a%20b")
    assert removed.status_code == 200 and removed.json() == {}

    assert _api(server, "DELETE", f"/logged-models/{model_id}").json() == {}
    deleted = _api(server, "GET", f"/logged-models/{model_id}", params={"allow_deleted": "true"})
    assert deleted.status_code == 200
    assert deleted.json()["model"]["info"]["model_id"] == model_id

    empty = _api(server, "POST", "/logged-models/search", json={"experiment_ids": [experiment_id]})
    assert empty.status_code == 200 and empty.json() == {}


@pytest.mark.parametrize(
    "method, path, body, status, code",
    [
        ("GET", "/logged-models/m-00000000000000000000000000000000", None, 404,
         "RESOURCE_DOES_NOT_EXIST"),
        ("POST", "/logged-models", {}, 400, "INVALID_PARAMETER_VALUE"),
        ("POST", "/logged-models", {"experiment_id": "{exp}", "name": "a/b"}, 400,
         "INVALID_PARAMETER_VALUE"),
        ("POST", "/logged-models", {"experiment_id": "999999999"}, 404, "RESOURCE_DOES_NOT_EXIST"),
        ("POST", "/logged-models/search", {}, 400, "INVALID_PARAMETER_VALUE"),
        # MLflow answers 500 (float('high') raises): a client mistake is a 400 here.
        pytest.param("POST", "/logged-models/search",
                     {"experiment_ids": ["{exp}"], "filter": "metrics.acc > 'high'"}, 400,
                     "INVALID_PARAMETER_VALUE", marks=only_ferroflow),
        ("POST", "/logged-models/search",
         {"experiment_ids": ["{exp}"], "order_by": [{"field_name": "params.x"}]}, 400,
         "INVALID_PARAMETER_VALUE"),
        ("POST", "/logged-models/search",
         {"experiment_ids": ["{exp}"], "page_token": "bm90IGpzb24="}, 400,
         "INVALID_PARAMETER_VALUE"),
        ("POST", "/runs/outputs", {"run_id": "0" * 32, "models": [{"model_id": "m-1", "step": 0}]},
         404, "RESOURCE_DOES_NOT_EXIST"),
        # Longer than their columns: a 400 on both databases, not PostgreSQL's 500.
        pytest.param("POST", "/logged-models", {"experiment_id": "{exp}", "model_type": "x" * 501},
                     400, "INVALID_PARAMETER_VALUE", marks=only_ferroflow),
        pytest.param("POST", "/logged-models",
                     {"experiment_id": "{exp}", "source_run_id": "r" * 33}, 400,
                     "INVALID_PARAMETER_VALUE", marks=only_ferroflow),
    ],
)
def test_hostile_requests_are_mlflow_errors(server, experiment_id, method, path, body, status,
                                            code):
    if body is not None:
        body = {
            k: ([x.replace("{exp}", experiment_id) for x in v] if isinstance(v, list)
                and v and isinstance(v[0], str) else v.replace("{exp}", experiment_id)
                if isinstance(v, str) else v)
            for k, v in body.items()
        }
    response = _api(server, method, path, json=body)
    assert response.status_code == status, response.text
    assert response.json()["error_code"] == code


def test_model_in_a_deleted_experiment_is_refused(client):
    experiment_id = client.create_experiment(unique_name("lm-deleted"))
    client.delete_experiment(experiment_id)
    with raises_mlflow_error("INVALID_PARAMETER_VALUE"):
        client.create_logged_model(experiment_id)


@only_ferroflow  # MLflow's answer depends on the database's foreign-key enforcement
def test_metric_for_an_unknown_model_writes_nothing(client, experiment_id):
    run = client.create_run(experiment_id)
    with pytest.raises(Exception):
        client.log_metric(run.info.run_id, "acc", 0.5, model_id="m-0000000000000000000000000000dead")
    assert client.get_run(run.info.run_id).data.metrics == {}


@only_ferroflow  # MLflow: a database error (500) on PostgreSQL
def test_metric_dataset_fields_longer_than_their_columns_are_400(server, client, experiment_id):
    run = client.create_run(experiment_id)
    model = client.create_logged_model(experiment_id)
    response = _api(server, "POST", "/runs/log-batch", json={
        "run_id": run.info.run_id,
        "metrics": [{"key": "acc", "value": 1, "timestamp": 1, "model_id": model.model_id,
                     "dataset_digest": "d" * 37}],
    })
    assert response.status_code == 400 and response.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    assert client.get_run(run.info.run_id).data.metrics == {}


def test_ui_lists_and_downloads_a_models_files(server, client, experiment_id, tmp_path):
    model = client.create_logged_model(experiment_id, name="files")
    (tmp_path / "MLmodel").write_text("flavors: {}\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "w.bin").write_bytes(b"\x00\x01")
    client.log_model_artifacts(model.model_id, str(tmp_path))

    listed = _api(server, "GET", f"/logged-models/{model.model_id}/artifacts/directories")
    assert listed.status_code == 200, listed.text
    body = listed.json()
    assert body["root_uri"] == model.artifact_location
    assert {f["path"]: f["is_dir"] for f in body["files"]} == {"MLmodel": False, "sub": True}
    nested = _api(server, "GET", f"/logged-models/{model.model_id}/artifacts/directories",
                  params={"artifact_directory_path": "sub"})
    assert [f["path"] for f in nested.json()["files"]] == ["sub/w.bin"]

    files = f"{server.url}/ajax-api/2.0/mlflow/logged-models/{model.model_id}/artifacts/files"
    got = requests.get(files, params={"artifact_file_path": "MLmodel"}, timeout=30)
    assert got.status_code == 200 and got.text == "flavors: {}\n"
    missing = requests.get(files, timeout=30)
    assert missing.status_code == 400 and missing.json()["error_code"] == "BAD_REQUEST"
    escape = requests.get(files, params={"artifact_file_path": "../../x"}, timeout=30)
    assert escape.status_code == 400
