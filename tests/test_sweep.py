"""`make sweep`: trials are child runs of one parent, pruned and failed trials are recorded, a stopped sweep resumes."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import torch
import yaml
from mlflow import MlflowClient

from mnist_lab.errors import ConfigError
from mnist_lab.resume import load_classifier
from mnist_lab.parts.serve.registry import main as register
from mnist_lab.parts.sweep.runner import check_space, make_study, open_storage
from mnist_lab.parts.sweep.spec import load_spec

BASE = """
experiment: sweeps
n_trials: {n_trials}
args: [--trainer.max_epochs=2, --trainer.limit_train_batches=4, --trainer.limit_val_batches=2, --run_test=false,
       --trainer.logger.init_args.log_model=false,
       --trainer.enable_progress_bar=false, --trainer.enable_model_summary=false, --data.val_size=200,
       --data.batch_size=64, --model.net.init_args.width=32]
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
States = optuna.trial.TrialState
pytestmark = pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")  # heartbeats, on purpose


def write_sweep(tmp_path: Path, body: str, n_trials: int) -> Path:
    path = tmp_path / "sweep.yaml"
    path.write_text(BASE.format(n_trials=n_trials) + body)
    return path


def make_sweep(repo_root: Path, data: Path, *variables: str) -> subprocess.CompletedProcess:
    """`make sweep` into the store of the ``tracking_uri`` fixture (``$MLFLOW_TRACKING_URI``)."""
    here = Path.cwd()  # the fixture's tmp_path: make runs in the checkout, but checkpoints and artifacts go here
    client = MlflowClient()
    if client.get_experiment_by_name("sweeps") is None:
        client.create_experiment("sweeps", artifact_location=(here / "artifacts").as_uri())
    outputs = here / "outputs"
    return subprocess.run(
        ["make", "-s", "-C", str(repo_root), "sweep", f"DATA_DIR={data}", f"ARGS=--trainer.default_root_dir={outputs}"]
        + list(variables),
        capture_output=True,
        text=True,
        timeout=300,
    )


def runs_by_role(uri: str) -> tuple[list, list]:
    """The sweep's parent runs and child runs in the `sweeps` experiment."""
    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("sweeps").experiment_id])
    parents = [r for r in runs if r.data.tags.get("sweep.role") == "parent"]
    return parents, [r for r in runs if "mlflow.parentRunId" in r.data.tags]


# ---- the sweep file -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("param", "message"),
    [
        ("{type: normal, low: 0, high: 1}", "give `type:` one of"),
        ("{type: float, low: 0}", "missing 1 required positional argument: 'high'"),
        ("{type: int, low: 1, high: 4, choices: [1]}", "unexpected keyword argument 'choices'"),
    ],
)
def test_a_bad_parameter_fails_naming_it(tmp_path: Path, param: str, message: str) -> None:
    path = write_sweep(tmp_path, f"space:\n  lr: {param}\n", 2)
    with pytest.raises(ConfigError, match="'lr'") as err:
        load_spec(path)
    assert message in str(err.value)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("n_trial: 3\nspace: {lr: {type: float, low: 0.001, high: 0.1}}\n", "unknown key(s) ['n_trial']"),
        ("sampler: {sed: 1}\nspace: {lr: {type: float, low: 0.001, high: 0.1}}\n", "unexpected keyword argument 'sed'"),
        ("space: {lr: {type: float\n", "cannot read the sweep file"),
    ],
)
def test_a_bad_sweep_file_fails_in_one_line(tmp_path: Path, body: str, message: str) -> None:
    path = write_sweep(tmp_path, body, 2)
    with pytest.raises(ConfigError) as err:
        load_spec(path)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_a_name_that_is_no_short_name_nor_path_fails(tmp_path: Path) -> None:
    path = write_sweep(tmp_path, "space:\n  learning_rate: {type: float, low: 0.001, high: 0.1}\n", 2)
    with pytest.raises(ConfigError, match="'learning_rate' is neither a short name"):
        load_spec(path)


def test_an_unknown_cli_path_fails_before_any_trial(tmp_path: Path) -> None:
    path = write_sweep(tmp_path, "space:\n  model.net.init_args.no_such: {type: int, low: 1, high: 3}\n", 2)
    with pytest.raises(ConfigError, match="do not parse: .*no_such"):
        check_space(load_spec(path), [])


def test_a_resumed_study_draws_new_points_instead_of_replaying_the_first(tmp_path: Path) -> None:
    spec = load_spec(write_sweep(tmp_path, PLAIN, 4))
    storage = open_storage(f"sqlite:///{tmp_path / 'optuna.db'}")

    def draw(study: optuna.Study) -> list[float]:
        study.optimize(lambda trial: trial.suggest_float("lr", 1e-3, 0.05, log=True), n_trials=2)
        return [t.params["lr"] for t in study.trials[-2:]]

    first = draw(make_study(spec, storage, "plain", resume=False))
    again = draw(make_study(spec, storage, "plain", resume=True))
    assert not set(first) & set(again)  # the same seed would give the same start-up points again
    fresh = open_storage(f"sqlite:///{tmp_path / 'fresh.db'}")
    assert draw(make_study(spec, fresh, "plain", resume=False)) == first  # a new study is reproducible


@pytest.mark.parametrize("sweep", sorted((Path(__file__).parents[1] / "configs" / "sweeps").glob("*.yaml")))
def test_shipped_sweeps_parse(sweep: Path) -> None:
    spec = load_spec(sweep, quick=True)
    assert spec.n_trials >= 1 and spec.metric == "val/acc"
    assert spec.study == load_spec(sweep).study + "-quick"  # a smoke run leaves the real sweep's name free
    check_space(spec, [])
    assert spec.command({"batch_norm": True, "lr": 1e-06}, [])[-2:] == [
        "--model.net.init_args.batch_norm=true",
        "--model.optimizer.init_args.lr=1e-06",
    ]


# ---- whole sweeps -------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.subprocess
def test_trials_are_child_runs_complete_pruned_and_failed(
    repo_root: Path, fake_mnist: Path, tmp_path: Path, tracking_uri: str
) -> None:
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    sweep = write_sweep(tmp_path, FORCED, n_trials=3)
    result = make_sweep(repo_root, fake_mnist, f"SWEEP={sweep}", f"STORAGE={storage}")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    study = optuna.load_study(study_name="forced", storage=storage)
    assert [t.state for t in study.trials] == [States.COMPLETE, States.PRUNED, States.FAIL]
    assert study.trials[1].last_step == 0  # pruned by the Lightning callback after the first epoch

    (parent,), children = runs_by_role(tracking_uri)
    assert parent.info.status == "FINISHED" and parent.info.run_name == "sweep-forced"
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {parent.info.run_id}
    by_trial = {int(c.data.tags["sweep.trial"]): c for c in children}
    assert {n: by_trial[n].data.tags["sweep.state"] for n in by_trial} == {0: "complete", 1: "pruned", 2: "failed"}
    assert [by_trial[n].info.status for n in range(3)] == ["FINISHED", "FINISHED", "FAILED"]
    assert by_trial[0].data.params["model/optimizer/init_args/lr"] == "0.01"
    assert by_trial[0].data.metrics["val/acc"] == pytest.approx(study.best_value)
    assert study.trials[0].user_attrs["mlflow_run_id"] == by_trial[0].info.run_id

    client = MlflowClient(tracking_uri)
    assert parent.data.metrics["best/val/acc"] == pytest.approx(study.best_value)
    assert parent.data.tags["best.trial"] == "0" and parent.data.tags["best.lr"] == "0.01"
    assert "skipped: 1 complete trial(s)" in parent.data.tags["sweep.importance_note"]
    config = yaml.safe_load(
        Path(client.download_artifacts(parent.info.run_id, "best/config.yaml", str(tmp_path))).read_text()
    )
    assert config["model"]["optimizer"]["init_args"]["lr"] == 0.01  # the best trial's re-runnable config
    assert client.download_artifacts(parent.info.run_id, "plots/optimization_history.png", str(tmp_path))

    with pytest.raises(ConfigError, match="'forced' already exists .* RESUME=1"):  # a second start needs RESUME=1
        make_study(load_spec(sweep), open_storage(storage), "forced", resume=False)

    # `make register STUDY=forced`: the best trial (no model logged: it only validated) becomes @champion
    assert register(["--sweep", "forced"]) == 0
    champion = client.get_model_version_by_alias("mnist-classifier", "champion")
    assert champion.run_id == by_trial[0].info.run_id
    x = torch.randn(3, 1, 28, 28)
    assert torch.equal(load_classifier("models:/mnist-classifier@champion")(x), load_classifier(champion.run_id)(x))
    assert register(["--sweep", "nothing"]) == 2


@pytest.mark.slow
@pytest.mark.subprocess
def test_a_sweep_stopped_by_sigterm_resumes_into_the_same_parent(
    repo_root: Path, fake_mnist: Path, tmp_path: Path, tracking_uri: str
) -> None:
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    sweep = write_sweep(tmp_path, PLAIN, n_trials=3)
    cmd = [sys.executable, str(repo_root / "scripts" / "sweep.py"), f"--sweep={sweep}", f"--storage={storage}"]
    proc = subprocess.Popen(
        [*cmd, f"--data-dir={fake_mnist}"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and proc.poll() is None:  # stop it once trial 0 is done and trial 1 runs
        try:
            trials = optuna.load_study(study_name="plain", storage=storage).get_trials(deepcopy=False)
        except KeyError:  # the study is not created yet
            trials = []
        if any(t.number >= 1 and t.state == States.RUNNING for t in trials):
            break
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    stderr = proc.communicate(timeout=120)[1]
    assert proc.returncode == 128 + signal.SIGTERM, stderr[-3000:]
    assert "RESUME=1" in stderr
    study = optuna.load_study(study_name="plain", storage=storage)
    assert [t.state for t in study.trials] == [States.COMPLETE, States.FAIL]  # the stopped trial: FAIL, not RUNNING
    (parent,), _ = runs_by_role(tracking_uri)
    assert parent.info.status == "KILLED"

    result = make_sweep(repo_root, fake_mnist, f"SWEEP={sweep}", f"STORAGE={storage}", "RESUME=1")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    study = optuna.load_study(study_name="plain", storage=storage)
    assert [t.number for t in study.trials] == list(range(4))  # numbering continues after the stop
    assert len(study.get_trials(states=(States.COMPLETE, States.PRUNED))) == 3  # n_trials reached
    (resumed,), children = runs_by_role(tracking_uri)
    assert resumed.info.run_id == parent.info.run_id and resumed.info.status == "FINISHED"
    assert sorted(int(c.data.tags["sweep.trial"]) for c in children) == list(range(4))
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {parent.info.run_id}
    assert resumed.data.metrics["trials/complete"] == 3


@pytest.mark.slow
@pytest.mark.subprocess
def test_a_worker_killed_by_sigkill_leaves_its_run_killed_under_the_parent(
    repo_root: Path, fake_mnist: Path, tmp_path: Path, tracking_uri: str
) -> None:
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    sweep = write_sweep(tmp_path, PLAIN, n_trials=2)
    cmd = [sys.executable, str(repo_root / "scripts" / "sweep.py"), f"--sweep={sweep}", f"--storage={storage}"]
    proc = subprocess.Popen(  # a trial each; long enough to be caught training
        [*cmd, "--jobs=2", f"--data-dir={fake_mnist}", "--", "--trainer.max_epochs=20"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    client, deadline = MlflowClient(tracking_uri), time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:  # both workers are training: kill one outright
        experiment = client.get_experiment_by_name("sweeps")
        if experiment and len(client.search_runs([experiment.experiment_id], "attributes.status = 'RUNNING'")) == 3:
            break
        time.sleep(0.1)
    workers = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout.split()
    assert proc.poll() is None and workers, "both trials must still be training: " + proc.communicate()[0][-2000:]
    worker = int(workers[0])
    subprocess.run(["kill", "-9", str(worker)], check=True)
    output = proc.communicate(timeout=240)[0]
    assert proc.returncode == 128 + signal.SIGKILL, output[-3000:]  # the killed worker's share was not run
    assert "RESUME=1" in output and "ended KILLED" in output

    study = optuna.load_study(study_name="plain", storage=storage)
    assert sum(t.state == States.FAIL for t in study.trials) == 1 and States.RUNNING not in {
        t.state for t in study.trials
    }
    (parent,), children = runs_by_role(tracking_uri)
    assert parent.info.status == "KILLED"
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {parent.info.run_id}  # none orphaned
    (killed,) = [c for c in children if c.info.status == "KILLED"]
    assert killed.data.tags["sweep.state"] == "failed" and "killed" in killed.data.tags["error"]
    (failed,) = [t for t in study.trials if t.state == States.FAIL]
    assert killed.data.tags["sweep.trial"] == str(failed.number)
    assert all(c.info.status == "FINISHED" for c in children if c is not killed)
