"""Every kind of bad input: one `error:` line, a non-zero exit, no traceback, and no run left behind."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlflow import MlflowClient

from mnist_lab.cli import main
from tiny_cli import REPO, tiny_args

pytestmark = pytest.mark.slow  # each case starts a CLI run

LEAKY = "--model.net.init_args.activation=leaky_relu"
BAD_SETTINGS = [
    (["--model.net.init_args.activation=swish2"], "unknown activation 'swish2'; choose one of: identity, step"),
    (["--model.net.init_args.weight_init=he"], "unknown init 'he'; choose one of: default, zeros"),
    (["--model.net.init_args.dropout=1.0"], "dropout must be in [0, 1), got 1.0"),
    (["--model.net.init_args.width=0"], "width must be positive"),
    (["--data.batch_size=0"], "batch sizes must be positive"),
    ([LEAKY, "--model.net.init_args.activation_args={negative_slope: abc}"], "negative_slope must be a number"),
    (["--model.optimizer.init_args.lr=-1"], "Invalid learning rate: -1"),
    (["--trainer.max_epochs=0"], "max_epochs must be at least 1"),
    (["--trainer.max_epochs=-1"], "(or -1, endless, with --trainer.max_steps=<steps>), got -1"),  # what EPOCHS=0 says
    (["--seed_everything=-5"], "seed_everything must be in [0, 2**32 - 1] (or true, or false), got -5"),
    (["--ckpt_path=missing.ckpt"], "checkpoint 'missing.ckpt' does not exist"),
    (["--ckpt_path=0123456789abcdef0123456789abcdef"], "no MLflow run 0123456789abcdef0123456789abcdef"),
    (["--model.optimizer.init_args.lr=abc"], "model.optimizer: Expected a <class 'float'> (Given value: abc)"),
    (["--data.val_size=1200"], "val_size=1200 leaves no training images of 1200"),
    (
        ["--model.scheduler_interval=epoch", "--trainer.max_epochs=-1", "--trainer.max_steps=10"],
        "scheduler_interval=epoch plans the schedule over max_epochs",
    ),
    (["--trainer.max_epochs=abc"], "trainer.max_epochs: Expected a <class 'int'> (Given value: abc)"),
    (
        ["--trainer.logger.init_args.experiment_name=new", "--trainer.logger.init_args.artifact_location=/proc/x/a"],
        "cannot write MLflow artifacts to /proc/x/a",
    ),
]


def assert_no_run_left(uri: str) -> None:
    client = MlflowClient(uri)
    experiments = [e.experiment_id for e in client.search_experiments()]
    assert client.search_runs(experiments) == [], "bad input must not create a run"


@pytest.mark.parametrize(("extra", "message"), BAD_SETTINGS, ids=[m[:30] for _, m in BAD_SETTINGS])
def test_bad_settings_fail_in_one_line_before_any_run(
    extra: list[str], message: str, fake_mnist: Path, tracking_uri: str, capsys: pytest.CaptureFixture
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(tiny_args("fit", fake_mnist, "--trainer.max_epochs=1", *extra))
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and message in errors[0], err[-2000:]
    assert "usage:" not in err
    assert not Path("outputs").exists()
    assert_no_run_left(tracking_uri)


def test_missing_and_corrupt_data_fail_before_any_run(
    fake_mnist: Path, tmp_path: Path, tracking_uri: str, capsys: pytest.CaptureFixture
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(tiny_args("fit", tmp_path / "empty", "--data.download=false"))
    assert exit_.value.code == 2
    assert "t10k-images-idx3-ubyte" in capsys.readouterr().err
    raw = tmp_path / "corrupt" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for f in (fake_mnist / "MNIST" / "raw").iterdir():
        (raw / f.name).write_bytes(f.read_bytes()[: 100 if "images" in f.name else None])
    with pytest.raises(SystemExit) as exit_:
        main(tiny_args("fit", tmp_path / "corrupt"))
    assert exit_.value.code == 2
    assert "truncated" in capsys.readouterr().err
    labels = tmp_path / "labels" / "MNIST" / "raw"
    labels.mkdir(parents=True)
    for f in (fake_mnist / "MNIST" / "raw").iterdir():  # valid headers and lengths, one label byte 84
        (labels / f.name).write_bytes(
            f.read_bytes()[:-1] + (b"\x54" if "train-labels" in f.name else f.read_bytes()[-1:])
        )
    with pytest.raises(SystemExit) as exit_:
        main(tiny_args("fit", tmp_path / "labels"))
    assert exit_.value.code == 2
    assert "holds label 84, but the dataset has 10 classes" in capsys.readouterr().err
    assert not Path("outputs").exists()
    assert_no_run_left(tracking_uri)


@pytest.mark.parametrize(
    ("store", "message"),
    [
        ("sqlite:////proc/x/mlflow.db", "cannot create the MLflow store at /proc/x/mlflow.db"),
        ("sqlite:///{tmp}/a_file/mlflow.db", "cannot create the MLflow store at"),
        ("http://127.0.0.1:9", "cannot reach the MLflow tracking server at http://127.0.0.1:9"),
    ],
)
@pytest.mark.subprocess
def test_an_unusable_store_fails_quickly_without_a_traceback(
    store: str, message: str, fake_mnist: Path, tmp_path: Path
) -> None:
    (tmp_path / "a_file").write_text("")
    env = {**os.environ, "MLFLOW_TRACKING_URI": store.format(tmp=tmp_path)}
    start = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "mnist_lab", *tiny_args("fit", fake_mnist)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=120,
    )
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr and message in result.stderr
    assert time.monotonic() - start < 60, "must fail well within a minute, not after MLflow's 4 minutes of retries"


@pytest.mark.subprocess
def test_make_serve_with_an_unknown_run_is_one_error(tmp_path: Path) -> None:
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"}
    result = subprocess.run(
        ["make", "-s", "serve", "RUN=0123456789abcdef0123456789abcdef", "PORT=5099"],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=120,
    )
    assert result.returncode != 0
    assert "error: no MLflow run 0123456789abcdef0123456789abcdef" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.subprocess
def test_a_package_installed_without_the_repository_finds_the_configs_in_the_working_directory(tmp_path: Path) -> None:
    for package in ("mnist_lab", "lab"):  # as `pip install .` puts them: without configs/ beside them
        shutil.copytree(REPO / "src" / package, tmp_path / "site" / package)
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "site")}
    (tmp_path / "elsewhere").mkdir()
    shutil.copytree(REPO / "configs", tmp_path / "checkout" / "configs")
    command = [sys.executable, "-m", "mnist_lab", "fit", f"--data.data_dir={tmp_path}", "--data.download=false"]
    elsewhere = subprocess.run(
        command[:4], capture_output=True, text=True, cwd=tmp_path / "elsewhere", env=env, timeout=120
    )
    assert elsewhere.returncode == 2
    assert "(no configs/defaults.yaml here: run it in the repository, or give --config <file>)" in elsewhere.stderr
    checkout = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path / "checkout", env=env, timeout=120)
    assert checkout.returncode == 2, checkout.stderr[-2000:]
    assert "error: MNIST is missing from" in checkout.stderr, "the defaults parse: only the data is missing"
