"""The team part: `make team-up` starts PostgreSQL and an MLflow server over it on this machine, on
free ports (also as root in a folder PostgreSQL's user cannot enter), and prints the two exports
that point every target there; a second `make team-up` reuses them; a whole run goes through the
server; `make team-down` stops both (checked as the session ends, by ``team_up``)."""

from __future__ import annotations

from pathlib import Path

import pytest
from mlflow import MlflowClient
from team_up import Team, make_team

from helpers import job_runners
from tiny_cli import tiny_args

from mnist_lab.cli import main

# `make team-up` (MLflow's schema made in PostgreSQL as the server first starts) takes half a minute
# or more: once, in the conftest, for every file of the group
pytestmark = [
    pytest.mark.xdist_group("team"),
    pytest.mark.server,
    pytest.mark.subprocess,
    pytest.mark.slow,
]


def test_team_up_prints_the_exports_and_a_second_one_reuses_what_is_up(team: Team) -> None:
    assert team.uri.startswith("http://127.0.0.1:")
    assert team.storage.startswith("postgresql+psycopg2://") and "@127.0.0.1:" in team.storage
    again = make_team(team.folder, "team-up")
    assert (again.returncode, again.stdout) == (0, team.printed), "the same server, the same ports"
    server = int((team.folder / "mlflow.pid").read_text())
    assert not job_runners(server), "MLflow's GenAI job runner: nothing here uses it"


def test_a_whole_run_goes_through_the_team_server(
    team: Team, fake_mnist: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", team.uri)
    monkeypatch.chdir(tmp_path)
    run_id = main(tiny_args("fit", fake_mnist, "--trainer.max_epochs=1")).trainer.logger.run_id
    client = MlflowClient(team.uri)
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED" and {"val/acc", "test/acc"} <= set(run.data.metrics)
    artifacts = {a.path for a in client.list_artifacts(run_id)}
    assert {"config.yaml", "last"} <= artifacts, "artifacts through the server, into its folder"
    assert list((team.folder / "artifacts").rglob("config.yaml"))
