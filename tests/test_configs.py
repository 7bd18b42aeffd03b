"""configs/: the CLI's defaults, the networks and the presets parse alone and stacked as documented, and
every preset trains a few batches; `make train` composes them with its variables in a fixed order."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from unittest.mock import ANY

import pytest
import yaml

from mnist_lab.cli import main
from mnist_lab.cli.defaults import CONFIG_DIR, DEFAULT_NET, default_config_files
from tiny_cli import tiny_args

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "configs"
NETS = sorted(p.stem for p in (CONFIGS / "net").glob("*.yaml"))
RECIPES = sorted(p.stem for p in (CONFIGS / "recipes").glob("*.yaml"))
PRESETS = sorted(p.stem for p in CONFIGS.glob("*.yaml") if p.name != "defaults.yaml")


def made_for(preset: str) -> str | None:
    """The network a preset is for (its ``# network: <model>`` line, which `make train` checks), or None: any."""
    found = re.search(r"^# network: *(\S+)", (CONFIGS / f"{preset}.yaml").read_text(), re.MULTILINE)
    return found.group(1) if found else None


MADE_FOR = {p: made_for(p) for p in PRESETS if made_for(p)}


def preset_stacks() -> list[tuple[str, str]]:
    """``(network, preset)`` for every preset on every network it applies to."""
    return [(net, preset) for preset in PRESETS for net in NETS if MADE_FOR.get(preset, net) == net]


def resolved(capsys: pytest.CaptureFixture, *args: str) -> dict:
    """``python -m mnist_lab fit <args> --print_config``, read back."""
    with pytest.raises(SystemExit) as exit_:
        main(["fit", *args, "--print_config"])
    out, err = capsys.readouterr()
    assert exit_.value.code == 0, err
    return yaml.safe_load(out)


def config(name: str) -> list[str]:
    return ["--config", str(CONFIGS / f"{name}.yaml")]


def network(net: str) -> list[str]:
    """What `make train MODEL=<net>` passes: the network, then its recipe if it has one."""
    return config(f"net/{net}") + (config(f"recipes/{net}") if net in RECIPES else [])


def test_the_bare_cli_resolves_to_the_template_from_any_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.chdir(tmp_path)
    bare = resolved(capsys)
    assert bare["model"]["net"]["class_path"] == "mnist_lab.models.components.MLP"
    assert bare["model"]["net"]["init_args"]["dropout"] == 0.2
    assert bare["trainer"]["logger"]["class_path"] == "mnist_lab.tracking.RunLogger"
    callbacks = [c["class_path"] for c in bare["trainer"]["callbacks"]]
    assert callbacks == ["mnist_lab.recovery.BestAndLastCheckpoint", "lightning.pytorch.callbacks.LearningRateMonitor"]
    assert bare["seed_everything"] == 42 and bare["trainer"]["max_epochs"] == 15
    assert bare["trainer"]["default_root_dir"] == "outputs"
    assert resolved(capsys, *config("net/mlp")) == bare  # make train == python -m mnist_lab fit


def test_every_file_under_configs_is_checked_here() -> None:
    files = {str(p.relative_to(CONFIGS).with_suffix("")) for p in CONFIGS.rglob("*.yaml")}
    sweeps = {f"sweeps/{p.stem}" for p in (CONFIGS / "sweeps").glob("*.yaml")}  # test_sweep.py parses each
    expected = {"defaults"} | {f"net/{n}" for n in NETS} | {f"recipes/{r}" for r in RECIPES} | set(PRESETS)
    assert files == expected | sweeps
    assert set(RECIPES) <= set(NETS)


@pytest.mark.parametrize("net", NETS)
def test_network_configs_hold_only_the_network(net: str) -> None:
    assert yaml.safe_load((CONFIGS / "net" / f"{net}.yaml").read_text()) == {"model": {"net": ANY}}
    assert set(MADE_FOR.values()) <= set(NETS) and MADE_FOR == {"speed": "cnn", "study": "mlp"}
    assert {preset for _, preset in preset_stacks()} == set(PRESETS)


@pytest.mark.parametrize("name", ["defaults", *(f"net/{n}" for n in NETS)])
def test_defaults_and_networks_parse_alone(name: str, capsys: pytest.CaptureFixture) -> None:
    assert resolved(capsys, *config(name))["model"]["net"]["class_path"]


@pytest.mark.parametrize("preset", [p for p in PRESETS if p not in MADE_FOR])
def test_presets_for_any_network_parse_alone(preset: str, capsys: pytest.CaptureFixture) -> None:
    resolved(capsys, *config(preset))


@pytest.mark.parametrize(("net", "preset"), preset_stacks())
def test_presets_parse_stacked_on_their_networks(net: str, preset: str, capsys: pytest.CaptureFixture) -> None:
    stacked = resolved(capsys, *network(net), *config(preset))
    assert stacked["model"]["net"]["class_path"].endswith("." + net.upper())
    own = yaml.safe_load((CONFIGS / f"{preset}.yaml").read_text())
    for key, value in (own.get("trainer") or {}).items():  # the preset's own values are the ones in force
        assert stacked["trainer"][key] == value


def test_the_cnn_keeps_its_batch_norm_and_its_recipe(capsys: pytest.CaptureFixture) -> None:
    """MLP arguments of the defaults carry over when the class changes: net/cnn.yaml must restate batch_norm."""
    cnn = resolved(capsys, *network("cnn"))
    net = cnn["model"]["net"]["init_args"]
    assert net["batch_norm"] is True and net["dropout"] == 0.1 and len(net["blocks"]) == 4
    assert cnn["trainer"]["max_epochs"] == 10 and cnn["data"]["init_args"]["augment"] is True
    assert cnn["model"]["optimizer"]["init_args"]["lr"] == 0.002


def test_study_keeps_the_default_callbacks(capsys: pytest.CaptureFixture) -> None:
    study = resolved(capsys, *config("net/mlp"), *config("study"))
    callbacks = [c["class_path"].rsplit(".", 1)[-1] for c in study["trainer"]["callbacks"]]
    assert callbacks == ["BestAndLastCheckpoint", "LearningRateMonitor"]
    assert study["model"]["net"]["init_args"]["depth"] == 4


@pytest.mark.parametrize(("net", "preset"), [(MADE_FOR.get(p, DEFAULT_NET), p) for p in PRESETS])
def test_every_preset_trains_a_few_batches(
    net: str, preset: str, fake_mnist: Path, tracking_uri: str, capsys: pytest.CaptureFixture
) -> None:
    cli = main(
        tiny_args(
            "fit",
            fake_mnist,
            *config(preset),
            "--trainer.max_epochs=1",
            "--trainer.limit_train_batches=3",
            "--trainer.limit_val_batches=1",
            "--trainer.logger=false",
            "--run_test=false",
            config=str(CONFIGS / "net" / f"{net}.yaml"),
        )
    )
    assert cli.trainer.global_step == 3
    assert (Path(cli.trainer.checkpoint_callback.dirpath) / "last.ckpt").is_file()


def test_without_the_configs_the_cli_says_so_and_uses_the_code_defaults(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    assert default_config_files(tmp_path) == []
    assert "not found (installed without the template's checkout?)" in capsys.readouterr().err
    assert default_config_files() == [str(CONFIG_DIR / "defaults.yaml"), str(CONFIG_DIR / "net" / "mlp.yaml")]


@pytest.mark.subprocess
def test_python_m_fit_from_another_directory_is_the_template(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mnist_lab", "fit", "--print_config"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO / "src")},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    printed = yaml.safe_load(result.stdout)
    assert printed["model"]["net"]["class_path"] == "mnist_lab.models.components.MLP"
    assert printed["trainer"]["logger"]["class_path"] == "mnist_lab.tracking.RunLogger"


def make(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["make", "-s", *args], cwd=REPO, capture_output=True, text=True, timeout=300)


@pytest.mark.subprocess
def test_make_variables_win_over_presets() -> None:
    result = make("train", "PRESET=regularised debug", "DROPOUT=0.05", "ARGS=--print_config")
    assert result.returncode == 0, result.stderr
    printed = yaml.safe_load(result.stdout)
    assert printed["model"]["net"]["init_args"]["dropout"] == 0.05  # the variable, over regularised's 0.3
    assert printed["model"]["net"]["init_args"]["batch_norm"] is True  # the preset, where no variable is given
    assert printed["trainer"]["limit_train_batches"] == 20


@pytest.mark.subprocess
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("MODEL=cnn", "DEPTH=3"), "error: DEPTH applies to MODEL=mlp only"),
        (("MODEL=cnn", "WIDTH=64"), "error: WIDTH applies to MODEL=mlp only"),
        (("PRESET=regularised nope",), "error: unknown PRESET 'nope'; choose from: debug regularised speed study"),
        (("MODEL=cnn", "PRESET=study"), "error: PRESET=study is for MODEL=mlp (MODEL=cnn)"),
        (("PRESET=debug speed",), "error: PRESET=speed is for MODEL=cnn (MODEL=mlp)"),
    ],
)
def test_make_rejects_what_does_not_apply_before_python_starts(args: tuple[str, ...], message: str) -> None:
    result = make("train", *args)
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors == [line for line in errors if line.startswith(message)] and len(errors) == 1
    assert "usage:" not in result.stderr and "NestedArg" not in result.stderr
