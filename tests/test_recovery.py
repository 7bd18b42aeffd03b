"""Stops: signals to a real CLI process or its whole group (make, a launcher), a closed terminal,
a closed pipe, and the stop request's rules; each stop's printed advice is run as printed."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import lightning as L
import pytest
import torch
from mlflow import MlflowClient

from helpers import READY, env_for, wait_for, with_group
from tiny_cli import LEAN, tiny_args

from mnist_lab import recovery
from mnist_lab.cli import main
from mnist_lab.errors import TrainingInterrupted
from mnist_lab.recovery import REQUEST, StopRequest

STEPS = 16  # an epoch of the tiny MNIST: 1000 training images in batches of 64


def ended(client: MlflowClient, run_id: str) -> tuple[str, list[int]]:
    run = client.get_run(run_id)
    return run.info.status, [m.step for m in client.get_metric_history(run_id, "val/acc")]


def no_step_twice(client: MlflowClient, run_id: str) -> None:
    for key in client.get_run(run_id).data.metrics:
        steps = [m.step for m in client.get_metric_history(run_id, key)]
        assert key == "epoch" or len(steps) == len(set(steps)), (
            f"{key} logged twice at a step: {steps}"
        )


def advice(stderr: str) -> str:
    """The command a stop printed (after ``resume: `` or ``test it: ``)."""
    line = next(line for line in stderr.splitlines() if line.startswith("stopped by"))
    return line.partition(": ")[2]


LAUNCHER = """import signal, subprocess, sys
child = subprocess.Popen(sys.argv[1:])
for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):  # as srun or torchrun: pass it on
    signal.signal(signum, lambda signum, frame: child.send_signal(signum))
sys.exit(child.wait())
"""


@pytest.mark.slow
@pytest.mark.subprocess
def test_sigterm_to_the_group_of_make_and_a_launcher_stops_once_and_the_advice_resumes(
    fake_mnist: Path, tracking_uri: str, tmp_path: Path, repo_root: Path
) -> None:
    """`kill -TERM -- -PGID` (SLURM's way) reaches make, a launcher and Python, and make and the
    launcher pass it on: Python gets it two or three times within a step, which must stop it once;
    the printed command (`make train ... RESUME=<run id>`) then continues the same run."""
    (tmp_path / "launcher.py").write_text(LAUNCHER)
    args = [
        f"--config {LEAN}",
        "--trainer.max_epochs=2",
        "--run_test=false",
        f"--trainer.default_root_dir={tmp_path / 'outputs'}",
    ]
    pause = "--trainer.callbacks+=helpers.PauseAt --trainer.callbacks.step=5"
    launched = f"PY={sys.executable} {tmp_path / 'launcher.py'} {sys.executable}"
    make = ["make", "-s", "-C", str(repo_root), "train", launched, f"DATA_DIR={fake_mnist}"]
    env = env_for(**{READY: str(tmp_path / "ready")})
    proc = subprocess.Popen(
        [*make, f"ARGS={' '.join([*args, pause])}"],
        env=env,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    wait_for(tmp_path / "ready", proc)
    assert with_group(proc, signal.SIGTERM) != 0
    err = proc.stderr.read()
    assert err.count("stopped by SIGTERM") == 1 and "Traceback" not in err, err[-3000:]
    client = MlflowClient(tracking_uri)
    (run,) = client.search_runs(["1"])
    assert run.info.status == "KILLED" and run.data.tags["error"].startswith("TrainingInterrupted")
    assert torch.load(Path(run.data.tags["checkpoint.dir"]) / "last.ckpt")["global_step"] == 6

    command = advice(err)  # as printed, without the pause (ARGS is the user's to change)
    assert command.startswith("make train") and command.endswith(f"RESUME={run.info.run_id}")
    again = subprocess.run(
        ["bash", "-c", f"cd {repo_root} && {command.replace(pause, '')}"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert again.returncode == 0, again.stderr[-3000:]
    assert ended(client, run.info.run_id) == ("FINISHED", [STEPS - 1, 2 * STEPS - 1])
    assert "error" not in client.get_run(run.info.run_id).data.tags, (
        "the stop is over: its tag goes"
    )
    no_step_twice(client, run.info.run_id)


@pytest.mark.slow
@pytest.mark.subprocess
@pytest.mark.parametrize("signum", [signal.SIGHUP, signal.SIGINT])
def test_a_closed_terminal_or_ctrl_c_saves_last_ckpt_and_resume_last_continues(
    signum: int, fake_mnist: Path, tracking_uri: str, tmp_path: Path
) -> None:
    """SIGHUP (a closed terminal, a dropped ssh) stops like SIGINT: last.ckpt, KILLED, 128 + n."""
    args = tiny_args("fit", fake_mnist, "--trainer.max_epochs=2", "--run_test=false")
    pause = ["--trainer.callbacks+=helpers.PauseAt", "--trainer.callbacks.step=20"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "mnist_lab", *args, *pause],
        env=env_for(**{READY: str(tmp_path / "ready")}),
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    wait_for(tmp_path / "ready", proc)
    assert with_group(proc, signum) == 128 + signum
    err = proc.stderr.read()
    name = signal.Signals(signum).name
    assert f"stopped by {name}; resume: python -m mnist_lab fit" in err, err[-2000:]
    assert "weights_only" not in err and "Warning" not in err, "only what asks something is printed"
    client = MlflowClient(tracking_uri)
    (run,) = client.search_runs(["1"])
    assert run.info.status == "KILLED"
    uploaded = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert "last" in uploaded, "a KILLED run uploads its last.ckpt: a logged copy exists"
    resumed = main([*args, "--ckpt_path=last"])
    assert resumed.trainer.logger.run_id == run.info.run_id
    assert ended(client, run.info.run_id) == ("FINISHED", [STEPS - 1, 2 * STEPS - 1])


@pytest.mark.slow
@pytest.mark.subprocess
@pytest.mark.parametrize("into", ["| head -n 3", "2>&1 | head -n 3", "> /dev/full"])
def test_a_closed_or_full_output_stops_the_printing_not_the_run(
    into: str, fake_mnist: Path, tracking_uri: str, repo_root: Path, tmp_path: Path
) -> None:
    """`make train | head`, a full or vanished terminal: the run goes on to its end."""
    args = " ".join(
        tiny_args(
            "fit",
            fake_mnist,
            "--trainer.max_epochs=2",
            f"--trainer.default_root_dir={tmp_path / 'out'}",
        )[1:]
    )
    command = (
        f"make -s -C {repo_root} train PY={sys.executable} ARGS='{args}' {into}; echo done >&2"
    )
    result = subprocess.run(
        ["bash", "-c", command], env=env_for(), capture_output=True, text=True, timeout=300
    )
    client = MlflowClient(tracking_uri)
    (run,) = client.search_runs(["1"])
    assert run.info.status == "FINISHED" and "test/acc" in run.data.metrics, result.stderr[-2000:]
    assert "Traceback" not in result.stderr and "BrokenPipe" not in result.stderr
    assert len(result.stdout.splitlines()) <= 3


class Stops(L.Callback):
    """Asks for a stop as a signal would (the handler's own path), at a step or a stage."""

    def __init__(self, step: int | None = None, during: str = "train") -> None:
        self.step, self.during = step, during

    def on_train_batch_start(self, trainer: L.Trainer, *args: object) -> None:
        if self.during == "train" and trainer.global_step == self.step:
            REQUEST.handle(signal.SIGINT, None)

    def on_validation_batch_start(self, trainer: L.Trainer, *args: object) -> None:
        last_epoch = trainer.current_epoch == trainer.max_epochs - 1
        if self.during == "last validation" and last_epoch and not trainer.sanity_checking:
            REQUEST.handle(signal.SIGINT, None)

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if self.during == "setup" or (self.during == "test" and stage == "test"):
            REQUEST.handle(signal.SIGINT, None)  # not between two steps: it stops at once


def stopped(args: list[str], callback: Stops) -> SystemExit:
    with pytest.raises(SystemExit) as exit_:
        main(args, callbacks=[callback])
    assert exit_.value.code == 128 + signal.SIGINT
    return exit_.value


@pytest.fixture(scope="module")
def whole(fake_mnist: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, torch.Tensor]:
    """An uninterrupted deterministic 2-epoch fit's weights, without a logger."""
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(tmp_path_factory.mktemp("whole"))
        cli = main(tiny_args("fit", fake_mnist, *DETERMINISTIC, "--run_test=false"))
    assert cli.trainer.global_step == 2 * STEPS
    return cli.model.state_dict()


DETERMINISTIC = ["--trainer.max_epochs=2", "--trainer.deterministic=true", "--trainer.logger=false"]


@pytest.mark.parametrize("stop_at", [5, STEPS - 1])  # mid-epoch, and the last batch of an epoch
@pytest.mark.slow
@pytest.mark.xdist_group("whole")  # one worker fits the reference once
def test_interrupted_then_resumed_training_ends_with_the_same_weights(
    stop_at: int, whole: dict, fake_mnist: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    args = tiny_args("fit", fake_mnist, *DETERMINISTIC, "--run_test=false")
    stopped(args, Stops(stop_at))
    resumed = main([*args, "--ckpt_path=last"])
    assert resumed.trainer.global_step == 2 * STEPS
    for name, value in whole.items():
        torch.testing.assert_close(resumed.model.state_dict()[name], value, msg=f"{name} differs")


def test_a_stop_before_training_starts_writes_no_checkpoint(
    fake_mnist: Path, tracking_uri: str, capsys: pytest.CaptureFixture
) -> None:
    stopped(tiny_args("fit", fake_mnist, "--trainer.max_epochs=1"), Stops(during="setup"))
    assert (
        "no checkpoint was written: start again with python -m mnist_lab fit"
        in capsys.readouterr().err
    )
    assert not list(Path("outputs").rglob("*.ckpt")), (
        "untrained weights must never become last.ckpt"
    )
    (run,) = MlflowClient(tracking_uri).search_runs(["1"])
    assert run.info.status == "KILLED"


@pytest.mark.parametrize("during", ["test", "last validation"])
@pytest.mark.slow
def test_a_stop_after_fit_keeps_the_checkpoints_and_its_advice_tests_the_same_run(
    during: str, fake_mnist: Path, tracking_uri: str, capsys: pytest.CaptureFixture
) -> None:
    """During the test after fit (or the last epoch's validation), a stop keeps fit's checkpoints,
    uploaded; the run is KILLED; the printed command then tests it, into the same run, once."""
    args = tiny_args("fit", fake_mnist, "--trainer.max_epochs=2")
    stopped(args, Stops(during=during))
    client = MlflowClient(tracking_uri)
    (run,) = client.search_runs(["1"])
    out, err = capsys.readouterr()
    assert run.info.status == "KILLED" and out.count(f"MLflow run {run.info.run_id} ") == 1
    assert "last" in {a.path for a in client.list_artifacts(run.info.run_id)}
    command = advice(err)
    assert command.endswith(f"--ckpt_path={run.info.run_id}"), err
    main(command.split()[3:])  # `python -m mnist_lab <args>`, in this process
    run = client.get_run(run.info.run_id)
    assert run.info.status == "FINISHED" and "test/acc" in run.data.metrics
    assert capsys.readouterr().out.count(f"MLflow run {run.info.run_id} FINISHED") == 1
    assert len(client.search_runs(["1"])) == 1


@pytest.mark.slow
def test_fit_then_test_ends_its_run_once_after_the_test(
    fake_mnist: Path, tracking_uri: str, capsys: pytest.CaptureFixture
) -> None:
    cli = main(tiny_args("fit", fake_mnist, "--trainer.max_epochs=1"))
    out = capsys.readouterr().out
    assert out.count(f"MLflow run {cli.trainer.logger.run_id} ") == 1
    assert out.index("test/acc") < out.index(f"MLflow run {cli.trainer.logger.run_id} FINISHED")


def test_the_same_signal_again_at_once_is_the_same_request_a_later_one_stops_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    now = [100.0]
    monkeypatch.setattr(recovery.time, "monotonic", lambda: now[0])
    request = StopRequest()
    request.deferring = True
    request.handle(signal.SIGTERM, None)  # deferred: the loop stops at the batch end
    now[0] += recovery.REPEAT_S / 2
    request.handle(signal.SIGTERM, None)  # make, srun or torchrun passing the group's signal on
    assert isinstance(request.reason, TrainingInterrupted) and not request.stopping
    now[0] += recovery.REPEAT_S
    with pytest.raises(TrainingInterrupted) as stop:  # a deliberate second one
        request.handle(signal.SIGTERM, None)
    assert stop.value.forced


def test_once_a_stop_is_under_way_further_signals_are_ignored() -> None:
    request = StopRequest()
    request.deferring = True
    request.handle(signal.SIGINT, None)
    request.stopping = True  # what Recovery sets as it raises the stop
    assert (
        request.handle(signal.SIGHUP, None) is None
    )  # a closed terminal cannot cut the checkpoint short
    request.stopping = False
    with pytest.raises(TrainingInterrupted):  # another signal, outside the repeat window
        request.handle(signal.SIGTERM, None)


@pytest.mark.slow
def test_a_part_asks_for_a_clean_stop_with_its_own_reason(
    fake_mnist: Path, tracking_uri: str, capsys: pytest.CaptureFixture
) -> None:
    """REQUEST.ask (the outage part's way): the stop raises the given error after the batch, with
    last.ckpt, and the CLI reports that error."""
    from mnist_lab.errors import RunFault

    class Asks(L.Callback):
        def on_train_batch_end(self, trainer: L.Trainer, *args: object) -> None:
            if trainer.global_step == 3:
                REQUEST.ask(RunFault("the store went away"))

    with pytest.raises(SystemExit) as exit_:
        main(tiny_args("fit", fake_mnist, "--trainer.max_epochs=1"), callbacks=[Asks()])
    assert exit_.value.code == RunFault.exit_code
    assert "error: the store went away" in capsys.readouterr().err
    (last,) = Path("outputs").rglob("last.ckpt")
    assert torch.load(last)["global_step"] in (3, 4)
    assert MlflowClient(tracking_uri).search_runs(["1"])[0].info.status == "FAILED"


@pytest.mark.slow
def test_a_diverging_run_stops_with_one_message_and_fails(
    fake_mnist: Path, tracking_uri: str, capsys: pytest.CaptureFixture
) -> None:
    lr = 1e6
    args = tiny_args(
        "fit", fake_mnist, "--trainer.max_epochs=3", f"--model.optimizer.init_args.lr={lr}"
    )
    with pytest.raises(SystemExit) as exit_:
        main([*args, "--trainer.gradient_clip_val=null"])
    assert exit_.value.code == 1
    err = capsys.readouterr().err
    assert (
        "error: training diverged at step" in err
        and f"(base {lr:.3g})" in err
        and "Try a smaller LR" in err
    )
    (run,) = MlflowClient(tracking_uri).search_runs(["1"])
    assert run.info.status == "FAILED" and run.data.tags["error"].startswith("DivergenceError")


def test_the_lightning_sigterm_handler_is_replaced_during_training(
    fake_mnist: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Lightning installs its own SIGTERM handler at each fit (it broadcasts from inside the handler
    under DDP); ours must be the one in place while steps run."""
    seen = []

    class Looks(L.Callback):
        def on_train_batch_end(self, trainer: L.Trainer, *args: object) -> None:
            seen.append(signal.getsignal(signal.SIGTERM))

    monkeypatch.chdir(tmp_path)
    main(
        tiny_args("fit", fake_mnist, "--trainer.max_epochs=1", "--trainer.logger=false"),
        callbacks=[Looks()],
    )
    assert seen and all(handler == REQUEST.handle for handler in seen)
