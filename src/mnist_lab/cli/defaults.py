"""The CLI's defaults are the template's: ``configs/defaults.yaml``, then the default network.

LightningCLI loads these as every subcommand's ``default_config_files`` (before any ``--config``),
so ``python -m mnist_lab fit`` trains what ``make train`` trains. The files are found next to the
package's checkout (``<repo>/configs``, whatever the working directory). A package installed without
its checkout (a wheel) has no ``configs/``: the CLI then says so once and runs on the code's own
defaults, and the template's configs are given with ``--config``.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

CONFIG_DIR = Path(__file__).resolve().parents[3] / "configs"
DEFAULT_NET = "mlp"


def default_config_files(config_dir: Path | None = None) -> list[str]:
    """``[configs/defaults.yaml, configs/net/mlp.yaml]``, or ``[]`` (with a note) when they are absent."""
    config_dir = CONFIG_DIR if config_dir is None else config_dir
    files = [config_dir / "defaults.yaml", config_dir / "net" / f"{DEFAULT_NET}.yaml"]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        print(
            f"note: {', '.join(missing)} not found (installed without the template's checkout?): "
            "running on the code's defaults; give the template's configs with --config",
            file=sys.stderr,
        )
        return []
    return [str(f) for f in files]


def default_parser_kwargs(subcommands: Iterable[str] | None, config_dir: Path | None = None) -> dict[str, Any]:
    """LightningCLI's ``parser_kwargs`` giving each subcommand the template's ``default_config_files``.

    ``subcommands=None`` is for ``LightningCLI(run=False)``, whose one parser has no subcommands.
    """
    files = default_config_files(config_dir)
    if subcommands is None:
        return {"default_config_files": files}
    return {name: {"default_config_files": files} for name in subcommands}
