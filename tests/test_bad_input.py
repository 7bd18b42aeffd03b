"""Bad input as a process sees it: `python -m mnist_lab` from any directory is the template, a
bad value one `error:` line without a traceback; a package installed without the repository
finds the configs in the working directory. Every bad value in this process: tests/test_cli.py."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import env_for, store_uri
from tiny_cli import REPO

from mnist_lab.models.components import ACTIVATIONS

pytestmark = pytest.mark.subprocess


def python_m(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", *args]
    return subprocess.run(
        command, capture_output=True, text=True, cwd=cwd, env=env_for(**env), timeout=120
    )


def test_python_m_from_any_directory_is_the_template_and_a_bad_value_is_one_line(
    fake_mnist: Path, tmp_path: Path
) -> None:
    """The defaults are found (the data's class is defaults.yaml's, the network net/mlp.yaml's):
    the bad activation is the one error, without a traceback, and nothing is written."""
    data = [f"--data.data_dir={fake_mnist}", "--data.val_size=200"]
    bad = [*data, "--model.net.init_args.activation=nope"]
    result = python_m(
        "mnist_lab", "fit", *bad, cwd=tmp_path, MLFLOW_TRACKING_URI=store_uri(tmp_path)
    )
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert result.returncode == 2 and len(errors) == 1, result.stderr[-3000:]
    assert f"unknown activation 'nope'; choose one of: {', '.join(ACTIVATIONS)}" in errors[0]
    assert "Traceback" not in result.stderr and list(tmp_path.iterdir()) == []


def test_a_package_installed_without_the_repository_finds_the_configs_in_the_working_directory(
    tmp_path: Path,
) -> None:
    for package in (REPO / "src").iterdir():  # as `pip install .` puts them: no configs/ beside
        if (package / "__init__.py").is_file():
            shutil.copytree(package, tmp_path / "site" / package.name)
    (tmp_path / "elsewhere").mkdir()
    shutil.copytree(REPO / "configs", tmp_path / "checkout" / "configs")
    site = {"PYTHONPATH": str(tmp_path / "site")}
    fit = ["mnist_lab", "fit", f"--data.data_dir={tmp_path}", "--data.download=false"]
    elsewhere = python_m(*fit[:2], cwd=tmp_path / "elsewhere", **site)
    assert elsewhere.returncode == 2
    hint = (
        f"(no {Path('configs') / 'defaults.yaml'} here: run it in the repository, or give --config"
    )
    assert hint in elsewhere.stderr
    checkout = python_m(*fit, cwd=tmp_path / "checkout", **site)
    assert checkout.returncode == 2, checkout.stderr[-2000:]
    assert "error: MNIST is missing from" in checkout.stderr, (
        "the defaults parse: only the data is missing"
    )
