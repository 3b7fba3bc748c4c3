"""Searching runs: `mlflow.search_runs` (pandas) and `MlflowClient.search_runs` (§4.2, §5.7)."""

import math

import mlflow
import pandas as pd
import pytest
from mlflow.entities import DatasetInput, InputTag, Metric, Param, RunTag, ViewType

from conftest import only_ferroflow, raises_mlflow_error, unique_name

pytestmark = pytest.mark.usefixtures("fluent")

# name: (start_time, final status, params, metrics, tags)
RUNS = {
    "alpha-1": (
        1_000,
        "FINISHED",
        {"model": "cnn", "lr": "0.1", "opt.name": "sgd"},
        {"acc": 0.9, "loss": 0.3, "val loss": 0.2},
        {"team": "vision"},
    ),
    "alpha-2": (2_000, "FINISHED", {"model": "rnn", "lr": "0.01"}, {"acc": 0.7}, {"team": "nlp"}),
    "beta-1": (3_000, "FAILED", {"model": "cnn"}, {"loss": 0.5}, {"team": "vision"}),
    "beta-2": (4_000, "RUNNING", {"model": "mlp"}, {"acc": 0.8, "loss": 0.1}, {}),
    "gamma-nan": (5_000, "KILLED", {}, {"acc": float("nan")}, {}),
    "deleted-1": (6_000, "FINISHED", {"model": "cnn"}, {"acc": 0.95}, {}),
}
ACTIVE = ["gamma-nan", "beta-2", "beta-1", "alpha-2", "alpha-1"]  # default order: start_time DESC


class Corpus:
    """Runs written once per server (module scope) and only read by the tests below."""

    def __init__(self, client):
        self.marker = unique_name("marker")
        self.experiment_name = unique_name("search-runs")
        self.experiment_id = client.create_experiment(self.experiment_name)
        self.ids = {}
        for name, (start, status, params, metrics, tags) in RUNS.items():
            run_id = client.create_run(
                self.experiment_id, start_time=start, run_name=name
            ).info.run_id
            client.log_batch(
                run_id,
                metrics=[Metric(k, v, start + 1, 0) for k, v in metrics.items()],
                params=[Param(k, v) for k, v in params.items()],
                tags=[RunTag(k, v) for k, v in {**tags, "marker": self.marker}.items()],
            )
            if status != "RUNNING":
                client.set_terminated(run_id, status=status, end_time=start + 500)
            self.ids[name] = run_id
        frame = pd.DataFrame({"x": [1.0, 2.0]})
        dataset = mlflow.data.from_pandas(frame, source="s3://bucket/train.csv", name="train-ds")
        client.log_inputs(
            self.ids["beta-2"],
            datasets=[
                DatasetInput(
                    dataset._to_mlflow_entity(), [InputTag("mlflow.data.context", "training")]
                )
            ],
        )
        client.delete_run(self.ids["deleted-1"])

        self.other_experiment_name = unique_name("search-runs-other")
        self.other_experiment_id = client.create_experiment(self.other_experiment_name)
        self.other_run_id = client.create_run(
            self.other_experiment_id, run_name="other-1", tags={"marker": self.marker}
        ).info.run_id
        self.names = {run_id: name for name, run_id in self.ids.items()}
        self.names[self.other_run_id] = "other-1"

    def names_of(self, frame_or_runs):
        if isinstance(frame_or_runs, pd.DataFrame):
            return [self.names[r] for r in frame_or_runs["run_id"]]
        return [self.names[r.info.run_id] for r in frame_or_runs]


@pytest.fixture(scope="module")
def corpus(server):
    return Corpus(server.client)


def search(corpus, **kwargs):
    return corpus.names_of(mlflow.search_runs(experiment_ids=[corpus.experiment_id], **kwargs))


def test_search_runs_returns_a_dataframe_with_run_columns(corpus):
    frame = mlflow.search_runs(experiment_ids=[corpus.experiment_id])
    assert isinstance(frame, pd.DataFrame)
    assert corpus.names_of(frame) == ACTIVE
    for column in (
        "run_id",
        "experiment_id",
        "status",
        "artifact_uri",
        "start_time",
        "end_time",
        "metrics.acc",
        "metrics.loss",
        "params.model",
        "params.lr",
        "tags.team",
        "tags.mlflow.runName",
    ):
        assert column in frame.columns, column
    row = frame.set_index("run_id").loc[corpus.ids["alpha-1"]]
    assert row["experiment_id"] == corpus.experiment_id
    assert row["status"] == "FINISHED"
    assert row["metrics.acc"] == 0.9
    assert row["params.lr"] == "0.1"
    assert row["tags.team"] == "vision"
    assert row["tags.mlflow.runName"] == "alpha-1"
    assert row["start_time"] == pd.Timestamp(1_000, unit="ms", tz="UTC")
    assert row["end_time"] == pd.Timestamp(1_500, unit="ms", tz="UTC")
    nan_row = frame.set_index("run_id").loc[corpus.ids["gamma-nan"]]
    assert math.isnan(nan_row["metrics.acc"])
    assert nan_row["status"] == "KILLED"


@pytest.mark.parametrize(
    "filter_string, expected",
    [
        ("metrics.acc > 0.75", ["beta-2", "alpha-1"]),
        ("metrics.acc <= 0.8", ["beta-2", "alpha-2"]),  # NaN matches no comparison but !=
        ("metrics.acc != 0.9", ["gamma-nan", "beta-2", "alpha-2"]),
        ("metrics.loss < 0.4 AND params.model = 'cnn'", ["alpha-1"]),
        ("params.model = 'cnn'", ["beta-1", "alpha-1"]),
        ("params.model != 'cnn'", ["beta-2", "alpha-2"]),
        ("params.lr IS NULL", ["gamma-nan", "beta-2", "beta-1"]),
        ("params.model LIKE '%n%'", ["beta-1", "alpha-2", "alpha-1"]),
        ("tags.team = 'vision'", ["beta-1", "alpha-1"]),
        ("tags.`mlflow.runName` LIKE 'alpha%'", ["alpha-2", "alpha-1"]),
        ('tags."mlflow.runName" = "beta-1"', ["beta-1"]),
        ("attributes.status = 'FAILED'", ["beta-1"]),
        ("status != 'FINISHED'", ["gamma-nan", "beta-2", "beta-1"]),
        ("attributes.start_time >= 2000 AND attributes.start_time < 4000", ["beta-1", "alpha-2"]),
        ("attributes.run_name = 'beta-2'", ["beta-2"]),
        ("run_name ILIKE 'ALPHA%'", ["alpha-2", "alpha-1"]),
        ("datasets.name = 'train-ds'", ["beta-2"]),
        ("datasets.context = 'training'", ["beta-2"]),
        ("datasets.name IN ('train-ds', 'other-ds')", ["beta-2"]),
        # Keys with spaces or dots are quoted with backticks.
        ("metrics.`val loss` < 0.5", ["alpha-1"]),
        ("params.`opt.name` = 'sgd'", ["alpha-1"]),
        ("params.model ILIKE 'CNN'", ["beta-1", "alpha-1"]),
        ("tags.team IS NOT NULL", ["beta-1", "alpha-2", "alpha-1"]),
        ("attributes.end_time > 2000", ["gamma-nan", "beta-1", "alpha-2"]),
        # Singular entity aliases and a lower-case `and`.
        ("metric.acc > 0.8 and param.model = 'cnn'", ["alpha-1"]),
    ],
)
def test_search_runs_filter(corpus, filter_string, expected):
    assert search(corpus, filter_string=filter_string) == expected


def test_search_runs_filter_run_id_in(corpus):
    wanted = [corpus.ids["alpha-1"], corpus.ids["beta-1"]]
    listed = f"('{wanted[0]}', '{wanted[1]}')"
    assert search(corpus, filter_string=f"attributes.run_id IN {listed}") == ["beta-1", "alpha-1"]
    assert search(corpus, filter_string=f"run_id NOT IN {listed}") == [
        "gamma-nan",
        "beta-2",
        "alpha-2",
    ]


@pytest.mark.parametrize(
    "order_by, expected",
    [
        # Rows missing the key come last in both directions; NaN sorts after real values.
        (["metrics.acc DESC"], ["alpha-1", "beta-2", "alpha-2", "gamma-nan", "beta-1"]),
        (["metrics.acc ASC"], ["alpha-2", "beta-2", "alpha-1", "gamma-nan", "beta-1"]),
        (["metrics.`loss`"], ["beta-2", "alpha-1", "beta-1", "gamma-nan", "alpha-2"]),
        (["metrics.`val loss` DESC"], ["alpha-1", "gamma-nan", "beta-2", "beta-1", "alpha-2"]),
        # Ties fall back to start_time DESC.
        (["params.model ASC"], ["beta-1", "alpha-1", "beta-2", "alpha-2", "gamma-nan"]),
        (["params.model DESC"], ["alpha-2", "beta-2", "beta-1", "alpha-1", "gamma-nan"]),
        (
            ["tags.team ASC", "attributes.start_time ASC"],
            ["alpha-2", "alpha-1", "beta-1", "beta-2", "gamma-nan"],
        ),
        (["attributes.start_time ASC"], ACTIVE[::-1]),
        (["start_time DESC"], ACTIVE),
        (["attributes.run_name DESC"], ["gamma-nan", "beta-2", "beta-1", "alpha-2", "alpha-1"]),
        (["attributes.end_time ASC"], ["alpha-1", "alpha-2", "beta-1", "gamma-nan", "beta-2"]),
        (["attributes.end_time DESC"], ["gamma-nan", "beta-1", "alpha-2", "alpha-1", "beta-2"]),
        ([], ACTIVE),
    ],
)
def test_search_runs_order_by(corpus, order_by, expected):
    assert search(corpus, order_by=order_by) == expected


def test_search_runs_max_results(corpus):
    assert search(corpus, max_results=2) == ACTIVE[:2]


def test_search_runs_view_type_includes_deleted_runs_on_request(corpus):
    assert search(corpus, run_view_type=ViewType.DELETED_ONLY) == ["deleted-1"]
    assert search(corpus, run_view_type=ViewType.ALL) == ["deleted-1", *ACTIVE]
    assert search(corpus, run_view_type=ViewType.ACTIVE_ONLY) == ACTIVE


def test_search_runs_defaults_to_the_active_experiment(corpus):
    mlflow.set_experiment(corpus.experiment_name)
    assert corpus.names_of(mlflow.search_runs()) == ACTIVE


def test_search_runs_by_experiment_names(corpus):
    frame = mlflow.search_runs(
        experiment_names=[corpus.experiment_name, corpus.other_experiment_name],
        order_by=["attributes.run_name ASC"],
    )
    assert corpus.names_of(frame) == sorted([*ACTIVE, "other-1"])
    assert set(frame["experiment_id"]) == {corpus.experiment_id, corpus.other_experiment_id}


def test_search_runs_across_all_experiments(corpus):
    frame = mlflow.search_runs(
        search_all_experiments=True, filter_string=f"tags.marker = '{corpus.marker}'"
    )
    assert sorted(corpus.names_of(frame)) == sorted([*ACTIVE, "other-1"])


def test_search_runs_in_an_unknown_experiment_is_empty(corpus):
    assert mlflow.search_runs(experiment_ids=["987654321"], output_format="list") == []


def test_client_search_runs_pages_through_page_tokens(corpus, client):
    seen, token, pages = [], None, 0
    while True:
        page = client.search_runs(
            [corpus.experiment_id],
            order_by=["attributes.start_time ASC"],
            max_results=2,
            page_token=token,
        )
        pages += 1
        seen += corpus.names_of(page)
        token = page.token
        if not token:
            break
        assert len(page) == 2
    assert pages == 3
    assert seen == ACTIVE[::-1]


def test_client_search_runs_returns_full_run_data(corpus, client):
    (run,) = client.search_runs([corpus.experiment_id], "attributes.run_name = 'alpha-1'")
    assert run.data.metrics == {"acc": 0.9, "loss": 0.3, "val loss": 0.2}
    assert run.data.params == {"model": "cnn", "lr": "0.1", "opt.name": "sgd"}
    assert run.data.tags["team"] == "vision"
    assert run.info.status == "FINISHED"
    (with_inputs,) = client.search_runs([corpus.experiment_id], "attributes.run_name = 'beta-2'")
    assert [d.dataset.name for d in with_inputs.inputs.dataset_inputs] == ["train-ds"]


@pytest.mark.parametrize(
    "bad_filter",
    [
        "metrics.acc > 'abc'",  # metrics compare with numbers
        "params.model = cnn",  # strings must be quoted
        "foo.bar = 1",  # unknown entity type
        "params.model = 'cnn' OR params.model = 'rnn'",  # only AND is supported
        "attributes.run_id IN ()",
        "metrics.acc >",
    ],
)
def test_search_runs_with_a_bad_filter_is_invalid_parameter_value(corpus, bad_filter):
    with raises_mlflow_error("INVALID_PARAMETER_VALUE") as excinfo:
        mlflow.search_runs(experiment_ids=[corpus.experiment_id], filter_string=bad_filter)
    assert excinfo.value.get_http_status_code() == 400


@pytest.mark.parametrize(
    "order_by",
    [
        ["metrics.acc SIDEWAYS"],
        ["nonsense.key"],
        # Deliberately stricter than MLflow 3.17, which answers a repeated key with a 500.
        pytest.param(["metrics.acc", "metrics.acc DESC"], marks=only_ferroflow),
    ],
    ids=["bad-direction", "bad-entity", "duplicate-key"],
)
def test_search_runs_with_a_bad_order_by_is_invalid_parameter_value(corpus, order_by):
    with raises_mlflow_error("INVALID_PARAMETER_VALUE"):
        mlflow.search_runs(experiment_ids=[corpus.experiment_id], order_by=order_by)


@pytest.mark.parametrize(
    "filter_string",
    [
        "tags.team = 'x'' OR ''1''=''1'",
        "tags.team = \"x' OR '1'='1\"",
        "params.model = 'cnn\\' OR 1=1 --'",
        "attributes.run_name LIKE '%'' OR run_name LIKE ''%'",
    ],
)
def test_sql_injection_shaped_filter_values_match_nothing(corpus, filter_string):
    assert search(corpus, filter_string=filter_string) == []
    assert search(corpus) == ACTIVE  # and the store is intact
