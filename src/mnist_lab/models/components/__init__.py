"""Plain ``nn.Module`` networks and the registries they are built from; no training logic here."""

from mnist_lab.models.components.activations import ACTIVATIONS, Activation, resolve_activation
from mnist_lab.models.components.cnn import CNN, ConvBlockSpec
from mnist_lab.models.components.init import INITS
from mnist_lab.models.components.mlp import MLP

__all__ = [
    "ACTIVATIONS",
    "CNN",
    "INITS",
    "MLP",
    "Activation",
    "ConvBlockSpec",
    "resolve_activation",
]
