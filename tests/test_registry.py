"""`make register`: a run's logged model as a registered version with the alias @champion, read back by
`make predict CKPT=models:/...` and `make serve MODEL=models:/...`, in a real sqlite store."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from mlflow import MlflowClient
from PIL import Image

from mnist_fakes import class_images
from mnist_lab.parts.serve import main as model_uri_main
from mnist_lab.cli import main as cli_main
from mnist_lab.resume import load_classifier
from mnist_lab.parts.serve.registry import main
from tiny_cli import tiny_args

CHAMPION = "models:/mnist-classifier@champion"


@pytest.mark.slow  # two tiny runs, each tested and its model logged
def test_register_moves_champion_to_each_new_version_and_predict_follows(
    fake_mnist: Path, tracking_uri: str, capsys: pytest.CaptureFixture[str]
) -> None:
    runs = [cli_main(tiny_args("fit", fake_mnist, "--trainer.max_epochs=1", f"--seed_everything={s}")) for s in (1, 2)]
    ids = [cli.trainer.logger.run_id for cli in runs]
    client, x = MlflowClient(tracking_uri), torch.randn(4, 1, 28, 28)
    for number, run_id in enumerate(ids, start=1):
        assert main([run_id]) == 0
        assert f"registered mnist-classifier version {number} (@champion)" in capsys.readouterr().out
        version = client.get_model_version_by_alias("mnist-classifier", "champion")
        assert (str(version.version), version.run_id) == (str(number), run_id)
        assert torch.equal(load_classifier(CHAMPION)(x), load_classifier(run_id)(x))  # its best checkpoint
    assert torch.equal(load_classifier("models:/mnist-classifier/1")(x), load_classifier(ids[0])(x))
    model_uri_main([CHAMPION])  # what `make serve MODEL=` serves: the alias itself, checked to exist
    assert capsys.readouterr().out.strip() == CHAMPION


def test_bad_registrations_are_one_error_line(
    fake_mnist: Path, tracking_uri: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for argv, message in [
        (["not-a-run"], "is not an MLflow run id"),
        (["0" * 32], "no MLflow run"),
        ([], "give a run or a sweep"),
    ]:
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and message in err and err.count("\n") == 1
    missing = Path.cwd() / "none" / "mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{missing}")
    assert main(["--sweep", "mlp"]) == 2 and "no MLflow store at" in capsys.readouterr().err
    assert not missing.exists()  # not made by asking
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking_uri)
    with pytest.raises(ValueError, match="make register RUN="):
        load_classifier(CHAMPION)
    with pytest.raises(SystemExit):
        model_uri_main(["models:/nothing@champion"])
    assert "error: no model version models:/nothing@champion" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        model_uri_main(["deadbeef"])  # `make serve RUN=deadbeef`: a RUN was given, just not an id
    assert "error: 'deadbeef' is neither an MLflow run id" in capsys.readouterr().err


@pytest.mark.subprocess
@pytest.mark.slow
def test_make_register_then_make_predict_by_alias(repo_root: Path, fake_mnist: Path, tracking_uri: str) -> None:
    run_id = cli_main(tiny_args("fit", fake_mnist, "--trainer.max_epochs=1")).trainer.logger.run_id
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking_uri}
    make = ["make", "-s", "-C", str(repo_root)]
    register = subprocess.run(
        [*make, "register", f"RUN={run_id}", "NAME=digits"], env=env, capture_output=True, text=True
    )
    assert register.returncode == 0, register.stderr
    assert "models:/digits@champion" in register.stdout
    image, out = Path.cwd() / "seven.png", Path.cwd() / "p.csv"
    Image.fromarray(class_images(np.array([7]), np.random.default_rng(0))[0]).save(image)
    predict = subprocess.run(
        [*make, "predict", "CKPT=models:/digits@champion", f"INPUT={image}", f"OUT={out}"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert predict.returncode == 0, predict.stderr
    assert "wrote 1 predictions" in predict.stdout


@pytest.mark.slow  # a tiny run
def test_a_run_without_a_logged_model_is_registered_from_its_best_checkpoint(
    fake_mnist: Path, tracking_uri: str, capsys: pytest.CaptureFixture[str]
) -> None:
    import mlflow

    run_id = cli_main(tiny_args("fit", fake_mnist, "--trainer.max_epochs=1", "--run_test=false")).trainer.logger.run_id
    mlflow.set_experiment("elsewhere")  # another experiment active in this process must not get in the way
    assert main([run_id]) == 0
    assert "selected on validation, untested" in capsys.readouterr().out
    x = torch.randn(3, 1, 28, 28)
    assert torch.equal(load_classifier(CHAMPION)(x), load_classifier(run_id)(x))
