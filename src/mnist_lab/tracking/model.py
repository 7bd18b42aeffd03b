"""A network as a run's MLflow model: logits out, its data's image shape as signature, and what each
logit means as metadata; ``make serve`` and ``mlflow.pytorch.load_model`` read it."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn

import mnist_lab
from mnist_lab.names import MODEL_NAME


class FiniteInput(nn.Module):
    """The network, refusing NaN or infinite input, which would give NaN logits (and ``make serve``
    an answer that is not JSON); MLflow's server answers the error with HTTP 400."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: Tensor) -> Tensor:
        if not torch.isfinite(x).all():
            from mlflow.exceptions import MlflowException

            raise MlflowException.invalid_parameter_value("the input holds NaN or infinite values")
        return self.net(x)


def log_pytorch_model(
    tracking_uri: str,
    run_id: str,
    net: nn.Module,
    image_shape: tuple[int, ...],
    dataset: str,
    class_names: list[str],
) -> str:
    """Log ``net`` as run ``run_id``'s model ``classifier``; its ``models:/`` URI. Pickled with the
    package's code, so ``mlflow.pytorch.load_model`` gives the ``nn.Module`` (with ``.eval()``), not
    MLflow 3's default ``torch.export`` program."""
    import mlflow
    import mlflow.pytorch
    from mlflow.models import infer_signature

    was_training, device = net.training, next(net.parameters()).device
    model = FiniteInput(net).eval().cpu()
    example = torch.zeros(2, *image_shape)
    with torch.no_grad():
        signature = infer_signature(example.numpy(), model(example).numpy())
    mlflow.set_tracking_uri(tracking_uri)  # the logged model goes to the run's experiment
    mlflow.set_experiment(experiment_id=mlflow.MlflowClient().get_run(run_id).info.experiment_id)
    info = mlflow.pytorch.log_model(
        model,
        name=MODEL_NAME,
        run_id=run_id,  # Model.log's: the run stays as it is (a fluent run would end it)
        serialization_format="pickle",
        input_example=example.numpy(),
        signature=signature,
        metadata={"output": "logits", "dataset": dataset, "class_names": list(class_names)},
        code_paths=[str(Path(mnist_lab.__file__).parent)],
        pip_requirements=[
            f"torch=={torch.__version__.split('+')[0]}",
            f"mlflow=={mlflow.__version__}",
        ],
    )
    net.to(device).train(was_training)
    return info.model_uri
