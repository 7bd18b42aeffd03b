"""A stopped study (`make compare`): a signal to its process group stops it once, its running run
ends KILLED, the queued runs never start, and no worker outlives it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest
from mlflow import MlflowClient

from helpers import READY, env_for, store_uri, wait_for

from mnist_lab.tracking.nesting import PARENT_TAG

REPO = Path(__file__).resolve().parents[2]
SEEDS = 3


def outliving(pids: list[int], timeout: float = 30) -> list[str]:
    """The processes of ``pids`` still running after ``timeout`` s: the resource tracker of
    multiprocessing ends when its parent's pipe closes, a moment after the study."""
    procs = []
    for pid in pids:
        try:
            procs.append(psutil.Process(pid))
        except psutil.NoSuchProcess:
            continue
    _, left = psutil.wait_procs(procs, timeout=timeout)
    return [f"{p.pid}: {p.cmdline()}" for p in left if p.status() != psutil.STATUS_ZOMBIE]


@pytest.mark.slow
@pytest.mark.subprocess
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=str)
def test_a_signal_to_the_group_stops_the_study_and_leaves_no_process(
    signum: int, fake_mnist: Path, tmp_path: Path
) -> None:
    """Ctrl-C or a SIGTERM reach the study and its workers at once. A closed terminal's SIGHUP
    takes the same handlers (the study and the CLI install all of ``recovery.SIGNALS`` as one);
    the CLI's tests send it."""
    ready = tmp_path / "ready"
    study = [sys.executable, str(REPO / "scripts" / "activation_study.py"), "--quick"]
    study += ["--seeds", str(SEEDS), "--jobs", "1", "--claim", "vanishing_gradients"]
    study += ["--data-dir", str(fake_mnist), "--", "--data.val_size=200"]
    study += ["--data.train_size=800", "--trainer.callbacks+=helpers.PauseAt"]
    env = env_for(MLFLOW_TRACKING_URI=store_uri(tmp_path), **{READY: str(ready)})
    proc = subprocess.Popen(
        study,
        cwd=tmp_path,
        env=env,
        start_new_session=True,  # its own process group, as a terminal gives it
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(ready, proc, timeout=240)  # a worker's first run is paused at its step 1
        group = [proc.pid, *(c.pid for c in psutil.Process(proc.pid).children(recursive=True))]
        os.killpg(proc.pid, signum)
        out, err = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
    assert proc.returncode == 128 + signum, err[-3000:]
    assert "stopped; its finished runs stay in MLflow" in err
    assert len(group) > 1 and outliving(group) == []
    client = MlflowClient(store_uri(tmp_path))
    runs = client.search_runs([client.get_experiment_by_name("activation-study").experiment_id])
    parent = next(r for r in runs if r.data.tags.get("study.parent") == "true")
    children = [r for r in runs if PARENT_TAG in r.data.tags]
    assert parent.info.status == "KILLED"
    assert [r.info.status for r in children] == ["KILLED"]  # the paused one; none queued started
