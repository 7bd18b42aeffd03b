"""`make team-up`: PostgreSQL and `mlflow server` over it on this machine; a run, the registry, an Optuna study and a
sweep from two hosts go through them; a second `make team-up` reuses them; `make team-down` stops them."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
import torch
from mlflow import MlflowClient

from mnist_lab.cli import main as cli_main
from mnist_lab.resume import load_classifier
from mnist_lab.parts.serve.registry import main as register
from mnist_lab.parts.sweep.trial import PARENT_ATTR
from test_sweep import PLAIN, runs_by_role, write_sweep
from test_ui import job_runners
from tiny_cli import tiny_args

pytestmark = [pytest.mark.server, pytest.mark.subprocess, pytest.mark.slow]  # slow: the first start creates
# MLflow's schema in PostgreSQL (one to two minutes)


def make(repo_root: Path, team: Path, target: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TEAM_DIR": str(team)}
    return subprocess.run(["make", "-s", target], cwd=repo_root, env=env, capture_output=True, text=True, timeout=400)


@pytest.fixture(scope="module")
def team(repo_root: Path) -> Iterator[tuple[Path, str]]:
    """`make team-up` once for the module: its folder and what it printed; then `make team-down` must stop it."""
    if not list(Path("/usr/lib/postgresql").glob("*/bin/initdb")):
        missing = pytest.fail if os.environ.get("CI") else pytest.skip  # .ci/run installs it
        missing("PostgreSQL is not installed (apt-get install postgresql)")
    folder = repo_root / ".team" / f"test-{os.getpid()}"  # under the project: the postgres user must reach it
    try:
        up = make(repo_root, folder, "team-up")
        assert up.returncode == 0, up.stderr
        yield folder, up.stdout
    finally:
        down = make(repo_root, folder, "team-down")
        shutil.rmtree(folder, ignore_errors=True)
    assert down.returncode == 0, down.stderr
    with pytest.raises(OSError):
        urllib.request.urlopen(exports(up.stdout)[0] + "/health", timeout=5)


def exports(printed: str) -> tuple[str, str]:
    """``MLFLOW_TRACKING_URI`` and ``STORAGE`` from `make team-up`'s two lines."""
    found = dict(line.removeprefix("export ").split("=", 1) for line in printed.splitlines())
    return found["MLFLOW_TRACKING_URI"], found["STORAGE"]


def test_team_up_holds_runs_models_and_studies_and_team_down_stops_it(
    team: tuple[Path, str], repo_root: Path, fake_mnist: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder, printed = team
    uri, storage = exports(printed)
    assert uri.startswith("http://127.0.0.1:") and storage.startswith("postgresql")
    again = make(repo_root, folder, "team-up")
    assert (again.returncode, again.stdout) == (0, printed)  # reused, same ports
    assert not job_runners(int((folder / "mlflow.pid").read_text())), "MLflow's GenAI job runner: unused here"

    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.chdir(tmp_path)
    run_id = cli_main(tiny_args("fit", fake_mnist, "--trainer.max_epochs=1")).trainer.logger.run_id
    run = MlflowClient(uri).get_run(run_id)
    assert run.info.status == "FINISHED" and {"val/acc", "test/acc"} <= set(run.data.metrics)
    assert "config.yaml" in [a.path for a in MlflowClient(uri).list_artifacts(run_id)]
    assert register([run_id]) == 0
    x = torch.randn(2, 1, 28, 28)
    assert torch.equal(load_classifier("models:/mnist-classifier@champion")(x), load_classifier(run_id)(x))

    study = optuna.create_study(storage=storage, study_name="team")
    study.optimize(lambda trial: trial.suggest_float("x", 0, 1), n_trials=2)
    assert len(optuna.load_study(storage=storage, study_name="team").trials) == 2


def test_a_sweep_from_two_hosts_fills_one_study_and_parent_run_and_outlives_a_killed_worker(
    team: tuple[Path, str], repo_root: Path, fake_mnist: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two working directories stand in for two hosts: the first starts the sweep, the second joins it
    (`make sweep RESUME=1`), JOBS=2 each; one worker is killed with -9 while it trains."""
    uri, storage = exports(team[1])
    sweep = write_sweep(tmp_path, PLAIN, n_trials=4)

    def host(name: str, *extra: str) -> subprocess.Popen:
        (tmp_path / name).mkdir()
        return subprocess.Popen(
            [sys.executable, str(repo_root / "scripts" / "sweep.py"), f"--sweep={sweep}", f"--storage={storage}"]
            + ["--jobs=2", f"--data-dir={fake_mnist}", *extra],
            cwd=tmp_path / name,
            env={**os.environ, "MLFLOW_TRACKING_URI": uri},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

    hosts, client, deadline = [host("a")], MlflowClient(uri), time.monotonic() + 240
    try:
        while "plain" not in optuna.get_all_study_names(storage) or not optuna.load_study(
            study_name="plain", storage=storage
        ).user_attrs.get(PARENT_ATTR):  # the first host made the study and its parent run
            assert hosts[0].poll() is None and time.monotonic() < deadline, hosts[0].communicate()[0][-3000:]
            time.sleep(0.5)
        hosts.append(host("b", "--resume"))
        experiment_id = client.get_experiment_by_name("sweeps").experiment_id
        while not (
            training := [c for c in runs_by_role(uri)[1] if c.info.status == "RUNNING" and "process.pid" in c.data.tags]
        ):
            assert time.monotonic() < deadline, "no trial started"  # RunLogger tags its process as the run starts
            time.sleep(0.2)
        killed = training[0]
        os.kill(int(killed.data.tags["process.pid"]), signal.SIGKILL)
        outputs = [proc.communicate(timeout=300)[0] for proc in hosts]
    finally:
        for proc in hosts:
            proc.kill()
    assert sorted(proc.returncode for proc in hosts) == [0, 128 + signal.SIGKILL], outputs[0][-2000:] + outputs[1]
    assert all(re.search(r"^trial \d+: ", out, re.MULTILINE) for out in outputs), "both hosts ran trials"

    trials = optuna.load_study(study_name="plain", storage=storage).trials
    states = Counter(t.state.name for t in trials)
    assert states["FAIL"] == 1 and states["RUNNING"] == 0 and states["COMPLETE"] >= 4, states
    (parent,), children = runs_by_role(uri)
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {parent.info.run_id}
    assert len(children) == len(trials)
    assert not client.search_runs([experiment_id], "attributes.status = 'RUNNING'")
    killed = client.get_run(killed.info.run_id)
    assert killed.info.status == "KILLED"
    assert killed.data.tags["sweep.trial"] == str(next(t.number for t in trials if t.state.name == "FAIL"))

    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)  # `make register STUDY=plain`: the best trial, through the server
    assert register(["--sweep", "plain", "--name", "sweep-best"]) == 0
    best = client.get_model_version_by_alias("sweep-best", "champion")
    assert best.run_id == parent.data.tags["best.run_id"]
    x = torch.randn(2, 1, 28, 28)
    assert torch.equal(load_classifier("models:/sweep-best@champion")(x), load_classifier(best.run_id)(x))
