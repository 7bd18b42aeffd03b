"""What the sweep part's tests share (`make drop PART=sweep` deletes it with them): sweep files of a
few tiny trials, the command that runs a sweep in a process of its own, and the runs it made."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from holding import HOLD_DIR, child_env
from mlflow import MlflowClient

from tiny_cli import LEAN

# Every trial: two epochs of 4 batches on the tiny MNIST, the core's callbacks only, at the default
# heartbeat (10 s; a killed trial is stale after 20 s): at 2 s and at 5 s a full suite on 3 workers
# failed a live trial of the two-host sweep.
BASE = f"""
experiment: sweeps
n_trials: {{n_trials}}
configs: [{LEAN}]
args: [--trainer.max_epochs=2, --trainer.limit_train_batches=4, --trainer.limit_val_batches=2,
       --run_test=false, --model.net.init_args.width=32]
"""
# Three enqueued trials that must end complete, pruned and failed, whatever the sampler does.
FORCED = """
study: forced
sampler: {seed: 0}
pruner: {n_startup_trials: 1, n_warmup_steps: 0}  # prune from the 2nd trial's first epoch on
enqueue:
  - {lr: 0.01, activation: relu}                # complete: learns the fake digits in a few batches
  - {lr: 1.0e-6, activation: relu}              # pruned after epoch 0: far below trial 0 there
  - {lr: 0.01, activation: no_such_activation}  # fails: the network rejects the activation
space:
  lr: {type: float, low: 1.0e-6, high: 0.05, log: true}
  activation: {type: categorical, choices: [relu, no_such_activation]}
"""
PLAIN = """
study: plain
sampler: {seed: 0}
pruner: {n_startup_trials: 100}  # never prunes: only the stop and the resume matter here
space:
  lr: {type: float, low: 1.0e-3, high: 0.05, log: true}
"""


def write_sweep(folder: Path, body: str, n_trials: int) -> Path:
    path = folder / "sweep.yaml"
    path.write_text(BASE.format(n_trials=n_trials) + body)
    return path


def held_at_step_1(slots: int) -> list[str]:
    """Trial arguments: the first ``slots`` trials to reach step 1 are held there (``holding``)."""
    hold = "--trainer.callbacks+=holding.Hold"
    return [hold, "--trainer.callbacks.step=1", f"--trainer.callbacks.slots={slots}"]


def start_sweep(
    cwd: Path, uri: str, hold: Path, *args: str, stdout: int = subprocess.PIPE
) -> subprocess.Popen:
    """``python -m mnist_lab.parts.sweep *args`` in ``cwd``, on the store ``uri``, its trials able
    to be held in ``hold`` (the trial arguments after ``--`` among ``args``)."""
    env = child_env(MLFLOW_TRACKING_URI=uri, **{HOLD_DIR: str(hold)})
    env.pop("TEMPLATE_COMMAND", None)  # not `make sweep`'s advice: this command's
    return subprocess.Popen(
        [sys.executable, "-m", "mnist_lab.parts.sweep", *args],
        cwd=cwd,
        env=env,
        stdout=stdout,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def runs_by_role(uri: str) -> tuple[list, list]:
    """The sweep's parent runs and child runs in the `sweeps` experiment."""
    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("sweeps").experiment_id])
    parents = [r for r in runs if r.data.tags.get("sweep.role") == "parent"]
    return parents, [r for r in runs if "mlflow.parentRunId" in r.data.tags]
