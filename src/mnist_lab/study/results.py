"""Read the study's runs back from MLflow and reduce each to one table row."""

from __future__ import annotations

from dataclasses import dataclass

from mlflow import MlflowClient
from mlflow.entities import Run

from mnist_lab.models.components.activations import ACTIVATIONS


@dataclass
class Row:
    """What the report shows for one configuration (None where the run did not produce it)."""

    activation: str
    init: str
    batch_norm: bool
    seed: int
    status: str
    test_acc: float | None
    train_loss: float | None
    grad_ratio: float | None  # first/last layer weight-gradient norm at step 0
    dead_frac: float | None  # mean over hidden layers, last measurement
    act_mean: float | None  # mean over hidden layers, last measurement
    epochs_to_97: int | None
    grad_by_depth: list[float]  # weight-gradient norm per layer at step 0


def _history(client: MlflowClient, run_id: str, key: str) -> list[float]:
    return [m.value for m in sorted(client.get_metric_history(run_id, key), key=lambda m: (m.step, m.timestamp))]


def _layers(run: Run, prefix: str) -> list[int]:
    return sorted(int(k.rsplit("/", 1)[1]) for k in run.data.metrics if k.startswith(prefix))


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def row_for(client: MlflowClient, run: Run) -> Row:
    tags, metrics, rid = run.data.tags, run.data.metrics, run.info.run_id
    grads = [(_history(client, rid, f"diag/grad_norm/{i}") or [0.0])[0] for i in _layers(run, "diag/grad_norm/")]
    hidden = _layers(run, "diag/dead_frac/")
    val_acc = _history(client, rid, "val/acc")
    reached = [epoch for epoch, acc in enumerate(val_acc, start=1) if acc >= 0.97]
    return Row(
        activation=tags["study.activation"],
        init=tags["study.init"],
        batch_norm=tags["study.batch_norm"] == "bn",
        seed=int(tags["study.seed"]),
        status=run.info.status,
        test_acc=metrics.get("test/acc"),
        train_loss=metrics.get("train/loss_epoch"),
        grad_ratio=grads[0] / grads[-1] if len(grads) > 1 and grads[-1] > 0 else None,
        dead_frac=_mean([metrics[f"diag/dead_frac/{i}"] for i in hidden]),
        act_mean=_mean([metrics[f"diag/act_mean/{i}"] for i in hidden]),
        epochs_to_97=reached[0] if reached else None,
        grad_by_depth=grads,
    )


def collect(client: MlflowClient, experiment_id: str, study_id: str) -> list[Row]:
    """Every run of one study, as rows, in grid order (activation, init, batch norm, seed)."""
    runs = client.search_runs([experiment_id], filter_string=f"tags.study = '{study_id}'", max_results=5000)
    rows = [row_for(client, run) for run in runs if "study.activation" in run.data.tags]
    order = list(ACTIVATIONS)
    return sorted(rows, key=lambda r: (order.index(r.activation), r.init != "default", r.batch_norm, r.seed))
