"""Every dataset of the registry trains through the same path, in real IDX files of its own
folder; any other datamodule plugs in."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from mlflow import MlflowClient
from mlflow.models import Model

from logged import folder, logged_model
from mnist_fakes import write_fake_mnist
from tiny_cli import LEAN, tiny_args

from mnist_lab.cli import main
from mnist_lab.data.datasets import DATASETS, get_dataset
from mnist_lab.data.mnist_datamodule import MNISTDataModule


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_each_dataset_reads_its_own_folder_with_its_own_statistics(
    name: str, tmp_path: Path
) -> None:
    spec = get_dataset(name)
    root = write_fake_mnist(tmp_path, n_train=300, n_test=100, folder=spec.torchvision_class)
    data = MNISTDataModule(str(root), dataset=name, val_size=100)
    data.prepare_data()
    data.setup("fit")
    assert data.raw_dir == root / spec.torchvision_class / "raw"
    assert (data.num_classes, data.class_names) == (len(spec.class_names), list(spec.class_names))
    assert data.image_shape == tuple(data._splits["train"].images.shape[1:])
    images = data._splits["train"].images
    background = (0 - spec.mean) / spec.std  # the fake images' darkest pixel is 0
    assert abs(float(images.min()) - background) < 1e-5


@pytest.mark.slow
def test_a_fashion_mnist_run_carries_its_class_names_everywhere(
    tmp_path: Path, tracking_uri: str
) -> None:
    """The dataset input, the logged model's metadata and the figures: the lean callbacks, the
    model logged as the defaults log it, and the figures' part."""
    spec = get_dataset("fashion_mnist")
    root = write_fake_mnist(tmp_path / "data", folder=spec.torchvision_class)
    callbacks = yaml.safe_load(Path(LEAN).read_text())["trainer"]["callbacks"]
    for callback in callbacks:
        if callback["class_path"].endswith(".RunRecord"):
            callback["init_args"]["log_model"] = True
    # test_figures:begin  (make drop PART=test_figures deletes this block)
    callbacks.append({"class_path": "mnist_lab.parts.test_figures.TestSetFigures"})
    # test_figures:end
    (tmp_path / "callbacks.yaml").write_text(yaml.safe_dump({"trainer": {"callbacks": callbacks}}))
    given = ["--config", str(tmp_path / "callbacks.yaml"), "--data.dataset=fashion_mnist"]
    run_id = main(tiny_args("fit", root, *given, "--trainer.max_epochs=1")).trainer.logger.run_id
    client = MlflowClient(tracking_uri)
    (recorded,) = client.get_run(run_id).inputs.dataset_inputs
    names = list(spec.class_names)
    assert recorded.dataset.name == "fashion_mnist"
    assert {t.key: t.value for t in recorded.tags}["classes"] == ",".join(names)
    metadata = Model.load(folder(logged_model(tracking_uri, run_id))).metadata
    assert (metadata["dataset"], metadata["class_names"]) == ("fashion_mnist", names)
    # test_figures:begin  (make drop PART=test_figures deletes this block)
    figures = [a.path for a in client.list_artifacts(run_id, "figures")]
    assert "figures/confusion_matrix.png" in figures
    # test_figures:end


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


def test_any_datamodule_plugs_in_and_its_classes_reach_the_network(
    fake_mnist: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    data = ["--data=test_datasets.FiveDigits", "--trainer.max_epochs=1", "--trainer.logger=false"]
    cli = main(tiny_args("fit", fake_mnist, *data))
    assert type(cli.datamodule).__name__ == "FiveDigits"
    assert cli.model.net.output.out_features == 5 and cli.model.hparams.num_classes == 5
    assert cli.trainer.callback_metrics["test/acc"] > 0.5
