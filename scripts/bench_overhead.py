"""What MLflow tracking and the diagnostics callback cost per epoch, versus training with no logger.

    python scripts/bench_overhead.py --data-dir ../shared/data [--epochs 3 --repeats 2]

Trains the default MLP (the network of configs/net/mlp.yaml, optimiser and schedule of defaults.yaml) with the same data
module three ways, interleaved so drift in machine load hits all three alike, and reports the
median epoch time of each, leaving out every run's first (warm-up) epoch.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import lightning as L
import torch

from mnist_lab.data.mnist_datamodule import MNISTDataModule
from mnist_lab.diagnostics import DiagnosticsCallback
from mnist_lab.models.components import MLP
from mnist_lab.models.mnist_module import MNISTClassifier
from mnist_lab.models.schedules import CosineDecay
from mnist_lab.tracking import MLflowRunCallback, RunLogger


class EpochTimer(L.Callback):
    """Wall time of each training epoch, its validation pass included."""

    def __init__(self) -> None:
        self.times: list[float] = []

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._start = time.perf_counter()

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self.times.append(time.perf_counter() - self._start)


def fit(variant: str, data: MNISTDataModule, epochs: int, store: Path) -> list[float]:
    L.seed_everything(42, verbose=False)
    timer = EpochTimer()
    callbacks: list[L.Callback] = [timer]
    logger: RunLogger | bool = False
    if variant != "no logger":
        logger = RunLogger(
            experiment_name="overhead",
            tracking_uri=f"sqlite:///{store / 'mlflow.db'}",
            artifact_location=(store / "artifacts").as_uri(),
            log_model=False,
        )
        callbacks.append(MLflowRunCallback(log_model=False))
    if variant == "mlflow + diagnostics":
        callbacks.append(DiagnosticsCallback())
    model = MNISTClassifier(
        MLP(depth=2, width=512, dropout=0.2),
        optimizer=lambda p: torch.optim.AdamW(p, lr=1e-3, weight_decay=1e-4),
        scheduler=CosineDecay,
    )
    trainer = L.Trainer(
        max_epochs=epochs,
        logger=logger,
        callbacks=callbacks,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        log_every_n_steps=50,
        gradient_clip_val=1.0,
        default_root_dir=store,
    )
    trainer.fit(model, datamodule=data)
    return timer.times[1:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default="data/")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()

    data = MNISTDataModule(args.data_dir)
    data.prepare_data()
    data.setup("fit")
    variants = ["no logger", "mlflow", "mlflow + diagnostics"]
    times: dict[str, list[float]] = {v: [] for v in variants}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.repeats):
            for variant in variants:
                times[variant] += fit(variant, data, args.epochs, Path(tmp))
    base = statistics.median(times["no logger"])
    print(f"median epoch time over {len(times['no logger'])} epochs each (torch threads: {torch.get_num_threads()})")
    for variant in variants:
        median = statistics.median(times[variant])
        print(f"  {variant:<22} {median:6.2f} s   {100 * (median / base - 1):+5.1f}% vs no logger")


if __name__ == "__main__":
    main()
