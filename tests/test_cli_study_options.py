"""The options the activation study measures with, from the command line into the model and MLflow."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from mlflow import MlflowClient

from mnist_lab.cli import main
from mnist_lab.models.losses import get_loss
from mnist_lab.models.mnist_module import MNISTClassifier
from tiny_cli import tiny_args


def test_loss_bad_start_subset_and_normal_init_reach_the_model_and_the_run_params(
    fake_mnist: Path, tracking_uri: str
) -> None:
    cli = main(
        tiny_args(
            "fit",
            fake_mnist,
            "--trainer.max_epochs=1",
            "--run_test=false",
            "--model.loss=mse",
            "--model.output=sigmoid",
            "--model.net.init_args.width=32",
            "--model.net.init_args.weight_init=normal",
            "--model.net.init_args.weight_init_args={std: 1.0}",
            "--model.net.init_args.output_gain=20",
            "--model.net.init_args.bias_init=-1",
            "--data.train_size=300",
        )
    )
    model, trainer = cli.model, cli.trainer
    assert model.loss_fn is get_loss("mse", "sigmoid")
    assert model.net.blocks[0].layer.weight.std().item() == pytest.approx(1.0, rel=0.05)  # N(0, 1), 5 small steps
    assert model.net.output.weight.std().item() == pytest.approx(20.0, rel=0.05)
    assert trainer.estimated_stepping_batches == 5 and trainer.global_step == 5  # ceil(300 / 64)
    run = MlflowClient(tracking_uri).get_run(trainer.logger.run_id)
    expected = {
        "model.loss": "mse",
        "model.output": "sigmoid",
        "model.net.weight_init": "normal",
        "model.net.weight_init_args.std": "1.0",
        "model.net.output_gain": "20.0",
        "model.net.bias_init": "-1.0",
        "data.train_size": "300",
    }
    assert {k: run.data.params.get(k) for k in expected} == expected
    assert "diag/grad_sign_agreement/0" in run.data.metrics
    loaded = MNISTClassifier.load_from_checkpoint(trainer.checkpoint_callback.best_model_path)
    assert loaded.loss_fn is get_loss("mse", "sigmoid")
    assert loaded.net.init_config["init_args"]["output_gain"] == 20.0
    x = torch.randn(2, 1, 28, 28)
    torch.testing.assert_close(loaded.eval()(x), model.eval()(x))
