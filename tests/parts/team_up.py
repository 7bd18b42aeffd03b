"""What the team part's tests share (`make drop PART=team` deletes it with them): `make team-up` in
a folder of the test's, its two exports, and `make team-down` afterwards, which must stop both the
MLflow server and PostgreSQL; then the data is removed, the cluster too where it lives outside the
folder (as root, where PostgreSQL's user cannot enter a pytest folder)."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import pytest

from helpers import answers
from tiny_cli import REPO


@dataclass(frozen=True)
class Team:
    folder: Path  # TEAM_DIR
    printed: str  # what `make team-up` printed: the exports
    uri: str  # MLFLOW_TRACKING_URI, the MLflow server
    storage: str  # STORAGE, the Optuna database


def make_team(folder: Path, target: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "TEAM_DIR": str(folder)}
    return subprocess.run(
        ["make", "-s", "-C", str(REPO), target],
        env=env,
        capture_output=True,
        text=True,
        timeout=280,
    )


def exports(printed: str) -> dict[str, str]:
    """``{name: value}`` of `make team-up`'s ``export NAME=value`` lines."""
    return dict(line.removeprefix("export ").split("=", 1) for line in printed.splitlines())


def listens(uri: str) -> bool:
    where = urlparse(uri.replace("postgresql+psycopg2", "postgresql"))
    try:
        socket.create_connection((where.hostname, where.port), timeout=5).close()
        return True
    except OSError:
        return False


@contextmanager
def team_up(folder: Path) -> Iterator[Team]:
    """`make team-up` in ``folder``; `make team-down` after, checked to stop what it started."""
    if not list(Path("/usr/lib/postgresql").glob("*/bin/initdb")):
        missing = pytest.fail if os.environ.get("CI") else pytest.skip  # .ci/run installs it
        missing("PostgreSQL is not installed (apt-get install postgresql)")
    up = make_team(folder, "team-up")
    try:
        assert up.returncode == 0, up.stderr
        found = exports(up.stdout)
        yield Team(folder, up.stdout, found["MLFLOW_TRACKING_URI"], found["STORAGE"])
    finally:
        down = make_team(folder, "team-down")
        kept = re.search(r"the data stays in (.+) \(rm -rf", down.stdout)
        for path in kept.group(1).split(" and ") if kept else [str(folder)]:
            shutil.rmtree(path, ignore_errors=True)
    assert down.returncode == 0, down.stderr
    assert not answers(f"{found['MLFLOW_TRACKING_URI']}/health"), "the server is stopped"
    assert not listens(found["STORAGE"]), "PostgreSQL is stopped"
