"""The team and sweep parts together: a sweep from two hosts (two working directories stand in for
them) fills one study in the team's PostgreSQL and one parent run on its MLflow server, and outlives
a worker killed with -9: the first host starts it, the second joins it (`make sweep RESUME=1`),
JOBS=2 each."""

from __future__ import annotations

import os
import re
import signal
import subprocess
from collections import Counter
from pathlib import Path

import optuna
import pytest
from holding import held
from mlflow import MlflowClient
from sweeping import PLAIN, held_at_step_1, runs_by_role, start_sweep, write_sweep
from team_up import Team

from helpers import with_group

from mnist_lab.parts.sweep.runner import best_run
from mnist_lab.resume import load_classifier

pytestmark = [
    pytest.mark.xdist_group("team"),  # one `make team-up` (conftest)
    pytest.mark.server,
    pytest.mark.subprocess,
    pytest.mark.slow,  # `make team-up`, then a sweep that waits out a killed trial's heartbeat
    pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning"),
]


def test_a_sweep_from_two_hosts_fills_one_study_and_parent_and_outlives_a_killed_worker(
    team: Team,
    fake_mnist: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sweep_file, hold = write_sweep(tmp_path, PLAIN, n_trials=4), tmp_path / "hold"
    hold.mkdir()
    args = [f"--sweep={sweep_file}", f"--storage={team.storage}", "--jobs=2"]
    trial_args = ["--", *held_at_step_1(slots=4)]  # each host's two first trials

    def host(name: str, *extra: str) -> subprocess.Popen:
        (tmp_path / name).mkdir()
        options = [*args, f"--data-dir={fake_mnist}", *extra, *trial_args]
        return start_sweep(tmp_path / name, team.uri, hold, *options)

    hosts = [host("a")]
    try:
        held(hold, slots=2, procs=hosts)  # the first host made the study and its parent run
        hosts.append(host("b", "--resume"))
        pids = held(hold, slots=4, procs=hosts)
        killed = pids[2]  # one of the second host's workers, in its trial
        os.kill(killed, signal.SIGKILL)
        for pid in pids[:2] + pids[3:]:
            os.kill(pid, signal.SIGUSR1)
        outputs = [proc.communicate(timeout=240)[0] for proc in hosts]
    finally:
        for proc in hosts:
            with_group(proc, signal.SIGKILL)
    codes = [proc.returncode for proc in hosts]
    assert codes == [0, 128 + signal.SIGKILL], "\n".join(out[-2000:] for out in outputs)
    assert all(re.search(r"^trial \d+: ", out, re.MULTILINE) for out in outputs), "both ran some"

    study = optuna.load_study(study_name="plain", storage=team.storage)
    states = Counter(t.state.name for t in study.trials)
    tails = "\n".join(out[-3000:] for out in outputs)  # each failed trial's reason is printed
    assert states["FAIL"] == 1 and states["RUNNING"] == 0 and states["COMPLETE"] >= 4, (
        f"{states}\n{tails}"
    )
    (parent,), children = runs_by_role(team.uri)
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {parent.info.run_id}
    assert len(children) == len(study.trials), "one child run per trial, over both hosts"
    assert {c.info.status for c in children} == {"FINISHED", "KILLED"}
    (dead,) = [c for c in children if c.info.status == "KILLED"]
    (failed,) = [t for t in study.trials if t.state.name == "FAIL"]
    assert dead.data.tags["sweep.trial"] == str(failed.number)

    monkeypatch.setenv("MLFLOW_TRACKING_URI", team.uri)  # `make register STUDY=plain` reads this
    best = study.best_trial.user_attrs["mlflow_run_id"]
    assert best_run("plain") == best == parent.data.tags["best.run_id"]
    load_classifier(best)  # its best checkpoint, found through the server
    assert MlflowClient(team.uri).get_run(best).data.tags["sweep.state"] == "complete"
