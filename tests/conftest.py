"""Shared fixtures: a fake MNIST on disk, a throwaway MLflow store, the real MNIST when present."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import torch

from mnist_fakes import write_fake_mnist

# The tests train tiny networks, where a second intra-op thread only adds waiting (most of all on a
# shared CPU): one thread makes the fast tier several times faster. Subprocesses keep torch's default.
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def repo_root() -> Path:
    """The checkout's root: configs/, the Makefile, scripts/."""
    return Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def fake_mnist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A torchvision root holding a small learnable MNIST in real IDX files."""
    return write_fake_mnist(tmp_path_factory.mktemp("fake_mnist"))


@pytest.fixture(scope="session")
def empty_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty sqlite MLflow store with its schema created once (the migrations take seconds)."""
    from mlflow import MlflowClient

    path = tmp_path_factory.mktemp("empty_store") / "mlflow.db"
    MlflowClient(f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture
def tracking_uri(empty_store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh sqlite MLflow store for one test (a copy of ``empty_store``); the CLI finds it in the environment."""
    uri = f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"
    (tmp_path / "mlruns").mkdir()
    shutil.copy(empty_store, tmp_path / "mlruns" / "mlflow.db")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.chdir(tmp_path)
    return uri


@pytest.fixture(scope="session")
def real_mnist(repo_root: Path) -> Path:
    """The real MNIST (``$DATA_DIR``, relative to the repo); in CI its absence is a failure, elsewhere a skip."""
    root = repo_root / os.environ.get("DATA_DIR", "data/")
    if not (root / "MNIST" / "raw" / "train-images-idx3-ubyte").is_file():
        if os.environ.get("CI"):
            pytest.fail("CI must set DATA_DIR to a folder with MNIST/raw (../shared/data)")
        pytest.skip("real MNIST not found under $DATA_DIR")
    return root
