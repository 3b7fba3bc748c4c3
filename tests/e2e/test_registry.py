"""Model registry through `MlflowClient`: registered models, versions, stages, tags, aliases,
search, download URIs, and the errors the client surfaces."""

import pytest
import requests

from conftest import only_ferroflow, raises_mlflow_error, unique_name


@pytest.fixture
def run(client, experiment_id):
    """A fresh run whose artifact URI is `mlflow-artifacts:/<exp>/<run>/artifacts`."""
    return client.create_run(experiment_id)


def new_model(client, prefix="reg", **kwargs):
    return client.create_registered_model(unique_name(prefix), **kwargs)


def new_version(client, name, run, path="model", **kwargs):
    return client.create_model_version(
        name, f"{run.info.artifact_uri}/{path}", run_id=run.info.run_id, **kwargs
    )


# ---------------------------------------------------------------------- registered models


def test_registered_model_create_get_update_rename_delete(client):
    rm = new_model(client, tags={"team": "ml"}, description="first")
    assert rm.description == "first"
    assert rm.tags == {"team": "ml"}
    assert rm.creation_timestamp > 0
    assert rm.last_updated_timestamp == rm.creation_timestamp

    got = client.get_registered_model(rm.name)
    assert (got.name, got.description, got.tags) == (rm.name, "first", {"team": "ml"})
    assert got.latest_versions == [] and got.aliases == {}

    updated = client.update_registered_model(rm.name, description="second")
    assert updated.description == "second"
    assert client.get_registered_model(rm.name).description == "second"

    new_name = unique_name("renamed")
    client.rename_registered_model(rm.name, new_name)
    assert client.get_registered_model(new_name).tags == {"team": "ml"}
    with raises_mlflow_error("RESOURCE_DOES_NOT_EXIST"):
        client.get_registered_model(rm.name)

    client.delete_registered_model(new_name)
    with raises_mlflow_error("RESOURCE_DOES_NOT_EXIST"):
        client.get_registered_model(new_name)
    with raises_mlflow_error("RESOURCE_DOES_NOT_EXIST"):
        client.delete_registered_model(new_name)


def test_duplicate_and_invalid_model_names(client, server):
    rm = new_model(client)
    with raises_mlflow_error("RESOURCE_ALREADY_EXISTS") as err:
        client.create_registered_model(rm.name)
    assert f"Registered Model (name={rm.name}) already exists" in str(err.value)
    # "Already exists" is a 400, not a 409.
    resp = requests.post(
        f"{server.url}/api/2.0/mlflow/registered-models/create", json={"name": rm.name}
    )
    assert resp.status_code == 400
    assert resp.json()["error_code"] == "RESOURCE_ALREADY_EXISTS"

    other = new_model(client)
    with raises_mlflow_error("RESOURCE_ALREADY_EXISTS"):
        client.rename_registered_model(other.name, rm.name)
    for bad in ["a/b", "a:b"]:
        with raises_mlflow_error("INVALID_PARAMETER_VALUE"):
            client.create_registered_model(bad)
    resp = requests.post(f"{server.url}/api/2.0/mlflow/registered-models/create", json={})
    assert resp.status_code == 400
    assert resp.json()["error_code"] == "INVALID_PARAMETER_VALUE"


def test_registered_model_tags(client):
    rm = new_model(client)
    client.set_registered_model_tag(rm.name, "k", "v")
    client.set_registered_model_tag(rm.name, "k", "v2")
    client.set_registered_model_tag(rm.name, "other", "x")
    assert client.get_registered_model(rm.name).tags == {"k": "v2", "other": "x"}
    client.delete_registered_model_tag(rm.name, "k")
    assert client.get_registered_model(rm.name).tags == {"other": "x"}
    # Deleting a missing tag is not an error; a missing model is.
    client.delete_registered_model_tag(rm.name, "k")
    with raises_mlflow_error("RESOURCE_DOES_NOT_EXIST"):
        client.set_registered_model_tag(unique_name("missing"), "k", "v")
    with raises_mlflow_error("INVALID_PARAMETER_VALUE"):
        client.set_registered_model_tag(rm.name, "k", "x" * 100_001)


# ---------------------------------------------------------------------- model versions


def test_model_versions_are_numbered_and_ready(client, run):
    rm = new_model(client)
    v1 = new_version(client, rm.name, run, description="v one", tags={"t": "1"})
    v2 = client.create_model_version(
        rm.name, f"runs:/{run.info.run_id}/model", run_id=run.info.run_id
    )
    assert (v1.version, v2.version) == ("1", "2")
    assert v1.status == "READY" and v2.status == "READY"
    assert v1.current_stage == "None"
    assert v1.description == "v one" and v1.tags == {"t": "1"}
    assert v1.run_id == run.info.run_id
    assert v1.source == f"{run.info.artifact_uri}/model"

    got = client.get_model_version(rm.name, "1")
    assert (got.version, got.source, got.tags) == ("1", v1.source, {"t": "1"})

    updated = client.update_model_version(rm.name, "1", description="changed")
    assert updated.description == "changed"

    latest = client.get_registered_model(rm.name).latest_versions
    assert [(mv.version, mv.current_stage) for mv in latest] == [("2", "None")]

    client.delete_model_version(rm.name, "2")
    with raises_mlflow_error("RESOURCE_DOES_NOT_EXIST"):
        client.get_model_version(rm.name, "2")
    # Deleted numbers are never handed out again.
    assert new_version(client, rm.name, run).version == "3"
    with raises_mlflow_error("RESOURCE_DOES_NOT_EXIST"):
        client.get_model_version(rm.name, "99")
    with raises_mlflow_error("INVALID_PARAMETER_VALUE"):
        client.get_model_version(rm.name, "x")
    with raises_mlflow_error("RESOURCE_DOES_NOT_EXIST"):
        new_version(client, unique_name("missing"), run)


def test_concurrent_version_creates_get_distinct_numbers(server, run):
    from concurrent.futures import ThreadPoolExecutor

    from mlflow import MlflowClient

    name = new_model(server.client).name

    def create(_):
        # A client per thread: eight independent callers, as eight training jobs would be.
        return new_version(MlflowClient(server.url), name, run).version

    with ThreadPoolExecutor(8) as pool:
        versions = list(pool.map(create, range(16)))
    assert sorted(int(v) for v in versions) == list(range(1, 17))


def test_model_version_download_uri(client, run):
    rm = new_model(client)
    new_version(client, rm.name, run)
    assert client.get_model_version_download_uri(rm.name, "1") == f"{run.info.artifact_uri}/model"


@only_ferroflow
def test_runs_sources_resolve_to_the_run_artifact_uri(client, run):
    # MLflow 3.17 returns the `runs:/` URI itself; ferroflow resolves it at create time.
    rm = new_model(client)
    client.create_model_version(rm.name, f"runs:/{run.info.run_id}/model", run_id=run.info.run_id)
    assert client.get_model_version_download_uri(rm.name, "1") == f"{run.info.artifact_uri}/model"


def test_models_sources_resolve_to_the_referenced_version(client, run):
    src = new_model(client)
    new_version(client, src.name, run)
    dst = new_model(client)
    mv = client.create_model_version(dst.name, f"models:/{src.name}/1")
    assert mv.source == f"models:/{src.name}/1"
    assert mv.run_id == run.info.run_id
    assert client.get_model_version_download_uri(dst.name, "1") == f"{run.info.artifact_uri}/model"


def test_model_version_tags(client, run):
    rm = new_model(client)
    new_version(client, rm.name, run)
    client.set_model_version_tag(rm.name, "1", "k", "v")
    client.set_model_version_tag(rm.name, "1", "k", "v2")
    assert client.get_model_version(rm.name, "1").tags == {"k": "v2"}
    client.delete_model_version_tag(rm.name, "1", "k")
    assert client.get_model_version(rm.name, "1").tags == {}
    with raises_mlflow_error("RESOURCE_DOES_NOT_EXIST"):
        client.set_model_version_tag(rm.name, "7", "k", "v")


def test_bad_sources_are_400(client, run, experiment_id):
    rm = new_model(client)
    other = client.create_run(experiment_id)
    run_id = run.info.run_id
    bad = [
        (f"runs:/{other.info.run_id}/model", run_id),  # another run's source
        (f"runs:/{run_id}/model", None),  # runs:/ without run_id
        (f"{run.info.artifact_uri}/../../x", run_id),
        (f"{run.info.artifact_uri}/%2e%2e/%2e%2e/x", run_id),
        (f"{run.info.artifact_uri}/a%00b", run_id),
        (f"{other.info.artifact_uri}/model", run_id),  # outside this run's root
        ("/tmp/some/local/model", run_id),  # local path outside the run's artifact dir
        ("file:///etc", None),
        ("models:/m-0123456789abcdef", None),  # a logged model id without model_id
    ]
    for source, source_run in bad:
        with raises_mlflow_error("INVALID_PARAMETER_VALUE"):
            client.create_model_version(rm.name, source, run_id=source_run)
    # Nothing was created by the rejected requests.
    assert client.get_registered_model(rm.name).latest_versions == []
    # An object-store source with no run is fine.
    assert client.create_model_version(rm.name, "s3://bucket/path/model").version == "1"


# ---------------------------------------------------------------------- stages


def test_transition_stages_and_latest_versions(client, run):
    rm = new_model(client)
    for _ in range(3):
        new_version(client, rm.name, run)
    mv = client.transition_model_version_stage(rm.name, "1", "production")
    assert mv.current_stage == "Production"
    client.transition_model_version_stage(rm.name, "2", "Staging")
    latest = client.get_latest_versions(rm.name, stages=["Production", "staging"])
    assert sorted((v.current_stage, v.version) for v in latest) == [
        ("Production", "1"),
        ("Staging", "2"),
    ]
    # archive_existing_versions moves the others in the target stage to Archived.
    client.transition_model_version_stage(rm.name, "3", "Production", archive_existing_versions=True)
    assert client.get_model_version(rm.name, "1").current_stage == "Archived"
    assert client.get_model_version(rm.name, "3").current_stage == "Production"
    stages = {v.current_stage: v.version for v in client.get_latest_versions(rm.name)}
    assert stages == {"Archived": "1", "Staging": "2", "Production": "3"}
    with raises_mlflow_error("INVALID_PARAMETER_VALUE"):
        client.transition_model_version_stage(rm.name, "1", "Prod")
    with raises_mlflow_error("INVALID_PARAMETER_VALUE"):
        client.get_latest_versions(rm.name, stages=["nope"])


@only_ferroflow
def test_archiving_into_an_inactive_stage_is_400(client, run):
    # MLflow raises this without an error code, so its server answers 500.
    rm = new_model(client)
    new_version(client, rm.name, run)
    with raises_mlflow_error("INVALID_PARAMETER_VALUE"):
        client.transition_model_version_stage(rm.name, "1", "Archived", archive_existing_versions=True)


# ---------------------------------------------------------------------- aliases


def test_aliases(client, run):
    rm = new_model(client)
    new_version(client, rm.name, run)
    new_version(client, rm.name, run)
    client.set_registered_model_alias(rm.name, "champ", "1")
    client.set_registered_model_alias(rm.name, "champ", "2")
    client.set_registered_model_alias(rm.name, "backup", "1")
    mv = client.get_model_version_by_alias(rm.name, "champ")
    assert (mv.version, mv.aliases) == ("2", ["champ"])
    assert client.get_model_version(rm.name, "1").aliases == ["backup"]
    assert client.get_registered_model(rm.name).aliases == {"champ": "2", "backup": "1"}

    client.delete_registered_model_alias(rm.name, "champ")
    # An unknown alias is a 400, not a 404.
    with raises_mlflow_error("INVALID_PARAMETER_VALUE"):
        client.get_model_version_by_alias(rm.name, "champ")
    for reserved in ["latest", "LATEST", "v1", "V12"]:
        with raises_mlflow_error("INVALID_PARAMETER_VALUE"):
            client.set_registered_model_alias(rm.name, reserved, "1")
    with raises_mlflow_error("INVALID_PARAMETER_VALUE"):
        client.set_registered_model_alias(rm.name, "bad alias", "1")
    with raises_mlflow_error("RESOURCE_DOES_NOT_EXIST"):
        client.set_registered_model_alias(rm.name, "ghost", "9")

    # Deleting a version drops its aliases.
    client.delete_model_version(rm.name, "1")
    assert client.get_registered_model(rm.name).aliases == {}


# ---------------------------------------------------------------------- search


def test_search_registered_models(client):
    prefix = unique_name("search-rm")
    names = [f"{prefix}-{i}" for i in range(5)]
    for i, name in enumerate(names):
        client.create_registered_model(name, tags={"parity": "even" if i % 2 == 0 else "odd"})
    found = client.search_registered_models(filter_string=f"name LIKE '{prefix}-%'")
    assert [m.name for m in found] == names
    found = client.search_registered_models(
        filter_string=f"name LIKE '{prefix}-%' AND tags.parity = 'odd'"
    )
    assert [m.name for m in found] == [names[1], names[3]]
    # `!=` on an ordinary tag needs the tag (MLflow joins the tag rows).
    client.create_registered_model(f"{prefix}-untagged")
    found = client.search_registered_models(
        filter_string=f"name LIKE '{prefix}-%' AND tags.parity != 'odd'"
    )
    assert [m.name for m in found] == [names[0], names[2], names[4]]
    found = client.search_registered_models(
        filter_string=f"name ILIKE '{prefix.upper()}-%'", order_by=["name DESC"]
    )
    assert [m.name for m in found][:2] == [f"{prefix}-untagged", names[4]]
    found = client.search_registered_models(filter_string=f"name IN ('{names[0]}', '{names[2]}')")
    assert [m.name for m in found] == [names[0], names[2]]

    page1 = client.search_registered_models(
        filter_string=f"name LIKE '{prefix}-%'", max_results=2
    )
    assert [m.name for m in page1] == names[:2] and page1.token
    page2 = client.search_registered_models(
        filter_string=f"name LIKE '{prefix}-%'", max_results=2, page_token=page1.token
    )
    assert [m.name for m in page2] == names[2:4]

    with raises_mlflow_error("INVALID_PARAMETER_VALUE"):
        client.search_registered_models(filter_string="name = 'a' OR name = 'b'")
    with raises_mlflow_error("INVALID_PARAMETER_VALUE"):
        client.search_registered_models(filter_string="description = 'x'")
    with raises_mlflow_error("INVALID_PARAMETER_VALUE"):
        client.search_registered_models(order_by=["creation_timestamp"])
    with raises_mlflow_error("INVALID_PARAMETER_VALUE"):
        client.search_registered_models(max_results=1001)


def test_search_registered_models_hides_prompts(client, server):
    prefix = unique_name("prompts")
    client.create_registered_model(f"{prefix}-model")
    # The client refuses to create prompts as models; the REST call does not.
    requests.post(
        f"{server.url}/api/2.0/mlflow/registered-models/create",
        json={
            "name": f"{prefix}-prompt",
            "tags": [{"key": "mlflow.prompt.is_prompt", "value": "true"}],
        },
    ).raise_for_status()
    found = client.search_registered_models(filter_string=f"name LIKE '{prefix}-%'")
    assert [m.name for m in found] == [f"{prefix}-model"]
    resp = requests.get(
        f"{server.url}/api/2.0/mlflow/registered-models/search",
        params={"filter": f"name LIKE '{prefix}-%' AND tags.`mlflow.prompt.is_prompt` = 'true'"},
    )
    assert [m["name"] for m in resp.json()["registered_models"]] == [f"{prefix}-prompt"]


def test_search_model_versions(client, run, experiment_id):
    rm = new_model(client)
    other_run = client.create_run(experiment_id)
    new_version(client, rm.name, run, tags={"kind": "a"})
    new_version(client, rm.name, other_run, tags={"kind": "b"})
    new_version(client, rm.name, run)

    found = client.search_model_versions(f"name = '{rm.name}'")
    # Default order: last updated first, then version descending.
    assert [mv.version for mv in found] == ["3", "2", "1"]
    assert found[2].tags == {"kind": "a"}
    found = client.search_model_versions(
        f"name = '{rm.name}' AND run_id = '{run.info.run_id}'", order_by=["version_number ASC"]
    )
    assert [mv.version for mv in found] == ["1", "3"]
    found = client.search_model_versions(f"name = '{rm.name}' AND tags.kind = 'b'")
    assert [mv.version for mv in found] == ["2"]
    found = client.search_model_versions(f"name = '{rm.name}' AND version_number >= 2")
    assert sorted(mv.version for mv in found) == ["2", "3"]
    found = client.search_model_versions(
        f"name = '{rm.name}' AND run_id IN ('{other_run.info.run_id}')"
    )
    assert [mv.version for mv in found] == ["2"]
    found = client.search_model_versions(f"source_path LIKE '{run.info.artifact_uri}/%'")
    assert sorted(mv.version for mv in found) == ["1", "3"]

    page1 = client.search_model_versions(
        f"name = '{rm.name}'", max_results=2, order_by=["version_number ASC"]
    )
    assert [mv.version for mv in page1] == ["1", "2"] and page1.token
    page2 = client.search_model_versions(
        f"name = '{rm.name}'", max_results=2, order_by=["version_number ASC"], page_token=page1.token
    )
    assert [mv.version for mv in page2] == ["3"] and not page2.token

    client.delete_model_version(rm.name, "2")
    found = client.search_model_versions(f"name = '{rm.name}'")
    assert [mv.version for mv in found] == ["3", "1"]

    with raises_mlflow_error("INVALID_PARAMETER_VALUE"):
        client.search_model_versions("status = 'READY'")
    with raises_mlflow_error("INVALID_PARAMETER_VALUE"):
        client.search_model_versions(f"name = '{rm.name}'", order_by=["run_id"])
    with raises_mlflow_error("INVALID_PARAMETER_VALUE"):
        client.search_model_versions(f"name = '{rm.name}'", max_results=200_001)


@only_ferroflow
def test_searched_versions_carry_aliases(client, run):
    # MLflow 3.17 leaves `aliases` empty in search results; ferroflow fills them.
    rm = new_model(client)
    new_version(client, rm.name, run)
    client.set_registered_model_alias(rm.name, "champ", "1")
    (found,) = client.search_model_versions(f"name = '{rm.name}'")
    assert found.aliases == ["champ"]


def test_register_runs_uri_and_resolve_alias(client, run):
    name = unique_name("register")
    client.create_registered_model(name)
    mv = client.create_model_version(name, f"runs:/{run.info.run_id}/model", run.info.run_id)
    assert mv.status == "READY"
    # The client resolves models:/name/version and models:/name@alias through the registry.
    client.set_registered_model_alias(name, "prod", mv.version)
    assert client.get_model_version_by_alias(name, "prod").version == "1"
    assert client.get_registered_model(name).aliases == {"prod": "1"}


def test_rest_wire_shape(server, run):
    base = f"{server.url}/api/2.0/mlflow"
    name = unique_name("wire")
    rm = requests.post(f"{base}/registered-models/create", json={"name": name}).json()
    assert set(rm["registered_model"]) == {"name", "creation_timestamp", "last_updated_timestamp"}
    mv = requests.post(
        f"{base}/model-versions/create",
        json={"name": name, "source": f"{run.info.artifact_uri}/model", "run_id": run.info.run_id},
    ).json()["model_version"]
    assert mv["version"] == "1" and mv["status"] == "READY"
    assert mv["description"] == "" and mv["run_link"] == ""
    assert "tags" not in mv and "aliases" not in mv and "user_id" not in mv
    # JSON bodies on DELETE and PATCH, lowerCamel names accepted.
    resp = requests.patch(
        f"{base}/model-versions/update", json={"name": name, "version": "1", "description": "d"}
    )
    assert resp.json()["model_version"]["description"] == "d"
    resp = requests.post(
        f"{base}/registered-models/get-latest-versions", json={"name": name, "stages": ["None"]}
    )
    assert [v["version"] for v in resp.json()["model_versions"]] == ["1"]
    resp = requests.get(f"{base}/registered-models/get-latest-versions", params={"name": name})
    assert [v["version"] for v in resp.json()["model_versions"]] == ["1"]
    resp = requests.get(
        f"{base}/registered-models/alias", params={"name": name, "alias": "missing"}
    )
    assert resp.status_code == 400
    assert resp.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    resp = requests.delete(f"{base}/model-versions/delete", json={"name": name, "version": "1"})
    assert resp.status_code == 200 and resp.json() == {}
    resp = requests.delete(f"{base}/registered-models/delete", json={"name": name})
    assert resp.status_code == 200
    resp = requests.get(f"{base}/registered-models/get", params={"name": name})
    assert resp.status_code == 404
    assert resp.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"


@pytest.mark.parametrize(
    "path, body",
    [
        ("/registered-models/create", {"name": "n" * 300}),
        ("/registered-models/create", {"name": "{name}-long", "description": "d" * 6000}),
        ("/model-versions/create", {"name": "{name}", "source": "s3://b/" + "x" * 600}),
        ("/model-versions/create", {"name": "{name}", "source": "s3://b/x", "run_link": "l" * 600}),
    ],
)
@only_ferroflow  # MLflow answers 500 (the database's error) on PostgreSQL
def test_values_longer_than_their_columns_are_not_server_errors(server, path, body):
    """PostgreSQL enforces MLflow's VARCHAR sizes (SQLite stores them): never a 500."""
    name = new_model(server.client).name
    body = {k: v.replace("{name}", name) if isinstance(v, str) else v for k, v in body.items()}
    response = requests.post(f"{server.url}/api/2.0/mlflow{path}", json=body, timeout=30)
    assert response.status_code in (200, 400), response.text
    if response.status_code == 400:
        assert response.json()["error_code"] == "INVALID_PARAMETER_VALUE"
