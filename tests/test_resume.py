"""Resuming: `last`, a run id, a checkpoint file; the guards that keep a resumed run what it was;
checkpoints that are not whole; runs that are deleted; training a finished run longer."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from pathlib import Path

import lightning as L
import pytest
import torch
from mlflow import MlflowClient

from helpers import Snapshot
from tiny_cli import REPO, tiny_args, tiny_cnn

from mnist_lab.cli import main
from mnist_lab.recovery import REQUEST

KILLED_ARGS = ["--trainer.max_epochs=2", "--run_test=false"]  # the killed_mlp snapshot's (conftest)
STEPS = 16


def errors(capsys: pytest.CaptureFixture) -> list[str]:
    return [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]


def exits(args: list[str]) -> int:
    with pytest.raises(SystemExit) as exit_:
        main(args)
    return exit_.value.code


def last_of(run: object) -> Path:
    return Path(run.data.tags["checkpoint.dir"]) / "last.ckpt"


@pytest.mark.slow
def test_last_is_the_newest_interrupted_run_and_other_settings_are_one_error(
    killed_mlp: Snapshot, clone: Callable, fake_mnist: Path, capsys: pytest.CaptureFixture
) -> None:
    copy = clone(killed_mlp)
    client = MlflowClient(copy.uri)
    finished = main(
        tiny_cnn(fake_mnist, "--run_test=false")
    ).trainer.logger.run_id  # newer, finished
    capsys.readouterr()
    args = tiny_args("fit", fake_mnist, *KILLED_ARGS)
    for extra, message in [
        (
            ["--config", str(REPO / "configs" / "recipes" / "cnn.yaml")],
            "data.init_args.augment=True",
        ),
        (["--model.net=mnist_lab.models.components.CNN"], "model.net.class_path="),
        (["--model.optimizer.init_args.lr=0.01"], "model.optimizer.init_args.lr=0.01"),
        (["--config", str(REPO / "configs" / "debug.yaml")], "trainer.limit_train_batches="),
        (["--seed_everything=7"], "seed_everything=7 (the run's: 42)"),
    ]:
        assert exits([*args, *extra, "--ckpt_path=last"]) == 2
        (line,) = errors(capsys)
        assert "with other settings than it was trained with" in line and message in line, line
    resumed = main([*args, "--ckpt_path=last"])
    assert resumed.trainer.logger.run_id == copy.run_id, "`last` is never the newer, finished run"
    assert "resuming the newest interrupted run" in capsys.readouterr().out
    assert {client.get_run(r).info.status for r in (copy.run_id, finished)} == {"FINISHED"}
    assert exits([*args, "--ckpt_path=last"]) == 2  # both finished: nothing is interrupted
    (line,) = errors(capsys)
    assert "no interrupted (KILLED or FAILED) run with a last.ckpt" in line


@pytest.mark.parametrize("damage", ["truncated", "overwritten in place"])
@pytest.mark.slow
def test_a_damaged_local_last_ckpt_is_refused_and_the_logged_copy_used(
    damage: str,
    killed_mlp: Snapshot,
    clone: Callable,
    fake_mnist: Path,
    capsys: pytest.CaptureFixture,
) -> None:
    """A file cut short (a full disk) or with 4 KiB overwritten inside (still a valid archive, which
    torch would load): its checksums fail, one warning, and the run's logged copy resumes it."""
    copy = clone(killed_mlp)
    run = MlflowClient(copy.uri).get_run(copy.run_id)
    local = last_of(run)
    data = bytearray(local.read_bytes())
    if damage == "truncated":
        data = data[:1000]
    else:
        middle = len(data) // 2
        data[middle : middle + 4096] = os.urandom(4096)
    local.write_bytes(bytes(data))
    resumed = main([*tiny_args("fit", fake_mnist, *KILLED_ARGS), f"--ckpt_path={copy.run_id}"])
    assert "using the copy logged with run" in capsys.readouterr().err
    assert resumed.trainer.logger.run_id == copy.run_id and resumed.trainer.global_step == 2 * STEPS


@pytest.mark.slow
def test_a_damaged_checkpoint_without_a_copy_is_one_error_everywhere(
    finished_mlp: Snapshot,
    clone: Callable,
    fake_mnist: Path,
    capsys: pytest.CaptureFixture,
    tmp_path: Path,
) -> None:
    """Resume, validate, test and predict check a checkpoint file before they use it."""
    copy = clone(finished_mlp)
    best = Path(MlflowClient(copy.uri).get_run(copy.run_id).data.tags["checkpoint.best"])
    damaged = tmp_path / "damaged.ckpt"
    data = bytearray(best.read_bytes())
    data[len(data) // 2 : len(data) // 2 + 4096] = os.urandom(4096)
    damaged.write_bytes(bytes(data))
    for subcommand in ("fit", "validate", "test", "predict"):
        assert exits(tiny_args(subcommand, fake_mnist, f"--ckpt_path={damaged}")) == 2
        (line,) = errors(capsys)
        assert f"{damaged} is damaged" in line and "checksum" in line


def test_a_deleted_run_is_one_error_line_with_the_command_that_restores_it(
    killed_mlp: Snapshot, clone: Callable, fake_mnist: Path, capsys: pytest.CaptureFixture
) -> None:
    copy = clone(killed_mlp)
    MlflowClient(copy.uri).delete_run(copy.run_id)
    assert exits([*tiny_args("fit", fake_mnist, *KILLED_ARGS), f"--ckpt_path={copy.run_id}"]) == 2
    (line,) = errors(capsys)
    assert f"run {copy.run_id} is deleted" in line and "mlflow runs restore" in line


@pytest.mark.slow
def test_a_finished_run_trains_longer_with_its_schedule_replanned(
    finished_mlp: Snapshot, clone: Callable, fake_mnist: Path, capsys: pytest.CaptureFixture
) -> None:
    """The same length again is one error (nothing to train); more epochs re-plan CosineDecay
    instead of training on at learning rate 0, in the same run."""
    copy = clone(finished_mlp)
    args = tiny_args("fit", fake_mnist, "--model.net.init_args.width=64", lean=False)
    args += ["--model.net.init_args.activation=leaky_relu"]  # the snapshot's settings
    assert exits([*args, "--trainer.max_epochs=2", f"--ckpt_path={copy.run_id}"]) == 2
    assert "nothing is left to train" in errors(capsys)[0]
    longer = main([*args, "--trainer.max_epochs=3", f"--ckpt_path={copy.run_id}"])
    assert longer.trainer.logger.run_id == copy.run_id
    assert "CosineDecay re-planned" in capsys.readouterr().err
    client = MlflowClient(copy.uri)
    lrs = client.get_metric_history(copy.run_id, "lr-AdamW")
    assert [m.step for m in lrs] == [0, STEPS, 2 * STEPS]
    initial = longer.trainer.optimizers[0].param_groups[0]["initial_lr"]
    assert lrs[-1].value > 0.1 * initial, "the added epoch must not train at learning rate 0"
    assert client.get_run(copy.run_id).info.status == "FINISHED"


@pytest.mark.slow
def test_resuming_a_schedule_that_ended_at_lr_0_is_one_error_before_the_run_is_touched(
    fake_mnist: Path, tracking_uri: str, capsys: pytest.CaptureFixture
) -> None:
    polynomial = ["--model.scheduler=torch.optim.lr_scheduler.PolynomialLR"]
    polynomial += [f"--model.scheduler.total_iters={STEPS}", "--run_test=false"]
    first = main(tiny_args("fit", fake_mnist, "--trainer.max_epochs=1", *polynomial))
    run_id = first.trainer.logger.run_id
    assert (
        exits(
            tiny_args(
                "fit", fake_mnist, "--trainer.max_epochs=2", f"--ckpt_path={run_id}", *polynomial
            )
        )
        == 2
    )
    assert "was saved at learning rate 0" in errors(capsys)[0]
    assert MlflowClient(tracking_uri).get_run(run_id).info.status == "FINISHED"


class StopsAtFirstStep(L.Callback):
    def on_train_batch_start(self, trainer: L.Trainer, *args: object) -> None:
        if trainer.global_step == 1:
            REQUEST.handle(signal.SIGINT, None)


@pytest.mark.slow
def test_a_checkpoint_names_its_run_and_resuming_from_the_file_continues_it(
    fake_mnist: Path, tracking_uri: str
) -> None:
    args = tiny_args("fit", fake_mnist, *KILLED_ARGS)
    with pytest.raises(SystemExit):
        main(args, callbacks=[StopsAtFirstStep()])
    (run,) = MlflowClient(tracking_uri).search_runs(["1"])
    saved = torch.load(last_of(run), weights_only=True)["mlflow"]
    assert saved == {"run_id": run.info.run_id, "tracking_uri": tracking_uri}
    resumed = main([*args, f"--ckpt_path={last_of(run)}"])
    assert resumed.trainer.logger.run_id == run.info.run_id
