"""configs/: every network and preset resolves, alone and stacked as `make train` stacks them, to
the files merged in order (the later wins), and every preset trains a few batches. What `make train`
passes for each variable: tests/test_make_variables.py."""

from __future__ import annotations

import re
from pathlib import Path
from unittest.mock import ANY

import pytest
import yaml

from config_stack import differences, merged, resolved
from tiny_cli import tiny_args

from mnist_lab.cli import main

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "configs"
NETS = sorted(p.stem for p in (CONFIGS / "net").glob("*.yaml"))
RECIPES = sorted(p.stem for p in (CONFIGS / "recipes").glob("*.yaml"))
PRESETS = sorted(p.stem for p in CONFIGS.glob("*.yaml") if p.name != "defaults.yaml")


def made_for(preset: str) -> str | None:
    """The network a preset is for (its ``# network: <model>`` line, which `make train` checks)."""
    text = (CONFIGS / f"{preset}.yaml").read_text()
    found = re.search(r"^# network: *(\S+)", text, re.MULTILINE)
    return found.group(1) if found else None


MADE_FOR = {p: made_for(p) for p in PRESETS if made_for(p)}


def network(net: str) -> list[Path]:
    """What `make train MODEL=<net>` stacks: the network, then its recipe if it has one."""
    return [
        CONFIGS / "net" / f"{net}.yaml",
        *([CONFIGS / "recipes" / f"{net}.yaml"] * (net in RECIPES)),
    ]


def stacks() -> list[tuple[str, str | None]]:
    """Every network alone, and every preset on every network it applies to."""
    return [(net, None) for net in NETS] + [
        (net, preset) for preset in PRESETS for net in NETS if MADE_FOR.get(preset, net) == net
    ]


def as_args(files: list[Path]) -> list[str]:
    return [arg for path in files for arg in ("--config", str(path))]


def test_the_bare_cli_is_make_train_from_any_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.chdir(tmp_path)
    bare = resolved(capsys, ["fit"])
    assert bare == resolved(capsys, ["fit", *as_args(network("mlp")[:1])])  # make train
    assert not differences(bare, merged([]))
    defaults = yaml.safe_load((CONFIGS / "defaults.yaml").read_text())
    listed = [c["class_path"] for c in defaults["trainer"]["callbacks"]]
    assert [c["class_path"] for c in bare["trainer"]["callbacks"]] == listed  # all in the config


def test_every_recipe_and_preset_names_a_network_that_exists() -> None:
    assert set(RECIPES) <= set(NETS) and set(MADE_FOR.values()) <= set(NETS)


@pytest.mark.parametrize("net", NETS)
def test_network_configs_hold_only_the_network(net: str) -> None:
    assert yaml.safe_load((CONFIGS / "net" / f"{net}.yaml").read_text()) == {"model": {"net": ANY}}


@pytest.mark.parametrize(("net", "preset"), stacks())
def test_a_stack_resolves_to_its_files_merged_in_order(
    net: str, preset: str | None, capsys: pytest.CaptureFixture
) -> None:
    """The network's own arguments, its recipe's, then the preset's values are the ones in force
    (a network restates what it needs: the default network's arguments carry over)."""
    files = network(net) + ([CONFIGS / f"{preset}.yaml"] if preset else [])
    stack = resolved(capsys, ["fit", *as_args(files)])
    assert not differences(stack, merged(files))


@pytest.mark.parametrize(("net", "preset"), [(MADE_FOR.get(p, "mlp"), p) for p in PRESETS])
def test_every_preset_trains_a_few_batches(
    net: str, preset: str, fake_mnist: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    batches = 3
    cli = main(
        tiny_args(
            "fit",
            fake_mnist,
            *as_args([CONFIGS / f"{preset}.yaml"]),
            "--trainer.max_epochs=1",
            f"--trainer.limit_train_batches={batches}",
            "--trainer.limit_val_batches=1",
            "--trainer.logger=false",
            "--run_test=false",
            config=str(CONFIGS / "net" / f"{net}.yaml"),
        )
    )
    assert cli.trainer.global_step == batches
    assert (Path(cli.trainer.checkpoint_callback.dirpath) / "last.ckpt").is_file()
