"""Rename the package: ``make rename NAME=<new_package>`` (or ``scripts/rename.py <new_package>``).

Moves ``src/<old>`` to ``src/<new>`` and rewrites every mention of the old import name and of the
distribution name (``old_name`` and ``old-name``) in the tree's text files: imports, ``class_path``
entries of the configs, pyproject.toml, the Makefile, README and the other docs. The old name is
read from ``src/`` (its one package), so the script works again after a rename. Only the standard
library is used: run it before ``make install``.
"""

from __future__ import annotations

import argparse
import keyword
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# stores, data, venv
TOP_LEVEL_SKIPPED = {
    ".git",
    ".venv",
    "venv",
    "mlruns",
    "data",
    "outputs",
    "lightning_logs",
}


def current_package(root: Path) -> str:
    """The one package under ``src/`` besides the lab."""
    found = [
        p.name
        for p in (root / "src").iterdir()
        if (p / "__init__.py").is_file() and p.name != "lab"
    ]
    if len(found) != 1:
        raise SystemExit(
            f"error: expected one package under {root / 'src'}, found {found or 'none'}"
        )
    return found[0]


def text_files(root: Path):
    """Every file below ``root`` that reads as UTF-8 text, but caches, stores, data and the venv."""
    for path in sorted(root.rglob("*")):
        parts = path.relative_to(root).parts
        if parts[0] in TOP_LEVEL_SKIPPED or any(
            p.endswith(("__pycache__", "_cache", ".egg-info")) for p in parts
        ):
            continue
        if not path.is_file():
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        if "\0" not in text:
            yield path, text


def rename(root: Path, new: str) -> list[Path]:
    """Rename the package below ``root`` to ``new``; return the files whose text changed."""
    if not re.fullmatch(r"[a-z][a-z0-9_]*", new) or keyword.iskeyword(new):
        raise SystemExit(
            f"error: {new!r} is not a valid package name (lower case letters, digits and _)"
        )
    old = current_package(root)
    if new == old:
        raise SystemExit(f"error: the package is already called {old}")
    if (root / "src" / new).exists():
        raise SystemExit(f"error: {root / 'src' / new} already exists")
    names = {old: new, old.replace("_", "-"): new.replace("_", "-")}
    pattern = re.compile("|".join(re.escape(name) for name in sorted(names, key=len, reverse=True)))
    changed = []
    for path, text in text_files(root):
        renamed = pattern.sub(lambda m: names[m.group(0)], text)
        if renamed != text:
            path.write_text(renamed, encoding="utf-8")
            changed.append(path)
    (root / "src" / old).rename(root / "src" / new)
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name", help="the new package (import) name, e.g. digit_lab")
    parser.add_argument(
        "--root", type=Path, default=ROOT, help="the project root (default: this checkout)"
    )
    args = parser.parse_args(argv)
    old = current_package(args.root)
    changed = rename(args.root, args.name)
    print(f"renamed src/{old} -> src/{args.name}; rewrote {len(changed)} files:")
    for path in changed:
        print(f"  {path.relative_to(args.root)}")
    print("next: make install (installs the package under its new name), then make test-fast")
    return 0


if __name__ == "__main__":
    sys.exit(main())
