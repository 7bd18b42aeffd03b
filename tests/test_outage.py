"""Faults of the tracking store and the disk during a run: a real corrupt sqlite file, a real full disk
(a 2 MiB tmpfs; root only), a real `mlflow server` killed with -9; the store read back with MlflowClient."""

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
from mlflow import MlflowClient

from mnist_lab.cli import main
from mnist_lab.parts import outage
from mnist_lab.parts.outage import UNSENT
from test_server import serve
from tiny_cli import tiny_args

pytestmark = pytest.mark.slow


def garble(db: Path, start: int, size: int) -> None:
    """Overwrite ``size`` bytes of the sqlite file from ``start`` with garbage."""
    with db.open("r+b") as f:
        f.seek(start)
        f.write(os.urandom(size))


class CorruptStoreAt(L.Callback):
    """At a training step, keep a copy of the store (the user's backup) and write garbage over all but its header."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer: L.Trainer, *args: object) -> None:
        if trainer.global_step == self.step:
            db = Path(os.environ["MLFLOW_TRACKING_URI"].removeprefix("sqlite:///"))
            mlflow.flush_async_logging()  # what the store accepted is in the backup
            with sqlite3.connect(db) as source, sqlite3.connect(db.with_suffix(".backup")) as backup:
                source.backup(backup)
            garble(db, 4096, db.stat().st_size - 4096)


def one_error_line(err: str) -> str:
    assert "Traceback" not in err, err[-3000:]
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, err[-3000:]
    return errors[0]


def test_a_store_corrupt_before_the_run_is_one_error_line_and_no_run(
    fake_mnist: Path, tracking_uri: str, capsys: pytest.CaptureFixture
) -> None:
    db = Path(tracking_uri.removeprefix("sqlite:///"))
    garble(db, db.stat().st_size // 2, 64 * 1024)  # the case: 64 KiB in the middle
    with pytest.raises(SystemExit) as exit_:
        main(tiny_args("fit", fake_mnist, "--trainer.max_epochs=1"))
    assert exit_.value.code == 2
    assert "is corrupt" in one_error_line(capsys.readouterr().err)
    assert not Path("outputs").exists(), "nothing may start on a corrupt store"


def test_a_store_corrupted_during_training_stops_with_last_ckpt_and_resume_sends_what_it_missed(
    fake_mnist: Path, tracking_uri: str, capsys: pytest.CaptureFixture
) -> None:
    args = tiny_args("fit", fake_mnist, "--trainer.max_epochs=2", "--trainer.log_every_n_steps=1", "--run_test=false")
    with pytest.raises(SystemExit) as exit_:
        main([*args, "--trainer.callbacks+=test_outage.CorruptStoreAt", "--trainer.callbacks.step=20"])
    assert exit_.value.code == 1
    err = capsys.readouterr().err
    assert "failed during run" in one_error_line(err)
    (folder,) = {p.parent for p in Path("outputs").rglob("last.ckpt")}
    stopped_at = torch.load(folder / "last.ckpt", weights_only=True)["global_step"]
    assert 20 <= stopped_at < 32, "it stops after the batch that found the fault, with last.ckpt"
    assert (folder / UNSENT).is_file()

    db = Path(tracking_uri.removeprefix("sqlite:///"))
    shutil.copy(db.with_suffix(".backup"), db)  # the store works again
    client = MlflowClient(tracking_uri)
    (run,) = client.search_runs(["1"])
    assert run.info.status == "RUNNING", "the backup was taken while the run was running"
    resumed = main([*args, f"--ckpt_path={run.info.run_id}"])
    assert resumed.trainer.logger.run_id == run.info.run_id
    assert not (folder / UNSENT).exists(), "resuming sends what the outage kept"
    run = client.get_run(run.info.run_id)
    assert run.info.status == "FINISHED"
    steps = [m.step for m in client.get_metric_history(run.info.run_id, "train/loss_step")]
    missing = set(range(32)) - set(steps)
    assert missing == {stopped_at - 1}, "only the step the stop came after has no train/loss_step (as with a signal)"
    assert "error" not in run.data.tags, "the resumed run finished: the outage's error tag is gone"


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A real 2 MiB filesystem (tmpfs), which a write fills up; needs root."""
    mount = tmp_path / "tmpfs"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_checkpoints_on_a_full_disk_end_with_one_error_and_no_truncated_checkpoint(
    fake_mnist: Path, tracking_uri: str, tmpfs: Path, capsys: pytest.CaptureFixture
) -> None:
    (tmpfs / "filler").write_bytes(b"\0" * (2 * 1024 * 1024 - 150 * 1024))  # room for one checkpoint, not two
    args = tiny_args("fit", fake_mnist, "--trainer.max_epochs=3", f"--trainer.default_root_dir={tmpfs}")
    with pytest.raises(SystemExit) as exit_:
        main([*args, "--model.net.init_args.width=64"])
    assert exit_.value.code == 1
    assert "cannot write the checkpoint" in one_error_line(capsys.readouterr().err)
    files = [p for p in tmpfs.rglob("*") if p.is_file() and p.name != "filler"]
    assert not [p for p in files if not p.name.endswith(".ckpt")], "no temporary file is left behind"
    for checkpoint in files:
        torch.load(checkpoint, weights_only=True)  # every file with a checkpoint's name is whole
    (run,) = MlflowClient(tracking_uri).search_runs(["1"])
    assert run.info.status == "FAILED"


def test_a_store_on_a_full_disk_fails_the_run_and_keeps_what_it_missed(
    fake_mnist: Path,
    empty_store: Path,
    tmpfs: Path,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture,
) -> None:
    shutil.copy(empty_store, tmpfs / "mlflow.db")
    free = shutil.disk_usage(tmpfs).free
    (tmpfs / "filler").write_bytes(b"\0" * (free - 48 * 1024))  # the store fills up within an epoch
    uri = f"sqlite:///{tmpfs / 'mlflow.db'}"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    args = tiny_args("fit", fake_mnist, "--trainer.max_epochs=4", "--trainer.log_every_n_steps=1", "--run_test=false")
    args += [f"--trainer.logger.init_args.artifact_location={(tmpfs / 'artifacts').as_uri()}"]
    started = time.monotonic()
    with pytest.raises(SystemExit) as exit_:
        main(args)
    assert exit_.value.code == 1
    assert time.monotonic() - started < 120
    assert "database or disk is full" in one_error_line(capsys.readouterr().err)
    (folder,) = {p.parent for p in Path("outputs").rglob("last.ckpt")}
    assert (folder / UNSENT).is_file(), "what the store missed is kept beside the checkpoints"
    kept = (folder / UNSENT).read_text()
    assert '"set_terminated"' in kept and "FAILED" in kept
    (tmpfs / "filler").unlink()  # space again: the store works, and the file completes the run
    outage.main([str(folder / UNSENT)])
    (run,) = MlflowClient(uri).search_runs(["1"])
    assert run.info.status == "FAILED"
    assert run.data.tags["error"].startswith("StoreDown")
    batches = [r["kwargs"] for r in map(json.loads, kept.splitlines()) if r["call"] == "log_batch"]
    assert batches, "the writes the full store refused are kept"
    assert {m["key"] for b in batches for m in b.get("metrics", [])} <= set(run.data.metrics)
    assert {p["key"] for b in batches for p in b.get("params", [])} <= set(run.data.params)


@pytest.mark.server
@pytest.mark.subprocess
def test_a_tracking_server_killed_mid_run_costs_a_bounded_wait_and_loses_nothing(
    fake_mnist: Path, empty_store: Path, tmp_path: Path
) -> None:
    backend = tmp_path / "server.db"
    shutil.copy(empty_store, backend)
    server, uri = serve(backend)
    args = tiny_args("fit", fake_mnist, "--trainer.max_epochs=3", "--data.batch_size=16", "--run_test=false")
    args += ["--trainer.log_every_n_steps=1", "--trainer.logger.init_args.store_timeout_s=10"]
    train = subprocess.Popen(
        [sys.executable, "-m", "mnist_lab", *args],
        cwd=tmp_path,
        env={**os.environ, "MLFLOW_TRACKING_URI": uri},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    store = MlflowClient(f"sqlite:///{backend}")  # the server's own store, read directly
    try:
        deadline = time.monotonic() + 120
        while not (runs := store.search_runs(["1"])) or "val/acc" not in runs[0].data.metrics:  # a checkpoint too
            assert train.poll() is None and time.monotonic() < deadline, train.stderr.read()[-3000:]
            time.sleep(0.5)
        os.killpg(server.pid, signal.SIGKILL)
        killed = time.monotonic()
        out, err = train.communicate(timeout=120)
        waited = time.monotonic() - killed
        (tmp_path / "train.log").write_text(out + err)  # what the user saw, for a failing assertion's reader
    finally:
        for proc in (train, server):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL) if proc is server else proc.kill()
    assert train.returncode == 1, err[-3000:]
    assert waited < 60, f"the bound is store_timeout_s=10; it waited {waited:.0f} s"
    assert "failed during run" in one_error_line(err)
    run_id = runs[0].info.run_id
    (unsent,) = tmp_path.rglob(UNSENT)
    assert (unsent.parent / "last.ckpt").is_file()
    assert store.get_run(run_id).info.status == "RUNNING", "nothing could reach the dead server"

    server, uri = serve(backend)  # the server is back: send what it missed
    try:
        sent = subprocess.run(
            [sys.executable, "-m", "mnist_lab.tracking.outage", str(unsent)],
            env={**os.environ, "MLFLOW_TRACKING_URI": uri},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert sent.returncode == 0, sent.stderr[-3000:]
        client = MlflowClient(uri)
        run = client.get_run(run_id)
        stopped_at = torch.load(unsent.parent / "last.ckpt", weights_only=True)["global_step"]
        steps = {m.step for m in client.get_metric_history(run_id, "train/loss_step")}
        artifacts = {a.path for a in client.list_artifacts(run_id)}
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
    assert run.info.status == "FAILED"
    assert set(range(stopped_at)) - steps == {stopped_at - 1}, "only the step the stop came after has none"
    assert "last" in artifacts, "the checkpoint reaches the store"
    assert not unsent.exists()
