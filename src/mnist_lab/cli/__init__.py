"""The command line: ``python -m mnist_lab fit|validate|test|predict``, a thin ``LightningCLI``."""

from mnist_lab.cli.app import TemplateCLI, main

__all__ = ["TemplateCLI", "main"]
