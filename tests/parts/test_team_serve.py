"""The team, serve and predict parts together: a run trained through the team server is registered
there (`make register`: from its best checkpoint, its model logged into the server's artifacts),
and `make predict CKPT=models:/<name>@champion` reads that version back through the server."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch
from mlflow import MlflowClient
from PIL import Image
from team_up import Team

from mnist_fakes import class_images
from tiny_cli import tiny_args

from mnist_lab.cli import main as train
from mnist_lab.parts.predict import load_digit
from mnist_lab.parts.predict.__main__ import main as predict
from mnist_lab.parts.serve.registry import ALIAS, DEFAULT_NAME
from mnist_lab.parts.serve.registry import main as register
from mnist_lab.resume import load_classifier

pytestmark = [  # the group's `make team-up` (conftest)
    pytest.mark.xdist_group("team"),
    pytest.mark.server,
    pytest.mark.subprocess,
    pytest.mark.slow,
]
CHAMPION = f"models:/{DEFAULT_NAME}@{ALIAS}"


def test_a_model_registered_on_the_team_server_is_what_predict_reads_by_its_alias(
    team: Team,
    fake_mnist: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", team.uri)
    monkeypatch.chdir(tmp_path)
    short = ["--trainer.max_epochs=1", "--run_test=false", "--trainer.limit_val_batches=2"]
    run_id = train(tiny_args("fit", fake_mnist, *short)).trainer.logger.run_id
    assert register([run_id]) == 0  # no logged model: its best checkpoint's network, logged now
    assert CHAMPION in capsys.readouterr().out
    version = MlflowClient(team.uri).get_model_version_by_alias(DEFAULT_NAME, ALIAS)
    assert version.run_id == run_id
    assert list((team.folder / "artifacts").rglob("MLmodel")), "the model, in the server's store"

    image, out = tmp_path / "seven.png", tmp_path / "predictions.csv"
    Image.fromarray(class_images(np.array([7]), np.random.default_rng(0))[0]).save(image)
    assert predict([CHAMPION, str(image), "--out", str(out)]) == 0
    (row,) = csv.DictReader(out.open())
    with torch.no_grad():
        expected = load_classifier(run_id)(load_digit(image)[None]).softmax(dim=1)[0]
    assert int(row["predicted"]) == int(expected.argmax())
    assert float(row["probability"]) == pytest.approx(float(expected.max()), abs=1e-5)
