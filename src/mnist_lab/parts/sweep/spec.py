"""A sweep file (``configs/sweeps/*.yaml``): what every trial stacks on, and the search space, whose
``name: {type: categorical|float|int, ...}`` holds the arguments of Optuna's ``suggest_<type>``."""

import json
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import optuna
import yaml

from mnist_lab.errors import ConfigError

NET, OPTIMIZER = "model.net.init_args", "model.optimizer.init_args"
SHORT_NAMES = {  # the `make train` variables' arguments, by a readable name
    **{
        name: f"{NET}.{name}"
        for name in ("activation", "weight_init", "dropout", "batch_norm", "depth", "width")
    },
    "lr": f"{OPTIMIZER}.lr",
    "weight_decay": f"{OPTIMIZER}.weight_decay",
    "batch_size": "data.batch_size",
}
KINDS = {  # `type:` -> the distribution that Optuna's suggest_<type> builds from the same arguments
    "categorical": optuna.distributions.CategoricalDistribution,
    "float": optuna.distributions.FloatDistribution,
    "int": optuna.distributions.IntDistribution,
}


@dataclass
class SweepSpec:
    """A sweep file's keys, with the defaults of those it leaves out."""

    space: dict[str, Any]  # name -> (type, the suggest_<type> arguments) once loaded
    study: str = ""
    experiment: str = "sweeps"
    metric: str = "val/acc"
    direction: str = "maximize"
    n_trials: int = 20
    configs: list[str] = field(default_factory=list)  # stacked like PRESET
    args: list[str] = field(default_factory=list)  # like ARGS
    sampler: dict[str, Any] = field(default_factory=dict)  # TPESampler's arguments
    pruner: dict[str, Any] = field(default_factory=dict)  # MedianPruner's arguments
    enqueue: list[dict[str, Any]] = field(default_factory=list)  # the first trials' values
    heartbeat: float = 10  # seconds between a trial's heartbeats; silent twice as long, it FAILs
    quick: dict[str, Any] = field(default_factory=dict)  # n_trials and more args for QUICK=1
    source: str = ""  # not a key: the file's text, logged to the parent run

    def command(self, params: dict[str, Any], extra: list[str]) -> list[str]:
        """A trial's CLI arguments, as ``make train`` would pass them; the values (JSON: ``true``)
        come last, so win."""
        configs = [arg for config in self.configs for arg in ("--config", str(config))]
        logger = f"--trainer.logger.init_args.experiment_name={self.experiment}"
        values = [
            f"--{cli_path(name)}={v if isinstance(v, str) else json.dumps(v)}"
            for name, v in params.items()
        ]
        return ["fit", *configs, *map(str, self.args), *extra, logger, *values]


def cli_path(name: str) -> str:
    """A short name's CLI path, or the name itself when it is a dotted path."""
    if name not in SHORT_NAMES and "." not in name:
        raise ConfigError(
            f"sweep parameter {name!r} is neither a short name ({', '.join(SHORT_NAMES)}) "
            "nor a CLI path such as model.net.init_args.depth"
        )
    return SHORT_NAMES.get(name, name.removeprefix("--"))


def parameter(name: str, spec: Any) -> tuple[str, dict[str, Any]]:
    """Check a parameter by building its distribution now, so that a mistake fails naming it."""
    cli_path(name)
    if not isinstance(spec, dict) or spec.get("type") not in KINDS:
        raise ConfigError(
            f"sweep parameter {name!r}: give `type:` one of {sorted(KINDS)} (got {spec!r})"
        )
    kind, arguments = spec["type"], {key: value for key, value in spec.items() if key != "type"}
    try:
        if kind == "float":  # YAML reads 1e-4 (no dot) as a string
            arguments |= {key: float(arguments[key]) for key in ("low", "high") if key in arguments}
        KINDS[kind](**arguments)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"sweep parameter {name!r}: {err}") from None
    return kind, arguments


def load_spec(path: str | Path, quick: bool = False) -> SweepSpec:
    """Read and check a sweep file; ``quick`` applies its ``quick:`` block (n_trials, more args)
    and names the study ``<study>-quick``, so a smoke run never continues the real sweep."""
    path = Path(path)
    try:
        source = path.read_text()
        raw = yaml.safe_load(source) or {}
    except (OSError, yaml.YAMLError) as err:
        raise ConfigError(
            f"cannot read the sweep file {path}: {' '.join(str(err).split())}"
        ) from None
    if not isinstance(raw, dict) or not isinstance(raw.get("space"), dict) or not raw["space"]:
        raise ConfigError(f"{path}: a sweep file needs a `space:` mapping of parameters")
    keys = {key.name for key in fields(SweepSpec)} - {"source"}
    if unknown := set(raw) - keys:
        raise ConfigError(
            f"{path}: unknown key(s) {sorted(unknown)}; expected some of {sorted(keys)}"
        )
    # `args:` with nothing: the default
    given = {key: value for key, value in raw.items() if value is not None}
    spec = SweepSpec(**{"study": path.stem, **given}, source=source)
    if spec.direction not in ("maximize", "minimize"):
        raise ConfigError(f"{path}: direction must be maximize or minimize, got {spec.direction!r}")
    if not isinstance(spec.heartbeat, (int, float)) or spec.heartbeat <= 0:
        raise ConfigError(
            f"{path}: heartbeat must be a number of seconds > 0, got {spec.heartbeat!r}"
        )
    spec.space = {name: parameter(name, param) for name, param in spec.space.items()}
    try:  # build what the study will build, so that a mistake fails now
        optuna.samplers.TPESampler(**spec.sampler), optuna.pruners.MedianPruner(**spec.pruner)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{path}: the sampler's or the pruner's arguments: {err}") from None
    if quick:
        spec.study, spec.n_trials = f"{spec.study}-quick", spec.quick.get("n_trials", 3)
        spec.args = [*spec.args, *(spec.quick.get("args") or [])]
    return spec
