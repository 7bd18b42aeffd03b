"""Two `python -m mnist_lab fit` processes started at once into a store that does not exist yet:
one creates it (under a lock), both finish, and neither prints what asks nothing of the user."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from mlflow import MlflowClient

from helpers import env_for
from tiny_cli import tiny_args

pytestmark = [pytest.mark.slow, pytest.mark.subprocess]
NOISE = ("litlogger", "Pickle or CloudPickle", "LeafSpec", "weights_only", "Warning", "Traceback")


def test_two_runs_create_one_store_and_both_finish_quietly(
    fake_mnist: Path, tmp_path: Path
) -> None:
    uri = f"sqlite:///{tmp_path / 'fresh' / 'mlruns' / 'mlflow.db'}"  # not even its folder exists
    args = tiny_args("fit", fake_mnist, "--trainer.max_epochs=1", "--trainer.limit_train_batches=4")
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "mnist_lab", *args, f"--trainer.default_root_dir=out{i}"],
            cwd=tmp_path,
            env=env_for(MLFLOW_TRACKING_URI=uri),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    outputs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], "\n".join(err[-2000:] for _, err in outputs)
    for out, err in outputs:
        assert not [word for word in NOISE if word in out + err], out + err
    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("mnist").experiment_id])
    assert len(runs) == 2 and {r.info.status for r in runs} == {"FINISHED"}
    assert all("test/acc" in r.data.metrics for r in runs)
    git = ["git", "rev-parse", "HEAD"]
    head = subprocess.run(
        git, capture_output=True, text=True, cwd=Path(__file__).parent
    ).stdout.strip()
    if head:  # in a git checkout, MLflow tags the code version itself
        assert {r.data.tags.get("mlflow.source.git.commit") for r in runs} == {head}
