"""MLflow's system metrics land in the run MLFlowLogger writes, on by default (configs/defaults.yaml), off by a flag."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from mlflow import MlflowClient

from mnist_lab.cli import main
from mnist_lab.tracking import RunLogger
from tiny_cli import tiny_args


@pytest.mark.slow
def test_a_run_records_cpu_and_memory_and_the_flag_switches_them_off(fake_mnist: Path, tracking_uri: str) -> None:
    args = tiny_args("fit", fake_mnist, "--trainer.max_epochs=1", "--run_test=false")  # far shorter than MLflow's 10 s
    run_id = main(args).trainer.logger.run_id
    client = MlflowClient(tracking_uri)
    metrics = client.get_run(run_id).data.metrics
    assert {"system/cpu_utilization_percentage", "system/system_memory_usage_megabytes"} <= set(metrics)
    assert "val/acc" in metrics  # the same run as the training metrics
    assert client.get_run(run_id).info.status == "FINISHED"

    off = RunLogger(experiment_name="off", tracking_uri=tracking_uri, log_system_metrics=False)
    assert off.experiment is not None  # opens the run
    time.sleep(0.5)
    off.finalize()
    assert not [k for k in client.get_run(off.run_id).data.metrics if k.startswith("system/")]
