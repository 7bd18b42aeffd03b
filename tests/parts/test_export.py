"""The export part: `make export RUN=<id>` writes the run's best network as one ONNX file, logs it
to the run and checks it against PyTorch on a real test batch; it computes the same at any batch
size; a network that does not export names its layer; without a run, one error line."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from mlflow import MlflowClient
from torch import nn

from helpers import Snapshot
from tiny_cli import REPO

from mnist_lab.parts.export import ExportError, export, main
from mnist_lab.resume import load_classifier

if os.environ.get("CI"):  # .ci/run installs the export extra: there, its absence is a failure
    import onnxruntime
else:
    onnxruntime = pytest.importorskip(
        "onnxruntime", reason="the export extra: pip install -e '.[export]'"
    )


@pytest.mark.slow  # the dynamo exporter (~10 s)
def test_export_writes_logs_and_matches_pytorch_at_any_batch_size(
    finished_cnn: Snapshot, clone: Callable, fake_mnist: Path, capsys: pytest.CaptureFixture
) -> None:
    copy = clone(finished_cnn)
    assert main([copy.run_id, f"--data-dir={fake_mnist}"]) == 0
    path = Path("outputs/onnx") / copy.run_id / "model.onnx"
    said = capsys.readouterr().out
    assert f"wrote {path}, logged to run {copy.run_id}" in said and "= PyTorch within" in said
    artifacts = MlflowClient(copy.uri).list_artifacts(copy.run_id)
    assert "model.onnx" in [a.path for a in artifacts]
    x = torch.randn(3, 1, 28, 28)  # another batch size than the export's
    (got,) = onnxruntime.InferenceSession(str(path)).run(None, {"images": x.numpy()})
    with torch.no_grad():
        np.testing.assert_allclose(got, load_classifier(copy.run_id).net(x).numpy(), atol=1e-4)


class Zeta(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.special.zeta(x, torch.full_like(x, 2.0))  # no ONNX operator computes it


@pytest.mark.slow  # the exporter, tried on the network, then layer by layer
def test_a_network_that_does_not_export_names_its_layer(tmp_path: Path) -> None:
    net = nn.Sequential(nn.Flatten(), nn.Linear(784, 10), Zeta())
    with pytest.raises(ExportError, match=r"ONNX export failed at layer 2 \(Zeta\): \w+") as err:
        export(net, torch.randn(4, 1, 28, 28), tmp_path / "model.onnx")
    assert "\n" not in str(err.value), "one line: the cause, not the exporter's trace"


def test_a_bad_run_is_one_error_line(capsys: pytest.CaptureFixture) -> None:
    assert main(["not-a-run"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "make export RUN=" in err


@pytest.mark.subprocess
@pytest.mark.slow  # make, then Python and torch
def test_make_export_without_a_run_is_one_error_line() -> None:
    run = subprocess.run(
        ["make", "-s", "-C", str(REPO), "export"], capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 2 and run.stderr.startswith("error: "), run.stderr
    assert "make export RUN=" in run.stderr
