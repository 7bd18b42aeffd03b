"""The CLI end to end on a tiny MNIST in real IDX files, and every kind of bad input."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from mlflow import MlflowClient

from mnist_lab.cli import main


@pytest.fixture
def mlp_config(repo_root: Path) -> str:
    return str(repo_root / "configs" / "net" / "mlp.yaml")


@pytest.fixture
def tiny_args(mlp_config: str) -> Callable[..., list[str]]:
    """``tiny_args(data_dir, *extra)``: a 3-epoch fit of a small MLP on ``data_dir``."""

    def args(data_dir: Path, *extra: str) -> list[str]:
        return [
            "fit",
            "--config",
            mlp_config,
            f"--data.data_dir={data_dir}",
            "--data.val_size=200",
            "--data.batch_size=64",
            "--trainer.max_epochs=3",
            "--trainer.log_every_n_steps=5",
            "--trainer.enable_model_summary=false",
            "--model.net.init_args.width=64",
            *extra,
        ]

    return args


@pytest.mark.slow
def test_fit_then_test_writes_a_checkpoint_and_a_test_accuracy(
    tiny_args: Callable[..., list[str]], fake_mnist: Path, tracking_uri: str, capsys: pytest.CaptureFixture
) -> None:
    cli = main(tiny_args(fake_mnist))
    best = Path(cli.trainer.checkpoint_callback.best_model_path)
    assert best.is_file() and best.suffix == ".ckpt"
    assert cli.trainer.callback_metrics["test/acc"] > 0.9
    assert "test/acc = " in capsys.readouterr().out


def test_print_config_and_presets_stack(
    mlp_config: str, repo_root: Path, tracking_uri: str, capsys: pytest.CaptureFixture
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["fit", "--config", mlp_config, "--config", str(repo_root / "configs" / "debug.yaml"), "--print_config"])
    assert exit_.value.code == 0
    printed = capsys.readouterr().out
    assert "limit_train_batches: 20" in printed and "activation: relu" in printed


@pytest.mark.parametrize(
    ("arg", "message"),
    [
        ("--model.net.init_args.activation=swish2", "unknown activation 'swish2'; choose one of: identity, step"),
        ("--model.net.init_args.weight_init=he", "unknown init 'he'; choose one of: default, zeros"),
        ("--model.net.init_args.dropout=1.0", "dropout must be in [0, 1), got 1.0"),
        ("--model.net.init_args.width=0", "width must be positive"),
        ("--data.batch_size=0", "batch sizes must be positive"),
        ("--data.train_size=5000", "train_size=5000 is more than the 1000 training images left of 1200"),
        ("--model.loss=hinge", "model.loss"),
    ],
)
def test_bad_settings_exit_2_with_one_clear_line_and_write_nothing(
    arg: str,
    message: str,
    tiny_args: Callable[..., list[str]],
    fake_mnist: Path,
    tracking_uri: str,
    capsys: pytest.CaptureFixture,
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(tiny_args(fake_mnist, arg))
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err
    assert not Path("outputs").exists()
    assert MlflowClient(tracking_uri).search_runs(["0", "1"]) == []


def test_missing_data_and_corrupt_file_exit_2_before_any_run(
    tiny_args: Callable[..., list[str]],
    fake_mnist: Path,
    tmp_path: Path,
    tracking_uri: str,
    capsys: pytest.CaptureFixture,
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(tiny_args(tmp_path / "empty", "--data.download=false"))
    assert exit_.value.code == 2
    assert "t10k-images-idx3-ubyte" in capsys.readouterr().err
    corrupt = tmp_path / "corrupt"
    raw = corrupt / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for f in (fake_mnist / "MNIST" / "raw").iterdir():
        (raw / f.name).write_bytes(f.read_bytes()[: 100 if "images" in f.name else None])
    with pytest.raises(SystemExit) as exit_:
        main(tiny_args(corrupt))
    assert exit_.value.code == 2
    assert "truncated" in capsys.readouterr().err
    assert not Path("outputs").exists()
    assert MlflowClient(tracking_uri).search_runs(["0", "1"]) == []


@pytest.mark.subprocess
def test_command_line_errors_have_no_traceback(mlp_config: str, tmp_path: Path) -> None:
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'm.db'}"}
    for bad in ("--model.net.init_args.activation=nope", "--data.data_dir=" + str(tmp_path / "none")):
        result = subprocess.run(
            [sys.executable, "-m", "mnist_lab", "fit", "--config", mlp_config, bad, "--data.download=false"],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            env=env,
            timeout=120,
        )
        assert result.returncode == 2, result.stderr
        assert "Traceback" not in result.stderr and "error:" in result.stderr


@pytest.mark.subprocess
def test_make_rejects_an_unknown_model(repo_root: Path) -> None:
    result = subprocess.run(["make", "-s", "train", "MODEL=rnn"], capture_output=True, text=True, cwd=repo_root)
    assert result.returncode == 2
    assert "unknown MODEL 'rnn'; choose one of: cnn mlp" in result.stderr


@pytest.mark.slow
def test_runs_in_one_store_and_the_other_subcommands(
    mlp_config: str,
    tiny_args: Callable[..., list[str]],
    fake_mnist: Path,
    tracking_uri: str,
    capsys: pytest.CaptureFixture,
) -> None:
    """Two fits then validate/test/predict from the checkpoint: one FINISHED run each, same store."""
    first = main(tiny_args(fake_mnist, "--trainer.max_epochs=1"))
    main(tiny_args(fake_mnist, "--trainer.max_epochs=1", "--model.net.init_args.activation=tanh"))
    ckpt = first.trainer.checkpoint_callback.best_model_path
    common = [
        "--config",
        mlp_config,
        f"--data.data_dir={fake_mnist}",
        "--data.val_size=200",
        "--model.net.init_args.width=64",
        f"--ckpt_path={ckpt}",
    ]
    for subcommand in ("validate", "test", "predict"):
        main([subcommand, *common])
    predictions = Path("outputs/predictions.csv").read_text().splitlines()
    assert predictions[0].startswith("index,target,predicted,probability,p0") and len(predictions) == 1 + 300
    client = MlflowClient(tracking_uri)
    runs = client.search_runs([client.get_experiment_by_name("mnist").experiment_id])
    assert sorted(r.data.tags["subcommand"] for r in runs) == ["fit", "fit", "predict", "test", "validate"]
    assert {r.info.status for r in runs} == {"FINISHED"}
    predict_run = next(r for r in runs if r.data.tags["subcommand"] == "predict")
    assert "predictions.csv" in [a.path for a in client.list_artifacts(predict_run.info.run_id)]
