"""The sweep and serve parts together: `make register STUDY=<sweep>` registers the run of the best
trial of the newest sweep of that name (its parent run's `best.run_id`). (A sweep that is not there
is the sweep's one error line: tests/parts/test_sweep.py.)"""

from __future__ import annotations

import subprocess
from collections.abc import Callable

import pytest
import torch
from mlflow import MlflowClient

from helpers import Snapshot, env_for
from tiny_cli import REPO

from mnist_lab.resume import load_classifier


def make_register(uri: str, *variables: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["make", "-s", "-C", str(REPO), "register", *variables],
        env=env_for(MLFLOW_TRACKING_URI=uri),
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.slow  # `make register`: two Python processes
@pytest.mark.subprocess
def test_make_register_study_registers_the_best_trial_of_the_newest_sweep(
    finished_mlp: Snapshot, clone: Callable
) -> None:
    copy = clone(finished_mlp)
    client = MlflowClient(copy.uri)
    parent = {"sweep.study": "digits", "sweep.role": "parent"}  # as the sweep tags its parent
    client.create_run("1", tags={**parent, "best.run_id": copy.run_id})  # its best: this run

    made = make_register(copy.uri, "STUDY=digits", "NAME=best")
    assert made.returncode == 0, made.stderr[-3000:]
    assert "models:/best@champion" in made.stdout
    assert client.get_model_version_by_alias("best", "champion").run_id == copy.run_id
    x = torch.randn(2, 1, 28, 28)
    with torch.no_grad():
        assert torch.equal(
            load_classifier("models:/best@champion")(x), load_classifier(copy.run_id)(x)
        )
