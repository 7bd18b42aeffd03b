"""Optuna sweeps over the CLI: a search space file, trials as child MLflow runs, resumable storage."""

from mnist_lab.sweep.spec import SweepSpec, load_spec

__all__ = ["SweepSpec", "load_spec"]
