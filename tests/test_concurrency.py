"""Two trainings started at the same moment into a store that does not exist yet both complete."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow import MlflowClient

from tiny_cli import tiny_args

pytestmark = [pytest.mark.slow, pytest.mark.subprocess]


def test_two_runs_create_one_store_and_both_finish(fake_mnist: Path, tmp_path: Path, repo_root: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'fresh' / 'mlruns' / 'mlflow.db'}"  # not even its folder exists
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri}
    args = tiny_args("fit", fake_mnist, "--trainer.max_epochs=1", "--run_test=false")
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "mnist_lab", *args, f"--trainer.default_root_dir=out{i}"],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    errors = [p.communicate(timeout=300)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], "\n".join(e[-2000:] for e in errors)
    client = MlflowClient(uri)
    head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=repo_root).stdout.strip()
    runs = client.search_runs([client.get_experiment_by_name("mnist").experiment_id])
    assert len(runs) == 2 and {r.info.status for r in runs} == {"FINISHED"}
    assert all(
        "val/acc" in r.data.metrics and "config.yaml" in [a.path for a in client.list_artifacts(r.info.run_id)]
        for r in runs
    )
    if head:  # in a git checkout, MLflow tags the code version itself
        assert {r.data.tags.get("mlflow.source.git.commit") for r in runs} == {head}
