"""The predict part: `make predict` classifies digit images of any size, light or dark, PNG or
JPG, with a checkpoint file, an MLflow run or a registered model (`models:/<name>@<alias>`), and
names each class as the model's dataset does; bad input is one error line."""

from __future__ import annotations

import csv
import subprocess
from collections.abc import Callable
from pathlib import Path

import mlflow
import numpy as np
import pytest
import torch
from mlflow import MlflowClient
from PIL import Image

from helpers import Snapshot, env_for, store_uri
from logged import logged_model
from mnist_fakes import class_images
from tiny_cli import REPO

from mnist_lab.data.datasets import get_dataset
from mnist_lab.data.mnist_datamodule import MNIST_MEAN, MNIST_STD
from mnist_lab.names import BEST_TAG
from mnist_lab.parts.predict import load_digit
from mnist_lab.parts.predict.__main__ import main, table, write_csv

BACKGROUND = -MNIST_MEAN / MNIST_STD  # a black MNIST pixel, normalised
COLUMNS = ["file", "predicted", "class", "probability", *(f"p{k}" for k in range(10))]


@pytest.fixture(scope="module")
def checkpoint(finished_mlp: Snapshot) -> Path:
    """The finished MLP's best checkpoint file (only read)."""
    return Path(MlflowClient(finished_mlp.uri).get_run(finished_mlp.run_id).data.tags[BEST_TAG])


def _digit(label: int, seed: int = 0) -> np.ndarray:
    """A 28x28 fake-MNIST digit of class ``label``: light on dark, like the training data."""
    return class_images(np.array([label]), np.random.default_rng(seed))[0]


def write_image(
    path: Path, pixels: np.ndarray, size: tuple[int, int], light_background: bool = False, mode="L"
):
    image = Image.fromarray(255 - pixels if light_background else pixels).resize(
        size, Image.Resampling.NEAREST
    )
    image.convert(mode).save(path)
    return path


@pytest.fixture
def images(tmp_path: Path) -> dict[Path, int]:
    """PNG and JPG files of odd square sizes: dark digits on light paper, light digits on dark."""
    folder = tmp_path / "digits"
    (folder / "nested").mkdir(parents=True)
    files = {}
    for label in range(10):
        light = label % 2 == 0
        name = f"{label}-{'light' if light else 'dark'}.{'png' if label < 6 else 'jpg'}"
        target = folder / ("nested" if label == 9 else "") / name
        size = (29 + 17 * label, 29 + 17 * label)
        files[
            write_image(target, _digit(label), size, light, "RGB" if label in (3, 7) else "L")
        ] = label
    (folder / "notes.txt").write_text("not an image")
    return files


def test_light_and_dark_backgrounds_of_any_size_give_the_same_input(tmp_path: Path) -> None:
    pixels = _digit(4)
    dark = load_digit(write_image(tmp_path / "dark.png", pixels, (28, 28)))
    light = load_digit(
        write_image(tmp_path / "light.png", pixels, (140, 140), light_background=True)
    )
    rgba = Image.fromarray(255 - pixels).convert("RGBA")
    rgba.putalpha(
        Image.fromarray(np.where(pixels > 127, 255, 0).astype(np.uint8))
    )  # transparent paper
    rgba.save(tmp_path / "transparent.png")
    expected = (torch.from_numpy(pixels).float() / 255 - MNIST_MEAN) / MNIST_STD
    assert dark.shape == light.shape == (1, 28, 28)
    assert torch.allclose(dark[0], expected, atol=1e-5)
    assert (
        light - dark
    ).abs().mean() < 0.05  # 5x larger, inverted: the same digit after resampling
    assert torch.allclose(
        load_digit(tmp_path / "transparent.png")[0, 12:15, 12:15], expected[12:15, 12:15], atol=0.6
    )


def test_a_wide_image_is_padded_with_its_background_not_stretched(tmp_path: Path) -> None:
    pixels = np.zeros((30, 90), dtype=np.uint8)
    pixels[10:20, 40:50] = 255
    x = load_digit(write_image(tmp_path / "wide.png", pixels, (90, 30), light_background=True))
    assert x.shape == (1, 28, 28)
    assert torch.allclose(x[0, :8], torch.full((8, 28), BACKGROUND))  # the padding above the strip
    assert x[0, 14, 14] > 2.0  # the square in the middle is a light digit


def test_predict_prints_a_table_and_writes_the_csv(
    checkpoint: Path, images: dict[Path, int], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "out" / "predictions.csv"
    assert main([str(checkpoint), str(tmp_path / "digits"), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert printed.splitlines()[0].split() == ["file", "predicted", "class", "probability"]
    with out.open() as f:
        reader = csv.DictReader(f)
        rows = list(reader)
    assert reader.fieldnames == COLUMNS
    assert sorted(Path(r["file"]) for r in rows) == sorted(images)
    for row in rows:
        probs = [float(row[f"p{k}"]) for k in range(10)]
        assert int(row["predicted"]) == images[Path(row["file"])], row["file"]
        assert row["class"] == row["predicted"]  # MNIST's class names are its digits
        assert float(row["probability"]) == max(probs) and sum(probs) == pytest.approx(1, abs=1e-4)
        assert Path(row["file"]).name in printed


def test_bad_input_is_one_error_line_and_exit_2(
    checkpoint: Path, images: dict[Path, int], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "broken.png").write_bytes(b"not a png")
    cases = [
        ([str(checkpoint), str(tmp_path / "empty")], "no PNG or JPG files"),
        ([str(checkpoint), str(tmp_path / "digits" / "notes.txt")], "not a PNG or JPG"),
        ([str(checkpoint), str(tmp_path / "broken.png")], "cannot read image"),
        (
            [str(tmp_path / "missing.ckpt"), str(tmp_path / "digits")],
            "does not exist; give a checkpoint file",
        ),
    ]
    for argv, message in cases:
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and message in err and "Traceback" not in err


def test_a_run_id_and_a_registered_model_predict_as_the_runs_best_checkpoint(
    finished_mlp: Snapshot,
    clone: Callable,
    images: dict[Path, int],
    tmp_path: Path,
    capsys: pytest.CaptureFixture,
) -> None:
    copy = clone(finished_mlp)
    best = Path(MlflowClient(copy.uri).get_run(copy.run_id).data.tags[BEST_TAG])
    mlflow.set_tracking_uri(copy.uri)  # registered as `make register` does, without its part
    version = mlflow.register_model(logged_model(copy.uri, copy.run_id).model_uri, "digits")
    MlflowClient(copy.uri).set_registered_model_alias("digits", "champion", version.version)
    tables = {}
    for model in (str(best), copy.run_id, f"runs:/{copy.run_id}", "models:/digits@champion"):
        out = tmp_path / f"{len(tables)}.csv"
        assert main([model, str(tmp_path / "digits"), "--out", str(out)]) == 0, model
        printed = capsys.readouterr().out.splitlines()
        assert printed[-1] == f"wrote {len(images)} predictions to {out}"
        tables[model] = ("\n".join(printed[:-1]), out.read_text())
    assert len(set(tables.values())) == 1, "the same network, however it is named"


@pytest.mark.subprocess
@pytest.mark.slow  # make, twice
def test_make_predict(checkpoint: Path, images: dict[Path, int], tmp_path: Path) -> None:
    out = tmp_path / "make.csv"
    make = ["make", "-s", "-C", str(REPO), "predict"]
    run = subprocess.run(
        [*make, f"CKPT={checkpoint}", f"INPUT={tmp_path / 'digits'}", f"OUT={out}"],
        capture_output=True,
        text=True,
        env=env_for(MLFLOW_TRACKING_URI=store_uri(tmp_path)),  # a file: no store is asked
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    assert f"wrote {len(images)} predictions to {out}" in run.stdout
    assert out.read_text().splitlines()[0] == ",".join(COLUMNS)
    missing = subprocess.run(make, capture_output=True, text=True, timeout=60)
    assert missing.returncode == 2 and "error: make predict CKPT=" in missing.stderr


def test_the_table_and_csv_name_the_class_of_the_models_dataset(tmp_path: Path) -> None:
    names = get_dataset("fashion_mnist").class_names
    probs = torch.full((2, 10), 0.01)
    probs[0, 9], probs[1, 1] = 0.91, 0.91
    paths = [Path("boot.png"), Path("trousers.png")]
    assert [line.split()[2:4] for line in table(paths, probs, names).splitlines()[1:]] == [
        ["Ankle", "boot"],
        ["Trouser", "0.9100"],
    ]
    write_csv(tmp_path / "p.csv", paths, probs, names)
    rows = list(csv.DictReader((tmp_path / "p.csv").open()))
    assert [(r["predicted"], r["class"]) for r in rows] == [("9", "Ankle boot"), ("1", "Trouser")]
