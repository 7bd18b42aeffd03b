"""A checkpoint the CLI wrote rebuilds its own network (Lightning's own mechanism), in every subcommand."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import mlflow
import numpy as np
import pytest
import torch
from mlflow import MlflowClient

from mnist_lab.cli import main
from mnist_lab.models.classifier import Classifier
from mnist_lab.models.components import CNN
from tiny_cli import MLP_CONFIG, tiny_args, tiny_cnn


def save(model: Classifier, path: Path) -> Path:
    trainer = L.Trainer(logger=False, enable_progress_bar=False, enable_model_summary=False, max_epochs=0)
    trainer.strategy.connect(model)
    trainer.save_checkpoint(path)
    return path


@pytest.fixture(scope="module")
def cnn_run(fake_mnist: Path, tmp_path_factory: pytest.TempPathFactory):
    """One CLI fit of a small leaky-ReLU CNN, its best checkpoint and its MLflow run."""
    workdir = tmp_path_factory.mktemp("cnn_run")
    uri = f"sqlite:///{workdir / 'mlruns' / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(workdir)
        mp.setenv("MLFLOW_TRACKING_URI", uri)
        cli = main(tiny_cnn(fake_mnist))
        yield cli.trainer.checkpoint_callback.best_model_path, cli.trainer.logger.run_id, uri, workdir


@pytest.mark.slow
def test_cli_checkpoint_matches_the_model_mlflow_logged(cnn_run) -> None:
    best, run_id, uri, _ = cnn_run
    loaded = Classifier.load_from_checkpoint(best).eval()
    assert isinstance(loaded.net, CNN)
    mlflow.set_tracking_uri(uri)
    logged = mlflow.pytorch.load_model(f"runs:/{run_id}/classifier")  # logged in eval mode
    x = torch.randn(5, 1, 28, 28)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), logged(x))


@pytest.mark.slow
def test_predict_with_an_mlp_config_uses_the_checkpoints_cnn(
    cnn_run, fake_mnist: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    best, _, uri, workdir = cnn_run
    monkeypatch.chdir(workdir)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    cli = main(tiny_args("predict", fake_mnist, f"--ckpt_path={best}", config=MLP_CONFIG))
    assert isinstance(cli.model.net, CNN)
    rows = (workdir / "outputs" / "predictions.csv").read_text().splitlines()[1:]
    probs = np.array([[float(v) for v in row.split(",")[4:]] for row in rows])
    expected = Classifier.load_from_checkpoint(best).eval()
    images, labels = cli.datamodule._splits["test"].images, cli.datamodule._splits["test"].labels
    assert [int(row.split(",")[1]) for row in rows] == labels.tolist()  # target
    assert [int(row.split(",")[2]) for row in rows] == probs.argmax(1).tolist()  # predicted
    with torch.no_grad():
        np.testing.assert_allclose(probs, expected(images).softmax(1).numpy(), atol=2e-6)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--model.net.init_args.activation=tanh"], "activation=tanh conflicts with the checkpoint's network"),
        (["--model.net=mnist_lab.models.components.MLP"], "conflicts with the checkpoint's network"),
        ([], None),  # the config file's own (different) network is simply replaced
    ],
)
def test_a_typed_network_argument_that_contradicts_the_checkpoint_is_an_error(
    extra: list[str], message: str | None, cnn_run, fake_mnist: Path, capsys: pytest.CaptureFixture
) -> None:
    best, *_ = cnn_run
    args = tiny_args("validate", fake_mnist, f"--ckpt_path={best}", *extra, "--trainer.logger=false")
    if message is None:
        assert isinstance(main(args).model.net, CNN)
        return
    with pytest.raises(SystemExit) as exit_:
        main(args)
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.parametrize("subcommand", ["validate", "test", "predict"])
def test_evaluating_without_a_checkpoint_is_an_error_unless_asked_for(
    subcommand: str, fake_mnist: Path, tracking_uri: str, capsys: pytest.CaptureFixture
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(tiny_args(subcommand, fake_mnist))
    assert exit_.value.code == 2
    assert f"`{subcommand}` needs trained weights" in capsys.readouterr().err
    assert MlflowClient(tracking_uri).search_runs(["0", "1"]) == []
    assert main(tiny_args(subcommand, fake_mnist, "--allow_untrained=true", "--trainer.logger=false")) is not None
