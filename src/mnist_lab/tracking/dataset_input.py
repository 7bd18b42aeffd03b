"""Record the run's dataset with MLflow's own dataset tracking: its files, a digest, its classes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from mnist_lab.tracking.run_info import files_digest


def dataset_input(datamodule: Any) -> Any | None:
    """An ``mlflow.entities.DatasetInput`` for a datamodule with ``raw_dir`` (None without files).

    The digest is the sha256 of the raw files (names and bytes), so two runs on the same bytes show
    the same dataset version in the UI; the source is the local folder they were read from.
    """
    from mlflow.data.meta_dataset import MetaDataset
    from mlflow.data.sources import LocalArtifactDatasetSource
    from mlflow.entities import DatasetInput, InputTag
    from mlflow.types import Schema, TensorSpec

    raw_dir: Path | None = getattr(datamodule, "raw_dir", None)
    files = sorted(raw_dir.glob("*-ubyte")) if raw_dir is not None and raw_dir.is_dir() else []
    if not files:
        return None
    name = str(getattr(datamodule, "hparams", {}).get("dataset") or raw_dir.parent.name)
    shape = tuple(getattr(datamodule, "image_shape", (1, 28, 28)))
    schema = Schema(
        [TensorSpec(np.dtype("float32"), (-1, *shape), "image"), TensorSpec(np.dtype("int64"), (-1,), "label")]
    )
    dataset = MetaDataset(
        LocalArtifactDatasetSource(str(raw_dir.resolve())), name=name, digest=files_digest(files)[:32], schema=schema
    )
    classes = ",".join(getattr(datamodule, "class_names", []) or [])
    tags = [InputTag("mlflow.data.context", "training")] + ([InputTag("classes", classes)] if classes else [])
    return DatasetInput(dataset._to_mlflow_entity(), tags=tags)
