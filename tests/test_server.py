"""Runs through a real `mlflow server` (a sqlite file, a port of its own): two torchrun "nodes" of
one fit stopped by one SIGTERM and resumed, and a server paused mid-run and ridden out."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from mlflow import MlflowClient

from helpers import (
    READY,
    env_for,
    mlflow_server,
    started_server,
    wait_for,
    wait_for_ranks,
    with_group,
)
from tiny_cli import tiny_args

pytestmark = [pytest.mark.server, pytest.mark.subprocess, pytest.mark.slow]
PAUSE_S = 3  # the server's outage: shorter than the bound below, so it must be ridden out


@pytest.fixture
def server(empty_store: Path, tmp_path: Path):
    shutil.copy(empty_store, tmp_path / "server.db")
    with started_server(mlflow_server(tmp_path / "server.db"), tmp_path / "server.log") as (
        proc,
        uri,
    ):
        yield proc, uri


def test_a_paused_server_is_ridden_out_and_no_metric_is_lost(
    server, fake_mnist: Path, tmp_path: Path
) -> None:
    """A server that answers again within ``store_timeout_s`` costs a wait, not a metric (a longer
    outage stops the run: the outage part's tests)."""
    proc, uri = server
    args = tiny_args("fit", fake_mnist, "--trainer.max_epochs=1", "--run_test=false")
    args += ["--trainer.log_every_n_steps=1", "--trainer.logger.init_args.store_timeout_s=30"]
    pause = ["--trainer.callbacks+=helpers.PauseAt", "--trainer.callbacks.step=4"]
    env = env_for(MLFLOW_TRACKING_URI=uri, **{READY: str(tmp_path / "ready")})
    pipes = {"stdout": subprocess.DEVNULL, "stderr": subprocess.PIPE, "text": True}
    train = subprocess.Popen([sys.executable, "-m", "mnist_lab", *args, *pause], env=env, **pipes)
    try:
        wait_for(tmp_path / "ready", train)
        os.killpg(proc.pid, signal.SIGSTOP)
        train.send_signal(signal.SIGUSR1)  # on: its next writes wait for the server
        time.sleep(PAUSE_S)
        assert train.poll() is None, "the run waits for the server"
    finally:
        os.killpg(proc.pid, signal.SIGCONT)
    assert train.wait(timeout=300) == 0, train.stderr.read()[-3000:]
    assert "error:" not in train.stderr.read()
    client = MlflowClient(uri)
    (run,) = client.search_runs(["1"])
    steps = sorted(m.step for m in client.get_metric_history(run.info.run_id, "train/loss_step"))
    assert run.info.status == "FINISHED" and steps == list(range(16)), "every step's loss, once"


def test_two_torchrun_nodes_make_one_run_that_one_sigterm_stops_and_resume_finishes(
    server, fake_mnist: Path, tmp_path: Path
) -> None:
    """Two `torchrun --nnodes=2` agents (the two hosts' commands) in one process group, so that one
    SIGTERM reaches both, as a cluster's scheduler does; they share the working directory."""
    _, uri = server
    args = tiny_args("fit", fake_mnist, "--trainer.max_epochs=2", "--trainer.strategy=ddp")
    args += ["--trainer.devices=1", "--trainer.num_nodes=2", "--trainer.accelerator=cpu"]
    torchrun = [str(Path(sys.executable).parent / "torchrun"), "--nnodes=2", "--nproc-per-node=1"]

    def nodes(*extra: str) -> subprocess.Popen:
        """Both agents; another rendezvous port if another process took the one drawn."""
        for _ in range(3):
            with socket.socket() as probe:
                probe.bind(("127.0.0.1", 0))
                port = probe.getsockname()[1]
            rdzv = ["--rdzv-backend=c10d", f"--rdzv-endpoint=127.0.0.1:{port}", "-m", "mnist_lab"]
            one = [*torchrun, *rdzv, *args, *extra]
            proc = subprocess.Popen(
                ["bash", "-c", '"$@" & "$@"; wait', "nodes", *one],
                env=env,
                cwd=tmp_path,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                start_new_session=True,
            )
            if "--ckpt_path" in " ".join(extra) or not taken(proc):
                return proc
        raise AssertionError("no free rendezvous port in 3 draws")

    def taken(proc: subprocess.Popen) -> bool:
        """Whether the agents failed to bind their port, having ended before pausing."""
        while not (tmp_path / "ready").exists() and proc.poll() is None:
            time.sleep(0.05)
        return proc.poll() is not None and "Address already in use" in proc.stderr.read()

    env = env_for(MLFLOW_TRACKING_URI=uri, **{READY: str(tmp_path / "ready")})
    proc = nodes("--trainer.callbacks+=helpers.PauseAt", "--trainer.callbacks.step=3")
    wait_for_ranks(tmp_path / "ready", 2, proc)  # both ranks wait
    with_group(proc, signal.SIGTERM)
    err = proc.stderr.read()
    assert err.count("stopped by SIGTERM; resume") == 1, err[-3000:]
    assert "]: Traceback" not in err, "no worker crashed (torchrun's agents show their tracebacks)"
    client = MlflowClient(uri)
    (run,) = client.search_runs(["1"])
    assert run.info.status == "KILLED"
    assert (
        torch.load(Path(run.data.tags["checkpoint.dir"]) / "last.ckpt", weights_only=True)[
            "global_step"
        ]
        > 0
    )

    resumed = nodes(f"--ckpt_path={run.info.run_id}")
    out, err = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, err[-3000:]
    assert out.count("test/acc = ") == 1
    (run,) = client.search_runs(["1"])
    assert run.info.status == "FINISHED"
    steps = [m.step for m in client.get_metric_history(run.info.run_id, "val/acc")]
    assert steps == [7, 15], "each node trains on its half: 8 steps an epoch"
