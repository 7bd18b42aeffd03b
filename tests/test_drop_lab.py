"""`make drop-lab` on a copy of the tree: the lab is gone without a trace, and lint, tests and a fit still pass."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow import MlflowClient

from test_rename import copy_tree

GONE = [
    "src/lab",
    "configs/lab",
    "scripts/activation_study.py",
    "scripts/bench.py",
    "reports",
    "tests/lab",
    "docs/study.md",
    "docs/performance.md",
    "scripts/drop_lab.py",
]
# What would still name the lab: an import of it, a config class from it, its folder, its diagnostics.
TRACES = re.compile(
    r"^\s*(?:from|import)\s+lab\b|class_path:\s*lab\.|src/lab\b|(?<![\w.])lab\.diagnostics|lab:(?:begin|end)\b",
    re.M,
)
SELF = Path("tests") / Path(__file__).name  # this file, in the copy: it names what it looks for
# Fast test files that exist and pass in the tree (no lab, no process, seconds), run again in the copy.
FAST_TESTS = ["tests/test_activations.py", "tests/test_networks.py", "tests/test_init.py", "tests/test_fork.py"]


def traces(root: Path) -> list[str]:
    """``path:line: text`` for every line of a code or config file under ``root`` (not .git, not this file, not the
    Markdown docs, which may say what the lab was) that names the lab."""
    found: dict[str, None] = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file() and ".git" not in p.relative_to(root).parts):
        data = path.read_bytes()
        if b"\0" in data or path.relative_to(root) == SELF or path.suffix == ".md":  # a figure, a database; docs
            continue
        text = data.decode("utf-8", errors="replace")
        for match in TRACES.finditer(text):
            line = text.count("\n", 0, match.start()) + 1
            found[f"{path.relative_to(root)}:{line}: {text.splitlines()[line - 1].strip()}"] = None
    return list(found)


LINK = re.compile(r"\]\(([^)#\s]+)")  # a Markdown link's target, without its anchor


def dead_links(root: Path) -> list[str]:
    """``page: target`` for every relative link of README and the docs that names no file."""
    pages = [root / "README.md", *(root / "docs").glob("*.md")]
    return [
        f"{page.relative_to(root)}: {target}"
        for page in pages
        for target in LINK.findall(page.read_text())
        if "://" not in target and not (page.parent / target).exists()
    ]


def run(command: list[str], cwd: Path, env: dict[str, str], timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow
@pytest.mark.subprocess
def test_drop_lab_leaves_a_template_that_lints_tests_and_trains(
    repo_root: Path, fake_mnist: Path, tmp_path: Path
) -> None:
    copy = copy_tree(repo_root, tmp_path / "fork")
    assert (copy / "src" / "lab").is_dir() and (copy / "scripts" / "drop_lab.py").is_file()

    dropped = run(["make", "-s", "drop-lab"], copy, dict(os.environ), timeout=60)  # PYTHON_SYS: python3, stdlib only
    assert dropped.returncode == 0, dropped.stdout + dropped.stderr
    assert [name for name in GONE if (copy / name).exists()] == []
    assert (copy / "src" / "mnist_lab" / "cli.py").is_file() and (copy / "configs" / "defaults.yaml").is_file()
    found = traces(copy)
    assert not found, "\n".join(found)
    grep = subprocess.run(
        ["grep", "-rn", f"--exclude={SELF.name}", "--exclude=*.md", "lab:begin", "."],
        cwd=copy,
        capture_output=True,
        text=True,
    )
    assert grep.stdout == "", grep.stdout
    assert dead_links(copy) == []
    docs = [copy / "README.md", *(copy / "docs").glob("*.md")]
    assert not [p.name for p in docs if re.search(r"\bDIAG\b", p.read_text())]  # a variable that would do nothing
    assert run(["make", "-s", "help"], copy, dict(os.environ)).returncode == 0  # the Makefile still parses
    again = run(["make", "-s", "drop-lab"], copy, dict(os.environ))
    assert again.returncode != 0  # the target went with the lab

    venv_bin = Path(sys.executable).parent
    env = {**os.environ, "PYTHONPATH": str(copy / "src"), "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'm.db'}"}
    env.pop("DATA_DIR", None)
    linted = ["src", "tests", "scripts"]
    for command in (
        [str(venv_bin / "ruff"), "check", "--no-cache", *linted],
        [str(venv_bin / "ruff"), "format", "--check", "--no-cache", *linted],
        [str(venv_bin / "lint-imports"), "--no-cache"],  # reads the copy's pyproject.toml
    ):
        result = run(command, copy, env, timeout=120)
        assert result.returncode == 0, f"{' '.join(command)}\n{result.stdout[-3000:]}{result.stderr[-3000:]}"

    config = run([sys.executable, "-m", "mnist_lab", "fit", "--print_config"], copy, env)
    assert config.returncode == 0, config.stderr[-3000:]
    assert "class_path: mnist_lab.tracking.PredictionsCSV" in config.stdout
    assert not re.search(r"class_path: lab\.|lab\.diagnostics", config.stdout), config.stdout

    fit = [
        "fit",
        f"--data.data_dir={fake_mnist}",
        "--data.val_size=200",
        "--trainer.max_epochs=1",
        "--trainer.limit_train_batches=3",
        "--trainer.enable_progress_bar=false",
    ]
    trained = run([sys.executable, "-m", "mnist_lab", *fit], copy, env)
    assert trained.returncode == 0, trained.stderr[-3000:]
    assert "test/acc = " in trained.stdout
    said = trained.stdout + trained.stderr  # nothing printed that asks nothing of the user (cli.quiet_library_noise)
    assert not [noise for noise in ("litlogger", "is deprecated", "Pickle or CloudPickle") if noise in said], said
    client = MlflowClient(env["MLFLOW_TRACKING_URI"])
    (fitted,) = client.search_runs([client.get_experiment_by_name("mnist").experiment_id])
    assert fitted.info.status == "FINISHED" and "test/acc" in fitted.data.metrics
    assert not [k for k in fitted.data.metrics if k.startswith("diag/")]  # no diagnostics callback

    tests = run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "not slow and not subprocess"]
        + FAST_TESTS,
        copy,
        env,
        timeout=300,
    )
    assert tests.returncode == 0, tests.stdout[-3000:] + tests.stderr[-3000:]
    assert " passed" in tests.stdout and " failed" not in tests.stdout
