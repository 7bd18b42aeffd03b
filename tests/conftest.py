"""Shared fixtures (a fake MNIST in real IDX files, stores and runs built once and copied per test,
the real MNIST) and the suite's rules: every global a test changes is restored, a fast-tier test
starts no process, the heaviest tests start first, and the slow unmarked ones are named."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from collections.abc import Callable, Iterator
from multiprocessing.process import BaseProcess
from pathlib import Path

import mlflow
import pytest
import torch
from filelock import FileLock
from mlflow.tracking._tracking_service.utils import _artifact_repos_cache as artifact_repos_cache

from helpers import PauseAt, Snapshot, store_uri
from mnist_fakes import write_fake_mnist
from tiny_cli import tiny_args, tiny_cnn

from mnist_lab.recovery import SIGNALS

# Tiny networks: a second intra-op thread only adds waiting. Subprocesses keep torch's default.
torch.set_num_threads(1)
TIERS = ("slow", "subprocess", "server", "browser")  # `make test-fast` runs the tests with none
FIRST = {"browser": 0, "server": 0, "subprocess": 1, "slow": 2}  # the heaviest start first
UNMARKED_LIMIT_S = 2.0


@pytest.hookimpl(trylast=True)  # after xdist's own hook, which names each test's group in its id
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("loadgroup", False):  # an xdist worker of `--dist loadgroup`
        grouped = [i.nodeid for i in items if i.get_closest_marker("xdist_group")]
        if lost := [nodeid for nodeid in grouped if "@" not in nodeid]:
            raise pytest.UsageError(f"xdist ignores the group of {lost[0]}: pin pytest<9.2")
    items.sort(
        key=lambda item: min(
            (FIRST[m.name] for m in item.iter_markers() if m.name in FIRST), default=3
        )
    )


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Name every unmarked (fast-tier) test that took too long: it belongs in a slow tier."""
    reports = [r for r in terminalreporter.stats.get("passed", []) if r.when == "call"]
    unmarked = [r for r in reports if not any(tier in r.keywords for tier in TIERS)]
    slow = [f"  {r.nodeid}: {r.duration:.1f} s" for r in unmarked if r.duration > UNMARKED_LIMIT_S]
    if slow:
        terminalreporter.write_line(f"unmarked tests over {UNMARKED_LIMIT_S} s (mark them slow):")
        for line in slow:
            terminalreporter.write_line(line)


@pytest.fixture(autouse=True)
def restored_globals(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    """The environment, working directory, signal handlers and MLflow's tracking URI as they were;
    in the fast tier, no process may start (``git``, which the run record asks, excepted)."""
    environ, cwd, uri = dict(os.environ), Path.cwd(), mlflow.get_tracking_uri()
    handlers = {s: signal.getsignal(s) for s in SIGNALS}
    if not any(request.node.get_closest_marker(tier) for tier in TIERS):
        popen = subprocess.Popen.__init__

        def no_process(self: subprocess.Popen, args: object, *rest: object, **kw: object) -> None:
            program = Path(
                str(args[0] if isinstance(args, (list, tuple)) else args).split()[0]
            ).name
            if program != "git":
                raise AssertionError(f"a fast-tier test started {program}: mark it subprocess")
            popen(self, args, *rest, **kw)

        def no_child(self: BaseProcess) -> None:
            raise AssertionError("a fast-tier test started a process: mark it subprocess")

        monkeypatch.setattr(subprocess.Popen, "__init__", no_process)
        monkeypatch.setattr(BaseProcess, "start", no_child)
    yield
    mlflow.set_tracking_uri(uri)
    os.environ.clear()
    os.environ.update(environ)
    os.chdir(cwd)
    for s, handler in handlers.items():
        signal.signal(s, handler)


@pytest.fixture(scope="session")
def repo_root() -> Path:
    """The checkout's root: configs/, the Makefile, scripts/."""
    return Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def shared(
    tmp_path_factory: pytest.TempPathFactory,
) -> Callable[[str, Callable[[Path], object]], Path]:
    """``shared(name, build)``: a folder that ``build`` fills once for every xdist worker."""
    root = tmp_path_factory.getbasetemp().parent / "shared"
    root.mkdir(exist_ok=True)

    def get(name: str, build: Callable[[Path], object]) -> Path:
        folder = root / name
        with FileLock(str(root / f"{name}.lock")):
            if not (folder / ".done").exists():
                shutil.rmtree(folder, ignore_errors=True)
                folder.mkdir()
                build(folder)
                (folder / ".done").touch()
        return folder

    return get


@pytest.fixture(scope="session")
def fake_mnist(shared: Callable) -> Path:
    """A torchvision root holding a small learnable MNIST in real IDX files."""
    return shared("fake_mnist", write_fake_mnist)


@pytest.fixture(scope="session")
def empty_store(shared: Callable) -> Path:
    """An empty sqlite MLflow store, its schema made once (the migrations take seconds)."""

    def build(folder: Path) -> None:
        mlflow.MlflowClient(f"sqlite:///{folder / 'mlflow.db'}").search_experiments()

    return shared("empty_store", build) / "mlflow.db"


@pytest.fixture
def tracking_uri(empty_store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh local store for one test: ``mlruns/`` in the test's folder, which becomes the
    working directory; the CLI finds it in the environment."""
    (tmp_path / "mlruns").mkdir()
    shutil.copy(empty_store, tmp_path / "mlruns" / "mlflow.db")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store_uri(tmp_path))
    monkeypatch.chdir(tmp_path)
    return store_uri(tmp_path)


def snapshot(
    shared: Callable, name: str, empty_store: Path, args: list[str], stop: int | None = None
) -> Snapshot:
    """One CLI run of ``args`` in a store of its own, built once; ``stop``: stopped at that step
    as a signal would (KILLED, with ``last.ckpt``)."""
    from mnist_lab.cli import main
    from mnist_lab.recovery import REQUEST

    class StopAt(PauseAt):
        def on_train_batch_start(self, trainer: object, *rest: object) -> None:
            if trainer.global_step == self.step:
                REQUEST.handle(signal.SIGINT, None)

    def build(folder: Path) -> None:
        (folder / "mlruns").mkdir()
        shutil.copy(empty_store, folder / "mlruns" / "mlflow.db")
        with pytest.MonkeyPatch.context() as mp:
            mp.chdir(folder)
            mp.setenv("MLFLOW_TRACKING_URI", store_uri(folder))
            try:
                main(args, callbacks=[StopAt(stop)] if stop is not None else ())
            except SystemExit as end:
                assert stop is not None and end.code == 130, (
                    f"the {name} snapshot failed: {end.code}"
                )
        (run,) = mlflow.MlflowClient(f"sqlite:///{folder / 'mlruns' / 'mlflow.db'}").search_runs(
            ["1"]
        )
        (folder / "run_id").write_text(run.info.run_id)

    folder = shared(name, build)
    return Snapshot(folder, (folder / "run_id").read_text())


@pytest.fixture(scope="session")
def finished_mlp(shared: Callable, empty_store: Path, fake_mnist: Path) -> Snapshot:
    """A finished MLP run as `make train` makes it, every part on (read it, or clone it)."""
    args = tiny_args(
        "fit", fake_mnist, "--trainer.max_epochs=2", "--model.net.init_args.width=64", lean=False
    )
    return snapshot(
        shared, "finished_mlp", empty_store, [*args, "--model.net.init_args.activation=leaky_relu"]
    )


@pytest.fixture(scope="session")
def finished_cnn(shared: Callable, empty_store: Path, fake_mnist: Path) -> Snapshot:
    """A finished small CNN run, every part on."""
    return snapshot(shared, "finished_cnn", empty_store, tiny_cnn(fake_mnist, lean=False))


@pytest.fixture(scope="session")
def killed_mlp(shared: Callable, empty_store: Path, fake_mnist: Path) -> Snapshot:
    """An MLP run stopped at step 20 of 32 as a signal stops it: KILLED, with last.ckpt."""
    args = tiny_args("fit", fake_mnist, "--trainer.max_epochs=2", "--run_test=false")
    return snapshot(shared, "killed_mlp", empty_store, args, stop=20)


@pytest.fixture
def clone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[Snapshot], Snapshot]:
    """``clone(snapshot)``: a copy in the test's folder, which becomes the working directory."""

    def make(source: Snapshot) -> Snapshot:
        # MLflow caches a run's artifact store by run id for the process: a clone keeps the id
        artifact_repos_cache.clear()
        copy = source.clone(tmp_path)
        monkeypatch.setenv("MLFLOW_TRACKING_URI", copy.uri)
        monkeypatch.chdir(tmp_path)
        return copy

    return make


@pytest.fixture(scope="session")
def real_mnist(repo_root: Path) -> Path:
    """The real MNIST (``$DATA_DIR``, relative to the repo); in CI its absence is a failure."""
    root = repo_root / os.environ.get("DATA_DIR", "data/")
    if not (root / "MNIST" / "raw" / "train-images-idx3-ubyte").is_file():
        if os.environ.get("CI"):
            pytest.fail("CI must set DATA_DIR to a folder with MNIST/raw (../shared/data)")
        pytest.skip("real MNIST not found under $DATA_DIR")
    return root
