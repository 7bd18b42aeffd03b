"""The study's runs: one claim's configuration x one seed becomes one ``mnist_lab fit`` command
line."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from mnist_lab.tracking.nesting import PARENT_TAG

REPO = Path(__file__).resolve().parents[3]
NET = "--model.net.init_args"
BAD_START = "--model.net=lab.nets.BadStartMLP"  # the MLP with output_gain and bias_init
# the last callback of configs/defaults.yaml: the diagnostics
DIAG = "--trainer.callbacks.init_args"
# BadStartMLP's options plus hidden_gain, output_init, act_shift
STUDY_NET = "--model.net=lab.nets.StudyMLP"


def sgd(lr: float, momentum: float = 0.0) -> tuple[str, ...]:
    """The textbook's optimiser instead of the template's AdamW + cosine decay + clipping at 1.0:
    SGD at a constant ``lr`` (``momentum`` 0: plain SGD), no weight decay, no schedule, no
    clipping."""
    return (
        "--model.optimizer=torch.optim.SGD",
        f"--model.optimizer.lr={lr:g}",
        f"--model.optimizer.momentum={momentum:g}",
        "--model.optimizer.weight_decay=0",
        "--model.scheduler=null",
        "--trainer.gradient_clip_val=null",
    )


def by_steps(steps: int, val_every: int, diag_every: int) -> tuple[str, ...]:
    """Train ``steps`` optimiser updates whatever the epoch length, validating every ``val_every``
    steps and measuring the gradients every ``diag_every`` (the probe batch at the same steps)."""
    return (
        "--trainer.max_epochs=-1",
        f"--trainer.max_steps={steps}",
        f"--trainer.val_check_interval={val_every}",
        "--trainer.check_val_every_n_epoch=null",
        f"{DIAG}.every_n_steps={diag_every}",
        f"{DIAG}.probe_every_n_steps={diag_every}",
    )


# Every run: the study preset on the MLP, no final test (the study reads val/acc), no progress bar
# in the logs.
BASE_ARGS = (
    "--config",
    str(REPO / "configs" / "net" / "mlp.yaml"),
    "--config",
    str(REPO / "configs" / "lab" / "study.yaml"),
    "--run_test=false",
    f"{DIAG}.figures=false",
    f"{DIAG}.probe_every_n_steps=50",  # the study reads the dead fraction at the end: keep it fresh
    "--trainer.enable_progress_bar=false",
)

# Quick mode (tests, a smoke check): a few batches, two short epochs; given after a claim's own
# args, so they win.
QUICK_ARGS = (
    "--trainer.limit_train_batches=6",
    "--trainer.max_epochs=2",
    "--trainer.callbacks.init_args.every_n_steps=2",
    "--trainer.callbacks.init_args.probe_every_n_steps=2",
    # a claim validating every N steps would never reach N in quick mode
    "--trainer.val_check_interval=1.0",
    "--trainer.check_val_every_n_epoch=1",
)


@dataclass(frozen=True)
class Variant:
    """One configuration of a claim: a short name, its CLI overrides, and where it sits in a
    heatmap."""

    name: str
    overrides: tuple[str, ...] = ()
    cell: tuple[str, str] | None = None  # (row, column), for claims drawn as a heatmap


@dataclass(frozen=True)
class Job:
    """One run: a claim's variant with one seed."""

    claim: str
    variant: Variant
    seed: int

    @property
    def label(self) -> str:
        return f"{self.claim}/{self.variant.name}/s{self.seed}"


def command(
    job: Job,
    *,
    study_id: str,
    parent_run_id: str,
    experiment: str,
    data_dir: str,
    claim_args: tuple[str, ...],
    extra: list[str],
) -> list[str]:
    """The CLI arguments (``fit ...``, for ``mnist_lab.cli.main``): the claim's shared args, then
    the variant's, then the caller's (the later wins)."""
    tags = {
        PARENT_TAG: parent_run_id,
        "study": study_id,
        "study.claim": job.claim,
        "study.variant": job.variant.name,
        "study.seed": str(job.seed),
    }
    return [
        "fit",
        *BASE_ARGS,
        f"--seed_everything={job.seed}",
        f"--data.data_dir={data_dir}",
        f"--trainer.logger.init_args.experiment_name={experiment}",
        f"--trainer.logger.init_args.run_name={job.label}",
        f"--trainer.logger.init_args.tags={json.dumps(tags)}",
        *claim_args,
        *job.variant.overrides,
        *extra,
    ]
