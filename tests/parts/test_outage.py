"""The outage part (StoreOutage, the replay): a store that fails during a run, for real: a sqlite
file corrupted mid-run, a full disk under the store or under its artifacts (a tmpfs; root only), an
`mlflow server` killed with -9. The run stops with last.ckpt and one error line that names the cause
and the file that keeps what the store missed; the replay sends it. Also the store and disk faults
the core answers before or without the part: a store corrupt before the run, checkpoints on a full
disk."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import lightning as L
import mlflow
import pytest
import torch
import yaml
from holding import HOLD_DIR, child_env, held
from mlflow import MlflowClient

from helpers import Snapshot, mlflow_server, started_server, with_group
from logged import logged_model
from tiny_cli import LEAN, tiny_args

from mnist_lab.checkpointing import check_whole
from mnist_lab.cli import main
from mnist_lab.names import BEST_TAG
from mnist_lab.parts.outage import UNSENT
from mnist_lab.parts.outage.__main__ import main as replay
from mnist_lab.resume import load_classifier

OUTAGE = "mnist_lab.parts.outage.StoreOutage"
WITH_OUTAGE = f"--trainer.callbacks+={OUTAGE}"
FIXED_WIDTH = 300  # the error line, less the paths it names (the user's, of any length)


def garble(db: Path, start: int, size: int) -> None:
    """Overwrite ``size`` bytes of the sqlite file from ``start`` with garbage."""
    with db.open("r+b") as f:
        f.seek(start)
        f.write(os.urandom(size))


class CorruptStoreAt(L.Callback):
    """At a training step, keep a copy of the store (the user's backup), then write garbage over
    all of it but its header."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer: L.Trainer, *args: object) -> None:
        if trainer.global_step == self.step:
            db = Path(os.environ["MLFLOW_TRACKING_URI"].removeprefix("sqlite:///"))
            mlflow.flush_async_logging()  # what the store accepted is in the backup
            with sqlite3.connect(db) as source, sqlite3.connect(db.with_suffix(".bak")) as copy:
                source.backup(copy)
            garble(db, 4096, db.stat().st_size - 4096)


def one_error_line(err: str) -> str:
    assert "Traceback" not in err, err[-3000:]
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, err[-3000:]
    return errors[0]


def outage_line(err: str, cause: str, where: str, kept: Path, cwd: Path) -> str:
    """The one error line of an outage: the store that failed, the real cause, the file that
    keeps what it missed (named once, in the command that sends it), and nothing long."""
    line = one_error_line(err)
    named = next(p for p in (str(kept), os.path.relpath(kept, cwd)) if p in line)
    assert cause in line and where in line and "failed during run" in line, line
    assert f"python -m mnist_lab.parts.outage {named}`" in line, line
    assert line.count(UNSENT) == 1, line
    fixed = line.replace(named, "").replace(where.rpartition(" ")[2], "")
    assert len(fixed) <= FIXED_WIDTH, f"{len(fixed)} characters besides the paths: {line}"
    return line


def unsent_file(root: Path) -> Path:
    (folder,) = {p.parent for p in root.rglob("last.ckpt")}
    assert (folder / UNSENT).is_file(), "what the store missed is kept beside the checkpoints"
    return folder / UNSENT


def test_a_store_corrupt_before_the_run_is_one_error_line_and_no_run(
    fake_mnist: Path, tracking_uri: str, capsys: pytest.CaptureFixture
) -> None:
    db = Path(tracking_uri.removeprefix("sqlite:///"))
    garble(db, db.stat().st_size // 2, 64 * 1024)  # the case: 64 KiB in the middle
    with pytest.raises(SystemExit) as exit_:
        main(tiny_args("fit", fake_mnist, "--trainer.max_epochs=1", WITH_OUTAGE))
    assert exit_.value.code == 2
    assert "is corrupt" in one_error_line(capsys.readouterr().err)
    assert not Path("outputs").exists(), "nothing may start on a corrupt store"


@pytest.mark.slow  # a fit stopped, then resumed
def test_a_store_corrupted_mid_run_stops_with_last_ckpt_and_the_resume_sends_what_it_missed(
    fake_mnist: Path, tracking_uri: str, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    args = tiny_args("fit", fake_mnist, "--trainer.max_epochs=2", "--run_test=false", WITH_OUTAGE)
    args += ["--trainer.log_every_n_steps=1"]
    per_epoch = -(-(1200 - 200) // 64)  # the lean config's train split and batch size
    corrupt_at = per_epoch + per_epoch // 2  # the second epoch, after a checkpoint
    with pytest.raises(SystemExit) as exit_:
        main(args, callbacks=[CorruptStoreAt(corrupt_at)])
    assert exit_.value.code == 1
    unsent = unsent_file(Path("outputs"))
    db = Path(tracking_uri.removeprefix("sqlite:///"))
    err = capsys.readouterr().err
    outage_line(err, "database disk image is malformed", f"store {tracking_uri}", unsent, tmp_path)
    stopped_at = torch.load(unsent.parent / "last.ckpt", weights_only=True)["global_step"]
    assert corrupt_at <= stopped_at < 2 * per_epoch, "it stops after the batch that found it"

    shutil.copy(db.with_suffix(".bak"), db)  # the store works again
    client = MlflowClient(tracking_uri)
    (run,) = client.search_runs(["1"])
    assert run.info.status == "RUNNING", "the backup was taken while the run was running"
    resumed = main([*args, f"--ckpt_path={run.info.run_id}"])
    assert resumed.trainer.logger.run_id == run.info.run_id
    assert not unsent.exists(), "resuming sends what the outage kept"
    run = client.get_run(run.info.run_id)
    assert run.info.status == "FINISHED"
    assert "error" not in run.data.tags, "the resumed run finished: the outage's error is gone"
    steps = {m.step for m in client.get_metric_history(run.info.run_id, "train/loss_step")}
    assert set(range(2 * per_epoch)) - steps == {stopped_at - 1}, (
        "only the step the stop came after has no train/loss_step (as after a signal)"
    )


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A real 8 MiB filesystem (tmpfs), which a write fills up; needs root."""
    mount = tmp_path / "tmpfs"
    mount.mkdir()
    made = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mount)], capture_output=True
    )
    if made.returncode:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(mount: Path, leave: int) -> Path:
    """Fill ``mount`` but ``leave`` bytes; the filler's path (unlink it to free the space)."""
    filler = mount / "filler"
    filler.write_bytes(b"\0" * (shutil.disk_usage(mount).free - leave))
    return filler


@pytest.mark.subprocess  # mount
@pytest.mark.slow
def test_checkpoints_on_a_full_disk_end_with_one_error_and_no_truncated_checkpoint(
    fake_mnist: Path,
    tracking_uri: str,
    tmpfs: Path,
    finished_mlp: Snapshot,
    capsys: pytest.CaptureFixture,
) -> None:
    size = Path(MlflowClient(finished_mlp.uri).get_run(finished_mlp.run_id).data.tags[BEST_TAG])
    fill(tmpfs, leave=size.stat().st_size * 3 // 2)  # room for one checkpoint of its net, not two
    args = tiny_args("fit", fake_mnist, "--trainer.max_epochs=3", "--model.net.init_args.width=64")
    with pytest.raises(SystemExit) as exit_:
        main([*args, f"--trainer.default_root_dir={tmpfs}"])
    assert exit_.value.code == 1
    assert "cannot write the checkpoint" in one_error_line(capsys.readouterr().err)
    files = [p for p in tmpfs.rglob("*") if p.is_file() and p.name != "filler"]
    assert files and all(p.suffix == ".ckpt" for p in files), "no temporary file is left"
    for checkpoint in files:
        torch.load(checkpoint, weights_only=True)  # every file with a checkpoint's name is whole
    (run,) = MlflowClient(tracking_uri).search_runs(["1"])
    assert run.info.status == "FAILED"


@pytest.mark.subprocess  # mount
@pytest.mark.slow
def test_a_store_on_a_full_disk_fails_the_run_keeps_what_it_missed_and_the_replay_sends_it(
    fake_mnist: Path,
    empty_store: Path,
    tmpfs: Path,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture,
) -> None:
    shutil.copy(empty_store, tmpfs / "mlflow.db")
    uri = f"sqlite:///{tmpfs / 'mlflow.db'}"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    args = tiny_args("fit", fake_mnist, "--trainer.max_epochs=4", "--run_test=false", WITH_OUTAGE)
    args += ["--trainer.log_every_n_steps=1", f"--trainer.default_root_dir={tmp_path / 'out'}"]
    args += [f"--trainer.logger.init_args.artifact_location={(tmp_path / 'art').as_uri()}"]
    filler = fill(tmpfs, leave=48 * 1024)  # the store fills up within an epoch
    started = time.monotonic()
    with pytest.raises(SystemExit) as exit_:
        main(args)
    assert exit_.value.code == 1
    assert time.monotonic() - started < 120
    unsent = unsent_file(tmp_path / "out")
    err = capsys.readouterr().err
    outage_line(err, "database or disk is full", f"store {uri}", unsent, tmp_path)
    kept = unsent.read_text()
    assert '"set_terminated"' in kept and "FAILED" in kept

    filler.unlink()  # space again: the store works, and the file completes the run
    assert replay([str(unsent)]) == 0
    assert not unsent.exists()
    (run,) = MlflowClient(uri).search_runs(["1"])
    assert run.info.status == "FAILED"
    assert run.data.tags["error"].startswith("StoreDown")
    batches = [r["kwargs"] for r in map(json.loads, kept.splitlines()) if r["call"] == "log_batch"]
    assert batches, "the writes the full store refused are kept"
    assert {m["key"] for b in batches for m in b.get("metrics", [])} <= set(run.data.metrics)
    assert {p["key"] for b in batches for p in b.get("params", [])} <= set(run.data.params)


def with_logged_model(tmp_path: Path) -> str:
    """A config file: the lean callbacks, with the run's model logged after its test, and the
    outage part."""
    lean = yaml.safe_load(Path(LEAN).read_text())["trainer"]["callbacks"]
    for callback in lean:
        if callback["class_path"].endswith(".RunRecord"):
            callback["init_args"]["log_model"] = True
    path = tmp_path / "logged_model.yaml"
    callbacks = [*lean, {"class_path": OUTAGE}]
    path.write_text(yaml.safe_dump({"trainer": {"callbacks": callbacks}}))
    return str(path)


@pytest.mark.subprocess  # mount
@pytest.mark.slow
def test_full_artifacts_name_the_artifact_store_and_the_replay_logs_the_model_from_the_best_ckpt(
    fake_mnist: Path, tracking_uri: str, tmpfs: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    args = tiny_args(
        "fit", fake_mnist, "--trainer.max_epochs=1", "--config", with_logged_model(tmp_path)
    )
    args += [f"--trainer.logger.init_args.artifact_location={(tmpfs / 'artifacts').as_uri()}"]
    filler = fill(tmpfs, leave=64 * 1024)  # the config fits, a checkpoint does not
    with pytest.raises(SystemExit) as exit_:
        main([*args, "--model.net.init_args.width=64"])
    assert exit_.value.code == 1
    unsent = unsent_file(Path("outputs"))
    line = outage_line(
        capsys.readouterr().err, "No space left on device", "the artifact store", unsent, tmp_path
    )
    assert "MLflow store" not in line, "the artifact store failed, not the tracking store"
    (run,) = MlflowClient(tracking_uri).search_runs(["1"])

    filler.unlink()
    assert replay([str(unsent)]) == 0
    run = MlflowClient(tracking_uri).get_run(run.info.run_id)
    assert run.info.status == "FAILED" and "test/acc" in run.data.metrics, "the test's, sent"
    assert "last" in {a.path for a in MlflowClient(tracking_uri).list_artifacts(run.info.run_id)}
    model = logged_model(tracking_uri, run.info.run_id)  # `make serve RUN=` serves this one
    mlflow.set_tracking_uri(tracking_uri)
    local = Path(mlflow.artifacts.download_artifacts(model.model_uri, dst_path=str(tmp_path / "m")))
    for archive in local.rglob("*.pth"):
        check_whole(archive)
    best = load_classifier(run.data.tags[BEST_TAG])
    x = torch.randn(4, 1, 28, 28)
    with torch.no_grad():
        served = mlflow.pytorch.load_model(model.model_uri).eval()(x)
        assert torch.allclose(served, best(x), atol=1e-6), "the network of the best checkpoint"


@pytest.mark.server
@pytest.mark.subprocess
@pytest.mark.slow
def test_a_tracking_server_killed_mid_run_costs_a_bounded_wait_and_loses_nothing(
    fake_mnist: Path,
    empty_store: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
) -> None:
    backend, hold = tmp_path / "server.db", tmp_path / "hold"
    shutil.copy(empty_store, backend)
    hold.mkdir()
    per_epoch, timeout_s = -(-(1200 - 200) // 64), 10
    args = tiny_args("fit", fake_mnist, "--trainer.max_epochs=2", "--run_test=false", WITH_OUTAGE)
    args += [
        "--trainer.log_every_n_steps=1",
        f"--trainer.logger.init_args.store_timeout_s={timeout_s}",
    ]
    args += ["--trainer.callbacks+=holding.Hold", f"--trainer.callbacks.step={per_epoch + 2}"]
    with started_server(mlflow_server(backend), tmp_path / "server.log") as (server, uri):
        train = subprocess.Popen(
            [sys.executable, "-m", "mnist_lab", *args],
            cwd=tmp_path,
            env=child_env(MLFLOW_TRACKING_URI=uri, **{HOLD_DIR: str(hold)}),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        try:
            (pid,) = held(hold, procs=(train,))  # an epoch done: checkpoints and val/acc sent
            with_group(server, signal.SIGKILL)
            killed = time.monotonic()
            os.kill(pid, signal.SIGUSR1)  # training goes on, into the dead server
            out, err = train.communicate(timeout=120)
            waited = time.monotonic() - killed
        finally:
            with_group(train, signal.SIGKILL)
    assert train.returncode == 1, err[-3000:]
    assert waited < 6 * timeout_s, (
        f"the bound is store_timeout_s={timeout_s}; it waited {waited:.0f} s"
    )
    unsent = unsent_file(tmp_path)
    outage_line(err, "Connection refused", f"store {uri}", unsent, tmp_path)
    store = MlflowClient(f"sqlite:///{backend}")  # the server's own store, read directly
    (run,) = store.search_runs(["1"])
    assert run.info.status == "RUNNING", "nothing could reach the dead server"
    assert "val/acc" in run.data.metrics, "what was sent before the kill is there"

    with started_server(mlflow_server(backend), tmp_path / "server2.log") as (_, uri):
        monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)  # the server is back: send what it missed
        assert replay([str(unsent)]) == 0, capsys.readouterr().err
        client = MlflowClient(uri)
        run = client.get_run(run.info.run_id)
        steps = {m.step for m in client.get_metric_history(run.info.run_id, "train/loss_step")}
        artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    stopped_at = torch.load(unsent.parent / "last.ckpt", weights_only=True)["global_step"]
    assert run.info.status == "FAILED" and not unsent.exists()
    assert set(range(stopped_at)) - steps == {stopped_at - 1}, "only the step the stop came after"
    assert "last" in artifacts, "the checkpoint reaches the store"
