"""`make predict`: digit images of any size, light or dark, from a checkpoint file or an MLflow run."""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from PIL import Image

from mnist_fakes import class_images
from mnist_lab.cli import main as cli_main
from mnist_lab.data.mnist_datamodule import MNIST_MEAN, MNIST_STD
from mnist_lab.parts.predict import load_digit
from mnist_lab.resume import load_classifier
from mnist_lab.parts.predict.__main__ import main
from tiny_cli import tiny_args

BACKGROUND = -MNIST_MEAN / MNIST_STD  # a black MNIST pixel, normalised
COLUMNS = ["file", "predicted", "class", "probability", *(f"p{k}" for k in range(10))]


def _trainer(tmp_path: Path, **kwargs) -> L.Trainer:
    options = {"max_epochs": 1, "enable_progress_bar": False, "enable_model_summary": False, **kwargs}
    return L.Trainer(default_root_dir=tmp_path, **options)


@pytest.fixture(scope="module")
def checkpoint(fake_mnist: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default network (the MLP), trained one epoch on the fake MNIST by the CLI."""
    tmp = tmp_path_factory.mktemp("ckpt")
    extra = (
        "--trainer.max_epochs=1",
        "--trainer.logger=false",
        "--run_test=false",
        f"--trainer.default_root_dir={tmp}",
    )
    return Path(cli_main(tiny_args("fit", fake_mnist, *extra)).trainer.checkpoint_callback.best_model_path)


def _digit(label: int, seed: int = 0) -> np.ndarray:
    """A 28x28 fake-MNIST digit of class ``label``: light on dark, like the training data."""
    return class_images(np.array([label]), np.random.default_rng(seed))[0]


def write_image(path: Path, pixels: np.ndarray, size: tuple[int, int], light_background: bool = False, mode="L"):
    image = Image.fromarray(255 - pixels if light_background else pixels).resize(size, Image.Resampling.NEAREST)
    image.convert(mode).save(path)
    return path


@pytest.fixture
def images(tmp_path: Path) -> dict[Path, int]:
    """PNG and JPG files of odd square sizes, dark digits on light paper and light digits on dark."""
    folder = tmp_path / "digits"
    (folder / "nested").mkdir(parents=True)
    files = {}
    for label in range(10):
        light = label % 2 == 0
        name = f"{label}-{'light' if light else 'dark'}.{'png' if label < 6 else 'jpg'}"
        target = folder / ("nested" if label == 9 else "") / name
        size = (29 + 17 * label, 29 + 17 * label)
        files[write_image(target, _digit(label), size, light, "RGB" if label in (3, 7) else "L")] = label
    (folder / "notes.txt").write_text("not an image")
    return files


def test_light_and_dark_backgrounds_of_any_size_give_the_same_input(tmp_path: Path) -> None:
    pixels = _digit(4)
    dark = load_digit(write_image(tmp_path / "dark.png", pixels, (28, 28)))
    light = load_digit(write_image(tmp_path / "light.png", pixels, (140, 140), light_background=True))
    rgba = Image.fromarray(255 - pixels).convert("RGBA")
    rgba.putalpha(Image.fromarray(np.where(pixels > 127, 255, 0).astype(np.uint8)))  # transparent paper
    rgba.save(tmp_path / "transparent.png")
    expected = (torch.from_numpy(pixels).float() / 255 - MNIST_MEAN) / MNIST_STD
    assert dark.shape == light.shape == (1, 28, 28)
    assert torch.allclose(dark[0], expected, atol=1e-5)
    assert (light - dark).abs().mean() < 0.05  # 5x larger, inverted: the same digit after resampling
    assert torch.allclose(load_digit(tmp_path / "transparent.png")[0, 12:15, 12:15], expected[12:15, 12:15], atol=0.6)


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
        ([str(tmp_path / "missing.ckpt"), str(tmp_path / "digits")], "does not exist; give a checkpoint file"),
    ]
    for argv, message in cases:
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and message in err and "Traceback" not in err


@pytest.mark.slow  # a new MLflow store and a logged run
def test_an_mlflow_run_id_loads_the_runs_best_checkpoint_local_or_uploaded(
    fake_mnist: Path, tracking_uri: str, tmp_path: Path
) -> None:
    cli = cli_main(tiny_args("fit", fake_mnist, "--trainer.max_epochs=2", "--run_test=false"))
    best, run_id = Path(cli.trainer.checkpoint_callback.best_model_path), cli.trainer.logger.run_id
    x = torch.randn(3, 1, 28, 28)
    expected = load_classifier(best)(x)
    for ref in (run_id, f"runs:/{run_id}"):
        assert torch.allclose(load_classifier(ref)(x), expected, atol=1e-6)
    shutil.rmtree(best.parent)  # the local files are gone: the copy MLFlowLogger uploaded serves
    assert torch.allclose(load_classifier(run_id)(x), expected, atol=1e-6)
    with pytest.raises(ValueError, match="no MLflow run"):
        load_classifier("0" * 32)


@pytest.mark.subprocess
def test_make_predict(repo_root: Path, checkpoint: Path, images: dict[Path, int], tmp_path: Path) -> None:
    out = tmp_path / "make.csv"
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"}
    run = subprocess.run(
        ["make", "-s", "predict", f"CKPT={checkpoint}", f"INPUT={tmp_path / 'digits'}", f"OUT={out}"],
        cwd=repo_root,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    assert f"wrote {len(images)} predictions to {out}" in run.stdout
    assert out.read_text().splitlines()[0] == ",".join(COLUMNS)
    missing = subprocess.run(["make", "-s", "predict"], cwd=repo_root, capture_output=True, text=True, timeout=60)
    assert missing.returncode == 2 and "error: make predict CKPT=" in missing.stderr


def test_the_table_and_csv_name_the_class_of_the_models_dataset(tmp_path: Path) -> None:
    from mnist_lab.data.datasets import get_dataset
    from mnist_lab.parts.predict.__main__ import table, write_csv

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
