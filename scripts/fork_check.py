"""``make fork-check [PART=...]``: a fork's path on a copy of the tree, as README writes it: drop
the parts (default: all of them), rename the package, then ``make lint``, the copy's whole
``make test`` and a debug ``make train``, whose run must end FINISHED with a test accuracy. Uses
this checkout's venv (``PYTHONPATH`` is the copy's ``src``); only the standard library."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def copy_tree(dest: Path) -> None:
    """The files git tracks, and the new ones it does not ignore, as in the working tree."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for name in filter(None, listed.split("\0")):
        if (ROOT / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, dest / name)


def step(command: list[str], cwd: Path, env: dict[str, str]) -> None:
    print(f"fork-check: {' '.join(command)}", flush=True)
    if subprocess.run(command, cwd=cwd, env=env).returncode:
        raise SystemExit(f"error: fork-check failed at `{' '.join(command)}`")


def main(argv: list[str]) -> int:
    parts = argv or ["all"]
    data = Path(os.environ.get("DATA_DIR", "data")).resolve()
    venv = Path(os.environ.get("VENV", ROOT / ".venv")).resolve()
    with tempfile.TemporaryDirectory(prefix="fork-check-") as tmp:
        fork = Path(tmp) / "fork"
        copy_tree(fork)
        store = fork / "mlruns" / "mlflow.db"
        env = {**os.environ, "PYTHONPATH": str(fork / "src"), "DATA_DIR": str(data)}
        env.update(MLFLOW_TRACKING_URI=f"sqlite:///{store}", CI=os.environ.get("CI", ""))
        make = ["make", "-s", f"VENV={venv}", f"DATA_DIR={data}"]
        step([sys.executable, "scripts/drop.py", *parts], fork, env)
        step([sys.executable, "scripts/rename.py", "fork_lab"], fork, env)
        env["PYTHONPATH"] = str(fork / "src")
        # a fork is a git repository with its own commit: runs record it, tests list its files
        git = ["git", "-c", "user.name=fork-check", "-c", "user.email=fork-check@localhost"]
        git += ["-c", "commit.gpgsign=false", "-c", "core.hooksPath=/dev/null"]
        alone = {k: v for k, v in env.items() if not k.startswith("GIT_")}  # not an outer repo's
        for command in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "the fork"]):
            step([*git, *command], fork, alone)
        step([*make, "lint"], fork, env)
        step([*make, "test"], fork, env)
        step([*make, "train", "PRESET=debug"], fork, env)
        with sqlite3.connect(store) as db:
            ended = db.execute("SELECT status FROM runs").fetchall()
            metrics = {key for (key,) in db.execute("SELECT DISTINCT key FROM metrics")}
        if ended != [("FINISHED",)] or "test/acc" not in metrics:
            raise SystemExit(
                f"error: the fork's debug run ended {ended}, metrics {sorted(metrics)}"
            )
    print(f"fork-check: dropping {' '.join(parts)}, a renamed fork lints, tests and trains")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
