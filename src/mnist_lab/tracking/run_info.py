"""What makes a run reproducible beyond its config: code version, data version, run name."""

from __future__ import annotations

import hashlib
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import mnist_lab


def git_state(cwd: Path | None = None) -> dict[str, str]:
    """``git.dirty``: whether tracked files differ from the commit (``unknown`` outside a checkout).

    The commit itself is MLflow's own tag, ``mlflow.source.git.commit``, set when the run starts.
    """
    cwd = cwd or Path(mnist_lab.__file__).parent  # the code's checkout, wherever the run is started
    try:
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return {"git.dirty": "unknown"}
    return {"git.dirty": str(bool(status)).lower()}


def files_digest(paths: list[Path]) -> str:
    """sha256 over the files' names and bytes, in the given order: one hash for a dataset version."""
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.name.encode())
        with path.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


def run_tags() -> dict[str, str]:
    """Tags every run carries beside MLflow's own (``mlflow.source.git.commit``): local changes, package version."""
    return {**git_state(), "mnist_lab.version": mnist_lab.__version__}


def run_name(net_config: Mapping[str, Any]) -> str:
    """``mlp-leaky_relu-kaiming_normal-bn-do0.2`` from the network's class and init arguments."""
    cls = str(net_config.get("class_path", "net")).rsplit(".", 1)[-1].lower()
    args = net_config.get("init_args") or {}
    parts = [cls, str(args.get("activation", "relu")), str(args.get("weight_init", "kaiming_normal"))]
    if args.get("batch_norm"):
        parts.append("bn" if args.get("batch_norm_position", "before") == "before" else "bn_after")
    if args.get("dropout"):
        parts.append(f"do{args['dropout']:g}")
    return "-".join(parts)


def flatten_config(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"model": {"net": {"init_args": {"width": 512}}}}`` -> ``{"model.net.width": 512}``.

    ``init_args`` levels are dropped (the ``class_path`` beside them names the class), lists are
    indexed (``trainer.callbacks.0.class_path``) and jsonargparse's private keys are skipped.
    """
    flat: dict[str, Any] = {}
    items = config.items() if isinstance(config, Mapping) else enumerate(config)
    for key, value in items:
        key = str(key)
        if key.startswith("_") or key == "config":
            continue
        name = prefix if key == "init_args" else f"{prefix}.{key}" if prefix else key
        if isinstance(value, (Mapping, list, tuple)) and value:
            flat.update(flatten_config(value, name))
        else:
            flat[name] = value
    return flat
