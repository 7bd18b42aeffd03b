"""The sweep part: `make sweep` runs an Optuna study whose trials are child runs of one parent run;
pruned and failed trials are recorded as such; a sweep stopped by a signal resumes into the same
parent; a worker killed with -9 leaves its run KILLED under the parent; a bad sweep file fails
before any trial, in one line naming what is wrong."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import optuna
import pytest
import yaml
from holding import held
from mlflow import MlflowClient
from sweeping import FORCED, PLAIN, held_at_step_1, runs_by_role, start_sweep, write_sweep

from helpers import wait_for, with_group
from tiny_cli import REPO

from mnist_lab.errors import ConfigError
from mnist_lab.parts.sweep.__main__ import main as sweep
from mnist_lab.parts.sweep.runner import best_run, check_space, make_study, open_storage
from mnist_lab.parts.sweep.spec import load_spec

States = optuna.trial.TrialState
LR = "model/optimizer/init_args/lr"
pytestmark = pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")


# ---- the sweep file -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("param", "named"),
    [
        ("{type: normal, low: 0, high: 1}", "give `type:` one of"),
        ("{type: float, low: 0}", "high"),  # the argument it lacks
        ("{type: int, low: 1, high: 4, choices: [1]}", "choices"),  # the one it does not take
    ],
)
def test_a_bad_parameter_fails_in_one_line_naming_it(
    tmp_path: Path, param: str, named: str
) -> None:
    path = write_sweep(tmp_path, f"space:\n  lr: {param}\n", 2)
    with pytest.raises(ConfigError, match="'lr'") as err:
        load_spec(path)
    assert named in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ("n_trial: 3\nspace: {lr: {type: float, low: 0.001, high: 0.1}}\n", "['n_trial']"),
        ("sampler: {sed: 1}\nspace: {lr: {type: float, low: 0.001, high: 0.1}}\n", "'sed'"),
        ("space: {lr: {type: float\n", "cannot read the sweep file"),
        ("space:\n  learning_rate: {type: float, low: 0.001, high: 0.1}\n", "'learning_rate'"),
        ("heartbeat: 0\nspace: {lr: {type: float, low: 0.001, high: 0.1}}\n", "heartbeat"),
    ],
    ids=["unknown key", "sampler argument", "not YAML", "neither a short name nor a path", "beat"],
)
def test_a_bad_sweep_file_fails_in_one_line_naming_what(
    tmp_path: Path, body: str, named: str
) -> None:
    with pytest.raises(ConfigError) as err:
        load_spec(write_sweep(tmp_path, body, 2))
    assert named in str(err.value) and "\n" not in str(err.value)


def test_an_unknown_cli_path_fails_before_any_trial(tmp_path: Path) -> None:
    space = "space:\n  model.net.init_args.no_such: {type: int, low: 1, high: 3}\n"
    path = write_sweep(tmp_path, space, 2)
    with pytest.raises(ConfigError, match="do not parse: .*no_such"):
        check_space(load_spec(path), [])


def test_a_resumed_study_draws_new_points_and_a_new_one_the_seeds(tmp_path: Path) -> None:
    spec = load_spec(write_sweep(tmp_path, PLAIN, 4))
    storage = open_storage(f"sqlite:///{tmp_path / 'optuna.db'}", spec.heartbeat)

    def draw(study: optuna.Study) -> list[float]:
        study.optimize(lambda trial: trial.suggest_float("lr", 1e-3, 0.05, log=True), n_trials=2)
        return [t.params["lr"] for t in study.trials[-2:]]

    first = draw(make_study(spec, storage, "plain", resume=False))
    again = draw(make_study(spec, storage, "plain", resume=True))
    assert not set(first) & set(again), "the seed's first points again would repeat trials"
    fresh = open_storage(f"sqlite:///{tmp_path / 'fresh.db'}", spec.heartbeat)
    assert draw(make_study(spec, fresh, "plain", resume=False)) == first, "reproducible"
    with pytest.raises(ConfigError, match="'plain' already exists .* RESUME=1"):
        make_study(spec, storage, "plain", resume=False)
    with pytest.raises(ConfigError, match="no study 'other' to continue"):
        make_study(spec, storage, "other", resume=True)


@pytest.mark.parametrize("sweep_file", sorted((REPO / "configs" / "sweeps").glob("*.yaml")))
def test_the_shipped_sweeps_parse_and_their_quick_study_is_another(sweep_file: Path) -> None:
    spec = load_spec(sweep_file, quick=True)
    assert spec.n_trials >= 1 and spec.metric == "val/acc"
    assert spec.study == load_spec(sweep_file).study + "-quick", "a smoke run leaves it free"
    check_space(spec, [])
    assert spec.command({"batch_norm": True, "lr": 1e-06}, [])[-2:] == [
        "--model.net.init_args.batch_norm=true",
        "--model.optimizer.init_args.lr=1e-06",
    ]


# ---- whole sweeps -------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.subprocess
def test_make_sweep_makes_trials_child_runs_complete_pruned_and_failed(
    fake_mnist: Path, tmp_path: Path, tracking_uri: str, capsys: pytest.CaptureFixture
) -> None:
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    sweep_file = write_sweep(tmp_path, FORCED, n_trials=3)
    client = MlflowClient(tracking_uri)  # make runs in the checkout: artifacts go here
    client.create_experiment("sweeps", artifact_location=(tmp_path / "artifacts").as_uri())
    variables = [f"SWEEP={sweep_file}", f"STORAGE={storage}", f"DATA_DIR={fake_mnist}"]
    made = subprocess.run(
        ["make", "-s", "-C", str(REPO), "sweep", *variables, f"ARGS={root_dir(tmp_path)}"],
        capture_output=True,
        text=True,
        timeout=280,
    )
    assert made.returncode == 0, made.stdout[-3000:] + made.stderr[-3000:]
    study = optuna.load_study(study_name="forced", storage=storage)
    assert [t.state for t in study.trials] == [States.COMPLETE, States.PRUNED, States.FAIL]
    assert study.trials[1].last_step == 0, "pruned by the Lightning callback after its 1st epoch"

    (parent,), children = runs_by_role(tracking_uri)
    assert parent.info.status == "FINISHED" and parent.info.run_name == "sweep-forced"
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {parent.info.run_id}
    by_trial = {int(c.data.tags["sweep.trial"]): c for c in children}
    states = {n: (run.data.tags["sweep.state"], run.info.status) for n, run in by_trial.items()}
    assert states == {
        0: ("complete", "FINISHED"),
        1: ("pruned", "FINISHED"),
        2: ("failed", "FAILED"),
    }
    assert by_trial[0].data.params[LR] == str(study.trials[0].params["lr"])
    assert by_trial[0].data.metrics["val/acc"] == pytest.approx(study.best_value)
    assert study.trials[0].user_attrs["mlflow_run_id"] == by_trial[0].info.run_id

    assert parent.data.metrics["best/val/acc"] == pytest.approx(study.best_value)
    assert parent.data.tags["best.trial"] == "0" and parent.data.tags["best.run_id"] == (
        by_trial[0].info.run_id
    )
    assert parent.data.tags["best.lr"] == str(study.trials[0].params["lr"])
    assert "skipped: 1 complete trial(s)" in parent.data.tags["sweep.importance_note"]
    best = client.download_artifacts(parent.info.run_id, "best/config.yaml", str(tmp_path))
    config = yaml.safe_load(Path(best).read_text())  # the best trial's, re-runnable
    assert config["model"]["optimizer"]["init_args"]["lr"] == study.trials[0].params["lr"]
    plots = {a.path for a in client.list_artifacts(parent.info.run_id, "plots")}
    assert "plots/optimization_history.png" in plots

    # `make register STUDY=forced` registers this run (tests/parts/test_sweep_serve.py)
    assert best_run("forced") == by_trial[0].info.run_id
    assert sweep(["--best-run", "--name", "forced"]) == 0
    assert capsys.readouterr().out.strip() == by_trial[0].info.run_id
    assert sweep(["--best-run", "--name", "nothing"]) == 2
    assert "no sweep 'nothing'" in capsys.readouterr().err


def root_dir(folder: Path) -> str:
    return f"--trainer.default_root_dir={folder / 'outputs'}"


@pytest.mark.slow
@pytest.mark.subprocess
def test_a_sweep_stopped_by_sigterm_resumes_into_the_same_parent(
    fake_mnist: Path, tmp_path: Path, tracking_uri: str
) -> None:
    storage, hold = f"sqlite:///{tmp_path / 'optuna.db'}", tmp_path / "hold"
    hold.mkdir()
    sweep_file = write_sweep(tmp_path, PLAIN, n_trials=3)
    args = [f"--sweep={sweep_file}", f"--storage={storage}", f"--data-dir={fake_mnist}"]
    proc = start_sweep(tmp_path, tracking_uri, hold, *args, "--", *held_at_step_1(slots=2))
    try:
        (pid,) = held(hold, procs=(proc,))  # trial 0, in the sweep's own process (one job)
        os.kill(pid, signal.SIGUSR1)
        wait_for(hold / "slot-1", proc)  # trial 1 runs: trial 0 is complete
        proc.send_signal(signal.SIGTERM)
        output = proc.communicate(timeout=120)[0]
    finally:
        with_group(proc, signal.SIGKILL)
    assert proc.returncode == 128 + signal.SIGTERM, output[-3000:]
    assert "the sweep is kept: continue it with" in output and "--resume" in output
    study = optuna.load_study(study_name="plain", storage=storage)
    assert [t.state for t in study.trials] == [States.COMPLETE, States.FAIL], "not RUNNING"
    (parent,), _ = runs_by_role(tracking_uri)
    assert parent.info.status == "KILLED"

    assert sweep([*args, "--resume"]) == 0  # in this process
    study = optuna.load_study(study_name="plain", storage=storage)
    assert [t.number for t in study.trials] == list(range(4)), "numbering goes on after the stop"
    assert len(study.get_trials(states=(States.COMPLETE, States.PRUNED))) == 3, "n_trials"
    (resumed,), children = runs_by_role(tracking_uri)
    assert resumed.info.run_id == parent.info.run_id and resumed.info.status == "FINISHED"
    assert sorted(int(c.data.tags["sweep.trial"]) for c in children) == list(range(4))
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {parent.info.run_id}
    assert resumed.data.metrics["trials/complete"] == 3


@pytest.mark.slow  # Optuna fails the killed trial once its heartbeat is stale
@pytest.mark.subprocess
def test_a_worker_killed_by_sigkill_leaves_its_run_killed_under_the_parent(
    fake_mnist: Path, tmp_path: Path, tracking_uri: str
) -> None:
    storage, hold = f"sqlite:///{tmp_path / 'optuna.db'}", tmp_path / "hold"
    hold.mkdir()
    sweep_file = write_sweep(tmp_path, PLAIN, n_trials=2)
    args = [f"--sweep={sweep_file}", f"--storage={storage}", "--jobs=2", f"--data-dir={fake_mnist}"]
    proc = start_sweep(tmp_path, tracking_uri, hold, *args, "--", *held_at_step_1(slots=2))
    try:
        killed, other = held(hold, slots=2, procs=(proc,))  # both workers, each in a trial
        os.kill(killed, signal.SIGKILL)
        os.kill(other, signal.SIGUSR1)
        output = proc.communicate(timeout=240)[0]
    finally:
        with_group(proc, signal.SIGKILL)
    assert proc.returncode == 128 + signal.SIGKILL, output[-3000:]  # its share was not run
    assert "--resume" in output and "ended KILLED" in output

    study = optuna.load_study(study_name="plain", storage=storage)
    assert [t.state for t in study.trials].count(States.FAIL) == 1
    assert States.RUNNING not in {t.state for t in study.trials}
    (parent,), children = runs_by_role(tracking_uri)
    assert parent.info.status == "KILLED"
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {parent.info.run_id}
    (dead,) = [c for c in children if c.info.status == "KILLED"]
    assert dead.data.tags["sweep.state"] == "failed" and "killed" in dead.data.tags["error"]
    (failed,) = [t for t in study.trials if t.state == States.FAIL]
    assert dead.data.tags["sweep.trial"] == str(failed.number)
    assert all(c.info.status == "FINISHED" for c in children if c is not dead)
