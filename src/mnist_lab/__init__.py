"""MNIST training template: the Lightning CLI, pluggable activations and inits, MLflow."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version(__name__)  # pyproject.toml's version is the only one
except PackageNotFoundError:  # run from a source tree that is not installed
    __version__ = "0+unknown"
