"""Checkpoints written atomically: a temporary file in the checkpoint's folder, then ``os.replace``.

Lightning's ``TorchCheckpointIO`` writes through fsspec, whose temporary file is in the system's temp
folder and is copied, not renamed, onto the checkpoint's name when the two are on different disks: a
full disk leaves a truncated file under a good-looking name, which resuming would trust. Here a
checkpoint's name only ever holds a whole file, and a failed write is one clear error.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from mnist_lab.errors import RunFault


class AtomicCheckpointIO(TorchCheckpointIO):
    """``TorchCheckpointIO`` whose local files appear whole or not at all (``trainer.plugins``)."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None) -> None:
        if "://" in str(path) or storage_options is not None:  # remote storage: fsspec's own transaction
            return super().save_checkpoint(checkpoint, path, storage_options)
        path = Path(path)
        temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with temporary.open("wb") as file:
                torch.save(checkpoint, file)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, path)
        except (OSError, RuntimeError) as err:  # torch reports a full disk as a RuntimeError
            temporary.unlink(missing_ok=True)
            reason = getattr(err, "strerror", None) or str(err).splitlines()[0]
            kept = "the previous one is intact" if path.exists() else "no earlier one exists"
            raise RunFault(f"cannot write the checkpoint {path} ({reason}); {kept}. Free space and resume") from None
        return None
