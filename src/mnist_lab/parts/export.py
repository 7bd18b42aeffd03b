"""``make export RUN=<id>``: the run's best network as one ONNX file, checked against PyTorch.

``model.onnx`` (weights inside) is logged to the run and checked, as logged, on a real test batch.
ONNX serves the network without Python or torch (onnxruntime in C++, C#, Java, the browser); the
check makes it trustworthy.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import torch
from torch import Tensor, nn

from mnist_lab.errors import TemplateError, command
from mnist_lab.names import resolve_tracking_uri
from mnist_lab.resume import RUN_ID, load_classifier

TOLERANCE = 1e-4  # the largest |onnxruntime - PyTorch| logit accepted


class ExportError(TemplateError):
    """The network does not export to ONNX, or the exported file computes something else."""


def failing_layer(net: nn.Module, x: Tensor) -> str:
    """The first leaf module, in call order, that does not export on its own, and why."""
    inputs: dict[str, tuple[Tensor, ...]] = {}
    hooks = [
        m.register_forward_pre_hook(
            lambda _m, args, name=name: inputs.setdefault(name, args) and None
        )
        for name, m in net.named_modules()
        if name and not list(m.children())
    ]
    with torch.no_grad():
        net(x)
    for hook in hooks:
        hook.remove()
    for name, args in inputs.items():
        layer = net.get_submodule(name)
        try:
            torch.onnx.export(layer, args, os.devnull, dynamo=True, verbose=False)
        except Exception as err:  # noqa: BLE001 - the exporter raises many kinds
            while err.__cause__ is not None:  # the root cause, not the exporter's advice
                err = err.__cause__
            return (
                f"layer {name} ({type(layer).__name__}): "
                f"{type(err).__name__}: {str(err).strip().splitlines()[0]}"
            )
    return "no single layer fails on its own: it is how the network combines them"


def export(net: nn.Module, x: Tensor, path: Path) -> float:
    """Write ``net`` (eval mode) to ``path`` with a free batch size; the largest difference
    onnxruntime - PyTorch on ``x``."""

    net.eval()
    try:
        torch.onnx.export(
            net,
            (x,),
            path,
            dynamo=True,
            external_data=False,  # one file: the graph and its weights travel together
            verbose=False,
            input_names=["images"],
            output_names=["logits"],
            dynamic_shapes=({0: torch.export.Dim("batch")},),
        )
    except Exception:  # noqa: BLE001 - say which layer, not the exporter's whole trace
        raise ExportError(f"ONNX export failed at {failing_layer(net, x)}") from None
    return difference(net, x, path)


def difference(net: nn.Module, x: Tensor, path: Path) -> float:
    """The largest |onnxruntime - PyTorch| logit of the ONNX file at ``path`` on ``x``."""
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {"images": x.numpy()})
    with torch.no_grad():
        return float((torch.from_numpy(got) - net(x)).abs().max())


@command
def main(argv: list[str] | None = None) -> None:
    import tempfile

    from mlflow import MlflowClient

    from mnist_lab.data.mnist_datamodule import MNISTDataModule

    parser = argparse.ArgumentParser(prog="make export", description=__doc__.splitlines()[0])
    parser.add_argument("run", help="the MLflow run id whose best checkpoint to export")
    parser.add_argument(
        "--data-dir", default="data/", help="the torchvision root with the test images"
    )
    args = parser.parse_args(argv)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    if not RUN_ID.match(args.run):
        raise ExportError(f"{args.run!r} is not an MLflow run id: make export RUN=<run id>")
    try:
        import onnxruntime  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError:
        raise ExportError(
            "ONNX export needs the export extra: .venv/bin/pip install -e '.[export]'"
        ) from None
    run_id = RUN_ID.match(args.run).group(1)
    model = load_classifier(run_id)
    data = MNISTDataModule(
        args.data_dir, dataset=model.dataset, eval_batch_size=256, download=False
    )
    data.setup("test")
    x, _ = next(iter(data.test_dataloader()))  # a real test batch, as the network saw in its test
    out = Path("outputs/onnx") / run_id / "model.onnx"
    out.parent.mkdir(parents=True, exist_ok=True)
    net = model.net.float()
    if (diff := export(net, x.float(), out)) > TOLERANCE:
        raise ExportError(
            f"{out} differs from PyTorch by up to {diff:.2g} (> {TOLERANCE}) on a test batch"
        )
    client = MlflowClient(resolve_tracking_uri())
    client.log_artifact(run_id, str(out))
    with tempfile.TemporaryDirectory() as tmp:  # what a user downloads must work on its own
        logged = Path(client.download_artifacts(run_id, out.name, tmp))
        diff = difference(net, x.float(), logged)
    print(
        f"wrote {out}, logged to run {run_id}; "
        f"the logged file = PyTorch within {diff:.1e} on {len(x)} images"
    )


if __name__ == "__main__":
    raise SystemExit(main())
