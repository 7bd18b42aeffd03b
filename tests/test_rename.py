"""`make rename NAME=...` on a copy of the tree: nothing keeps the old name, and the copy's tests pass."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import mnist_lab

OLD = mnist_lab.__name__


def copy_tree(repo_root: Path, dest: Path) -> Path:
    """The files git tracks, plus the new ones it does not ignore, as they are in the working tree."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=repo_root,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for name in filter(None, listed.split("\0")):
        source = repo_root / name
        if source.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)
    return dest


@pytest.mark.slow
@pytest.mark.subprocess
def test_rename_a_copy_then_run_its_fast_tests(repo_root: Path, tmp_path: Path) -> None:
    copy = copy_tree(repo_root, tmp_path / "fork")
    renamed = subprocess.run(
        ["make", "-s", "rename", "NAME=digit_lab"], cwd=copy, capture_output=True, text=True, timeout=120
    )
    assert renamed.returncode == 0, renamed.stderr
    assert (copy / "src" / "digit_lab" / "__init__.py").is_file() and not (copy / "src" / OLD).exists()
    grep = ["grep", "-rIl", "-e", OLD, "-e", OLD.replace("_", "-"), "."]
    assert subprocess.run(grep, cwd=copy, capture_output=True, text=True).stdout == ""  # no file names it
    assert 'name = "digit-lab"' in (copy / "pyproject.toml").read_text()
    assert "class_path: digit_lab.models.components.MLP" in (copy / "configs" / "net" / "mlp.yaml").read_text()

    env = {**os.environ, "PYTHONPATH": str(copy / "src"), "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'm.db'}"}
    env.pop("DATA_DIR", None)
    config = subprocess.run(
        [sys.executable, "-m", "digit_lab", "fit", "--config", "configs/net/mlp.yaml", "--print_config"],
        cwd=copy,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert config.returncode == 0, config.stderr
    assert "digit_lab.models.components.MLP" in config.stdout
    fast = ["tests/test_activations.py", "tests/test_networks.py", "tests/test_predict.py"]
    tests = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "not slow and not subprocess", *fast],
        cwd=copy,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert tests.returncode == 0, tests.stdout[-3000:] + tests.stderr[-3000:]
    assert " passed" in tests.stdout

    again = subprocess.run(["make", "-s", "rename", "NAME=digit_lab"], cwd=copy, capture_output=True, text=True)
    assert again.returncode != 0 and "already called digit_lab" in again.stderr
