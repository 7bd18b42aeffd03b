"""What a fork does: its own network and datamodule in its own package, one more metric, then
fit, resume, test and predict (the core's callbacks only).

The fork's package is real files in a temporary folder on ``sys.path``, named on the command line
(``--model.net=forkpkg.my_net.MyNet --data=forkpkg.my_data.MyData``); the template is not edited.
"""

from __future__ import annotations

import inspect
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from mlflow import MlflowClient
from torchmetrics import MetricCollection
from torchmetrics.classification import MulticlassF1Score

from tiny_cli import LEAN

from mnist_lab.cli import main
from mnist_lab.models import classifier

MY_NET = '''
"""A fork's network: a convolution, max pooling, a linear head (plain torch, as the template's)."""

from __future__ import annotations

from torch import Tensor, nn


class MyNet(nn.Module):
    def __init__(
        self, width: int = 8, num_classes: int = 10, input_shape: tuple[int, int, int] = (1, 28, 28)
    ) -> None:
        super().__init__()
        channels, height, breadth = input_shape
        conv = nn.Conv2d(channels, width, 3, padding=1)
        self.features = nn.Sequential(conv, nn.ReLU(), nn.MaxPool2d(2))
        self.head = nn.Linear(width * (height // 2) * (breadth // 2), num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x).flatten(1))
'''

MY_DATA = '''
"""A fork's data: a plain LightningDataModule, 3 classes of 1x16x16 images (noisy prototypes)."""

from __future__ import annotations

import lightning as L
import torch
from torch.utils.data import DataLoader, TensorDataset


class MyData(L.LightningDataModule):
    def __init__(
        self,
        batch_size: int = 32,
        train_size: int = 240,
        val_size: int = 60,
        test_size: int = 45,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.num_classes = 3
        self.image_shape = (1, 16, 16)
        self.class_names = ["zig", "zag", "zog"]
        self.splits: dict[str, TensorDataset] = {}

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        generator = torch.Generator().manual_seed(self.hparams.seed)
        prototypes = torch.randn(self.num_classes, *self.image_shape, generator=generator)
        for name in ("train", "val", "test"):
            n = self.hparams[f"{name}_size"]
            labels = torch.randint(0, self.num_classes, (n,), generator=generator)
            noise = torch.randn(n, *self.image_shape, generator=generator)
            images = prototypes[labels] + 0.5 * noise
            self.splits[name] = TensorDataset(images, labels)

    def _loader(self, name: str, shuffle: bool = False) -> DataLoader:
        return DataLoader(self.splits[name], batch_size=self.hparams.batch_size, shuffle=shuffle)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._loader("test")

    def predict_dataloader(self) -> DataLoader:
        return self._loader("test")
'''

NET = "--model.net=forkpkg.my_net.MyNet"
DATA = "--data=forkpkg.my_data.MyData"


@pytest.fixture
def forkpkg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The fork's package ``forkpkg`` (``my_net.py``, ``my_data.py``) as files, importable."""
    package = tmp_path / "forksrc" / "forkpkg"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text('"""A fork\'s own code."""\n')
    (package / "my_net.py").write_text(textwrap.dedent(MY_NET).lstrip())
    (package / "my_data.py").write_text(textwrap.dedent(MY_DATA).lstrip())
    monkeypatch.syspath_prepend(str(package.parent))
    yield package
    for name in [m for m in sys.modules if m == "forkpkg" or m.startswith("forkpkg.")]:
        del sys.modules[name]  # the next test's forkpkg lives in another folder


@pytest.fixture
def f1_metric(monkeypatch: pytest.MonkeyPatch) -> None:
    """One more metric in the template's collection.

    A fork edits the one line in src/mnist_lab/models/classifier.py instead:
        f1 = MulticlassF1Score(num_classes=num_classes, average="macro")
        metrics = MetricCollection({"acc": MulticlassAccuracy(...), "f1": f1})
    This test must not edit the repository, so it wraps the ``MetricCollection`` that line calls.
    """

    def with_f1(metrics: dict, *args: object, **kwargs: object) -> MetricCollection:
        f1 = MulticlassF1Score(num_classes=metrics["acc"].num_classes, average="macro")
        return MetricCollection({**metrics, "f1": f1}, *args, **kwargs)

    monkeypatch.setattr(classifier, "MetricCollection", with_f1)


def test_a_plain_datamodule_parses(forkpkg: Path, capsys: pytest.CaptureFixture) -> None:
    """The old CLI refused any datamodule but MNISTDataModule's subclasses (`expected NoneType`)."""
    with pytest.raises(SystemExit) as exit_:
        main(["fit", DATA, NET, "--data.init_args.batch_size=16", "--print_config"])
    assert exit_.value.code == 0, capsys.readouterr().err
    printed = capsys.readouterr().out
    assert "class_path: forkpkg.my_data.MyData" in printed and "batch_size: 16" in printed
    assert "class_path: forkpkg.my_net.MyNet" in printed


@pytest.mark.slow
def test_a_fork_fits_tests_and_predicts_its_own_network_data_and_metric(
    forkpkg: Path, f1_metric: None, tracking_uri: str, tmp_path: Path
) -> None:
    from forkpkg.my_data import MyData  # the fork's own, imported as the CLI imports it

    fork = MyData()
    shape, classes = fork.image_shape, fork.num_classes
    tests = inspect.signature(MyData).parameters["test_size"].default
    lean = ["--config", LEAN, "--trainer.log_every_n_steps=2"]
    net = [NET, "--model.net.init_args.width=4", DATA, "--data.init_args.batch_size=32"]
    fit = main(["fit", *lean, *net, "--trainer.max_epochs=2"])
    assert type(fit.model.net).__module__ == "forkpkg.my_net"
    assert type(fit.datamodule).__name__ == "MyData"
    assert fit.model.hparams.num_classes == classes
    assert tuple(fit.model.hparams.input_shape) == shape
    run_id = fit.trainer.logger.run_id
    client = MlflowClient(tracking_uri)
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    metrics = run.data.metrics
    assert {"train/f1", "val/f1", "test/f1", "test/acc"} <= set(metrics), sorted(metrics)
    assert metrics["test/acc"] > 0.8, metrics  # the prototypes are learnable in 2 epochs
    assert run.info.run_name.startswith("mynet"), run.info.run_name
    linked = {
        k: run.data.params[f"model/net/init_args/{k}"] for k in ("num_classes", "input_shape")
    }
    assert linked == {"num_classes": str(classes), "input_shape": str(shape)}  # as it was built

    resumed = main(["fit", *lean, *net, "--trainer.max_epochs=3", f"--ckpt_path={run_id}"])
    assert resumed.trainer.logger.run_id == run_id and resumed.trainer.current_epoch == 3

    # The checkpoint rebuilds MyNet from its hyperparameters: no --model.net here.
    tested = main(["test", *lean, DATA, f"--ckpt_path={run_id}"])
    assert type(tested.model.net).__name__ == "MyNet"
    assert tested.trainer.callback_metrics["test/acc"] > 0.8, tested.trainer.callback_metrics
    test_run = client.get_run(tested.trainer.logger.run_id)
    assert test_run.info.status == "FINISHED" and "test/acc" in test_run.data.metrics

    out = tmp_path / "predict"
    main(["predict", *lean, DATA, f"--ckpt_path={run_id}", f"--trainer.default_root_dir={out}"])
    lines = (out / "predictions.csv").read_text().splitlines()
    probabilities = [f"p{k}" for k in range(classes)]
    assert lines[0].split(",") == ["index", "target", "predicted", "probability", *probabilities]
    assert len(lines) == 1 + tests  # one row per test example
    rows = [[float(v) for v in line.split(",")] for line in lines[1:]]
    assert all(abs(sum(row[4:]) - 1) < 1e-4 and len(row) == 4 + classes for row in rows)
    assert sum(row[1] == row[2] for row in rows) / len(rows) > 0.8  # target == predicted
