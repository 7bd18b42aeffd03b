"""End to end on the real MNIST ($DATA_DIR; CI points it at ../shared/data): the default MLP and
data settings, with the core's callbacks only, reach 97% in two epochs."""

from __future__ import annotations

import inspect
import struct
from pathlib import Path

import pytest

from tiny_cli import tiny_args

from mnist_lab.cli import main
from mnist_lab.data.mnist_datamodule import MNISTDataModule


def count(path: Path) -> int:
    """The item count in an IDX file's header."""
    return struct.unpack(">i", path.read_bytes()[4:8])[0]


@pytest.mark.slow
def test_a_short_mlp_run_reaches_97_percent_on_the_real_test_set(
    real_mnist: Path, tracking_uri: str
) -> None:
    defaults = inspect.signature(MNISTDataModule).parameters
    sizes = {k: defaults[k].default for k in ("val_size", "batch_size")}  # not lean.yaml's
    given = [f"--data.{k}={v}" for k, v in sizes.items()]
    cli = main(tiny_args("fit", real_mnist, *given, "--trainer.max_epochs=2"))
    raw = real_mnist / "MNIST" / "raw"
    train, test = count(raw / "train-labels-idx1-ubyte"), count(raw / "t10k-labels-idx1-ubyte")
    splits = {name: len(split) for name, split in cli.datamodule._splits.items()}
    val = sizes["val_size"]
    assert splits == {"train": train - val, "val": val, "test": test}
    assert cli.trainer.callback_metrics["test/acc"] >= 0.97
