"""The stale-runs part: a run records its process (host, machine, PID, start), and `make runs-clean`
(or the next training) ends KILLED the RUNNING runs whose process on this machine is gone, whose PID
another process has now, or whose machine has rebooted since; the runs it cannot judge (another
host, another machine of the same host name, another PID namespace) and the live ones stay."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from mlflow import MlflowClient

from helpers import Snapshot
from tiny_cli import tiny_args

from mnist_lab.cli import main
from mnist_lab.parts.stale import HOST, MACHINE, PID, START, read, started, tag_process
from mnist_lab.parts.stale.__main__ import main as runs_clean

STALE = "--trainer.callbacks+=mnist_lab.parts.stale.callback.StaleRuns"
MACHINE_ID = "/etc/machine-id"
BOOT_ID = "/proc/sys/kernel/random/boot_id"


def other(value: str) -> str:
    """Another value of the same form (a machine id, a boot id)."""
    return "".join("0" if c != "0" and c != "-" else ("1" if c == "0" else c) for c in value)


def this_process() -> tuple[str, str, str]:
    """This process's PID namespace, boot id and start (clock ticks), as `started` writes them."""
    namespace, _, rest = started(os.getpid()).partition(" ")
    boot, _, ticks = rest.partition(":")
    return namespace, boot, ticks


def test_a_run_records_its_process_as_the_part_reads_it(finished_mlp: Snapshot) -> None:
    tags = MlflowClient(finished_mlp.uri).get_run(finished_mlp.run_id).data.tags
    namespace, boot, _ = this_process()
    assert tags[HOST] == socket.gethostname() and tags[MACHINE] == read(MACHINE_ID)
    assert tags[PID].isdigit()
    recorded_namespace, _, recorded = tags[START].partition(" ")
    assert recorded_namespace == namespace and recorded.split(":")[0] == boot  # this boot
    assert recorded.split(":")[1].isdigit()


def stale_runs(client: MlflowClient, experiment: str, dead_pid: int) -> dict[str, str]:
    """A RUNNING run of each kind; the status each must have after a clean."""
    here, machine = socket.gethostname(), read(MACHINE_ID)
    namespace, boot, ticks = this_process()
    me, ours = str(os.getpid()), {HOST: here, MACHINE: machine}
    kinds = [
        ({**ours, PID: str(dead_pid), START: f"{namespace} {boot}:1"}, "KILLED"),  # gone
        ({**ours, PID: me, START: f"{namespace} {boot}:{int(ticks) + 1}"}, "KILLED"),  # reused
        ({**ours, PID: me, START: f"{namespace} {other(boot)}:{ticks}"}, "KILLED"),  # rebooted
        ({HOST: here, MACHINE: other(machine), PID: str(dead_pid)}, "RUNNING"),  # same name
        ({**ours, HOST: "another-host", PID: str(dead_pid)}, "RUNNING"),
        ({**ours, PID: str(dead_pid), START: f"pid:[1] {boot}:1"}, "RUNNING"),  # a container
    ]
    runs = {client.create_run(experiment, tags=tags).info.run_id: end for tags, end in kinds}
    alive = client.create_run(experiment).info.run_id
    tag_process(client, alive)  # this process: alive
    return {**runs, alive: "RUNNING"}


@pytest.mark.subprocess
def test_make_runs_clean_ends_only_the_runs_whose_process_is_gone(
    tracking_uri: str, repo_root: Path
) -> None:
    if not read(MACHINE_ID) or not started(os.getpid()):
        pytest.skip("needs Linux's /proc and /etc/machine-id")
    client = MlflowClient(tracking_uri)
    dead = subprocess.Popen(["true"])
    dead.wait()  # its PID is free (were it reused since, its start would differ: ended too)
    runs = stale_runs(client, client.create_experiment("mnist"), dead.pid)

    result = subprocess.run(
        ["make", "-s", "-C", str(repo_root), "runs-clean", f"PY={sys.executable}"],
        env={**os.environ, "MLFLOW_TRACKING_URI": tracking_uri},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    killed = {run_id for run_id, status in runs.items() if status == "KILLED"}
    said = {line.split("(")[1].split(")")[0] for line in result.stdout.splitlines()}
    assert said == killed, result.stdout
    for run_id, status in runs.items():
        found = client.get_run(run_id)
        assert found.info.status == status, (run_id, found.data.tags)
        assert (found.info.end_time is not None) == (status == "KILLED")
        assert ("killed with -9" in found.data.tags.get("error", "")) == (status == "KILLED")
    assert f"its process {dead.pid} on {socket.gethostname()} ended" in result.stdout


def test_runs_clean_without_a_store_makes_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    missing = tmp_path / "mlruns" / "mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{missing}")
    assert runs_clean() == 0
    assert not missing.exists() and not missing.parent.exists()


@pytest.mark.slow  # a short fit
def test_a_training_ends_the_stale_runs_of_this_machine_and_records_its_own_process(
    killed_mlp: Snapshot, clone: Callable, fake_mnist: Path
) -> None:
    copy = clone(killed_mlp)
    client = MlflowClient(copy.uri)
    namespace, boot, ticks = this_process()
    rebooted = {HOST: socket.gethostname(), MACHINE: read(MACHINE_ID), PID: str(os.getpid())}
    stale = client.create_run("1", tags={**rebooted, START: f"{namespace} {other(boot)}:1"})
    args = tiny_args("fit", fake_mnist, "--trainer.max_epochs=1", "--run_test=false", STALE)
    new = main([*args, "--trainer.limit_train_batches=2", "--trainer.limit_val_batches=1"])
    assert client.get_run(stale.info.run_id).info.status == "KILLED"
    assert client.get_run(killed_mlp.run_id).info.status == "KILLED", "it had ended already"
    tags = client.get_run(new.trainer.logger.run_id).data.tags
    assert (tags[PID], tags[START]) == (str(os.getpid()), started(os.getpid()))
