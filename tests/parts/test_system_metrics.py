"""The system-metrics part: `system/*` metrics (MLflow's names, so the UI's System metrics tab shows
them) sampled by the training loop, so even a run of seconds has them; none without the part."""

from __future__ import annotations

import inspect
import math
from pathlib import Path

import yaml
from mlflow import MlflowClient

from helpers import Snapshot
from mnist_fakes import write_fake_mnist

from mnist_lab.parts.system_metrics import sample


def system_metrics(snapshot: Snapshot) -> set[str]:
    run = MlflowClient(snapshot.uri).get_run(snapshot.run_id)
    return {key for key in run.data.metrics if key.startswith("system/")}


def test_a_run_samples_the_machine_at_its_start_and_each_epoch_end_once_a_step(
    finished_mlp: Snapshot, tmp_path: Path
) -> None:
    client = MlflowClient(finished_mlp.uri)
    assert system_metrics(finished_mlp) == set(sample()), "the part's whole sample, in the run"
    path = client.download_artifacts(finished_mlp.run_id, "config.yaml", str(tmp_path))
    config = yaml.safe_load(Path(path).read_text())
    data, epochs = config["data"]["init_args"], config["trainer"]["max_epochs"]
    images = inspect.signature(write_fake_mnist).parameters["n_train"].default
    per_epoch = math.ceil((images - data["val_size"]) / data["batch_size"])
    for key in system_metrics(finished_mlp):
        steps = [m.step for m in client.get_metric_history(finished_mlp.run_id, key)]
        assert len(steps) == len(set(steps)), f"{key}: one sample a step at most"
        assert {per_epoch * (e + 1) for e in range(epochs)} <= set(steps), key  # each epoch's end
        assert min(steps) == 1, f"{key}: the first batch starts the samples: {steps}"


def test_a_run_without_the_part_has_no_system_metrics(killed_mlp: Snapshot) -> None:
    assert not system_metrics(killed_mlp)  # the lean config: the core's callbacks only
