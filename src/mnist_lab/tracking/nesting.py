"""Parent and child runs: a study or a sweep is one parent run, each of its training runs a child."""

from __future__ import annotations

from mlflow import MlflowClient
from mlflow.entities import Run
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID as PARENT_TAG  # the tag the UI nests child runs by

__all__ = ["PARENT_TAG", "newest_tagged_run"]


def newest_tagged_run(client: MlflowClient, experiment: str, tags: dict[str, str]) -> Run | None:
    """The most recently started run of ``experiment`` carrying every one of ``tags`` (None if none)."""
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return None
    query = " and ".join(f"tags.`{key}` = '{value}'" for key, value in tags.items())
    runs = client.search_runs([found.experiment_id], query, order_by=["attributes.start_time DESC"], max_results=1)
    return runs[0] if runs else None
