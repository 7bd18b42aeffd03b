"""Checkpoints that are whole or absent: written to a temporary file in their folder, then renamed,
and checked against the CRC-32 that their zip archive holds for every member before any use.

Lightning's writer goes through fsspec, whose temporary file lies in the system's temp folder and
is copied, not renamed, onto the checkpoint's name when the two are on different disks: a full disk
leaves a truncated file under a good name. And ``torch.load`` reads a file whose bytes were changed
in place without a word; the archive's own checksums do not.
"""

from __future__ import annotations

import os
import shutil
import zipfile
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from mnist_lab.errors import ConfigError, RunFault


def check_whole(path: Path) -> None:
    """Every member of the checkpoint's archive against its CRC-32: a damaged one is an error."""
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except zipfile.BadZipFile:
        bad = "its table of contents"
    except OSError as err:
        raise ConfigError(f"cannot read the checkpoint {path}: {err.strerror}") from None
    if bad is not None:
        raise ConfigError(
            f"{path} is damaged: {bad} fails its checksum (a truncated or overwritten file)"
        )


def why_unwritten(err: BaseException, folder: Path) -> str:
    """The cause of a failed write in words: torch reports a full disk as ``unexpected pos``."""
    free = shutil.disk_usage(folder).free if folder.is_dir() else None
    if getattr(err, "errno", None) == 28 or (free is not None and free < 1 << 20):
        return "the disk is full"
    return getattr(err, "strerror", None) or str(err).splitlines()[0]


class AtomicCheckpointIO(TorchCheckpointIO):
    """``TorchCheckpointIO`` whose local files appear whole or not at all (``trainer.plugins``)."""

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None
    ) -> None:
        if "://" in str(path) or storage_options is not None:  # remote: fsspec's own transaction
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
            kept = "the previous one is intact" if path.exists() else "no earlier one exists"
            reason = why_unwritten(err, path.parent)
            raise RunFault(f"cannot write the checkpoint {path} ({reason}); {kept}") from None
        return None
