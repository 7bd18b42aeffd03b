"""`make compare QUICK=1` runs the reduced grid and writes the report naming every activation."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from mlflow import MlflowClient

from mnist_lab.models.components.activations import ACTIVATIONS


@pytest.mark.slow
@pytest.mark.subprocess
def test_quick_study_writes_the_report_with_every_activation(repo_root: Path, fake_mnist: Path, tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    report = tmp_path / "reports" / "activation_study.md"
    result = subprocess.run(
        [
            "make",
            "-s",
            "compare",
            "QUICK=1",
            f"DATA_DIR={fake_mnist}",
            f"REPORT={report}",
            "ARGS=--data.val_size=200 --data.batch_size=100",
        ],
        cwd=repo_root,
        env={**os.environ, "MLFLOW_TRACKING_URI": uri},
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    text = report.read_text()
    table = [line for line in text.splitlines() if line.startswith("| ") and "activation" not in line]
    assert sorted(line.split("|")[1].strip() for line in table) == sorted(ACTIVATIONS)
    for png in ("accuracy.png", "grad_norm_by_depth.png", "dead_fraction.png"):
        assert (report.parent / "activation_study" / png).stat().st_size > 5000
        assert f"activation_study/{png}" in text
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("activation-study")
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == len(ACTIVATIONS) + 1  # one per configuration, plus the summary
    summary = [r for r in runs if r.data.tags.get("study.summary") == "true"][0]
    assert summary.info.status == "FINISHED"
    assert {a.path for a in client.list_artifacts(summary.info.run_id)} >= {"activation_study.md", "activation_study"}
    step_zero = [r for r in runs if r.data.tags.get("study.activation") == "sigmoid"][0]
    assert "diag/grad_norm/0" in step_zero.data.metrics
