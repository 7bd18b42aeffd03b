"""A sweep file (``configs/sweeps/*.yaml``): what every trial stacks on, and the search space.

Each parameter of ``space`` is ``name: {type: categorical|float|int, choices | low, high[, log, step]}``.
``name`` is a short name (``lr``, ``activation``: :data:`SHORT_NAMES`) or a LightningCLI argument
path (``model.net.init_args.depth``); a trial passes its value as ``--<path>=<value>``, exactly as
``make train`` would, so a trial is a normal training run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
import yaml

from mnist_lab.errors import ConfigError

NET = "model.net.init_args"
SHORT_NAMES = {  # the `make train` variables' arguments, by a readable name
    "activation": f"{NET}.activation",
    "weight_init": f"{NET}.weight_init",
    "dropout": f"{NET}.dropout",
    "batch_norm": f"{NET}.batch_norm",
    "depth": f"{NET}.depth",
    "width": f"{NET}.width",
    "lr": "model.optimizer.init_args.lr",
    "weight_decay": "model.optimizer.init_args.weight_decay",
    "batch_size": "data.batch_size",
}
TYPES = {"categorical": {"choices"}, "float": {"low", "high", "log", "step"}, "int": {"low", "high", "log", "step"}}
KEYS = {"study", "experiment", "metric", "direction", "n_trials", "configs", "args", "sampler", "pruner"}
KEYS |= {"space", "enqueue", "quick"}


@dataclass
class Param:
    """One searched argument: its Optuna distribution and the CLI path it sets."""

    name: str
    path: str
    distribution: optuna.distributions.BaseDistribution

    def override(self, value: Any) -> str:
        """The CLI argument for ``value`` (YAML spelling: ``true``, ``null``)."""
        text = yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()
        return f"--{self.path}={text}"


@dataclass
class SweepSpec:
    """A parsed sweep file; ``quick`` settings already applied when asked for."""

    study: str
    space: list[Param]
    experiment: str = "sweeps"
    metric: str = "val/acc"
    direction: str = "maximize"
    n_trials: int = 20
    configs: list[str] = field(default_factory=list)
    args: list[str] = field(default_factory=list)
    sampler: dict[str, Any] = field(default_factory=dict)
    pruner: dict[str, Any] = field(default_factory=dict)
    enqueue: list[dict[str, Any]] = field(default_factory=list)
    source: str = ""

    def base_args(self) -> list[str]:
        """The CLI arguments every trial starts from: ``fit``, the configs, then the fixed args."""
        configs = [arg for c in self.configs for arg in ("--config", c)]
        return ["fit", *configs, *self.args]

    def overrides(self, params: dict[str, Any]) -> list[str]:
        """The sampled values as CLI arguments (they come last, so they win)."""
        by_name = {p.name: p for p in self.space}
        return [by_name[name].override(value) for name, value in params.items() if name in by_name]


def distribution(name: str, spec: Any) -> optuna.distributions.BaseDistribution:
    """An Optuna distribution from ``{type: ..., ...}``; anything unknown fails naming the parameter."""
    if not isinstance(spec, dict) or spec.get("type") not in TYPES:
        raise ConfigError(f"sweep parameter {name!r}: give `type:` one of {sorted(TYPES)} (got {spec!r})")
    kind = spec["type"]
    unknown = set(spec) - TYPES[kind] - {"type"}
    if unknown:
        raise ConfigError(f"sweep parameter {name!r}: unknown key(s) {sorted(unknown)} for type {kind}")
    try:
        if kind == "categorical":
            return optuna.distributions.CategoricalDistribution(list(spec["choices"]))
        args = {k: spec[k] for k in ("log", "step") if k in spec}
        if kind == "int":
            return optuna.distributions.IntDistribution(int(spec["low"]), int(spec["high"]), **args)
        return optuna.distributions.FloatDistribution(float(spec["low"]), float(spec["high"]), **args)
    except KeyError as err:
        raise ConfigError(f"sweep parameter {name!r}: type {kind} needs `{err.args[0]}`") from None
    except (TypeError, ValueError) as err:
        raise ConfigError(f"sweep parameter {name!r}: {err}") from None


def cli_path(name: str) -> str:
    """A short name's CLI path, or the name itself when it is a dotted path."""
    if name in SHORT_NAMES:
        return SHORT_NAMES[name]
    if "." in name:
        return name.removeprefix("--")
    raise ConfigError(
        f"sweep parameter {name!r} is neither a short name ({', '.join(SHORT_NAMES)}) nor a CLI path "
        "such as model.net.init_args.depth"
    )


def load_spec(path: str | Path, quick: bool = False) -> SweepSpec:
    """Read and check a sweep file; with ``quick``, its ``quick:`` block replaces ``n_trials`` and adds args,
    and the study is ``<study>-quick``, so a smoke run never takes the real sweep's name (or its storage)."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except OSError as err:
        raise ConfigError(f"cannot read the sweep file {path}: {err.strerror}") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("space"), dict) or not raw["space"]:
        raise ConfigError(f"{path}: a sweep file needs a `space:` mapping of parameters")
    unknown = set(raw) - KEYS
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) {sorted(unknown)}; expected some of {sorted(KEYS)}")
    space = [Param(name, cli_path(name), distribution(name, spec)) for name, spec in raw["space"].items()]
    quick_block = raw.get("quick") or {}
    args = [str(a) for a in raw.get("args") or []]
    if quick:
        args += [str(a) for a in quick_block.get("args") or []]
    direction = raw.get("direction", "maximize")
    if direction not in ("maximize", "minimize"):
        raise ConfigError(f"{path}: direction must be maximize or minimize, got {direction!r}")
    return SweepSpec(
        study=str(raw.get("study") or path.stem) + ("-quick" if quick else ""),
        space=space,
        experiment=str(raw.get("experiment", "sweeps")),
        metric=str(raw.get("metric", "val/acc")),
        direction=direction,
        n_trials=int(quick_block.get("n_trials", 3) if quick else raw.get("n_trials", 20)),
        configs=[str(c) for c in raw.get("configs") or []],
        args=args,
        sampler=dict(raw.get("sampler") or {}),
        pruner=dict(raw.get("pruner") or {}),
        enqueue=list(raw.get("enqueue") or []),
        source=path.read_text(),
    )
