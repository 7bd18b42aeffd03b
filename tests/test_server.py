"""Everything through a real `mlflow server` (over a sqlite file in tmp): Ctrl-C then resume, two torchrun "nodes"
of one `fit`, and the server stopped for 20 s in the middle of a run."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from mlflow import MlflowClient

from mnist_lab.cli import main
from test_recovery import assert_no_duplicate_steps, history_steps, start_and_signal
from test_ui import free_port, get
from tiny_cli import tiny_args

pytestmark = [pytest.mark.server, pytest.mark.subprocess, pytest.mark.slow]


def serve(backend: Path, port: int | None = None) -> tuple[subprocess.Popen, str]:
    """Start `mlflow server` over the sqlite file ``backend`` (artifacts and ``server.log`` beside it), in a process
    group of its own; return it and its URI once it answers."""
    port, log = port or free_port(), (backend.parent / "server.log").open("a")
    proc = subprocess.Popen(
        [Path(sys.executable).parent / "mlflow", "server", "--host", "127.0.0.1", "--port", str(port), "--workers"]
        + ["1", "--backend-store-uri", f"sqlite:///{backend}", "--artifacts-destination", str(backend.parent / "art")],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},  # as `make ui` and `make team-up`
    )
    uri, deadline = f"http://127.0.0.1:{port}", time.monotonic() + 120
    while True:
        try:
            get(f"{uri}/health")
            return proc, uri
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                os.killpg(proc.pid, signal.SIGKILL)
                pytest.fail("mlflow server did not start:\n" + (backend.parent / "server.log").read_text()[-3000:])
            time.sleep(0.5)


@pytest.fixture(scope="session")
def server(empty_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One `mlflow server` for the tests that leave it running; its URI."""
    backend = tmp_path_factory.mktemp("server") / "server.db"
    shutil.copy(empty_store, backend)
    proc, uri = serve(backend)
    yield uri
    os.killpg(proc.pid, signal.SIGKILL)  # its store is thrown away: no need to wait for a graceful stop
    proc.wait(timeout=30)


def test_ctrl_c_then_resume_continues_the_same_run_through_the_server(
    fake_mnist: Path, server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    args = tiny_args("fit", fake_mnist, "--data.batch_size=16", "--trainer.max_epochs=2", "--run_test=false")
    args += ["--trainer.log_every_n_steps=1"]
    result, run_id = start_and_signal([sys.executable, "-m", "mnist_lab", *args], tmp_path, server, signal.SIGINT)
    assert result.returncode == 130, result.stderr[-3000:]
    client = MlflowClient(server)
    assert client.get_run(run_id).info.status == "KILLED"

    monkeypatch.setenv("MLFLOW_TRACKING_URI", server)
    monkeypatch.chdir(tmp_path)
    assert main([*args, f"--ckpt_path={run_id}"]).trainer.logger.run_id == run_id
    assert client.get_run(run_id).info.status == "FINISHED"
    assert history_steps(client, run_id, "val/acc") == [63 - 1, 126 - 1]
    assert_no_duplicate_steps(client, run_id)


def test_a_server_stopped_for_20_s_mid_run_is_ridden_out_and_loses_no_metric(
    fake_mnist: Path, empty_store: Path, tmp_path: Path
) -> None:
    """The default ``store_timeout_s=60`` outlasts a 20 s stop: the writes wait and are retried (a longer outage
    stops the run with ``last.ckpt``: ``test_outage``)."""
    shutil.copy(empty_store, tmp_path / "server.db")
    server, uri = serve(tmp_path / "server.db")
    args = tiny_args("fit", fake_mnist, "--trainer.max_epochs=2", "--data.batch_size=16", "--run_test=false")
    train = subprocess.Popen(
        [sys.executable, "-m", "mnist_lab", *args, "--trainer.log_every_n_steps=1"],
        cwd=tmp_path,
        env={**os.environ, "MLFLOW_TRACKING_URI": uri},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    store = MlflowClient(f"sqlite:///{tmp_path / 'server.db'}")  # the server's own store, read directly
    try:
        deadline = time.monotonic() + 120
        while not (runs := store.search_runs(["1"])) or "train/loss_step" not in runs[0].data.metrics:
            assert train.poll() is None and time.monotonic() < deadline, train.communicate()[1][-3000:]
            time.sleep(0.2)
        os.killpg(server.pid, signal.SIGSTOP)
        time.sleep(20)
        assert train.poll() is None, "the run waited for the server"
        os.killpg(server.pid, signal.SIGCONT)
        out, err = train.communicate(timeout=180)
        client = MlflowClient(uri)
        run = client.get_run(runs[0].info.run_id)
        steps = history_steps(client, run.info.run_id, "train/loss_step")
    finally:
        train.kill()
        os.killpg(server.pid, signal.SIGCONT)
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
    assert train.returncode == 0, err[-3000:]
    assert "error:" not in err and "Traceback" not in err and run.info.status == "FINISHED"
    assert sorted(steps) == list(range(126)), "every step's loss reached the server, once"


def test_two_torchrun_nodes_make_one_run_and_a_sigterm_to_both_leaves_a_killed_run_that_resumes(
    fake_mnist: Path, server: str, tmp_path: Path
) -> None:
    """Two `torchrun --nnodes=2` agents (the two hosts' commands) in one process group, so that one SIGTERM reaches
    both, as a cluster's scheduler does; they share the working directory (a shared file system)."""
    args = tiny_args(
        "fit", fake_mnist, "--trainer.max_epochs=2", "--data.batch_size=16", "--trainer.log_every_n_steps=1"
    )
    args += ["--trainer.strategy=ddp", "--trainer.devices=1", "--trainer.num_nodes=2", "--trainer.accelerator=cpu"]
    args += ["--trainer.logger.init_args.experiment_name=torchrun"]

    def nodes(*extra: str) -> list[str]:
        torchrun = [Path(sys.executable).parent / "torchrun", "--nnodes=2", "--nproc-per-node=1", "--rdzv-backend=c10d"]
        one = [*torchrun, f"--rdzv-endpoint=127.0.0.1:{free_port()}", "-m", "mnist_lab", *args, *extra]
        return ["bash", "-c", '"$@" & "$@"; wait', "nodes", *map(str, one)]

    client = MlflowClient(server)
    stopped, run_id = start_and_signal(nodes(), tmp_path, server, signal.SIGTERM, experiment="torchrun")
    (tmp_path / "stopped.log").write_text(stopped.stdout + stopped.stderr)  # what the user saw, for a reader
    assert stopped.stderr.count("stopped by SIGTERM; resume") == 1, stopped.stderr[-3000:]
    assert "]: Traceback" not in stopped.stderr, "no worker crashed (torchrun's agents show their own traceback)"
    run = client.get_run(run_id)
    assert run.info.status == "KILLED"
    assert torch.load(Path(run.data.tags["checkpoint.dir"]) / "last.ckpt", weights_only=True)["global_step"] > 0

    resumed = subprocess.run(
        nodes(f"--ckpt_path={run_id}"),
        cwd=tmp_path,
        env={**os.environ, "MLFLOW_TRACKING_URI": server},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert resumed.stdout.count("test/acc = ") == 1, resumed.stdout[-3000:]
    (run,) = client.search_runs([run.info.experiment_id])
    assert run.info.run_id == run_id and run.info.status == "FINISHED"
    assert history_steps(client, run_id, "val/acc") == [31, 63], "each node trains on its half: 32 steps an epoch"
    assert_no_duplicate_steps(client, run_id)
