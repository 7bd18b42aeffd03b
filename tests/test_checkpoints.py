"""A checkpoint the CLI wrote rebuilds its own network (Lightning's own mechanism) in every
subcommand, whatever network the config names, and is the model MLflow logged. Read from the
finished_cnn snapshot; evaluations here log nothing (``--trainer.logger=false``)."""

from __future__ import annotations

from pathlib import Path

import mlflow
import numpy as np
import pytest
import torch
from mlflow import MlflowClient

from helpers import Snapshot
from logged import logged_model
from tiny_cli import MLP_CONFIG, tiny_args

from mnist_lab.cli import main
from mnist_lab.models.classifier import Classifier
from mnist_lab.models.components import CNN
from mnist_lab.names import BEST_TAG

NO_LOGGER = "--trainer.logger=false"


@pytest.fixture(scope="module")
def best(finished_cnn: Snapshot) -> str:
    return MlflowClient(finished_cnn.uri).get_run(finished_cnn.run_id).data.tags[BEST_TAG]


def test_the_best_checkpoint_is_the_model_mlflow_logged(finished_cnn: Snapshot, best: str) -> None:
    loaded = Classifier.load_from_checkpoint(best).eval()
    assert isinstance(loaded.net, CNN)
    model = logged_model(finished_cnn.uri, finished_cnn.run_id)
    logged = mlflow.pytorch.load_model(model.artifact_location)
    assert not logged.training  # logged in eval mode
    x = torch.randn(5, 1, 28, 28)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), logged(x))


def test_predict_with_an_mlp_config_uses_the_checkpoint_s_cnn(
    best: str, fake_mnist: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    cli = main(
        tiny_args("predict", fake_mnist, f"--ckpt_path={best}", NO_LOGGER, config=MLP_CONFIG)
    )
    assert isinstance(cli.model.net, CNN)
    rows = (Path(cli.trainer.default_root_dir) / "predictions.csv").read_text().splitlines()[1:]
    probs = np.array([[float(v) for v in row.split(",")[4:]] for row in rows])
    expected = Classifier.load_from_checkpoint(best).eval()
    test = cli.datamodule._splits["test"]
    assert [int(row.split(",")[1]) for row in rows] == test.labels.tolist()  # target
    assert [int(row.split(",")[2]) for row in rows] == probs.argmax(1).tolist()  # predicted
    with torch.no_grad():
        np.testing.assert_allclose(probs, expected(test.images).softmax(1).numpy(), atol=2e-6)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            ["--model.net.init_args.activation=tanh"],
            "activation=tanh conflicts with the checkpoint's network",
        ),
        (
            ["--model.net=mnist_lab.models.components.MLP"],
            "conflicts with the checkpoint's network",
        ),
        ([], None),  # the config file's own (different) network is simply replaced
    ],
)
def test_a_typed_network_argument_that_contradicts_the_checkpoint_is_an_error(
    extra: list[str],
    message: str | None,
    best: str,
    fake_mnist: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
) -> None:
    monkeypatch.chdir(tmp_path)
    args = tiny_args("validate", fake_mnist, f"--ckpt_path={best}", *extra, NO_LOGGER)
    if message is None:
        cli = main(args)
        assert isinstance(cli.model.net, CNN) and "val/acc" in cli.trainer.callback_metrics
        return
    with pytest.raises(SystemExit) as end:
        main(args)
    assert end.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    ("subcommand", "metric"), [("validate", "val/acc"), ("test", "test/acc"), ("predict", None)]
)
def test_evaluating_an_untrained_network_when_asked_for(
    subcommand: str, metric: str | None, fake_mnist: Path, tmp_path: Path, monkeypatch
) -> None:
    """Without --ckpt_path it is an error (tests/test_cli.py) unless --allow_untrained=true."""
    monkeypatch.chdir(tmp_path)
    cli = main(tiny_args(subcommand, fake_mnist, "--allow_untrained=true", NO_LOGGER))
    if metric:
        assert metric in cli.trainer.callback_metrics
    else:
        lines = (Path(cli.trainer.default_root_dir) / "predictions.csv").read_text().splitlines()
        assert len(lines) == 1 + len(cli.datamodule._splits["test"])
