"""`make ui` serves the store: its REST API answers, and headless Chromium finds a run's chart."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from mlflow import MlflowClient

from helpers import Snapshot, job_runners, started_server

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


def get(url: str, body: dict | None = None) -> bytes:
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Content-Type": "application/json"} if body is not None else {}
    with urllib.request.urlopen(
        urllib.request.Request(url, data=data, headers=headers), timeout=10
    ) as r:
        return r.read()


@pytest.fixture(scope="module")
def store(
    finished_mlp: Snapshot, tmp_path_factory: pytest.TempPathFactory
) -> tuple[str, str, str, str]:
    """A copy of a finished run's store: (uri, experiment id, run id, run name).

    ``UI_STORE=sqlite:///mlruns/mlflow.db`` points it at a real store's newest `mnist` run instead,
    which is how README's screenshot is taken (with ``UI_SCREENSHOT=docs/mlflow-ui.png``).
    """
    uri = os.environ.get("UI_STORE") or finished_mlp.clone(tmp_path_factory.mktemp("ui")).uri
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("mnist")
    run = client.search_runs(
        [experiment.experiment_id], "attributes.status = 'FINISHED'", max_results=1
    )[0]
    return uri, experiment.experiment_id, run.info.run_id, run.info.run_name


@pytest.fixture(scope="module")
def ui(repo_root: Path, store: tuple, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple]:
    """`make ui PORT=0` over the store (the server says its port): (URL, group, log)."""
    log = tmp_path_factory.mktemp("ui-log") / "ui.log"
    command = ["make", "-s", "-C", str(repo_root), "ui", "PORT=0"]
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", store[0])
        with started_server(command, log, timeout=180) as (proc, base):
            yield base, proc.pid, log


@pytest.mark.xdist_group("ui")  # one worker: the two share one `make ui` server
@pytest.mark.server
@pytest.mark.subprocess
def test_make_ui_answers_the_rest_api_and_serves_the_page(
    ui: tuple, store: tuple[str, str, str, str]
) -> None:
    ui, group, log = ui
    assert not job_runners(group), "MLflow's GenAI job runner: nothing here uses it"
    assert "Warning" not in log.read_text(), "only what asks something of the user is printed"
    experiments = json.loads(get(f"{ui}/api/2.0/mlflow/experiments/search", {"max_results": 10}))
    assert {"mnist-ui", "mnist"} & {e["name"] for e in experiments["experiments"]}
    run = json.loads(get(f"{ui}/api/2.0/mlflow/runs/get?run_id={store[2]}"))["run"]
    assert run["info"]["status"] == "FINISHED"
    assert {m["key"] for m in run["data"]["metrics"]} >= {"val/acc", "val/loss"}
    assert b"<title>MLflow</title>" in get(f"{ui}/")


@pytest.mark.xdist_group("ui")
@pytest.mark.browser
@pytest.mark.server
@pytest.mark.subprocess
def test_browser_finds_the_experiment_the_run_and_its_val_acc_chart(
    ui: tuple, store: tuple[str, str, str, str], tmp_path: Path
) -> None:
    ui = ui[0]
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail("CI must install Debian's chromium (see .ci/run)")
        pytest.skip("Debian chromium not installed")
    from playwright.sync_api import expect, sync_playwright

    _, experiment_id, run_id, run_name = store
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.goto(f"{ui}/#/experiments")
        page.get_by_text(
            "Model training", exact=True
        ).first.click()  # MLflow 3 opens on its GenAI view
        expect(page.get_by_text(re.compile(r"^mnist(-ui)?$")).first).to_be_visible(timeout=60_000)
        page.goto(f"{ui}/#/experiments/{experiment_id}/runs")
        expect(page.get_by_text(run_name).first).to_be_visible(timeout=60_000)
        page.goto(f"{ui}/#/experiments/{experiment_id}/runs/{run_id}/model-metrics")
        page.get_by_placeholder("Search metric charts").fill("val/acc")
        legend = page.get_by_text(f"{run_name} (val/acc)").first
        expect(legend).to_be_visible(timeout=60_000)
        chart = page.locator("div", has=legend).filter(has=page.locator("svg")).last
        expect(chart).to_be_visible()
        page.wait_for_timeout(1500)  # let the plot draw before the screenshot
        shot = tmp_path / "mlflow-ui.png"
        page.screenshot(path=str(shot))
        browser.close()
    assert shot.stat().st_size > 10_000
    if os.environ.get("UI_SCREENSHOT"):
        shutil.copy(shot, os.environ["UI_SCREENSHOT"])


@pytest.mark.subprocess
def test_a_busy_port_is_one_error_line(repo_root: Path) -> None:
    target = ["ui"]
    with socket.socket() as busy:  # another server on the port
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run(
            ["make", "-s", *target, f"PORT={port}"],
            cwd=repo_root,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 2, result.stdout[-2000:] + result.stderr[-2000:]
    assert [line for line in result.stderr.splitlines() if line.startswith("error:")] == [
        f"error: cannot listen on port {port} (in use?): choose another with PORT=, e.g. PORT=5001"
    ]
    assert "Traceback" not in result.stderr
