"""A LightningCLI parser whose errors are one line and a hint, not an 80-line usage dump."""

from __future__ import annotations

import re
import sys
from typing import NoReturn

from jsonargparse._common import debug_mode_active
from lightning.pytorch.cli import LightningArgumentParser


def summarise(message: str) -> str:
    """jsonargparse explains a bad value over many lines: keep the key, what it expects and the value."""
    keys = re.findall(r'Parser key "([^"]+)"', message)
    expected = re.search(r"Expected an? <class '([^']+)'>()", message) or re.search(r"Expected an? ()([^\n]+)", message)
    given = re.search(r"Given value: (.*?)(?:\. Got value:|$)", message, re.MULTILINE)
    if not keys or not expected:
        lines = [line.strip() for line in message.strip().splitlines() if line.strip()]
        return lines[0] if lines else "invalid arguments"
    what = expected.group(1) or expected.group(2)
    value = f", got {given.group(1).strip()!r}" if given else ""
    return f"{'.'.join(keys)}: expected {what}{value}"


class ConciseParser(LightningArgumentParser):
    """``error: <what is wrong>`` and where to look, then exit code 2 (argparse's)."""

    def error(self, message: str, ex: Exception | None = None) -> NoReturn:
        if not self.exit_on_error or debug_mode_active():
            super().error(message, ex)
        parser = getattr(ex, "subcommand_parser", None) or self
        prog = parser.prog.replace(" [options]", "")
        sys.stderr.write(f"error: {summarise(message)}\n  (see `{prog} --help` for the accepted options)\n")
        raise SystemExit(2)
