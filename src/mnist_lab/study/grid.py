"""The study's grid and how one configuration becomes one CLI invocation."""

from __future__ import annotations

import itertools
import json
import sys
from dataclasses import dataclass
from pathlib import Path

from mnist_lab.models.components.activations import ACTIVATIONS

REPO = Path(__file__).resolve().parents[3]


@dataclass(frozen=True)
class Config:
    """One cell of the grid."""

    activation: str
    init: str  # "default" (PyTorch's) or the activation's recommended init
    batch_norm: bool
    seed: int

    @property
    def label(self) -> str:
        return f"{self.activation}/{self.init}/{'bn' if self.batch_norm else 'no-bn'}/s{self.seed}"


def grid(activations: list[str], inits: list[str], batch_norm: list[bool], seeds: list[int]) -> list[Config]:
    """``inits`` holds ``default`` and/or ``recommended``; the latter resolves per activation."""
    configs = []
    for act, init, bn, seed in itertools.product(activations, inits, batch_norm, seeds):
        scheme = ACTIVATIONS[act].recommended_init if init == "recommended" else init
        configs.append(Config(act, scheme, bn, seed))
    return list(dict.fromkeys(configs))  # drop repeats, keep order


def command(
    config: Config, *, study_id: str, experiment: str, data_dir: str, epochs: int, extra: list[str]
) -> list[str]:
    """The ``python -m mnist_lab fit`` invocation for one configuration."""
    tags = {
        "study": study_id,
        "study.activation": config.activation,
        "study.init": config.init,
        "study.batch_norm": "bn" if config.batch_norm else "no-bn",
        "study.seed": str(config.seed),
    }
    net = "--model.net.init_args"
    return [
        sys.executable,
        "-m",
        "mnist_lab",
        "fit",
        "--config",
        str(REPO / "configs" / "net" / "mlp.yaml"),
        "--config",
        str(REPO / "configs" / "study.yaml"),
        f"{net}.activation={config.activation}",
        f"{net}.weight_init={config.init}",
        f"{net}.batch_norm={str(config.batch_norm).lower()}",
        f"--seed_everything={config.seed}",
        f"--trainer.max_epochs={epochs}",
        f"--data.data_dir={data_dir}",
        f"--trainer.logger.init_args.experiment_name={experiment}",
        f"--trainer.logger.init_args.tags={json.dumps(tags)}",
        *extra,
    ]
