"""`make team-up`: PostgreSQL and `mlflow server` over it on this machine; a run, the registry and an Optuna study
go through them; a second `make team-up` reuses them; `make team-down` stops them."""

from __future__ import annotations

import os
import shutil
import subprocess
import urllib.request
from pathlib import Path

import optuna
import pytest
import torch
from mlflow import MlflowClient

from mnist_lab.cli import main as cli_main
from mnist_lab.predict import load_classifier
from mnist_lab.registry import main as register
from tiny_cli import tiny_args


@pytest.mark.server
@pytest.mark.subprocess
@pytest.mark.slow  # the first start creates MLflow's schema in PostgreSQL (one to two minutes)
def test_team_up_holds_runs_models_and_studies_and_team_down_stops_it(
    repo_root: Path, fake_mnist: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not list(Path("/usr/lib/postgresql").glob("*/bin/initdb")):
        missing = pytest.fail if os.environ.get("CI") else pytest.skip  # .ci/run installs it
        missing("PostgreSQL is not installed (apt-get install postgresql)")
    team = repo_root / ".team" / f"test-{os.getpid()}"  # under the project: the postgres user must reach it
    env = {**os.environ, "TEAM_DIR": str(team)}

    def make(target: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["make", "-s", target], cwd=repo_root, env=env, capture_output=True, text=True, timeout=400
        )

    try:
        up = make("team-up")
        assert up.returncode == 0, up.stderr
        exports = dict(line.removeprefix("export ").split("=", 1) for line in up.stdout.splitlines())
        uri, storage = exports["MLFLOW_TRACKING_URI"], exports["STORAGE"]
        assert uri.startswith("http://127.0.0.1:") and storage.startswith("postgresql")
        again = make("team-up")
        assert (again.returncode, again.stdout) == (0, up.stdout)  # reused, same ports

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
    finally:
        down = make("team-down")
        shutil.rmtree(team, ignore_errors=True)
    assert down.returncode == 0, down.stderr
    with pytest.raises(OSError):
        urllib.request.urlopen(f"{uri}/health", timeout=5)
