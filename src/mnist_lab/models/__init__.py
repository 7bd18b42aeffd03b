"""Networks (``components``, plain ``nn.Module``) and the LightningModule that trains them."""
