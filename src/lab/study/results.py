"""Read a study back from MLflow: its parent run, and each child run as a record of metric
histories.

The children are found with ``MlflowClient.search_runs`` on the ``mlflow.parentRunId`` tag, so a
report can be rebuilt from the store alone, for any past study.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field

import mlflow
from mlflow import MlflowClient

from mnist_lab.tracking.nesting import PARENT_TAG, newest_tagged_run


@dataclass
class RunRecord:
    """One child run: which claim, variant and seed, how it ended, and the histories a claim
    reads."""

    claim: str
    variant: str
    seed: int
    status: str
    final: dict[str, float]
    # key -> [(step, value)]
    history: dict[str, list[tuple[int, float]]] = field(default_factory=dict)

    def series(self, key: str) -> list[float]:
        """The metric's values in step order (one per logged step; per epoch for val/*)."""
        return [v for _, v in self.history.get(key, [])]

    def first(self, key: str) -> float | None:
        values = self.series(key)
        return values[0] if values else self.final.get(key)

    def last(self, key: str) -> float | None:
        values = self.series(key)
        return values[-1] if values else self.final.get(key)

    def layers(self, prefix: str) -> list[int]:
        """Depth indices logged under ``prefix`` (e.g. ``diag/grad_norm/``), input side first."""
        keys = set(self.final) | set(self.history)
        return sorted(
            int(k[len(prefix) :])
            for k in keys
            if k.startswith(prefix) and k[len(prefix) :].isdigit()
        )

    def by_depth(self, prefix: str, at: str = "first") -> list[float]:
        """One value per layer: the first (at init) or the last measurement."""
        pick = self.first if at == "first" else self.last
        values = [pick(f"{prefix}{i}") for i in self.layers(prefix)]
        return [v for v in values if v is not None]

    def hidden_mean(
        self, prefix: str, at: str = "last", output_layer: bool = False
    ) -> float | None:
        """Mean over hidden layers (and the output layer when it is logged and ``output_layer``)."""
        values = self.by_depth(prefix, at)
        if not output_layer and prefix.startswith(("diag/grad_norm/", "diag/grad_sign_agreement/")):
            values = values[:-1]
        return sum(values) / len(values) if values else None

    def mean_curve(self, prefix: str) -> list[tuple[int, float]]:
        """Per logged step, the mean over the layers under ``prefix`` (e.g. saturation over
        training)."""
        per_step: dict[int, list[float]] = defaultdict(list)
        for i in self.layers(prefix):
            for step, value in self.history.get(f"{prefix}{i}", []):
                per_step[step].append(value)
        return [(step, sum(v) / len(v)) for step, v in sorted(per_step.items())]

    def epochs_to(self, key: str, threshold: float) -> float:
        """The first epoch (1-based) whose ``key`` reaches ``threshold``; inf when none does."""
        for epoch, value in enumerate(self.series(key), start=1):
            if value >= threshold:
                return float(epoch)
        return math.inf


def find_parent(client: MlflowClient, experiment: str, study_id: str) -> mlflow.entities.Run | None:
    """The study's parent run, by its ``study`` tag."""
    return newest_tagged_run(client, experiment, {"study": study_id, "study.parent": "true"})


def collect(
    client: MlflowClient, parent: mlflow.entities.Run, keys: dict[str, tuple[str, ...]]
) -> list[RunRecord]:
    """Every child run of ``parent``; ``keys`` names, per claim, the metrics (or ``prefix/``) to
    read in full.

    The client's own ``search_runs`` (paged): the fluent ``mlflow.search_runs`` would read whatever
    store the process last pointed ``mlflow`` at, not necessarily ``client``'s.
    """
    runs: list[mlflow.entities.Run] = []
    token = None
    while True:
        page = client.search_runs(
            [parent.info.experiment_id],
            filter_string=f"tags.`{PARENT_TAG}` = '{parent.info.run_id}'",
            max_results=5000,
            page_token=token,
        )
        runs += page
        token = page.token
        if not token:
            break
    records = []
    for run in runs:
        tags = run.data.tags
        final = {k: v for k, v in run.data.metrics.items() if not math.isnan(v)}
        claim = tags.get("study.claim")
        record = RunRecord(
            claim, tags["study.variant"], int(tags["study.seed"]), run.info.status, final
        )
        for wanted in keys.get(claim, ()):
            for key in [
                k for k in final if k == wanted or (wanted.endswith("/") and k.startswith(wanted))
            ]:
                history = client.get_metric_history(run.info.run_id, key)
                record.history[key] = [
                    (m.step, m.value) for m in sorted(history, key=lambda m: (m.step, m.timestamp))
                ]
        records.append(record)
    return sorted(records, key=lambda r: (r.claim, r.variant, r.seed))
