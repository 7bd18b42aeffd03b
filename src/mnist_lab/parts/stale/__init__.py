"""Runs left RUNNING by a process that can no longer end them (``kill -9``, the out-of-memory
killer).

A run records its host, machine, PID and process start as tags (:class:`~.callback.StaleRuns`); a
later training, ``make ui`` or ``make runs-clean`` on the same machine ends KILLED the RUNNING runs
whose process is gone, whose PID another process now has, or whose machine has rebooted since. Runs
of other machines (even of the same host name) or other PID namespaces are left alone: nothing here
can tell if they still run. This module imports no Lightning, so ``make runs-clean`` is quick.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

HOST, MACHINE, PID, START = "process.host", "process.machine", "process.pid", "process.start"


def read(path: str) -> str:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return ""


def started(pid: int) -> str:
    """Which process ``pid`` is: ``<PID namespace> <boot id>:<start in clock ticks since boot>``
    (Linux); "" if unknown or ended. A container can share the host's name, never its PIDs."""
    stat, boot = read(f"/proc/{pid}/stat"), read("/proc/sys/kernel/random/boot_id")
    try:
        namespace = os.readlink("/proc/self/ns/pid")
    except OSError:
        return ""
    if not stat or not boot:
        return ""
    fields = stat[stat.rindex(")") + 2 :].split()  # after the command name, which may hold spaces
    return "" if fields[0] == "Z" else f"{namespace} {boot}:{fields[19]}"  # a zombie has ended


def tag_process(client: Any, run_id: str) -> None:
    """Record this process on the run."""
    from mlflow.entities import RunTag

    me = os.getpid()
    tags = {
        HOST: socket.gethostname(),
        MACHINE: read("/etc/machine-id"),
        PID: str(me),
        START: started(me),
    }
    client.log_batch(run_id, tags=[RunTag(key, value) for key, value in tags.items() if value])


def gone(pid: int, start: str, machine: str = "") -> bool:
    """Whether process ``pid``, started at ``start`` on ``machine`` ("" if unknown), has ended."""
    if machine and machine != read("/etc/machine-id"):
        return False  # another machine with this host name: cannot tell
    namespace, _, boot = start.partition(" ")
    here, _, boot_here = started(os.getpid()).partition(" ")
    if namespace != here:
        return False  # recorded in another PID namespace (a container, or the host seen from one)
    if boot and boot.split(":")[0] != boot_here.split(":")[0]:
        return True  # this machine has rebooted since: every process of before is gone
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # it runs, as another user: nothing more can be compared
    return bool(start) and started(pid) != start  # ended, and the PID reused by another process


def end_stale_runs(client: Any) -> list[str]:
    """End KILLED the RUNNING runs of this host whose process is gone; say so; return their ids."""
    host = socket.gethostname()
    experiments = [e.experiment_id for e in client.search_experiments()]
    query = f"attributes.status = 'RUNNING' and tags.`{HOST}` = '{host}'"
    ended = []
    for run in client.search_runs(experiments, query) if experiments else []:
        tags = run.data.tags
        pid = tags.get(PID, "")
        if not pid.isdigit() or not gone(int(pid), tags.get(START, ""), tags.get(MACHINE, "")):
            continue
        why = (
            f"its process {pid} on {host} ended without ending the run "
            "(killed with -9, or out of memory)"
        )
        client.set_tag(run.info.run_id, "error", why)
        client.set_terminated(run.info.run_id, "KILLED")
        print(f"run {run.info.run_name!r} ({run.info.run_id}) marked KILLED: {why}", flush=True)
        ended.append(run.info.run_id)
    return ended
