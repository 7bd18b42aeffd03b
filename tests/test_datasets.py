"""Every dataset of the registry trains through the same path, in real IDX files of its own folder."""

from __future__ import annotations

from pathlib import Path

import mlflow
import pytest
from mlflow import MlflowClient

from mnist_fakes import write_fake_mnist
from mnist_lab.cli import main
from mnist_lab.data.datasets import DATASETS, get_dataset
from mnist_lab.data.mnist_datamodule import MNISTDataModule
from mnist_lab.errors import ConfigError
from tiny_cli import tiny_args


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_each_dataset_reads_its_own_folder_with_its_own_statistics(name: str, tmp_path: Path) -> None:
    spec = get_dataset(name)
    root = write_fake_mnist(tmp_path, n_train=300, n_test=100, folder=spec.torchvision_class)
    data = MNISTDataModule(str(root), dataset=name, val_size=100)
    data.prepare_data()
    data.setup("fit")
    assert data.raw_dir == root / spec.torchvision_class / "raw"
    assert (data.num_classes, data.image_shape, data.class_names) == (10, (1, 28, 28), list(spec.class_names))
    images = data._splits["train"].images
    background = (0 - spec.mean) / spec.std  # the fake images' darkest pixel is 0
    assert abs(float(images.min()) - background) < 1e-5


def test_an_unknown_dataset_lists_the_known_ones(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown dataset 'cifar'; choose one of: mnist, fashion_mnist, kmnist"):
        MNISTDataModule(str(tmp_path), dataset="cifar")


@pytest.mark.slow
def test_a_fashion_mnist_run_carries_its_class_names_everywhere(tmp_path: Path, tracking_uri: str) -> None:
    root = write_fake_mnist(tmp_path / "data", folder="FashionMNIST")
    cli = main(tiny_args("fit", root, "--data.dataset=fashion_mnist", "--trainer.max_epochs=1"))
    run_id = cli.trainer.logger.run_id
    client = MlflowClient(tracking_uri)
    (recorded,) = client.get_run(run_id).inputs.dataset_inputs
    names = list(get_dataset("fashion_mnist").class_names)
    assert recorded.dataset.name == "fashion_mnist"
    assert {t.key: t.value for t in recorded.tags}["classes"] == ",".join(names)
    mlflow.set_tracking_uri(tracking_uri)
    metadata = mlflow.pyfunc.load_model(f"runs:/{run_id}/classifier").metadata.metadata
    assert (metadata["dataset"], metadata["class_names"]) == ("fashion_mnist", names)
    figures = [a.path for a in client.list_artifacts(run_id, "figures")]
    assert "figures/confusion_matrix.png" in figures


class FiveDigits(MNISTDataModule):
    """Another LightningDataModule: MNIST's digits 0-4 only."""

    num_classes = 5  # type: ignore[assignment]

    def setup(self, stage: str | None = None) -> None:
        super().setup(stage)
        for split, data in self._splits.items():
            keep = data.labels < 5
            self._splits[split] = type(data)(data.images[keep], data.labels[keep])

    @property
    def class_names(self) -> list[str]:
        return [str(k) for k in range(5)]


@pytest.mark.slow
def test_any_datamodule_plugs_in_and_its_classes_reach_the_network(fake_mnist: Path, tracking_uri: str) -> None:
    cli = main(tiny_args("fit", fake_mnist, "--data=test_datasets.FiveDigits", "--trainer.max_epochs=1"))
    assert type(cli.datamodule).__name__ == "FiveDigits"
    assert cli.model.net.output.out_features == 5 and cli.model.hparams.num_classes == 5
    assert cli.trainer.callback_metrics["test/acc"] > 0.5
