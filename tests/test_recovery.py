"""Interrupt, resume, extend and diverge: real signals to a real CLI process, a real sqlite store."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import lightning as L
import pytest
import torch
from mlflow import MlflowClient

from mnist_lab.cli import main
from mnist_lab.recovery import REQUEST
from tiny_cli import REPO, tiny_args, tiny_cnn

pytestmark = pytest.mark.slow


def history_steps(client: MlflowClient, run_id: str, key: str) -> list[int]:
    return [m.step for m in client.get_metric_history(run_id, key)]


def assert_no_duplicate_steps(client: MlflowClient, run_id: str) -> None:
    for key in client.get_run(run_id).data.metrics:
        if key == "epoch":  # Lightning itself logs `epoch` with every epoch-end metric, at one step
            continue
        steps = history_steps(client, run_id, key)
        assert len(steps) == len(set(steps)), f"{key} logged twice at one step: {sorted(steps)}"


def which_cli(workdir: Path, args: list[str]) -> str:
    """Where the failed process's ``mnist_lab`` and its configs came from (a failure's context)."""
    probe = "import mnist_lab.cli as c, os; print(c.__file__, c.DEFAULT_CONFIGS, sorted(os.environ))"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "tests"), str(REPO / "src")])}
    return subprocess.run([args[0], "-c", probe], cwd=workdir, env=env, capture_output=True, text=True).stdout


def start_and_signal(
    command: list[str], workdir: Path, uri: str, signum: int, experiment: str = "mnist"
) -> tuple[subprocess.CompletedProcess, str]:
    """Start ``command`` (a training) in a process group of its own; once it has logged a training step, send
    ``signum`` to the whole group, as ``kill -- -PGID``, SLURM or a terminal's Ctrl-C do."""
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name(experiment) or client.get_experiment(
        client.create_experiment(experiment)
    )
    proc = subprocess.Popen(
        command,
        cwd=workdir,
        env={
            **os.environ,
            "MLFLOW_TRACKING_URI": uri,
            "PYTHONPATH": os.pathsep.join([str(REPO / "tests"), str(REPO / "src")]),
        },
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        deadline, run_id = time.monotonic() + 120, None
        while run_id is None:
            assert proc.poll() is None, proc.communicate()[1][-3000:] + which_cli(workdir, proc.args)
            assert time.monotonic() < deadline, "training did not start"
            time.sleep(0.5)
            runs = client.search_runs([experiment.experiment_id], "attributes.status = 'RUNNING'")
            if runs and "train/loss_step" in runs[0].data.metrics:
                run_id = runs[0].info.run_id
        os.killpg(proc.pid, signum)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:  # a failed assertion must not leave a long run behind
            proc.kill()
            proc.wait(timeout=30)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err), run_id


@pytest.mark.subprocess
@pytest.mark.parametrize(
    ("signum", "code", "resume_with"), [(signal.SIGINT, 130, "last"), (signal.SIGTERM, 143, "run")]
)
def test_a_signal_checkpoints_and_kills_the_run_and_resume_continues_it(
    signum: int, code: int, resume_with: str, fake_mnist: Path, tracking_uri: str, tmp_path: Path
) -> None:
    args = tiny_args(
        "fit",
        fake_mnist,
        "--data.batch_size=16",
        "--trainer.max_epochs=2",
        "--trainer.log_every_n_steps=1",
        "--run_test=false",
    )
    result, run_id = start_and_signal([sys.executable, "-m", "mnist_lab", *args], tmp_path, tracking_uri, signum)
    assert result.returncode == code, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    assert f"stopped by {signal.Signals(signum).name}" in result.stderr
    client = MlflowClient(tracking_uri)
    run = client.get_run(run_id)
    assert run.info.status == "KILLED"
    last = Path(run.data.tags["checkpoint.dir"]) / "last.ckpt"
    assert last.is_file()
    stopped_at = torch.load(last, weights_only=True)["global_step"]
    assert 0 < stopped_at < 2 * 63

    cli = main([*args, f"--ckpt_path={'last' if resume_with == 'last' else run_id}"])
    assert cli.trainer.logger.run_id == run_id, "resuming must continue the same MLflow run"
    assert cli.trainer.global_step == 2 * 63
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert history_steps(client, run_id, "val/acc") == [63 - 1, 126 - 1]
    assert_no_duplicate_steps(client, run_id)
    epoch_times = [m.value for m in client.get_metric_history(run_id, "time/epoch_s")]
    assert epoch_times and all(0 < t < 600 for t in epoch_times), epoch_times  # the resumed epoch's too
    assert len(client.search_runs([run.info.experiment_id])) == 1


class SlowSteps(L.Callback):
    """Steps long enough (a big network's) for a launcher's copy of the signal to come within the same step."""

    def on_train_batch_start(self, *args) -> None:
        time.sleep(1.0)


LAUNCHER = """import signal, subprocess, sys, time
child = subprocess.Popen(sys.argv[1:])
def forward(signum, frame):  # as srun or torchrun: pass the signal on to the job, after its own handling
    time.sleep(0.05)
    child.send_signal(signum)
for signum in (signal.SIGINT, signal.SIGTERM):
    signal.signal(signum, forward)
sys.exit(child.wait())
"""


@pytest.mark.subprocess
def test_sigterm_to_a_process_group_counts_once_and_the_run_resumes(
    fake_mnist: Path, tracking_uri: str, tmp_path: Path, repo_root: Path
) -> None:
    """`kill -TERM -- -PGID` (SLURM's way) reaches make, a launcher (srun, torchrun) and Python, and make and the
    launcher pass it on: Python gets it two or three times within a step, which must stop it only once."""
    (tmp_path / "launcher.py").write_text(LAUNCHER)
    args = tiny_args(
        "fit",
        fake_mnist,
        "--data.batch_size=16",
        "--trainer.max_epochs=2",
        "--trainer.log_every_n_steps=1",
        "--run_test=false",
        f"--trainer.default_root_dir={tmp_path / 'outputs'}",  # make runs in the checkout
    )
    slow = "--trainer.callbacks+=test_recovery.SlowSteps"
    launched = f"PY={sys.executable} {tmp_path / 'launcher.py'} {sys.executable}"
    make = ["make", "-s", "-C", str(repo_root), "train", launched, f"ARGS={' '.join(args[3:])} {slow}"]
    result, run_id = start_and_signal(make, tmp_path, tracking_uri, signal.SIGTERM)
    assert "stopped by SIGTERM; resume: the same command with RESUME=last" in result.stderr, result.stderr[-3000:]
    assert "no checkpoint" not in result.stderr and "Traceback" not in result.stderr
    client = MlflowClient(tracking_uri)
    run = client.get_run(run_id)
    assert run.info.status == "KILLED" and run.data.tags["error"] == "TrainingInterrupted: stopped by SIGTERM"
    assert (Path(run.data.tags["checkpoint.dir"]) / "last.ckpt").is_file()

    cli = main([*args, f"--ckpt_path={run_id}"])
    assert cli.trainer.logger.run_id == run_id and cli.trainer.global_step == 2 * 63
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED" and "error" not in run.data.tags, "the stop is over: its tag goes"


class StopAtStep(L.Callback):
    """Raise the stop flag as a signal would, at a chosen step."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_start(self, trainer: L.Trainer, *args) -> None:
        if trainer.global_step == self.step:
            REQUEST.signum = signal.SIGINT


@pytest.mark.parametrize("stop_at", [5, 15, 24])  # mid-epoch 0, the last batch of epoch 0, mid-epoch 1
def test_interrupted_then_resumed_training_ends_with_the_same_weights(
    stop_at: int, fake_mnist: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    common = [
        "--trainer.max_epochs=2",
        "--trainer.deterministic=true",
        "--trainer.logger=false",
        "--run_test=false",
    ]
    whole = main(tiny_args("fit", fake_mnist, *common, "--trainer.default_root_dir=whole"))
    interrupted = [*tiny_args("fit", fake_mnist, *common, "--trainer.default_root_dir=parts")]
    with pytest.raises(SystemExit) as exit_:
        main([*interrupted, "--trainer.callbacks+=test_recovery.StopAtStep", f"--trainer.callbacks.step={stop_at}"])
    assert exit_.value.code == 130
    resumed = main([*interrupted, "--ckpt_path=last"])
    assert resumed.trainer.global_step == whole.trainer.global_step == 2 * 16
    expected, actual = whole.model.state_dict(), resumed.model.state_dict()
    for name, value in expected.items():
        torch.testing.assert_close(actual[name], value, msg=f"{name} differs after resuming")


def test_extending_a_finished_run_replans_the_schedule_instead_of_training_at_lr_0(
    fake_mnist: Path, tracking_uri: str
) -> None:
    first = main(tiny_args("fit", fake_mnist, "--trainer.max_epochs=1"))
    run_id = first.trainer.logger.run_id
    with pytest.raises(SystemExit) as exit_:  # the same length again: nothing left to train
        main(tiny_args("fit", fake_mnist, "--trainer.max_epochs=1", f"--ckpt_path={run_id}"))
    assert exit_.value.code == 2
    longer = main(tiny_args("fit", fake_mnist, "--trainer.max_epochs=2", f"--ckpt_path={run_id}"))
    assert longer.trainer.logger.run_id == run_id
    lr = longer.trainer.optimizers[0].param_groups[0]
    client = MlflowClient(tracking_uri)
    lrs = client.get_metric_history(run_id, "lr-AdamW")
    assert [m.step for m in lrs] == [0, 16]
    assert lrs[-1].value > 0.1 * lr["initial_lr"], "the added epoch must not train at learning rate 0"
    assert client.get_run(run_id).info.status == "FINISHED"


def test_a_diverging_run_stops_with_one_message_and_fails(
    fake_mnist: Path, tracking_uri: str, capsys: pytest.CaptureFixture
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(
            tiny_args(
                "fit",
                fake_mnist,
                "--trainer.max_epochs=3",
                "--model.optimizer.init_args.lr=1e6",
                "--trainer.gradient_clip_val=null",
            )
        )
    assert exit_.value.code == 1
    err = capsys.readouterr().err
    assert "error: training diverged at step" in err and "(base 1e+06)" in err and "Try a smaller LR" in err
    run = MlflowClient(tracking_uri).search_runs(["1"])[0]
    assert run.info.status == "FAILED"
    assert run.data.tags["error"].startswith("DivergenceError")


class SignalDuringSetup(L.Callback):
    """A real SIGINT to this process while fit is still setting up (before any training step)."""

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        os.kill(os.getpid(), signal.SIGINT)


def test_a_signal_before_training_starts_writes_no_checkpoint(
    fake_mnist: Path, tracking_uri: str, capsys: pytest.CaptureFixture
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(tiny_args("fit", fake_mnist, "--trainer.callbacks+=test_recovery.SignalDuringSetup"))
    assert exit_.value.code == 130
    assert "no checkpoint was written" in capsys.readouterr().err
    assert not list(Path("outputs").rglob("*.ckpt")), "untrained weights must never become last.ckpt"
    (run,) = MlflowClient(tracking_uri).search_runs(["1"])
    assert run.info.status == "KILLED"


class SignalDuringTest(L.Callback):
    """A real SIGINT to this process as the test after fit starts."""

    def on_test_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        os.kill(os.getpid(), signal.SIGINT)


def test_a_signal_during_the_test_after_fit_keeps_and_uploads_the_checkpoints_and_says_so(
    fake_mnist: Path, tracking_uri: str, capsys: pytest.CaptureFixture
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(
            tiny_args(
                "fit", fake_mnist, "--trainer.max_epochs=1", "--trainer.callbacks+=test_recovery.SignalDuringTest"
            )
        )
    assert exit_.value.code == 130
    out, err = capsys.readouterr()
    assert "stopped by SIGINT during the test: fit had finished and its checkpoints are kept" in err
    assert "no checkpoint" not in err
    client = MlflowClient(tracking_uri)
    (run,) = client.search_runs(["1"])
    assert run.info.status == "KILLED"
    assert out.count(f"MLflow run {run.info.run_id} ") == 1, "the run ends once, KILLED, not first FINISHED after fit"
    uploaded = {artifact.path for artifact in client.list_artifacts(run.info.run_id)}
    assert "last" in uploaded and any(path.startswith("epoch00-") for path in uploaded), uploaded


def test_fit_then_test_ends_its_run_once_after_the_test(
    fake_mnist: Path, tracking_uri: str, capsys: pytest.CaptureFixture
) -> None:
    cli = main(tiny_args("fit", fake_mnist, "--trainer.max_epochs=1"))
    run_id = cli.trainer.logger.run_id
    out = capsys.readouterr().out
    assert out.count(f"MLflow run {run_id} ") == 1, out
    assert out.index("test/acc") < out.index(f"MLflow run {run_id} FINISHED"), "it ended before its test"
    assert "test/acc" in MlflowClient(tracking_uri).get_run(run_id).data.metrics


def test_the_same_signal_again_at_once_is_the_same_request_a_later_one_stops_at_once() -> None:
    from mnist_lab.errors import TrainingInterrupted
    from mnist_lab.recovery import REPEAT_S, StopRequest

    request = StopRequest()
    request.deferring = True
    request.handle(signal.SIGTERM, None)  # deferred: the training loop stops at the batch end
    request.handle(signal.SIGTERM, None)  # make, srun or torchrun passing the group's signal on: the same request
    time.sleep(REPEAT_S)
    with pytest.raises(TrainingInterrupted) as stop:  # a deliberate second one
        request.handle(signal.SIGTERM, None)
    assert stop.value.forced


def test_once_a_stop_is_under_way_further_signals_are_ignored() -> None:
    from mnist_lab.errors import TrainingInterrupted
    from mnist_lab.recovery import StopRequest

    request = StopRequest()
    request.deferring = True
    request.handle(signal.SIGINT, None)  # deferred: the training loop stops at the batch end
    request.stopping = True  # what StopOnSignal sets as it raises
    assert request.handle(signal.SIGINT, None) is None  # a second Ctrl-C cannot cut the checkpoint short
    request.stopping = False
    with pytest.raises(TrainingInterrupted):  # another signal (the same one within REPEAT_S is the same request)
        request.handle(signal.SIGTERM, None)


def test_resuming_a_schedule_that_ended_at_lr_0_is_an_error_before_the_run_is_touched(
    fake_mnist: Path, tracking_uri: str, capsys: pytest.CaptureFixture
) -> None:
    polynomial = ["--model.scheduler=torch.optim.lr_scheduler.PolynomialLR", "--model.scheduler.total_iters=16"]
    first = main(tiny_args("fit", fake_mnist, "--trainer.max_epochs=1", *polynomial))
    run_id = first.trainer.logger.run_id
    with pytest.raises(SystemExit) as exit_:
        main(tiny_args("fit", fake_mnist, "--trainer.max_epochs=2", f"--ckpt_path={run_id}", *polynomial))
    assert exit_.value.code == 2
    assert "was saved at learning rate 0" in capsys.readouterr().err
    assert MlflowClient(tracking_uri).get_run(run_id).info.status == "FINISHED"


def test_resume_last_is_the_newest_interrupted_run_and_other_settings_are_an_error(
    fake_mnist: Path, tracking_uri: str, capsys: pytest.CaptureFixture
) -> None:
    args = tiny_args("fit", fake_mnist, "--trainer.max_epochs=2", "--run_test=false")
    with pytest.raises(SystemExit) as exit_:
        main([*args, "--trainer.callbacks+=test_recovery.StopAtStep", "--trainer.callbacks.step=5"])
    assert exit_.value.code == 130
    client = MlflowClient(tracking_uri)
    (killed,) = client.search_runs(["1"])
    assert killed.info.status == "KILLED"
    finished = main(tiny_cnn(fake_mnist, "--run_test=false")).trainer.logger.run_id  # newer, with a last.ckpt
    capsys.readouterr()
    recipe = str(REPO / "configs" / "recipes" / "cnn.yaml")
    for extra, message in [
        (["--config", recipe], "data.init_args.augment=True (the checkpoint's: False)"),  # MODEL=cnn's recipe
        (["--model.net=mnist_lab.models.components.CNN"], "model.net.class_path='mnist_lab.models.components.CNN'"),
        (["--model.optimizer.init_args.lr=0.01"], "model.optimizer.init_args.lr=0.01 (the checkpoint's: 0.001)"),
        (["--config", str(REPO / "configs" / "debug.yaml")], "trainer.limit_train_batches="),  # PRESET=debug
        (["--seed_everything=7"], "seed_everything=7 (the run's: 42)"),
    ]:
        with pytest.raises(SystemExit) as exit_:
            main([*args, *extra, "--ckpt_path=last"])
        assert exit_.value.code == 2
        errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and "with other settings than it was trained with" in errors[0], errors
        assert message in errors[0]
    resumed = main([*args, "--ckpt_path=last"])
    assert resumed.trainer.logger.run_id == killed.info.run_id, "`last` must not be the newer, finished run"
    assert "resuming the newest interrupted run" in capsys.readouterr().out
    assert client.get_run(killed.info.run_id).info.status == client.get_run(finished).info.status == "FINISHED"
    with pytest.raises(SystemExit) as exit_:  # both finished now: nothing is interrupted
        main([*args, "--ckpt_path=last"])
    assert exit_.value.code == 2
    assert "error: no interrupted (KILLED or FAILED) run with a last.ckpt" in capsys.readouterr().err


def test_a_corrupt_local_last_ckpt_falls_back_to_the_copy_logged_with_the_run(
    fake_mnist: Path, tracking_uri: str, capsys: pytest.CaptureFixture
) -> None:
    args = tiny_args("fit", fake_mnist, "--trainer.max_epochs=2", "--run_test=false")
    with pytest.raises(SystemExit):  # in epoch 1: the run has uploaded a checkpoint as it ended
        main([*args, "--trainer.callbacks+=test_recovery.StopAtStep", "--trainer.callbacks.step=20"])
    (run,) = MlflowClient(tracking_uri).search_runs(["1"])
    last = Path(run.data.tags["checkpoint.dir"]) / "last.ckpt"
    last.write_bytes(last.read_bytes()[:1000])  # truncated, as a full disk leaves it
    resumed = main([*args, f"--ckpt_path={run.info.run_id}"])
    assert "using the copy logged with run" in capsys.readouterr().err
    assert resumed.trainer.logger.run_id == run.info.run_id and resumed.trainer.global_step == 2 * 16


@pytest.mark.subprocess
def test_make_train_resume_last_after_a_finished_run_is_one_error(fake_mnist: Path, tracking_uri: str) -> None:
    main(tiny_args("fit", fake_mnist, "--trainer.max_epochs=1", "--run_test=false"))
    result = subprocess.run(
        ["make", "-s", "-C", str(REPO), "train", "RESUME=last", f"DATA_DIR={fake_mnist}"],
        capture_output=True,
        text=True,
        env={**os.environ, "MLFLOW_TRACKING_URI": tracking_uri},
        timeout=300,
    )
    assert result.returncode == 2, result.stderr[-2000:]
    assert "error: no interrupted (KILLED or FAILED) run with a last.ckpt in experiment 'mnist'" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.subprocess
def test_runs_whose_process_is_gone_are_marked_killed_by_the_next_command(
    tracking_uri: str, tmp_path: Path, repo_root: Path
) -> None:
    """A run cannot end itself after `kill -9`: `make runs-clean` (and `make ui`, a training, a sweep) ends it."""
    from mnist_lab.parts.stale import HOST, PID, START, started, tag_process

    client = MlflowClient(tracking_uri)
    experiment_id = client.create_experiment("mnist")
    starts_a_run = (
        "import sys, time; from mlflow import MlflowClient; from mnist_lab.parts.stale import tag_process\n"
        "client = MlflowClient(); run = client.create_run(sys.argv[1]); tag_process(client, run.info.run_id)\n"
        "print(run.info.run_id, flush=True); time.sleep(600)"
    )
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking_uri}
    proc = subprocess.Popen(
        [sys.executable, "-c", starts_a_run, experiment_id], env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        killed = proc.stdout.readline().strip()
    finally:
        proc.kill()  # -9
        proc.wait(timeout=30)
    here, namespace = socket.gethostname(), started(os.getpid()).split(" ")[0]
    alive = client.create_run(experiment_id).info.run_id  # this process's
    tag_process(client, alive)
    reused = client.create_run(experiment_id, tags={HOST: here, PID: str(os.getpid()), START: f"{namespace} b:1"})
    elsewhere = client.create_run(experiment_id, tags={HOST: "another-host", PID: str(proc.pid)}).info.run_id
    container = client.create_run(experiment_id, tags={HOST: here, PID: str(proc.pid), START: "pid:[1] b:1"})

    result = subprocess.run(
        ["make", "-s", "-C", str(repo_root), "runs-clean", f"PY={sys.executable}"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert sorted(line.split("(")[1].split(")")[0] for line in result.stdout.splitlines()) == sorted(
        [killed, reused.info.run_id]
    ), result.stdout
    assert f"its process {proc.pid} on {here} ended" in result.stdout
    expected = {killed: "KILLED", reused.info.run_id: "KILLED", alive: "RUNNING", elsewhere: "RUNNING"}
    for run_id, status in {**expected, container.info.run_id: "RUNNING"}.items():
        run = client.get_run(run_id)
        assert run.info.status == status, run_id
        assert (run.info.end_time is not None) == (status == "KILLED")
