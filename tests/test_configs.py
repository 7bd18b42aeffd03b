"""configs/: every config file parses alone and stacked as `make train` stacks it, every preset trains a few
batches, and `make train` composes them with its variables in a fixed order. Properties, not today's values."""

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


def test_the_bare_cli_is_make_train_from_any_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.chdir(tmp_path)
    bare = resolved(capsys)
    assert bare == resolved(capsys, *config("net/mlp"))  # make train == python -m mnist_lab fit
    defaults = yaml.safe_load((CONFIGS / "defaults.yaml").read_text())
    listed = [c["class_path"] for c in defaults["trainer"]["callbacks"]]
    assert [c["class_path"] for c in bare["trainer"]["callbacks"]] == listed  # every callback is in the config


def test_every_recipe_and_preset_names_a_network_that_exists() -> None:
    assert set(RECIPES) <= set(NETS) and set(MADE_FOR.values()) <= set(NETS)


@pytest.mark.parametrize("net", NETS)
def test_network_configs_hold_only_the_network(net: str) -> None:
    assert yaml.safe_load((CONFIGS / "net" / f"{net}.yaml").read_text()) == {"model": {"net": ANY}}


@pytest.mark.parametrize("name", ["defaults", *(f"net/{n}" for n in NETS)])
def test_defaults_and_networks_parse_alone(name: str, capsys: pytest.CaptureFixture) -> None:
    assert resolved(capsys, *config(name))["model"]["net"]["class_path"]


@pytest.mark.parametrize("preset", [p for p in PRESETS if p not in MADE_FOR])
def test_presets_for_any_network_parse_alone(preset: str, capsys: pytest.CaptureFixture) -> None:
    resolved(capsys, *config(preset))


@pytest.mark.parametrize(("net", "preset"), preset_stacks())
def test_presets_parse_stacked_on_their_networks(net: str, preset: str, capsys: pytest.CaptureFixture) -> None:
    stacked = resolved(capsys, *network(net), *config(preset))
    own_net = yaml.safe_load((CONFIGS / "net" / f"{net}.yaml").read_text())["model"]["net"]
    assert stacked["model"]["net"]["class_path"] == own_net["class_path"]
    own = yaml.safe_load((CONFIGS / f"{preset}.yaml").read_text())
    for key, value in (own.get("trainer") or {}).items():  # the preset's own values are the ones in force
        if key == "callbacks":  # a list replaces the defaults' whole list
            assert [c["class_path"] for c in stacked["trainer"][key]] == [c["class_path"] for c in value]
        else:
            assert stacked["trainer"][key] == value


@pytest.mark.parametrize("net", NETS)
def test_a_network_keeps_its_own_arguments_whatever_the_default_network(
    net: str, capsys: pytest.CaptureFixture
) -> None:
    """Arguments of the default network carry over when the class changes: a network file restates its own."""
    stacked = resolved(capsys, *network(net))
    own = yaml.safe_load((CONFIGS / "net" / f"{net}.yaml").read_text())["model"]["net"].get("init_args") or {}
    scalars = {k: v for k, v in own.items() if not isinstance(v, (list, dict))}
    assert {k: stacked["model"]["net"]["init_args"][k] for k in scalars} == scalars


@pytest.mark.parametrize(("net", "preset"), [(MADE_FOR.get(p, "mlp"), p) for p in PRESETS])
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
        (("PRESET=regularised nope",), "error: unknown PRESET 'nope'; choose from: " + " ".join(PRESETS)),
        (("PRESET=debug speed",), "error: PRESET=speed is for MODEL=cnn (MODEL=mlp)"),
    ],
)
def test_make_rejects_what_does_not_apply_before_python_starts(args: tuple[str, ...], message: str) -> None:
    result = make("train", *args)
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors == [line for line in errors if line.startswith(message)] and len(errors) == 1
    assert "usage:" not in result.stderr and "NestedArg" not in result.stderr
