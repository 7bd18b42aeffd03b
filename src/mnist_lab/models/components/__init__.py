"""Plain ``nn.Module`` networks and the registries they are built from; no training logic here."""

from mnist_lab.models.components.cnn import CNN, ConvBlockSpec
from mnist_lab.models.components.mlp import MLP

__all__ = ["CNN", "MLP", "ConvBlockSpec"]
