"""MNIST training template: LightningCLI, pluggable activation/init/dropout/batch norm, MLflow tracking."""

__version__ = "0.1.0"
