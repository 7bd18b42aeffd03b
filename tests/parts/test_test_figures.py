"""The test-figures part: each test puts `figures/confusion_matrix.png` and, when it got some wrong,
`figures/misclassified.png` (at most `max_misclassified` images, titled true -> predicted) in the
run."""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

import torch
from mlflow import MlflowClient
from PIL import Image
from torchmetrics.classification import MulticlassConfusionMatrix

from helpers import Snapshot

from mnist_lab.parts.test_figures import TestSetFigures, confusion_figure, misclassified_figure

FIGURES = ("figures/confusion_matrix.png", "figures/misclassified.png")


def test_each_tested_run_holds_its_confusion_matrix_and_its_misclassified_images_if_any(
    finished_mlp: Snapshot, finished_cnn: Snapshot, tmp_path: Path
) -> None:
    wrong_somewhere = []
    for snapshot in (finished_mlp, finished_cnn):
        client = MlflowClient(snapshot.uri)
        run = client.get_run(snapshot.run_id)
        figures = {a.path for a in client.list_artifacts(snapshot.run_id, "figures")}
        wrong = run.data.metrics["test/acc"] < 1
        wrong_somewhere.append(wrong)
        assert figures == set(FIGURES[: 1 + wrong]), (snapshot.root.name, figures)
        for figure in figures:
            path = client.download_artifacts(snapshot.run_id, figure, str(tmp_path))
            with Image.open(path) as image:
                assert image.format == "PNG" and min(image.size) >= 100
    assert any(wrong_somewhere) and not all(wrong_somewhere), "both cases, as the snapshots are"


def test_a_test_gathers_every_prediction_and_at_most_max_misclassified_wrong_images() -> None:
    figures, classes, batches = TestSetFigures(max_misclassified=5), 4, 3
    trainer = SimpleNamespace(datamodule=SimpleNamespace(num_classes=classes))
    module = SimpleNamespace(device=torch.device("cpu"), hparams={})
    figures.on_test_epoch_start(trainer, module)
    truth, predicted = [], []
    for b in range(batches):
        y = torch.arange(8) % classes
        guess = torch.where(torch.arange(8) < 2 + b, (y + 1) % classes, y)  # 2, 3, 4 wrong
        figures.on_test_batch_end(trainer, module, guess, (torch.rand(8, 1, 28, 28), y), b)
        truth.append(y)
        predicted.append(guess)
    figures.on_test_epoch_end(trainer, module)
    truth, predicted = torch.cat(truth), torch.cat(predicted)
    expected = torch.zeros(classes, classes, dtype=torch.long)
    for t, p in zip(truth, predicted, strict=True):
        expected[t, p] += 1
    assert torch.equal(figures.matrix.long(), expected)
    kept = torch.cat([w[1] for w in figures.wrong]), torch.cat([w[2] for w in figures.wrong])
    wrong = (truth != predicted).nonzero().flatten()[:5]
    assert torch.equal(kept[0], truth[wrong]) and torch.equal(kept[1], predicted[wrong])


def test_the_misclassified_figure_titles_each_image_true_then_predicted_by_class_name() -> None:
    names = ["zero", "one", "two"]
    figure = misclassified_figure(
        torch.rand(3, 1, 28, 28), torch.tensor([0, 1, 2]), torch.tensor([1, 2, 0]), 2, names
    )
    titles = [ax.get_title() for ax in figure.axes if ax.get_title()]
    assert titles == ["zero -> one", "one -> two", "two -> zero"]
    assert len(figure.axes) == 4 and figure.get_suptitle().startswith("3 misclassified")


def test_both_figures_are_object_api_figures_that_save_and_leave_pyplot_alone(
    tmp_path: Path,
) -> None:
    """No pyplot state: a long-running process (a sweep, a study) gathers no figures."""
    confusion = MulticlassConfusionMatrix(num_classes=10)
    confusion.update(torch.arange(10), torch.arange(10).roll(1))
    wrong = torch.rand(5, 1, 28, 28), torch.arange(5), torch.arange(5) + 1
    pyplot = sys.modules.get("matplotlib.pyplot")
    before = pyplot.get_fignums() if pyplot is not None else []
    for n, fig in enumerate([confusion_figure(confusion), misclassified_figure(*wrong)]):
        fig.savefig(tmp_path / f"{n}.png")
        assert (tmp_path / f"{n}.png").stat().st_size > 1000
    pyplot = sys.modules.get("matplotlib.pyplot")
    assert (pyplot.get_fignums() if pyplot is not None else []) == before
