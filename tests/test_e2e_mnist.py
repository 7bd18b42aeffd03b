"""End to end on the real MNIST ($DATA_DIR; CI points it at ../shared/data)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mnist_lab.cli import main


@pytest.mark.slow
def test_short_mlp_run_reaches_97_percent_on_the_real_test_set(
    repo_root: Path, real_mnist: Path, tracking_uri: str
) -> None:
    cli = main(
        [
            "fit",
            "--config",
            str(repo_root / "configs" / "net" / "mlp.yaml"),
            f"--data.data_dir={real_mnist}",
            "--trainer.max_epochs=2",
            "--trainer.enable_model_summary=false",
        ]
    )
    assert len(cli.datamodule._splits["train"]) == 55000 and len(cli.datamodule._splits["val"]) == 5000
    assert len(cli.datamodule._splits["test"]) == 10000
    assert cli.trainer.callback_metrics["test/acc"] >= 0.97
