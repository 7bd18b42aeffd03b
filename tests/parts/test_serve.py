"""The serve part: `make register` makes a run's model the next version of a registered model and
moves the alias @champion to it (a run without a logged model is registered from its best
checkpoint), `models:/<name>@champion` then names it everywhere; `make serve RUN=<id> |
MODEL=models:/...` serves a checked copy over REST; bad input is one error line."""

from __future__ import annotations

import json
import subprocess
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import mlflow
import numpy as np
import pytest
import torch
from mlflow import MlflowClient

from helpers import Snapshot, env_for, started_server, store_uri
from logged import folder, logged_model
from tiny_cli import REPO, tiny_args

from mnist_lab.cli import main as cli_main
from mnist_lab.errors import ConfigError
from mnist_lab.parts.serve import main as serve_main
from mnist_lab.parts.serve.registry import ALIAS, DEFAULT_NAME, register
from mnist_lab.parts.serve.registry import main as register_main
from mnist_lab.resume import load_classifier

CHAMPION = f"models:/{DEFAULT_NAME}@{ALIAS}"


def one_error_line(err: str) -> str:
    assert "Traceback" not in err, err[-3000:]
    assert err.startswith("error: ") and err.count("\n") == 1, err[-3000:]
    return err


@pytest.mark.slow  # a second, short fit
def test_register_moves_champion_to_each_new_version_and_the_alias_follows(
    finished_mlp: Snapshot,
    clone: Callable,
    fake_mnist: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    copy = clone(finished_mlp)
    client, x = MlflowClient(copy.uri), torch.randn(4, 1, 28, 28)
    assert register_main([copy.run_id]) == 0
    said = capsys.readouterr().out
    assert f"registered {DEFAULT_NAME} version 1 (@{ALIAS}): {CHAMPION}" in said
    assert "moves from" not in said, "there was no champion before"

    quick = ["--trainer.max_epochs=1", "--run_test=false", "--trainer.limit_train_batches=2"]
    untested = cli_main(tiny_args("fit", fake_mnist, *quick, "--trainer.limit_val_batches=1"))
    run_id = untested.trainer.logger.run_id
    monkeypatch.setattr(mlflow.tracking.fluent, "_active_experiment_id", None)  # restored after
    mlflow.set_experiment("elsewhere")  # another active experiment must not get in the way
    assert register_main([run_id]) == 0
    said = capsys.readouterr().out
    assert "logged its best checkpoint's network (selected on validation, untested)" in said
    assert f"@{ALIAS} moves from version 1 (test/acc " in said and "to version 2 (untested" in said
    version = client.get_model_version_by_alias(DEFAULT_NAME, ALIAS)
    assert (str(version.version), version.run_id) == ("2", run_id)
    assert torch.equal(load_classifier(CHAMPION)(x), load_classifier(run_id)(x)), "its best ckpt"
    first = load_classifier(f"models:/{DEFAULT_NAME}/1")(x)
    assert torch.equal(first, load_classifier(copy.run_id)(x)), "version 1 stays the first run's"
    assert serve_main([CHAMPION]) == 0  # what `make serve MODEL=` serves: checked to exist
    assert Path(capsys.readouterr().out.strip()).is_dir()


def test_bad_registrations_and_unknown_models_are_one_error_line(
    tracking_uri: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
) -> None:
    for argv, message in [
        (["not-a-run"], "'not-a-run' is not an MLflow run id"),
        (["0" * 32], f"no MLflow run {'0' * 32}"),
        ([], "make register RUN=<run id>"),
    ]:
        assert register_main(argv) == 2
        assert message in one_error_line(capsys.readouterr().err)
    for argv, message in [
        (["models:/nothing@champion"], "no model version models:/nothing@champion"),
        (["deadbeef"], "'deadbeef' is neither an MLflow run id"),  # RUN= given, not an id
        ([], "give one: make serve RUN=<run id> | MODEL=models:/<name>@<alias>"),
    ]:
        assert serve_main(argv) == 2
        assert message in one_error_line(capsys.readouterr().err)
    with pytest.raises(ConfigError, match="make register RUN="):
        load_classifier(CHAMPION)
    missing = tmp_path / "none" / "mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{missing}")
    assert register_main(["0" * 32]) == 2
    assert "no MLflow store at" in one_error_line(capsys.readouterr().err)
    assert not missing.parent.exists(), "asking makes no store"


def test_serve_gives_a_checked_copy_of_the_runs_logged_model(
    finished_mlp: Snapshot, clone: Callable, capsys: pytest.CaptureFixture
) -> None:
    copy = clone(finished_mlp)
    assert serve_main([copy.run_id]) == 0  # `make serve RUN=<id>`
    local = Path(capsys.readouterr().out.strip())
    assert (local / "MLmodel").is_file() and list(local.rglob("*.pth"))
    mlflow.set_tracking_uri(copy.uri)
    served = mlflow.pytorch.load_model(str(local)).eval()
    x = torch.randn(3, 1, 28, 28)
    with torch.no_grad():
        assert torch.allclose(served(x), load_classifier(copy.run_id)(x), atol=1e-6)


def test_a_damaged_model_file_is_one_error_line_not_a_server(
    finished_mlp: Snapshot, clone: Callable, capsys: pytest.CaptureFixture
) -> None:
    copy = clone(finished_mlp)
    archives = list(folder(logged_model(copy.uri, copy.run_id)).rglob("*.pth"))
    assert archives, "the logged model keeps its network as a zip archive"
    assert copy.root in archives[0].parents, "the copy's, not the shared snapshot's"
    data = bytearray(archives[0].read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte inside the archive
    archives[0].write_bytes(bytes(data))
    assert serve_main([copy.run_id]) == 2
    assert "is damaged" in one_error_line(capsys.readouterr().err)


def rest(uri: str, images: np.ndarray) -> urllib.request.Request:
    """A scoring request; NaN as Python's json writes it (JSON has no NaN)."""
    body = json.dumps({"inputs": images.tolist()}).encode()
    headers = {"Content-Type": "application/json"}
    return urllib.request.Request(f"{uri}/invocations", data=body, headers=headers)


@pytest.mark.server
@pytest.mark.subprocess
@pytest.mark.slow
def test_make_serve_answers_a_registered_model_over_rest_and_refuses_nan(
    finished_mlp: Snapshot, clone: Callable, tmp_path: Path
) -> None:
    copy = clone(finished_mlp)
    register(copy.run_id, copy.uri)
    command = ["make", "-s", "-C", str(REPO), "serve", f"MODEL={CHAMPION}", "PORT=0"]
    with started_server(command, tmp_path / "serve.log") as (_, uri):
        with urllib.request.urlopen(rest(uri, np.zeros((2, 1, 28, 28))), timeout=30) as answer:
            predictions = np.asarray(json.loads(answer.read())["predictions"])
        with pytest.raises(urllib.error.HTTPError) as refused:  # not NaN logits: no JSON
            urllib.request.urlopen(rest(uri, np.full((1, 1, 28, 28), np.nan)), timeout=30)
    assert predictions.shape == (2, 10)
    assert refused.value.code == 400 and "NaN or infinite" in refused.value.read().decode()
    x = torch.zeros(2, 1, 28, 28)
    with torch.no_grad():
        expected = load_classifier(copy.run_id)(x).numpy()
    np.testing.assert_allclose(predictions, expected, atol=1e-5)


@pytest.mark.subprocess
@pytest.mark.slow  # make, then Python and MLflow
def test_make_serve_with_an_unknown_run_is_one_error(tmp_path: Path) -> None:
    run = "0123456789abcdef0123456789abcdef"
    result = subprocess.run(
        ["make", "-s", "-C", str(REPO), "serve", f"RUN={run}", "PORT=0"],  # never listens
        capture_output=True,
        text=True,
        env=env_for(MLFLOW_TRACKING_URI=store_uri(tmp_path)),
        timeout=120,
    )
    assert result.returncode != 0
    assert f"error: no MLflow run {run}" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.subprocess
@pytest.mark.slow  # make, then Python and MLflow
def test_make_register_names_the_alias_it_moved(finished_mlp: Snapshot, clone: Callable) -> None:
    copy = clone(finished_mlp)
    result = subprocess.run(
        ["make", "-s", "-C", str(REPO), "register", f"RUN={copy.run_id}", "NAME=digits"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "models:/digits@champion" in result.stdout
    x = torch.randn(2, 1, 28, 28)
    assert torch.equal(
        load_classifier("models:/digits@champion")(x), load_classifier(copy.run_id)(x)
    )
