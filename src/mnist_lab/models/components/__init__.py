"""Plain ``nn.Module`` networks and the registries they are built from; no training logic here."""

from mnist_lab.models.components.activations import Activation, resolve_activation
from mnist_lab.models.components.blocks import BlockNetwork
from mnist_lab.models.components.cnn import CNN, ConvBlockSpec
from mnist_lab.models.components.mlp import MLP

__all__ = ["CNN", "MLP", "Activation", "BlockNetwork", "ConvBlockSpec", "resolve_activation"]
