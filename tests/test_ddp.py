"""Lightning's DDP on 2 CPU processes: both stop at one batch on one signal, then resume and finish
as one MLflow run, metrics reduced across the processes, one test, one logged model."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow import MlflowClient

from helpers import READY, env_for, wait_for_ranks, with_group
from tiny_cli import tiny_args

pytestmark = [pytest.mark.slow, pytest.mark.subprocess]
DDP = ["--trainer.strategy=ddp", "--trainer.devices=2", "--trainer.accelerator=cpu"]
STEPS_PER_RANK = 8  # 1000 training images, half a rank, in batches of 64


def test_ddp_stops_on_one_signal_and_resumes_into_one_complete_run(
    fake_mnist: Path, tracking_uri: str, tmp_path: Path
) -> None:
    args = tiny_args("fit", fake_mnist, *DDP, "--trainer.max_epochs=2", lean=False)
    command = [sys.executable, "-m", "mnist_lab", *args]
    pause = ["--trainer.callbacks+=helpers.PauseAt", "--trainer.callbacks.step=3"]
    env = env_for(**{READY: str(tmp_path / "ready")})
    pipes = {"stderr": subprocess.PIPE, "stdout": subprocess.DEVNULL, "text": True}
    first = subprocess.Popen([*command, *pause], env=env, start_new_session=True, **pipes)
    wait_for_ranks(tmp_path / "ready", 2, first)  # both ranks wait
    assert with_group(first, signal.SIGTERM) == 128 + signal.SIGTERM
    err = first.stderr.read()
    assert err.count("stopped by SIGTERM; resume") == 1, err[
        -3000:
    ]  # every rank stops; one says so
    client = MlflowClient(tracking_uri)
    (run,) = client.search_runs(["1"])
    assert run.info.status == "KILLED"

    resumed = subprocess.run(
        [*command, f"--ckpt_path={run.info.run_id}"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "sync_dist" not in resumed.stderr, "epoch metrics must be reduced across processes"
    assert resumed.stdout.count("test/acc = ") == 1
    (run,) = client.search_runs(["1"])
    assert run.info.status == "FINISHED" and run.data.metrics["test/acc"] > 0.9
    steps = [m.step for m in client.get_metric_history(run.info.run_id, "val/acc")]
    assert steps == [STEPS_PER_RANK - 1, 2 * STEPS_PER_RANK - 1]
    models = client.search_logged_models(
        [run.info.experiment_id], f"source_run_id = '{run.info.run_id}'"
    )
    assert len(models) == 1, "rank 0 alone logs the model"
    # test_figures:begin  (make drop PART=test_figures deletes this block)
    assert "figures/confusion_matrix.png" in {
        a.path for a in client.list_artifacts(run.info.run_id, "figures")
    }
    # test_figures:end
