"""`make export`: a run's network as ONNX, logged to the run, equal to PyTorch on a real test batch; a network that
does not export names its layer."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from mlflow import MlflowClient
from torch import nn

from mnist_lab.cli import main as cli_main
from mnist_lab.parts.export import ExportError, export, main
from mnist_lab.resume import load_classifier
from tiny_cli import tiny_cnn

if os.environ.get("CI"):  # .ci/run installs the export extra: there, a missing onnxruntime is a failure
    import onnxruntime
else:
    onnxruntime = pytest.importorskip("onnxruntime", reason="the export extra: pip install -e '.[export]'")


@pytest.mark.slow  # a tiny CNN, then the dynamo exporter (~20 s)
def test_export_writes_logs_and_matches_pytorch_at_any_batch_size(
    fake_mnist: Path, tracking_uri: str, capsys: pytest.CaptureFixture[str]
) -> None:
    run_id = cli_main(tiny_cnn(fake_mnist, "--run_test=false")).trainer.logger.run_id
    assert main([run_id, f"--data-dir={fake_mnist}"]) == 0
    assert "onnxruntime = PyTorch within" in capsys.readouterr().out
    path = Path("outputs/onnx") / run_id / "model.onnx"
    assert "model.onnx" in [a.path for a in MlflowClient(tracking_uri).list_artifacts(run_id)]
    x = torch.randn(3, 1, 28, 28)  # another batch size than the export's
    (got,) = onnxruntime.InferenceSession(str(path)).run(None, {"images": x.numpy()})
    with torch.no_grad():
        np.testing.assert_allclose(got, load_classifier(run_id).net(x).numpy(), atol=1e-4)


class Zeta(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.special.zeta(x, torch.full_like(x, 2.0))  # no ONNX operator computes it


@pytest.mark.slow  # the exporter, tried on the network, then layer by layer
def test_a_network_that_does_not_export_names_its_layer_and_why(tmp_path: Path) -> None:
    net = nn.Sequential(nn.Flatten(), nn.Linear(784, 10), Zeta())
    with pytest.raises(ExportError, match=r"at layer 2 \(Zeta\): DispatchError: No ONNX function found .*zeta"):
        export(net, torch.randn(4, 1, 28, 28), tmp_path / "model.onnx")


@pytest.mark.subprocess
def test_make_export_without_a_run_is_one_error_line(repo_root: Path) -> None:
    run = subprocess.run(["make", "-s", "export"], cwd=repo_root, capture_output=True, text=True, timeout=120)
    assert run.returncode == 2 and run.stderr.startswith("error: ") and "make export RUN=" in run.stderr
