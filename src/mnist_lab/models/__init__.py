"""Networks (``components``, plain ``nn.Module``) and the LightningModule that trains them."""

from mnist_lab.models.classifier import Classifier

__all__ = ["Classifier"]
