"""`make train`'s variables: each reaches the CLI argument docs/cli.md's table names for it (the
command line from `make -n`, parsed by the CLI in this process), values with spaces, quotes and
non-ASCII intact, the later winning; what does not apply stops in make; every target the docs name
exists."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from config_stack import at, differences, merged, resolved

pytestmark = pytest.mark.subprocess  # make, in a few milliseconds a call

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "configs"
NETS = {p.stem for p in (CONFIGS / "net").glob("*.yaml")}
PRESETS = {p.stem for p in CONFIGS.glob("*.yaml")} - {"defaults"}
MAKEFILE_VARIABLES = set(re.findall(r"^([A-Z_]+) *\?=", (REPO / "Makefile").read_text(), re.M))

# One value per variable, none its default; the ones with spaces, quotes and non-ASCII must arrive
# as typed.
VALUES = {
    "MODEL": "cnn",
    "PRESET": "regularised debug",
    "ACT": "leaky_relu",
    "ACT_ARGS": "{negative_slope: 0.1}",
    "INIT": "normal",
    "INIT_ARGS": "{std: 1.0}",
    "DROPOUT": "0.25",
    "BN": "true",
    "DEPTH": "3",
    "WIDTH": "64",
    "EPOCHS": "3",
    "LR": "0.002",
    "BATCH": "32",
    "SEED": "7",
    "DATASET": "kmnist",
    "DATA_DIR": "my data",
    "EXPERIMENT": "ç'a va",
    "RESUME": "outputs/it's mine/last.ckpt",
    "ARGS": "--trainer.gradient_clip_val=0.5 --trainer.accumulate_grad_batches=2",
    # lab:begin
    "DIAG": "false",
    # lab:end
}


def section(text: str, heading: str) -> str:
    return text.split(heading, 1)[1].split("\n## ", 1)[0]


def table_rows(text: str) -> list[list[str]]:
    rows = [
        line.strip().strip("|").split("|") for line in text.splitlines() if line.startswith("|")
    ]
    return [[cell.strip() for cell in row] for row in rows]


def train_variables() -> set[str]:
    """The variables README.md's `make train` table lists."""
    rows = table_rows(section((REPO / "README.md").read_text(), "## `make train` variables"))
    return {name for row in rows for name in re.findall(r"`([A-Z_]+)`", row[0])}


def documented_arguments() -> dict[str, str]:
    """docs/cli.md's table: each variable's argument (``ACT``, ``ACT_ARGS`` | ``--model.net.
    init_args.activation``, ``.activation_args``), without its ``--``."""
    arguments: dict[str, str] = {}
    for row in table_rows((REPO / "docs" / "cli.md").read_text()):
        names = re.findall(r"`([A-Z_]+)`", row[0])
        given = re.findall(r"`(--[\w.]+|\.[\w.]+)`", row[1]) if len(row) > 1 else []
        if not names or len(names) != len(given) or row[0].startswith("via "):
            continue  # "via `ARGS`": an argument without a variable of its own
        full: list[str] = []
        for arg in given:
            full.append(arg if arg.startswith("--") else full[-1].rpartition(".")[0] + arg)
        arguments.update(zip(names, (arg.removeprefix("--") for arg in full), strict=True))
    return arguments


def make(*args: str) -> subprocess.CompletedProcess:
    """``make`` in the repository, none of its variables inherited (``make test`` sets DATA_DIR)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in MAKEFILE_VARIABLES and k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")
    }
    return subprocess.run(
        ["make", *args], cwd=REPO, env=env, capture_output=True, encoding="utf-8", timeout=60
    )


def fit_args(*variables: str) -> list[str]:
    """The CLI arguments `make train <variables>` would run ``python -m mnist_lab`` with."""
    result = make("-n", "train", *variables)
    assert result.returncode == 0, result.stderr
    for line in result.stdout.splitlines():
        words = shlex.split(line)
        if words[1:4] == ["-m", "mnist_lab", "fit"]:
            return words[3:]
    raise AssertionError(f"no `python -m mnist_lab fit` in:\n{result.stdout}")


def stacked(*files: str) -> dict[str, Any]:
    return merged([CONFIGS / f"{name}.yaml" for name in files])


def model_files(config: dict[str, Any]) -> list[str]:
    model = VALUES["MODEL"]
    recipes = [f"recipes/{model}"] if (CONFIGS / "recipes" / f"{model}.yaml").is_file() else []
    return differences(config, stacked(f"net/{model}", *recipes))


def preset_files(config: dict[str, Any]) -> list[str]:
    return differences(config, stacked("net/mlp", *VALUES["PRESET"].split()))


def extra_args(config: dict[str, Any]) -> list[str]:
    pairs = [word.removeprefix("--").split("=", 1) for word in shlex.split(VALUES["ARGS"])]
    return [f"{k}: {at(config, k)!r}" for k, v in pairs if at(config, k) != yaml.safe_load(v)]


# What a variable with no argument of its own in docs/cli.md's table must do to the config.
CHECKS: dict[str, Callable[[dict[str, Any]], list[str]]] = {
    "MODEL": model_files,
    "PRESET": preset_files,
    "ARGS": extra_args,
}
# lab:begin


def diagnostics_off(config: dict[str, Any]) -> list[str]:
    """docs/cli.md: DIAG sets the diagnostics callback's ``enabled``."""
    callbacks = config["trainer"]["callbacks"]
    (diagnostics,) = [c for c in callbacks if c["class_path"].endswith(".DiagnosticsCallback")]
    return [] if diagnostics["init_args"]["enabled"] is False else [f"{diagnostics}"]


CHECKS["DIAG"] = diagnostics_off
# lab:end


def test_every_variable_reaches_the_argument_the_docs_name(
    capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    arguments = documented_arguments()
    assert set(VALUES) - set(CHECKS) == train_variables() - set(CHECKS) == set(arguments)
    lines = {name: fit_args(f"{name}={value}") for name, value in VALUES.items()}  # make first
    monkeypatch.chdir(REPO)  # the command's --config paths are the repository's
    wrong = {}
    for name, args in lines.items():
        config = resolved(capsys, args)
        if name in CHECKS:
            problems = CHECKS[name](config)
        else:
            value, expected = at(config, arguments[name]), yaml.safe_load(VALUES[name])
            problems = [] if value == expected else [f"{arguments[name]}={value!r}"]
        if problems:
            wrong[name] = (shlex.join(args), problems)
    assert not wrong, wrong


def test_a_variable_beats_a_preset_and_args_beat_both(
    capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    preset = yaml.safe_load((CONFIGS / "regularised.yaml").read_text())
    dropout = preset["model"]["net"]["init_args"]["dropout"] / 2
    given, last = f"DROPOUT={dropout}", f"ARGS=--model.net.init_args.dropout={dropout / 2}"
    over_preset = fit_args("PRESET=regularised", given)
    over_both = fit_args("PRESET=regularised", given, last)
    monkeypatch.chdir(REPO)
    expected = stacked("net/mlp", "regularised")
    expected["model"]["net"]["init_args"]["dropout"] = dropout
    assert not differences(resolved(capsys, over_preset), expected)  # and the preset's others
    assert at(resolved(capsys, over_both), "model.net.init_args.dropout") == dropout / 2


def made_for(preset: str) -> str | None:
    """The network a preset is for: its ``# network: <model>`` line, which make checks."""
    line = re.search(r"^# network: *(\S+)", (CONFIGS / f"{preset}.yaml").read_text(), re.M)
    return line.group(1) if line else None


MADE_FOR = {p: made_for(p) for p in sorted(PRESETS) if made_for(p)}
FOR_ANOTHER = [(p, net, other) for p, net in MADE_FOR.items() for other in sorted(NETS - {net})]


@pytest.mark.parametrize(
    ("variables", "named"),
    [
        *((("MODEL=cnn", f"{v}={VALUES[v]}"), (v, "MODEL=cnn")) for v in ("DEPTH", "WIDTH")),
        (("MODEL=rnn",), ("'rnn'", *sorted(NETS))),
        (("MODEL=cnn mlp",), ("'cnn mlp'", *sorted(NETS))),  # one network, not two
        (("PRESET=regularised nope",), ("'nope'", *sorted(PRESETS))),
        *(
            ((f"MODEL={other}", f"PRESET={p}"), (f"PRESET={p}", f"MODEL={net}", f"MODEL={other}"))
            for p, net, other in FOR_ANOTHER
        ),
    ],
)
def test_what_does_not_apply_stops_in_make_with_one_error_line(
    variables: tuple[str, ...], named: tuple[str, ...]
) -> None:
    result = make("-s", "train", *variables, "PY=echo")  # had make gone on, it would echo python's
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert result.returncode == 2 and len(errors) == 1, result.stderr
    assert all(name in errors[0] for name in named), errors[0]
    assert "mnist_lab" not in result.stdout


def documented_targets() -> set[str]:
    """Every ``make <target>`` in the code of README.md and docs/*.md."""
    targets = set()
    for doc in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]:
        text = doc.read_text()
        blocks = re.findall(r"```.*?```", text, re.S)
        spans = re.findall(r"`([^`\n]+)`", re.sub(r"```.*?```", "", text, flags=re.S))
        for code in blocks + spans:
            found = re.findall(r"(?:^|[\s;(\"'|&])make +(?:-[a-zA-Z]+ +)*([a-z][\w-]*)", code, re.M)
            targets.update(found)
    return targets


def test_every_target_the_docs_name_exists() -> None:
    targets = documented_targets()
    assert {"train", "test-fast"} <= targets  # the docs' code was found
    tried = {target: make("-n", target) for target in sorted(targets)}
    assert not {t: r.stderr.strip() for t, r in tried.items() if r.returncode}
