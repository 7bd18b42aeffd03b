"""Remove an optional part from a fork: ``make drop PART=<name>`` (``make drop`` lists them).

A part is its files (code, configs, tests, docs) and the blocks of shared files that switch it on:
every block between a ``<name>:begin`` and a ``<name>:end`` marker line (in the configs, the
Makefile, pyproject.toml, README and the docs), and every line that ends with ``<!-- <name> -->``
(a table row, which a marker line would cut in two). The core never imports a part and parts never
import each other, so after any drop ``make lint`` and ``make test`` pass. Only the standard
library.
"""

from __future__ import annotations

import re
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = next(
    p for p in (ROOT / "src").iterdir() if (p / "__init__.py").is_file() and p.name != "lab"
)


@dataclass(frozen=True)
class Part:
    what: str  # what dropping it loses
    files: tuple[str, ...]  # relative to the root; `pkg/` is the package's folder


PARTS = {
    "outage": Part(
        "a store that fails mid-run keeps nothing it missed, nor stops cleanly: the run fails",
        ("pkg/parts/outage", "tests/parts/test_outage.py"),
    ),
    "stale": Part(
        "runs killed with -9 stay RUNNING; no `make runs-clean`",
        ("pkg/parts/stale", "tests/parts/test_stale.py"),
    ),
    "system_metrics": Part(
        "no system/* metrics (CPU, memory, disk, GPU) in runs",
        ("pkg/parts/system_metrics.py", "tests/parts/test_system_metrics.py"),
    ),
    "test_figures": Part(
        "no confusion-matrix or misclassified-images figures in runs",
        ("pkg/parts/test_figures.py", "tests/parts/test_test_figures.py"),
    ),
    "serve": Part(
        "no `make serve` (REST) nor `make register` (the model registry)",
        (
            "pkg/parts/serve",
            "tests/parts/test_serve.py",
            "tests/parts/test_sweep_serve.py",
            "tests/parts/test_team_serve.py",
        ),
    ),
    "export": Part(
        "no `make export` (ONNX) and no export extra",
        ("pkg/parts/export.py", "tests/parts/test_export.py"),
    ),
    "predict": Part(
        "no `make predict` (your own image files)",
        ("pkg/parts/predict", "tests/parts/test_predict.py", "tests/parts/test_team_serve.py"),
    ),
    "sweep": Part(
        "no `make sweep` (Optuna), its configs, docs and extra",
        (
            "pkg/parts/sweep",
            "configs/sweeps",
            "docs/sweeps.md",
            "tests/parts/sweeping.py",
            "tests/parts/test_sweep.py",
            "tests/parts/test_sweep_serve.py",
            "tests/parts/test_team_sweep.py",
        ),
    ),
    "team": Part(
        "no `make team-up` (PostgreSQL and an MLflow server on this machine) and no team extra",
        (
            "scripts/team.sh",
            "tests/parts/team_up.py",
            "tests/parts/test_team.py",
            "tests/parts/test_team_serve.py",
            "tests/parts/test_team_sweep.py",
        ),
    ),
    "lab": Part(
        "no activation study (`make compare`), diagnostics (`DIAG`) or `make bench`",
        (
            "src/lab",
            "configs/lab",
            "scripts/activation_study.py",
            "scripts/bench.py",
            "scripts/design",
            "reports",
            "tests/lab",
            "docs/study.md",
            "docs/performance.md",
            "docs/study-design.md",
        ),
    ),
}
EDITED = [
    "Makefile",
    "pyproject.toml",
    "README.md",
    ".ci/run",
    "configs/**/*.yaml",
    "docs/*.md",
    "tests/**/*.py",
]


def block(name: str) -> re.Pattern[str]:
    """A marker is a comment line of its own: ``# <name>:begin`` or ``<!-- <name>:begin -->``."""
    start, end = (rf"^[ \t]*(?:#|<!--)[ \t]*{name}:{edge}\b" for edge in ("begin", "end"))
    return re.compile(rf"{start}.*?{end}[^\n]*\n", re.M | re.S)


def path_of(name: str) -> Path:
    return ROOT / name.replace("pkg/", f"src/{PACKAGE.name}/", 1)


def present(name: str) -> bool:
    return path_of(PARTS[name].files[0]).exists()


def row(name: str) -> re.Pattern[str]:
    """A line tagged ``<!-- <name> -->`` at its end: a Markdown table ignores the extra cell."""
    return re.compile(rf"^[^\n]*<!--[ \t]*{re.escape(name)}[ \t]*-->[ \t]*(?:\r?\n|\Z)", re.M)


def drop(name: str, files: tuple[str, ...]) -> None:
    patterns = (block(name), row(name))
    for path in sorted({p for glob in EDITED for p in ROOT.glob(glob) if p.is_file()}):
        text = path.read_text(encoding="utf-8")
        edited = text
        for pattern in patterns:
            edited = pattern.sub("", edited)
        if edited != text:
            edited = edited.rstrip("\n") + "\n"  # a block that ended the file leaves no blank line
            path.write_text(edited, encoding="utf-8")
            print(f"edited  {path.relative_to(ROOT)}")
    for file in files:
        path = path_of(file)
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
        else:
            continue
        print(f"deleted {file}")


def main(argv: list[str]) -> int:
    if not argv:
        print("the optional parts (make drop PART=<name>, or PART=all):")
        for name, part in PARTS.items():
            print(
                f"  {name:<15} {'present' if present(name) else 'dropped'}: "
                f"dropping it means {part.what}"
            )
        return 0
    names = [n for n in PARTS if present(n)] if argv == ["all"] else argv
    if unknown := [n for n in names if n not in PARTS]:
        print(
            f"error: no part {', '.join(unknown)}; the parts: {', '.join(PARTS)}", file=sys.stderr
        )
        return 2
    if gone := [n for n in names if not present(n)]:
        print(f"error: {', '.join(gone)} is dropped already", file=sys.stderr)
        return 2
    for name in names:
        drop(name, PARTS[name].files)
    if not any(present(n) for n in PARTS if n != "lab"):  # the parts' folder and contracts go last
        drop("parts", ("pkg/parts", "tests/parts"))
    print(f"dropped {', '.join(names)}: `make lint test` checks what is left")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
