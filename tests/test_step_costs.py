"""What the hot path defers stays exact: grouped metric updates, batched metric writes to MLflow,
and a progress bar that gathers its metrics only on the steps it redraws."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import RichProgressBar
from mlflow import MlflowClient

from mnist_lab.cli.progress import StepRichProgressBar
from mnist_lab.data.mnist_datamodule import MNISTDataModule
from mnist_lab.models import mnist_module
from mnist_lab.models.components import MLP
from mnist_lab.models.mnist_module import MNISTClassifier
from mnist_lab.tracking import RunLogger


class StepOutcomes(L.Callback):
    """Per step, before the update: the loss and predictions the step will see (no dropout or BN)."""

    def __init__(self) -> None:
        self.losses: list[float] = []
        self.correct = self.seen = 0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        x, y = batch
        with torch.no_grad():
            logits = pl_module(x)
        self.losses.append(float(torch.nn.functional.cross_entropy(logits, y)))
        self.correct += int((logits.argmax(1) == y).sum())
        self.seen += len(y)


@pytest.mark.parametrize(
    "trainer_args",
    [{}, {"accumulate_grad_batches": 2}, {"val_check_interval": 0.5}, {"max_steps": 30}],
    ids=["plain", "accumulating", "validating-mid-epoch", "stopped-mid-epoch"],
)
def test_grouped_metric_updates_equal_one_update_per_step(fake_mnist: Path, trainer_args: dict) -> None:
    batches = mnist_module.METRIC_UPDATE_EVERY + 5  # a full group and a partial one, fed at the epoch's end
    steps = min(batches, trainer_args.get("max_steps", batches))
    outcomes = StepOutcomes()
    trainer = L.Trainer(
        max_epochs=1, limit_train_batches=batches, limit_val_batches=1, logger=False, enable_progress_bar=False,
        enable_model_summary=False, enable_checkpointing=False, callbacks=[outcomes], num_sanity_val_steps=0,
        **trainer_args,
    )  # fmt: skip
    dm = MNISTDataModule(str(fake_mnist), val_size=200, batch_size=16)
    trainer.fit(MNISTClassifier(MLP(depth=1, width=16)), datamodule=dm)
    logged = trainer.callback_metrics
    assert len(outcomes.losses) == steps
    assert float(logged["train/loss_epoch"]) == pytest.approx(sum(outcomes.losses) / steps, rel=1e-5)
    assert float(logged["train/acc_epoch"]) == pytest.approx(outcomes.correct / outcomes.seen, abs=1e-6)


def test_run_logger_writes_in_batches_and_everything_by_the_end(tracking_uri: str) -> None:
    logger = RunLogger(experiment_name="batched", flush_every_s=3600)
    client = MlflowClient(tracking_uri)
    with pytest.warns(UserWarning, match="'odd key!' -> 'odd key'"):  # once, not at every step
        for step in range(10):
            logger.log_metrics({"train/loss": 1.0 / (step + 1), "odd key!": step}, step=step)
    assert client.get_metric_history(logger.run_id, "train/loss") == []  # kept, not yet written
    logger.after_save_checkpoint(checkpoint_callback=type("Ckpt", (), {"save_top_k": 1})())
    history = client.get_metric_history(logger.run_id, "train/loss")
    assert [m.step for m in history] == list(range(10)) and history[3].value == pytest.approx(0.25)
    assert len(client.get_metric_history(logger.run_id, "odd key")) == 10  # named as MLFlowLogger names it
    logger.log_metrics({"val/acc": 0.5}, step=10)
    logger.finalize("success")
    run = client.get_run(logger.run_id)
    assert run.info.status == "FINISHED" and run.data.metrics["val/acc"] == 0.5


def test_a_failed_write_keeps_the_values_and_the_run_still_ends(
    tracking_uri: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    logger = RunLogger(experiment_name="flaky", flush_every_s=3600)
    logger.log_metrics({"a": 1.0}, step=0)
    client = logger.experiment
    real = client.log_batch

    def locked(*args, **kwargs):
        raise RuntimeError("database is locked")

    monkeypatch.setattr(client, "log_batch", locked)
    with pytest.raises(RuntimeError, match="locked"):
        logger.flush()
    with pytest.warns(UserWarning, match="1 metric values could not be written"):
        logger.finalize("success")  # the status is still set
    assert MlflowClient(tracking_uri).get_run(logger.run_id).info.status == "FINISHED"
    monkeypatch.setattr(client, "log_batch", real)
    logger.flush()  # kept, so a later write succeeds
    assert MlflowClient(tracking_uri).get_run(logger.run_id).data.metrics == {"a": 1.0}


def test_run_logger_with_no_interval_writes_every_call(tracking_uri: str) -> None:
    logger = RunLogger(experiment_name="unbatched", flush_every_s=0)
    logger.log_metrics({"a": 1.0}, step=0)
    assert MlflowClient(tracking_uri).get_run(logger.run_id).data.metrics == {"a": 1.0}
    logger.finalize("success")


def test_progress_bar_gathers_metrics_only_as_often_as_it_redraws(
    fake_mnist: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bar = StepRichProgressBar(refresh_rate=1)  # one redraw a second: a 12-step epoch takes far less
    gathered: list[int] = []
    original = RichProgressBar.on_train_batch_end

    def recording(self, trainer, pl_module, outputs, batch, batch_idx):
        gathered.append(batch_idx)
        return original(self, trainer, pl_module, outputs, batch, batch_idx)

    monkeypatch.setattr(RichProgressBar, "on_train_batch_end", recording)
    trainer = L.Trainer(
        max_epochs=1, limit_train_batches=12, limit_val_batches=1, logger=False, enable_model_summary=False,
        enable_checkpointing=False, callbacks=[bar], num_sanity_val_steps=0,
    )  # fmt: skip
    dm = MNISTDataModule(str(fake_mnist), val_size=200, batch_size=32)
    trainer.fit(MNISTClassifier(MLP(depth=1, width=8)), datamodule=dm)
    assert gathered[0] == 0 and gathered[-1] == 11, gathered  # the first step, and the epoch's last is shown
    assert len(gathered) <= 4, gathered  # not every step (a stall of over a second may add one)
