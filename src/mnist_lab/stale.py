"""Runs left RUNNING by a process that can no longer end them (``kill -9``, the out-of-memory killer).

A run records its host, PID and the process's start time as tags when it starts or is resumed. A
later command on the same host (a training, a sweep, ``make ui``, ``make runs-clean``) ends the
RUNNING runs whose process is gone, or whose PID now belongs to another process, as KILLED. Runs of
other hosts are left alone: from here, nothing can tell whether their process still runs.
``python -m mnist_lab.stale`` does it for ``$MLFLOW_TRACKING_URI``, else the local store (outside
``mnist_lab.tracking``, whose Lightning import takes seconds).
"""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path
from typing import Any

HOST, PID, START = "process.host", "process.pid", "process.start"


def started(pid: int) -> str:
    """Which process ``pid`` is, as ``<PID namespace> <boot id>:<start in clock ticks since boot>`` (Linux);
    "" if unknown or ended. The namespace: a container can share the host's name, never its PIDs."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        namespace = os.readlink("/proc/self/ns/pid")
    except OSError:
        return ""
    fields = stat[stat.rindex(")") + 2 :].split()  # after the command name, which may hold spaces
    return "" if fields[0] == "Z" else f"{namespace} {boot}:{fields[19]}"  # a zombie has ended; field 22: start


def no_local_store(uri: str) -> bool:
    """A local sqlite store whose file does not exist yet (asking MLflow anything would create it)."""
    return uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).is_file()


def tag_process(client: Any, run_id: str) -> None:
    """Record this process on the run (``RunLogger`` calls it when the run starts or resumes)."""
    from mlflow.entities import RunTag

    tags = {HOST: socket.gethostname(), PID: str(os.getpid()), START: started(os.getpid())}
    client.log_batch(run_id, tags=[RunTag(key, value) for key, value in tags.items() if value])


def gone(pid: int, start: str) -> bool:
    """Whether process ``pid``, started at ``start`` (:func:`started`; "" if unknown), has ended."""
    if start.split(" ")[0] != started(os.getpid()).split(" ")[0]:
        return False  # recorded in another PID namespace (a container, or the host seen from one): cannot tell
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # it runs, as another user: nothing more can be compared
    return bool(start) and started(pid) != start  # ended, and the PID reused by another process


def end_stale_runs(client: Any) -> list[str]:
    """End KILLED the RUNNING runs of this host whose process is gone; say so for each; return their ids."""
    host = socket.gethostname()
    experiments = [e.experiment_id for e in client.search_experiments()]
    query = f"attributes.status = 'RUNNING' and tags.`{HOST}` = '{host}'"
    ended = []
    for run in client.search_runs(experiments, query) if experiments else []:
        pid, start = run.data.tags.get(PID, ""), run.data.tags.get(START, "")
        if not pid.isdigit() or not gone(int(pid), start):
            continue
        why = f"its process {pid} on {host} ended without ending the run (killed with -9, or out of memory)"
        client.set_tag(run.info.run_id, "error", why)
        client.set_terminated(run.info.run_id, "KILLED")
        print(f"run {run.info.run_name!r} ({run.info.run_id}) marked KILLED: {why}", flush=True)
        ended.append(run.info.run_id)
    return ended


def main() -> int:
    """``make runs-clean`` (and ``make ui`` first): end the stale runs of the store; a missing store has none."""
    uri = os.environ.get("MLFLOW_TRACKING_URI") or "sqlite:///mlruns/mlflow.db"  # as resolve_tracking_uri
    if no_local_store(uri):
        return 0  # no store yet: nothing can be stale, and creating one here would be a surprise
    from mlflow import MlflowClient

    try:
        ended = end_stale_runs(MlflowClient(uri))
    except Exception as err:  # noqa: BLE001 - sqlalchemy, MLflow and OS errors all mean "store unusable"
        print(f"error: cannot open the MLflow store {uri}: {type(err).__name__}: {err}", file=sys.stderr)
        return 2
    if not ended:
        print(f"no RUNNING run of {socket.gethostname()} has lost its process ({uri})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
