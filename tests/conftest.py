"""Shared fixtures: a fake MNIST on disk, a throwaway MLflow store, the real MNIST when present."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mnist_fakes import write_fake_mnist


@pytest.fixture(scope="session")
def repo_root() -> Path:
    """The checkout's root: configs/, the Makefile, scripts/."""
    return Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def fake_mnist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A torchvision root holding a small learnable MNIST in real IDX files."""
    return write_fake_mnist(tmp_path_factory.mktemp("fake_mnist"))


@pytest.fixture
def tracking_uri(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh sqlite MLflow store for one test; the CLI picks it up from the environment."""
    uri = f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"
    (tmp_path / "mlruns").mkdir()
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
