"""What one `make train` run holds in MLflow, read back from a real store: a finished run made once
(the `finished_mlp` snapshot, every part on) and runs that fail or are stopped."""

from __future__ import annotations

import hashlib
import inspect
import math
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import lightning as L
import mlflow
import numpy as np
import pytest
import torch
import yaml
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from torch import nn

from helpers import Snapshot

import mnist_lab
from mnist_lab.cli import main
from mnist_lab.data.mnist_datamodule import MNISTDataModule
from mnist_lab.errors import ConfigError
from mnist_lab.models.classifier import Classifier
from mnist_lab.models.components import MLP
from mnist_lab.resume import load_classifier
from mnist_lab.tracking import RunLogger, RunRecord

TRAIN, VAL, BATCH, EPOCHS, EVERY = (
    1200 - 200,
    200,
    64,
    2,
    5,
)  # the snapshot's settings (conftest, tiny_cli)


def steps_per_epoch(images: int = TRAIN, batch: int = BATCH) -> int:
    return math.ceil(images / batch)


def flat(tree: object, key: str = "") -> dict[str, object]:
    """``{"a/b": leaf}``, as MLFlowLogger flattens a config into params."""
    if isinstance(tree, dict) and tree:
        return {
            k: v
            for name, value in tree.items()
            for k, v in flat(value, f"{key}/{name}".strip("/")).items()
        }
    return {key: tree}


@pytest.fixture(scope="module")
def run(finished_mlp: Snapshot) -> mlflow.entities.Run:
    return MlflowClient(finished_mlp.uri).get_run(finished_mlp.run_id)


@pytest.fixture(scope="module")
def config(finished_mlp: Snapshot, tmp_path_factory: pytest.TempPathFactory) -> dict:
    folder = tmp_path_factory.mktemp("config")
    path = MlflowClient(finished_mlp.uri).download_artifacts(
        finished_mlp.run_id, "config.yaml", str(folder)
    )
    return yaml.safe_load(Path(path).read_text())


def test_run_is_finished_and_named_after_the_arguments_off_their_defaults(
    run, repo_root: Path
) -> None:
    net = yaml.safe_load((repo_root / "configs" / "net" / "mlp.yaml").read_text())["model"]["net"]
    dropout = net["init_args"]["dropout"]
    assert run.info.status == "FINISHED"
    assert run.info.run_name == f"mlp-width64-leaky_relu-dropout{dropout:g}"


def test_params_are_the_logged_config_with_effective_arguments_and_callbacks_by_class(
    run, config
) -> None:
    params, expected = run.data.params, flat({k: v for k, v in config.items() if k != "trainer"})
    expected.update(
        flat({"trainer": {k: v for k, v in config["trainer"].items() if k != "callbacks"}})
    )
    differ = {k: v for k, v in expected.items() if k in params and params[k] != str(v)}
    missing = {
        k: v for k, v in differ.items() if not (isinstance(v, list) and params[k] == str(tuple(v)))
    }
    assert not missing, missing
    assert set(expected) - {k for k in expected if k.startswith("trainer/plugins")} <= set(params)
    slope = inspect.signature(nn.LeakyReLU).parameters["negative_slope"].default
    assert params["model/net/init_args/activation_args/negative_slope"] == str(slope)  # the default
    assert params["model/net/init_args/weight_init_args/mode"] == "fan_in"
    classes = {c["class_path"].rpartition(".")[2] for c in config["trainer"]["callbacks"]}
    keyed = {k.split("/")[2].split("_")[0] for k in params if k.startswith("trainer/callbacks/")}
    assert keyed <= classes and not any(
        k.split("/")[2].isdigit() for k in params if "callbacks/" in k
    )
    assert int(params["params/trainable"]) == sum(p.numel() for p in MLP(width=64).parameters())


def test_tags_and_the_dataset_input_record_code_and_data(
    run, fake_mnist: Path, repo_root: Path
) -> None:
    tags = run.data.tags
    (recorded,) = run.inputs.dataset_inputs
    digest = hashlib.sha256()
    for path in sorted((fake_mnist / "MNIST" / "raw").glob("*-ubyte")):
        digest.update(path.name.encode() + path.read_bytes())
    assert (recorded.dataset.name, recorded.dataset.digest) == ("mnist", digest.hexdigest()[:32])
    assert {t.key: t.value for t in recorded.tags}["classes"] == ",".join(map(str, range(10)))
    in_git = (
        subprocess.run(["git", "rev-parse"], cwd=repo_root, capture_output=True).returncode == 0
    )
    assert tags["git.dirty"] in (("true", "false") if in_git else ("unknown",))
    assert tags["mnist_lab.version"] == mnist_lab.__version__
    assert not {"dataset.name", "git.commit"} & set(tags), "MLflow's own dataset input and tag"
    assert Path(tags["checkpoint.dir"]).is_dir() and Path(tags["checkpoint.best"]).is_file()


def test_metrics_keep_their_steps_per_step_and_per_epoch(finished_mlp: Snapshot, run) -> None:
    client = MlflowClient(finished_mlp.uri)
    steps = lambda key: [m.step for m in client.get_metric_history(run.info.run_id, key)]  # noqa: E731
    per_epoch, total = steps_per_epoch(), steps_per_epoch() * EPOCHS
    assert steps("val/acc") == steps("val/loss") == [per_epoch * (e + 1) - 1 for e in range(EPOCHS)]
    assert steps("train/loss_step") == [s for s in range(total) if (s + 1) % EVERY == 0]
    assert len(steps("train/acc")) == len(steps("time/epoch_s")) == EPOCHS
    assert steps("lr-AdamW") == [per_epoch * e for e in range(EPOCHS)]
    metrics = run.data.metrics
    history = client.get_metric_history(run.info.run_id, "val/acc")
    assert metrics["val/acc_best"] == max(m.value for m in history)
    assert metrics["test/acc"] > 0.9 and metrics["test/loss"] > 0 and metrics["time/epoch_s"] > 0


def test_artifacts_hold_a_rerunnable_config_and_both_checkpoints(
    finished_mlp: Snapshot, run, tmp_path
) -> None:
    client = MlflowClient(finished_mlp.uri)
    top = {a.path for a in client.list_artifacts(run.info.run_id)}
    best = Path(run.data.tags["checkpoint.best"]).stem
    assert {"config.yaml", "last", best} <= top
    config = client.download_artifacts(run.info.run_id, "config.yaml", str(tmp_path))
    with pytest.raises(SystemExit) as exit_:
        main(["fit", "--config", config, "--print_config"])
    assert exit_.value.code == 0


def test_the_logged_model_is_the_network_refusing_nan_with_its_classes(
    finished_mlp: Snapshot, run
) -> None:
    mlflow.set_tracking_uri(finished_mlp.uri)
    model = mlflow.pytorch.load_model(f"runs:/{run.info.run_id}/classifier")
    assert isinstance(model.net, MLP) and model.eval()(torch.zeros(5, 1, 28, 28)).shape == (5, 10)
    with pytest.raises(MlflowException, match="NaN or infinite"):
        model(torch.full((1, 1, 28, 28), float("nan")))
    pyfunc = mlflow.pyfunc.load_model(f"runs:/{run.info.run_id}/classifier")
    assert pyfunc.metadata.metadata["class_names"] == [str(k) for k in range(10)]
    assert pyfunc.metadata.metadata["dataset"] == "mnist" and pyfunc.metadata.signature is not None
    assert np.asarray(pyfunc.predict(np.zeros((3, 1, 28, 28), dtype=np.float32))).shape == (3, 10)


def test_a_run_id_loads_the_runs_best_checkpoint_local_or_uploaded(
    finished_mlp: Snapshot, clone: Callable
) -> None:
    copy = clone(finished_mlp)
    best = Path(MlflowClient(copy.uri).get_run(copy.run_id).data.tags["checkpoint.best"])
    x = torch.randn(3, 1, 28, 28)
    expected = load_classifier(best)(x)
    for ref in (copy.run_id, f"runs:/{copy.run_id}"):
        assert torch.equal(load_classifier(ref)(x), expected), ref
    shutil.rmtree(best.parent)  # the local files are gone: the copy MLFlowLogger uploaded serves
    assert torch.equal(load_classifier(copy.run_id)(x), expected)
    with pytest.raises(ConfigError, match="no MLflow run"):
        load_classifier("0" * 32)


class Explodes(Classifier):
    def __init__(self, error: BaseException) -> None:
        super().__init__(MLP(depth=1, width=8))
        self.error = error

    def training_step(self, batch, batch_idx):
        if batch_idx == 2:
            raise self.error
        return super().training_step(batch, batch_idx)


@pytest.mark.parametrize(
    ("error", "status"), [(RuntimeError("boom"), "FAILED"), (KeyboardInterrupt(), "KILLED")]
)
def test_a_plain_trainer_run_ends_with_its_status_and_error(
    error: BaseException, status: str, fake_mnist: Path, tmp_path: Path, tracking_uri: str
) -> None:
    """Outside the CLI the logger ends its run at Lightning's finalize, by the exception."""
    logger = RunLogger(experiment_name="plain", tracking_uri=tracking_uri)
    quiet = {"enable_progress_bar": False, "enable_model_summary": False}
    trainer = L.Trainer(
        max_epochs=1,
        logger=logger,
        callbacks=[RunRecord(log_model=False)],
        default_root_dir=tmp_path,
        **quiet,
    )
    with pytest.raises((RuntimeError, SystemExit)):
        trainer.fit(
            Explodes(error),
            datamodule=MNISTDataModule(str(fake_mnist), val_size=200, batch_size=64),
        )
    run = MlflowClient(tracking_uri).get_run(logger.run_id)
    assert run.info.status == status and type(error).__name__ in run.data.tags["error"]
