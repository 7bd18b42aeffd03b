"""Parent and child runs: a study or a sweep is one parent run, each of its trainings a child."""

from __future__ import annotations

from mlflow import MlflowClient
from mlflow.entities import Run

# the tag the UI nests child runs by
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID as PARENT_TAG

__all__ = ["PARENT_TAG", "newest_tagged_run", "tagged_runs"]


def tagged_runs(
    client: MlflowClient, experiment_id: str, tags: dict[str, str], status: str = ""
) -> list[Run]:
    """The runs of ``experiment_id`` with every one of ``tags`` (and ``status``), newest first."""
    terms = [f"tags.`{key}` = '{value}'" for key, value in tags.items()]
    terms += [f"attributes.status = '{status}'"] if status else []
    return client.search_runs(
        [experiment_id], " and ".join(terms), order_by=["attributes.start_time DESC"]
    )


def newest_tagged_run(client: MlflowClient, experiment: str, tags: dict[str, str]) -> Run | None:
    """The newest run of ``experiment`` with every one of ``tags`` (None if none)."""
    found = client.get_experiment_by_name(experiment)
    runs = tagged_runs(client, found.experiment_id, tags) if found is not None else []
    return runs[0] if runs else None
