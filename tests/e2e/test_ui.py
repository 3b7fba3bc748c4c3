"""MLflow's web UI in a real browser (issue "The web UI"), against ferroflow on each backend.

ferroflow serves the bundle shipped in the `mlflow` 3.17.2 wheel (`FERROFLOW_UI_DIR`, taken
from the installed `mlflow` package). The stock client seeds what a person looks at: an
experiment of three runs with params, metric histories, tags, a PNG and a text artifact, a
logged model, and a registered model with a version and an alias. Then one chromium per backend
(Debian's, driven by playwright-core from tests/e2e/node; see tests/e2e/browser/tour.mjs) visits
the pages: experiment list, experiment page, runs table (a metric column added and a filter
typed into the search box), run page, its artifacts with the image preview, a metric chart, the
comparison of the three runs, the model registry list and version page, and the logged model.
On every page it waits for the names and values a person would read, and records every
response: a page passes only if all it expected became visible and the server answered no
request with a 4xx/5xx (one exception, below) and no GraphQL request with errors.

A second variant (SQLite, ferroflow only) runs with tokens and workspaces: the browser signs in
with an API key through ferroflow's sign-in page under /w/<workspace>/, then tours the same
pages in that workspace; the session cookie must be HttpOnly and SameSite=Strict, and a write
sent with it from another Origin is refused.

A third (SQLite) looks at traces: the stock client's `@mlflow.trace` logs two calls of nested
spans in a fresh experiment, one tagged and given a feedback (`mlflow.log_feedback`); the
browser looks at the experiment's overview (its charts are drawn from `traces/metrics`), goes
from there to its Traces tab, finds both traces (their request
previews, the tag and the feedback in the table) and opens one: the trace view must show its
span tree, its tag, the feedback in its assessments pane and a child span's outputs (ferroflow
reads the spans from the `traces.json` the client uploaded), with no error message or banner.

Screenshots of every page go to the test's tmp dir (their paths are in failure reports); the
runs table and the run page also to docs/screenshots/ for the README (SQLite run, ferroflow)
when FERROFLOW_E2E_README_SCREENSHOTS=1.

Needs node, playwright-core (scripts/setup-node.sh) and chromium (`apt-get install chromium`,
or FERROFLOW_E2E_CHROMIUM). In reference mode (FERROFLOW_E2E_SERVER=mlflow) the same tour
runs against `mlflow server`, which serves its own UI: that checks the tour itself.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, urlsplit

import pytest
import requests

from conftest import (
    BACKENDS,
    REFERENCE_MODE,
    REPO_ROOT,
    SERVER_KIND,
    Database,
    LocalDestination,
    _ferroflow_bin,
    _reset_fluent_state,
    running_server,
)

TOUR = REPO_ROOT / "tests" / "e2e" / "browser" / "tour.mjs"
PLAYWRIGHT = REPO_ROOT / "tests" / "e2e" / "node" / "node_modules" / "playwright-core"
CHROMIUM = os.environ.get("FERROFLOW_E2E_CHROMIUM", "/usr/bin/chromium")
README_SCREENSHOTS = REPO_ROOT / "docs" / "screenshots"
# The README's screenshots are rewritten only when asked (each run's differ: "15 seconds ago").
UPDATE_README_SCREENSHOTS = os.environ.get("FERROFLOW_E2E_README_SCREENSHOTS") == "1"
# How long one step waits for what it expects (the bundle's first load takes ~2 s on 2 cores).
STEP_TIMEOUT_MS = 15000

# The one error response a page may get: the UI asks who is signed in, and MLflow's own server
# answers 404 too unless its basic-auth app is on; the UI reads that as "no user".
TOLERATED = {("GET", "/ajax-api/2.0/mlflow/users/current", 404)}

EXPERIMENT = "churn-prediction"
MODEL = "churn-classifier"
ALIAS = "champion"
# The PNG artifact's size: the preview must show exactly this image.
IMAGE_SIZE = (240, 180)
# run name -> (learning_rate, optimizer, accuracy); loss at step s is 1/(s+1) + offset.
RUNS = {
    "lr-0.01": ("0.01", "adam", 0.81),
    "lr-0.1": ("0.1", "sgd", 0.93),
    "lr-1.0": ("1.0", "adam", 0.72),
}
LOSS_STEPS = 8
FILTER = "metrics.accuracy > 0.8"  # keeps lr-0.01 and lr-0.1
MODEL_RUN = "lr-0.1"  # the run that logs the model


def loss(run_index: int, step: int) -> float:
    return round(1.0 / (step + 1) + run_index * 0.1, 4)


# --------------------------------------------------------------------------------------------
# Seeding with the stock client
# --------------------------------------------------------------------------------------------


@dataclass
class Seeded:
    experiment_id: str
    run_ids: dict[str, str]  # run name -> id
    model_id: str = ""
    model_version: str = ""


def write_png(path: Path) -> None:
    """A small confusion-matrix-like picture (a 3x3 grid of shaded cells)."""
    from PIL import Image, ImageDraw

    width, height = IMAGE_SIZE
    image = Image.new("RGB", IMAGE_SIZE, "white")
    draw = ImageDraw.Draw(image)
    counts = [[50, 3, 1], [4, 41, 6], [2, 5, 38]]
    for row, values in enumerate(counts):
        for col, value in enumerate(values):
            shade = 255 - int(value * 4.5)
            box = (col * width // 3, row * height // 3, (col + 1) * width // 3 - 2,
                   (row + 1) * height // 3 - 2)
            draw.rectangle(box, fill=(shade, shade, 255))
            draw.text((box[0] + 30, box[1] + 22), str(value), fill="black")
    image.save(path)


def seed(tracking_uri: str, token: str | None = None) -> Seeded:
    """The experiment, runs, artifacts, logged model and registered model the tour looks at,
    written through `tracking_uri` with the stock client (`token` as MLFLOW_TRACKING_TOKEN)."""
    import mlflow
    from mlflow import MlflowClient
    from sklearn.linear_model import LogisticRegression

    saved_token = os.environ.get("MLFLOW_TRACKING_TOKEN")
    if token:
        os.environ["MLFLOW_TRACKING_TOKEN"] = token
    try:
        client = MlflowClient(tracking_uri, tracking_uri)
        experiment_id = client.create_experiment(EXPERIMENT)
        seeded = Seeded(experiment_id, {})
        with tempfile.TemporaryDirectory() as tmp:
            for index, (name, (lr, optimizer, accuracy)) in enumerate(RUNS.items()):
                run_id = client.create_run(
                    experiment_id, run_name=name, tags={"team": "growth", "stage": "tuning"}
                ).info.run_id
                seeded.run_ids[name] = run_id
                client.log_param(run_id, "learning_rate", lr)
                client.log_param(run_id, "optimizer", optimizer)
                for step in range(LOSS_STEPS):
                    client.log_metric(run_id, "loss", loss(index, step), step=step)
                client.log_metric(run_id, "accuracy", accuracy)
                png, notes = Path(tmp) / name / "confusion_matrix.png", Path(tmp) / name / "notes.txt"
                png.parent.mkdir()
                write_png(png)
                notes.write_text(f"{name}: learning rate {lr} with {optimizer}\n")
                client.log_artifact(run_id, str(png), "plots")
                client.log_artifact(run_id, str(notes))
                if name != MODEL_RUN:
                    client.set_terminated(run_id)
        # log_model and register_model are fluent (the registry URI defaults to the tracking
        # URI, so it is left unset: setting it would outlive this module in the environment).
        _reset_fluent_state()
        mlflow.set_tracking_uri(tracking_uri)
        with mlflow.start_run(run_id=seeded.run_ids[MODEL_RUN], experiment_id=experiment_id):
            trained = LogisticRegression().fit([[0.0], [1.0], [2.0], [3.0]], [0, 0, 1, 1])
            info = mlflow.sklearn.log_model(trained, name="model")
        seeded.model_id = info.model_id
        version = mlflow.register_model(info.model_uri, MODEL)
        seeded.model_version = version.version
        client.set_registered_model_alias(MODEL, ALIAS, version.version)
        return seeded
    finally:
        _reset_fluent_state()
        if token:
            if saved_token is None:
                os.environ.pop("MLFLOW_TRACKING_TOKEN", None)
            else:
                os.environ["MLFLOW_TRACKING_TOKEN"] = saved_token


# --------------------------------------------------------------------------------------------
# The pages and what a person must see on each (steps for tour.mjs)
# --------------------------------------------------------------------------------------------


def metric_page_route(run_ids: list[str], metric: str, experiment_id: str) -> str:
    """The metric chart's route, as the UI's own `Routes.getMetricPageRoute` builds it (the
    page refuses a URL missing any of these parameters)."""
    key = json.dumps(metric)
    return (
        f"#/metric?runs={json.dumps(run_ids)}&metric={quote(key)}"
        f"&experiments={json.dumps([experiment_id])}&plot_metric_keys={quote(json.dumps([metric]))}"
        "&plot_layout={}&x_axis=step&y_axis_scale=linear&line_smoothness=1&show_point=false"
        "&deselected_curves=[]&last_linear_y_axis_range=[]"
    ).replace(" ", "")


def runs_table_page(s: Seeded, readme_shot: Path | None) -> dict:
    accuracies = [str(acc) for _, _, acc in RUNS.values()]
    steps = [
        {"see": [*RUNS, f"{len(RUNS)} matching runs"]},
        # Metrics and params are not columns by default: a person adds them with "Columns"
        # (and drops two empty ones, so that all fit on the screen).
        {"click": {"role": "button", "name": "Columns"}},
        *({"click": {"text": label, "exact": True, "within": "[role=dialog]"}}
          for label in ("Dataset", "Source", "Metrics (2)", "Parameters (2)")),
        {"press": "Escape"},
        {"see": ["accuracy", "learning_rate", *accuracies, "sgd"]},
    ]
    if readme_shot:
        steps.append({"screenshot": str(readme_shot)})
    steps += [
        {"fill": {"placeholder": "metrics.rmse", "value": FILTER, "press": "Enter"}},
        {"see": ["2 matching runs", "lr-0.01", "lr-0.1"]},
        {"not_see": ["lr-1.0"]},
        # The header names the experiment (the UI reads it over GraphQL).
        {"see": [EXPERIMENT]},
    ]
    return {
        "name": "runs_table",
        "route": f"#/experiments/{s.experiment_id}/runs",
        "steps": steps,
        # The filter reached the server as typed.
        "calls": [{"method": "POST", "path": "/ajax-api/2.0/mlflow/runs/search",
                   "body_contains": FILTER}],
    }


def run_page(s: Seeded, readme_shot: Path | None) -> dict:
    lr, optimizer, accuracy = RUNS[MODEL_RUN]
    final_loss = loss(list(RUNS).index(MODEL_RUN), LOSS_STEPS - 1)
    steps = [
        {"see": [MODEL_RUN, "Parameters (2)", "learning_rate", optimizer, "Metrics (2)",
                 "accuracy", str(accuracy), "loss", str(final_loss), "team", "growth",
                 "Logged models (1)", MODEL, s.run_ids[MODEL_RUN]]},
    ]
    if readme_shot:
        steps.append({"screenshot": str(readme_shot)})
    return {
        "name": "run_page",
        "route": f"#/experiments/{s.experiment_id}/runs/{s.run_ids[MODEL_RUN]}",
        "steps": steps,
    }


def pages(s: Seeded, readme: bool, workspace: str | None = None) -> list[dict]:
    """The tour's pages; in `workspace`, with the routes the UI's own links have there."""
    ids = list(s.run_ids.values())
    lr, optimizer, accuracy = RUNS[MODEL_RUN]
    final_losses = [str(loss(i, LOSS_STEPS - 1)) for i in range(len(RUNS))]
    # `Default` (experiment 0) lives in the default workspace only.
    experiments = [EXPERIMENT] if workspace else [EXPERIMENT, "Default"]
    specs = [
        # The experiment's landing page as a first visit shows it (the UI's default GenAI
        # view: an overview of traces, of which there are none).
        {"name": "experiment", "route": f"#/experiments/{s.experiment_id}",
         "steps": [{"see": [EXPERIMENT, "Overview", "Training runs"]}]},
        # The list; then "Model training" (the UI keeps the choice) and into the experiment.
        {"name": "experiment_list", "route": "#/experiments",
         "steps": [{"see": experiments},
                   {"click": {"text": "Model training"}},
                   {"click": {"text": EXPERIMENT}},
                   {"see": [*RUNS]}]},
        runs_table_page(s, README_SCREENSHOTS / "runs-table.png" if readme else None),
        run_page(s, README_SCREENSHOTS / "run-page.png" if readme else None),
        {"name": "run_artifacts",
         "route": f"#/experiments/{s.experiment_id}/runs/{s.run_ids[MODEL_RUN]}"
                  "/artifacts/plots/confusion_matrix.png",
         "steps": [{"see": ["plots", "notes.txt", "plots/confusion_matrix.png"]},
                   {"image": {"width": IMAGE_SIZE[0], "height": IMAGE_SIZE[1]}},
                   {"click": {"text": "notes.txt"}},
                   {"see": [f"learning rate {lr} with {optimizer}"]}]},
        {"name": "metric_chart", "route": metric_page_route(ids, "loss", s.experiment_id),
         "steps": [{"see": [f"Comparing {len(RUNS)} Runs", *(f"{n} (loss)" for n in RUNS),
                            *(f"{v} (step={LOSS_STEPS - 1})" for v in final_losses),
                            "1.2 (step=0)"]},
                   # One plotted line per run.
                   {"count": {"selector": ".js-plotly-plot .scatterlayer .trace",
                              "at_least": len(RUNS)}}]},
        {"name": "compare_runs",
         "route": f"#/compare-runs?runs={json.dumps(ids)}&experiments={json.dumps([s.experiment_id])}"
                  .replace(" ", ""),
         "steps": [{"see": [f"Comparing {len(RUNS)} Runs from 1 Experiment", *RUNS, *ids,
                            "learning_rate", "optimizer", optimizer, str(accuracy),
                            *final_losses, "Parallel Coordinates Plot"]}]},
        {"name": "registered_models", "route": "#/models",
         "steps": [{"see": ["Registered Models", MODEL, f"Version {s.model_version}", ALIAS]}]},
        {"name": "model_version", "route": f"#/models/{MODEL}/versions/{s.model_version}",
         "steps": [{"see": [MODEL, f"Version {s.model_version}", "Source Run", MODEL_RUN,
                            ALIAS, "Registered At"]}]},
        {"name": "logged_model",
         "route": f"#/experiments/{s.experiment_id}/models/{s.model_id}",
         "steps": [{"see": [s.model_id, "Metrics (2)", str(accuracy), "Parameters (2)",
                            optimizer, MODEL_RUN, s.run_ids[MODEL_RUN], MODEL]},
                   # The header names the experiment (read over GraphQL).
                   {"see": [EXPERIMENT, "Register model"]}]},
    ]
    if workspace:
        # With workspaces on, the UI's links name the workspace in the route's query (a route
        # without one is rewritten to `?workspace=` and loses the query it had).
        for spec in specs:
            spec["route"] += ("&" if "?" in spec["route"] else "?") + f"workspace={workspace}"
    return specs


# --------------------------------------------------------------------------------------------
# Running the tour
# --------------------------------------------------------------------------------------------


def check_tools() -> None:
    missing = []
    if not shutil.which("node"):
        missing.append("node (apt-get install nodejs npm)")
    if not PLAYWRIGHT.is_dir():
        missing.append(f"playwright-core in {PLAYWRIGHT.parent} (scripts/setup-node.sh)")
    if not Path(CHROMIUM).exists():
        missing.append(f"chromium at {CHROMIUM} (apt-get install chromium, or FERROFLOW_E2E_CHROMIUM)")
    if missing:
        pytest.fail("the web UI tests need " + "; ".join(missing), pytrace=False)


def ui_dir() -> str:
    """The bundle in the installed `mlflow` package, the one this suite's client comes with."""
    import mlflow

    build = Path(mlflow.__file__).parent / "server" / "js" / "build"
    assert (build / "index.html").is_file(), f"no UI bundle in the mlflow package at {build}"
    return str(build)


def run_tour(base_url: str, page_specs: list[dict], work_dir: Path,
             signin: dict | None = None) -> dict:
    shots = work_dir / "screenshots"
    shots.mkdir(parents=True, exist_ok=True)
    plan = {
        "base_url": base_url,
        "screenshot_dir": str(shots),
        "chromium": CHROMIUM,
        "timeout_ms": STEP_TIMEOUT_MS,
        "signin": signin,
        "pages": [{k: v for k, v in p.items() if k != "calls"} for p in page_specs],
    }
    plan_path = work_dir / "plan.json"
    plan_path.write_text(json.dumps(plan, indent=1))
    for step in (step for p in page_specs for step in p["steps"] if "screenshot" in step):
        Path(step["screenshot"]).parent.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(["node", str(TOUR), str(plan_path)], capture_output=True, text=True,
                          timeout=900, cwd=REPO_ROOT)
    (work_dir / "tour.log").write_text(proc.stderr)
    if proc.returncode != 0:
        pytest.fail(f"tour.mjs failed ({proc.returncode}):\n{proc.stderr[-4000:]}", pytrace=False)
    results = json.loads(proc.stdout)
    (work_dir / "results.json").write_text(json.dumps(results, indent=1))
    results["by_name"] = {p["name"]: p for p in results["pages"]}
    results["specs"] = {p["name"]: p for p in page_specs}
    return results


def untolerated(bad_responses: list[dict]) -> list[dict]:
    """The error responses a page must not get: all but TOLERATED (under any /w/<ws>/ too)."""
    return [b for b in bad_responses if not any(
        (b["method"], b["status"]) == (method, status) and urlsplit(b["url"]).path.endswith(path)
        for method, path, status in TOLERATED)]


def page_problems(result: dict, spec: dict) -> list[str]:
    """Everything wrong with one visited page, each a line for the failure report."""
    problems = []
    if result["failure"]:
        problems.append(f"did not render as expected: {result['failure']}")
    for bad in untolerated(result["bad_responses"]):
        body = f" (request body {bad['request_body'][:200]!r})" if bad.get("request_body") else ""
        problems.append(f"{bad['method']} {bad['url']}{body} -> {bad['status']} {bad['body'][:300]}")
    for err in result["graphql_errors"]:
        problems.append(f"GraphQL {err['operation']} at {err['url']}: {err['errors']}")
    for err in result["page_errors"]:
        problems.append(f"uncaught exception in the page: {err}")
    for call in spec.get("calls", []):
        if not any(c["method"] == call["method"] and urlsplit(c["url"]).path.endswith(call["path"])
                   and call["body_contains"] in c["request_body"] and c["status"] == 200
                   for c in result["api_calls"]):
            problems.append(f"no {call['method']} {call['path']} answered 200 with "
                            f"{call['body_contains']!r} in its body")
    return problems


def assert_page(tour: dict, name: str) -> None:
    result, spec = tour["by_name"][name], tour["specs"][name]
    problems = page_problems(result, spec)
    if any("/graphql -> 404" in p for p in problems):
        problems.append("(POST /graphql is not served: the UI reads the experiment header and "
                        "run pages through it)")
    assert not problems, (
        f"{name} ({result['url']}, {result['ms']} ms, screenshot {result['screenshot']}):\n  "
        + "\n  ".join(problems)
    )


# --------------------------------------------------------------------------------------------
# Without tokens: every page, on each backend
# --------------------------------------------------------------------------------------------

PAGE_NAMES = [p["name"] for p in pages(Seeded("0", {n: "x" for n in RUNS}), readme=False)]


@pytest.fixture(scope="module", params=BACKENDS, ids=BACKENDS)
def tour(request, tmp_path_factory):
    """A server with the UI, seeded, and the tour's results (one browser for all pages)."""
    check_tools()
    backend = request.param
    work_dir = tmp_path_factory.mktemp(f"{SERVER_KIND}-{backend}-ui")
    database = Database(backend, work_dir)
    destination = LocalDestination(work_dir / "artifacts")
    if not REFERENCE_MODE:  # `mlflow server` serves its own copy
        destination.server_env = {"FERROFLOW_UI_DIR": ui_dir()}
    try:
        with running_server(SERVER_KIND, database, work_dir, f"{SERVER_KIND}-{backend}-ui",
                            destination) as server:
            seeded = seed(server.url)
            readme = UPDATE_README_SCREENSHOTS and backend == "sqlite" and not REFERENCE_MODE
            yield run_tour(f"{server.url}/", pages(seeded, readme), work_dir)
    finally:
        database.drop()


@pytest.mark.parametrize("name", PAGE_NAMES)
def test_page(tour, name):
    assert_page(tour, name)


# --------------------------------------------------------------------------------------------
# With tokens: signed in through ferroflow's page, in a workspace
# --------------------------------------------------------------------------------------------

TEAM = "team-a"
SESSION_COOKIE = "ferroflow_session"


def ferroflow(*args: str) -> str:
    proc = subprocess.run([_ferroflow_bin(), *args], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, f"ferroflow {args[:2]} failed ({proc.returncode}): {proc.stderr}"
    return proc.stdout.strip()


@dataclass
class SignedIn:
    server_url: str
    base: str  # <server>/w/team-a/
    results: dict
    seeded: Seeded


@pytest.fixture(scope="module")
def signed_in(tmp_path_factory):
    if REFERENCE_MODE:
        pytest.skip("the sign-in page and tokens are ferroflow's own")
    check_tools()
    work_dir = tmp_path_factory.mktemp("ferroflow-sqlite-ui-token")
    database = Database("sqlite", work_dir)
    destination = LocalDestination(work_dir / "artifacts")
    destination.server_env = {
        "FERROFLOW_UI_DIR": ui_dir(),
        "FERROFLOW_AUTH": "token",
        "MLFLOW_ENABLE_WORKSPACES": "true",
    }
    with running_server("ferroflow", database, work_dir, "ferroflow-sqlite-ui-token",
                        destination) as server:
        ferroflow("workspace", "create", TEAM, "--backend-store-uri", database.uri)
        key = ferroflow("key", "create", "--backend-store-uri", database.uri,
                        "--principal", "alice", "--workspace", TEAM, "--role", "EDIT")
        resp = requests.post(f"{server.url}/oauth/token", timeout=30, data={
            "grant_type": "client_credentials", "client_secret": key, "scope": TEAM})
        assert resp.status_code == 200, resp.text
        base = f"{server.url}/w/{TEAM}/"
        seeded = seed(base.rstrip("/"), token=resp.json()["access_token"])
        # The same runs table opened without `?workspace=` by a browser whose localStorage
        # names `default`; the UI keeps the filter typed on the runs table before it.
        stale = {"name": "runs_table_stale_workspace",
                 "route": f"#/experiments/{seeded.experiment_id}/runs",
                 "local_storage": {"mlflow.activeWorkspace": "default"},
                 "steps": [{"see": [TEAM, EXPERIMENT, "2 matching runs", "lr-0.01", "lr-0.1"]}]}
        # The stale one last: what it leaves in localStorage would follow the pages after it.
        page_specs = [*pages(seeded, readme=False, workspace=TEAM), stale]
        results = run_tour(base, page_specs, work_dir, signin={"api_key": key, "see": [TEAM]})
        yield SignedIn(server.url, base, results, seeded)


def session_cookie(signed_in: SignedIn) -> dict:
    cookies = {c["name"]: c for c in signed_in.results["signin"]["cookies"]}
    assert SESSION_COOKIE in cookies, f"no {SESSION_COOKIE} cookie after signing in: {cookies}"
    return cookies[SESSION_COOKIE]


def test_signing_in_through_the_page(signed_in):
    out = signed_in.results["signin"]
    assert out["failure"] is None, f"signing in failed: {out}"
    # Without a session, the UI sent the browser to the sign-in page of its workspace.
    assert out["unauthenticated_url"] == signed_in.base + "signin", out
    assert [r["status"] for r in out["unauthenticated_redirects"]] == [303], out
    # The form's POST answers 303 to the UI.
    assert out["post_status"] == 303 and out["post_location"] == "./", out
    assert out["landed_url"].split("#")[0] == signed_in.base, out
    assert not untolerated(out["bad_responses"]), out["bad_responses"]
    cookie = session_cookie(signed_in)
    assert cookie["httpOnly"] is True, cookie
    assert cookie["sameSite"] == "Strict", cookie


@pytest.mark.parametrize("name", PAGE_NAMES)
def test_signed_in_page(signed_in, name):
    assert_page(signed_in.results, name)


def test_the_ui_requests_named_no_other_workspace(signed_in):
    """On the pages opened in team-a, every X-MLFLOW-WORKSPACE the UI sent agrees with the
    path (the catalog call sends an empty one)."""
    seen = {c["workspace_header"] for p in signed_in.results["pages"]
            if p["name"] != "runs_table_stale_workspace" for c in p["api_calls"]}
    assert seen <= {None, "", TEAM}, f"workspace headers sent: {seen}"


def test_a_workspace_left_from_another_visit_does_not_break_the_page(signed_in):
    """The UI opened under /w/team-a/ by a browser whose localStorage still names `default`
    (from the root UI, on the same origin): the path is where the session belongs, so the
    pages should show team-a, not 400 on every call for a header/path mismatch."""
    assert_page(signed_in.results, "runs_table_stale_workspace")


def test_a_write_from_another_origin_is_refused(signed_in):
    cookie = session_cookie(signed_in)
    jar = {SESSION_COOKIE: cookie["value"]}
    url = f"{signed_in.base}ajax-api/2.0/mlflow/experiments/create"
    hostile = requests.post(url, json={"name": "from-elsewhere"}, cookies=jar, timeout=30,
                            headers={"Origin": "http://evil.example"})
    assert hostile.status_code == 403, f"{hostile.status_code} {hostile.text[:300]}"
    # The same request from the UI's own origin goes through (so the 403 was the Origin's).
    own = requests.post(url, json={"name": "from-the-ui"}, cookies=jar, timeout=30,
                        headers={"Origin": signed_in.server_url})
    assert own.status_code == 200, f"{own.status_code} {own.text[:300]}"


def test_signing_out(signed_in):
    out = signed_in.results["signout"]
    assert out["failure"] is None, out
    assert SESSION_COOKIE not in out["cookies_after"], out
    assert out["url_after"] == signed_in.base + "signin", out


# --------------------------------------------------------------------------------------------
# Traces: the GenAI pages of an experiment of traced calls (SQLite)
# --------------------------------------------------------------------------------------------

TRACED_EXPERIMENT = "support-agent"
QUESTION = "How long do refunds take?"
TICKET = "The printer is jammed. It was fine yesterday."
DOCUMENTS = ["Invoices are sent on the 1st.", "Refunds take 5 days."]
# Each traced call: its root span (the trace's name) and the spans nested under it.
SPAN_TREES = {
    "answer_question": ["retrieve_documents", "generate_answer"],
    "summarize_ticket": ["split_sentences"],
}
# The trace the browser opens, its tag and its feedback (the UI shows the value "yes" as "Yes").
OPENED = "answer_question"
TAG = ("topic", "billing")
FEEDBACK = "relevance"
DRAWER = "[role=dialog]"  # the trace view, a drawer over the Traces tab
# What the Traces tab and the trace view show when a request of theirs failed for good (the
# UI's own messages; while it retries, they stay skeletons, which the `see` steps catch).
ERROR_MESSAGES = ["Failed to load trace", "Unable to fetch trace data", "An error occurred",
                  "Something went wrong", "Failed to refresh traces"]
# `mlflow server` (its gateway on) shows a "Detect Issues" guidance popover over the Traces tab
# on a first visit, which a person dismisses once; ferroflow (gateway off) shows no button.
DISMISSED_GUIDANCE = {"mlflow.detectIssues.guidanceShown_v1": "true"}


@dataclass
class Traced:
    experiment_id: str
    trace_ids: dict[str, str]  # trace name (its root span) -> trace id


def seed_traces(tracking_uri: str) -> Traced:
    """Two traced calls of nested spans through the stock client's `@mlflow.trace`; the first
    tagged and given a human's feedback with `mlflow.log_feedback`."""
    import mlflow
    from mlflow.entities import AssessmentSource, AssessmentSourceType, SpanType

    @mlflow.trace(span_type=SpanType.RETRIEVER)
    def retrieve_documents(question):
        return list(DOCUMENTS)

    @mlflow.trace(span_type=SpanType.LLM)
    def generate_answer(question, documents):
        return "Refunds take 5 business days."

    @mlflow.trace(span_type=SpanType.AGENT)
    def answer_question(question):
        mlflow.update_current_trace(tags=dict([TAG]))
        return generate_answer(question, retrieve_documents(question))

    @mlflow.trace(span_type=SpanType.PARSER)
    def split_sentences(text):
        return text.split(". ")

    @mlflow.trace(span_type=SpanType.CHAIN)
    def summarize_ticket(ticket):
        return split_sentences(ticket)[0]

    with pytest.MonkeyPatch.context() as env:
        # Synchronous export: each trace is stored when its call returns. The tracer provider
        # reads the variable when it is built, hence the resets.
        env.setenv("MLFLOW_ENABLE_ASYNC_TRACE_LOGGING", "false")
        mlflow.tracing.reset()
        _reset_fluent_state()
        mlflow.set_tracking_uri(tracking_uri)
        try:
            traced = Traced(mlflow.set_experiment(TRACED_EXPERIMENT).experiment_id, {})
            answer_question(QUESTION)
            traced.trace_ids["answer_question"] = mlflow.get_last_active_trace_id()
            summarize_ticket(TICKET)
            traced.trace_ids["summarize_ticket"] = mlflow.get_last_active_trace_id()
            mlflow.log_feedback(
                trace_id=traced.trace_ids[OPENED], name=FEEDBACK, value="yes",
                rationale="cites the refund policy",
                source=AssessmentSource(AssessmentSourceType.HUMAN, "reviewer@example.com"),
            )
            return traced
        finally:
            _reset_fluent_state()
            mlflow.tracing.reset()


def request_preview(**inputs: str) -> str:
    """The Traces tab's Input column: the root span's inputs as JSON (the request preview)."""
    return json.dumps(inputs)


def trace_pages(t: Traced, shots: Path) -> list[dict]:
    previews = [request_preview(question=QUESTION), request_preview(ticket=TICKET)]
    opened_spans = [OPENED, *SPAN_TREES[OPENED]]
    no_errors = [{"not_see": ERROR_MESSAGES}, {"no_element": "[role=alert]"}]
    return [
        # From the experiment's page to its Traces tab, then a click on a row, as a person does.
        {"name": "traces_tab", "route": f"#/experiments/{t.experiment_id}",
         "local_storage": DISMISSED_GUIDANCE,
         "steps": [{"see": [TRACED_EXPERIMENT, "Overview"]},
                   {"click": {"role": "link", "name": "Traces", "exact": True}},
                   {"see": [*previews, "2 of 2"]},
                   # The tag (a pill) and the feedback have columns of their own, to the right
                   # of the screen.
                   {"see_in": {"within": "[role=table]", "texts": [*TAG, FEEDBACK, "Yes"]}},
                   *no_errors,
                   {"screenshot": str(shots / "traces_tab_list.png")},
                   {"click": {"text": previews[0]}},
                   {"see_in": {"within": DRAWER, "texts": opened_spans}},
                   *no_errors]},
        # The experiment's overview: its charts come from `traces/metrics`.
        {"name": "overview", "route": f"#/experiments/{t.experiment_id}",
         "local_storage": DISMISSED_GUIDANCE,
         "steps": [{"see": [TRACED_EXPERIMENT, "Overview", "Latency",
                            "Overall error rate: 0.0%"]},
                   *no_errors,
                   {"screenshot": str(shots / "overview.png")}]},
        # The trace's own link (the UI puts `traceId` in the route when a row is opened).
        {"name": "trace_view",
         "route": f"#/experiments/{t.experiment_id}/traces?traceId={t.trace_ids[OPENED]}",
         "local_storage": DISMISSED_GUIDANCE,
         "steps": [{"see_in": {"within": DRAWER, "texts": [*opened_spans, QUESTION, "1 tag"]}},
                   {"click": {"text": "1 tag", "within": DRAWER}},
                   {"see_in": {"within": DRAWER, "texts": list(TAG)}},
                   {"click": {"role": "button", "name": "Assess", "within": DRAWER}},
                   {"see_in": {"within": DRAWER, "texts": ["Feedback (1)", FEEDBACK, "Yes"]}},
                   {"screenshot": str(shots / "trace_view_assessment.png")},
                   # A child span's outputs, read from the spans the client uploaded.
                   {"click": {"text": SPAN_TREES[OPENED][0], "within": DRAWER}},
                   {"see_in": {"within": DRAWER, "texts": DOCUMENTS}},
                   *no_errors]},
    ]


TRACE_PAGE_NAMES = [p["name"] for p in trace_pages(Traced("0", dict.fromkeys(SPAN_TREES, "x")),
                                                    Path("."))]


@pytest.fixture(scope="module")
def traced(tmp_path_factory):
    """A SQLite server with the UI, two traces logged by the client, and the browser's visit."""
    check_tools()
    work_dir = tmp_path_factory.mktemp(f"{SERVER_KIND}-sqlite-ui-traces")
    database = Database("sqlite", work_dir)
    destination = LocalDestination(work_dir / "artifacts")
    if not REFERENCE_MODE:
        destination.server_env = {"FERROFLOW_UI_DIR": ui_dir()}
    try:
        with running_server(SERVER_KIND, database, work_dir, f"{SERVER_KIND}-sqlite-ui-traces",
                            destination) as server:
            seeded = seed_traces(server.url)
            yield run_tour(f"{server.url}/", trace_pages(seeded, work_dir / "screenshots"),
                           work_dir)
    finally:
        database.drop()


@pytest.mark.parametrize("name", TRACE_PAGE_NAMES)
def test_traces_page(traced, name):
    """The Traces tab lists both traces; the trace view shows the span tree, the tag and the
    feedback; no request of theirs failed.

    No endpoint is exempt here beyond TOLERATED: `mlflow server` answers every other request
    these pages make with 200 (reference mode), `POST /ajax-api/3.0/mlflow/datasets/search`
    (the evaluation datasets the Traces tab offers to add traces to) included, with `{}`."""
    assert_page(traced, name)
