"""Quick study runs for the lab's tests: jobs trained in one worker process, nested under a new
parent run."""

from __future__ import annotations

from pathlib import Path

from mlflow import MlflowClient

from lab.study.claims import Claim
from lab.study.grid import QUICK_ARGS, Job, command
from lab.study.runner import run_all

# smaller still, where a claim allows it
TINY = ["--data.train_size=800", "--model.net.init_args.width=16"]


def run_quick(
    client: MlflowClient,
    jobs: list[Job],
    claims: dict[str, Claim],
    data_dir: Path,
    log_dir: Path,
    *extra: str,
) -> tuple[str, str]:
    """Train ``jobs`` in quick mode (then ``extra``) in one worker; every run must end well.
    (experiment, parent)."""
    experiment = client.create_experiment("activation-study")
    parent = client.create_run(experiment, tags={"study": "q", "study.parent": "true"}).info.run_id

    def cli(job: Job) -> list[str]:
        return command(
            job,
            study_id="q",
            parent_run_id=parent,
            experiment="activation-study",
            data_dir=str(data_dir),
            claim_args=claims[job.claim].args,
            extra=[*QUICK_ARGS, "--data.val_size=200", *extra],
        )

    assert run_all(jobs, cli, 1, log_dir, lambda job: 1.0) == []
    return experiment, parent
