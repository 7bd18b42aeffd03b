"""Lightning's DDP on 2 CPU processes: fit and test complete as one MLflow run, metrics synced."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest
from mlflow import MlflowClient

from tiny_cli import tiny_args

pytestmark = [pytest.mark.slow, pytest.mark.subprocess]


def test_ddp_on_two_cpu_processes_makes_one_complete_run(fake_mnist: Path, tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"
    ddp = ["--trainer.strategy=ddp", "--trainer.devices=2", "--trainer.accelerator=cpu", "--trainer.max_epochs=2"]
    result = subprocess.run(
        [sys.executable, "-m", "mnist_lab", *tiny_args("fit", fake_mnist, *ddp)],
        cwd=tmp_path,
        env={**os.environ, "MLFLOW_TRACKING_URI": uri},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "sync_dist" not in result.stderr, "epoch metrics must be reduced across processes"
    assert result.stdout.count("test/acc = ") == 1, result.stdout[-3000:]
    client = MlflowClient(uri)
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert len(runs) == 1, "both processes must log into one run"
    run = runs[0]
    assert run.info.status == "FINISHED"
    assert run.data.metrics["test/acc"] > 0.9
    assert [m.step for m in client.get_metric_history(run.info.run_id, "val/acc")] == [7, 15]  # 500 images/rank
    figures = [a.path for a in client.list_artifacts(run.info.run_id, "figures")]
    wrong = ["figures/misclassified.png"] if run.data.metrics["test/acc"] < 1 else []  # only when some are wrong
    assert sorted(figures) == ["figures/confusion_matrix.png", *wrong]
    mlflow.set_tracking_uri(uri)
    models = mlflow.search_logged_models(
        experiment_ids=[run.info.experiment_id],
        filter_string=f"source_run_id = '{run.info.run_id}'",
        output_format="list",
    )
    assert len(models) == 1


def test_ddp_stop_and_resume_continue_one_run(fake_mnist: Path, tmp_path: Path, repo_root: Path) -> None:
    """Both processes stop at the same batch (the stop decision is reduced), then resume into the same run."""
    uri = f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "PYTHONPATH": str(repo_root / "tests")}
    ddp = ["--trainer.strategy=ddp", "--trainer.devices=2", "--trainer.accelerator=cpu", "--trainer.max_epochs=2"]
    args = [sys.executable, "-m", "mnist_lab", *tiny_args("fit", fake_mnist, *ddp, "--run_test=false")]
    stop = ["--trainer.callbacks+=test_recovery.StopAtStep", "--trainer.callbacks.step=5"]  # as a signal would
    run = lambda *extra: subprocess.run(  # noqa: E731 - the two CLI processes differ only in their arguments
        [*args, *extra], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
    )
    stopped = run(*stop)
    assert stopped.returncode == 130, stopped.stderr[-3000:]
    assert stopped.stderr.count("stopped by SIGINT") == 1
    resumed = run("--ckpt_path=last")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    client = MlflowClient(uri)
    (run_,) = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert run_.info.status == "FINISHED"
    assert [m.step for m in client.get_metric_history(run_.info.run_id, "val/acc")] == [7, 15]
