"""``python tests/collect_each.py TREE...``: collect each tree's whole suite, one after another, in
this one process, as ``pytest --collect-only`` in that tree would; the libraries are imported once,
each tree's own modules afresh. Prints ``collected <tree>: exit <code>`` after each."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest


def forget(tree: Path) -> None:
    """Unimport the modules of ``tree`` (its package, its tests' helpers) and its import paths."""
    for name, module in list(sys.modules.items()):
        if Path(getattr(module, "__file__", None) or "/").is_relative_to(tree):
            del sys.modules[name]
    sys.path[:] = [entry for entry in sys.path if not Path(entry or ".").is_relative_to(tree)]


def main(trees: list[str]) -> int:
    forget(Path(__file__).resolve().parent)  # this checkout's tests: each tree has its own
    failed = 0
    for tree in (Path(t).resolve() for t in trees):
        os.chdir(tree)
        sys.path.insert(0, str(tree / "src"))
        code = pytest.main(["--collect-only", "-q", "-p", "no:cacheprovider"])
        print(f"collected {tree}: exit {int(code)}", flush=True)
        forget(tree)
        failed |= code != 0
    return int(failed)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
