"""Remove the lab from a fork: ``make drop-lab`` (or ``python scripts/drop_lab.py``).

The lab (the claims study, the diagnostics, ``make bench``) is a second package, ``src/lab``, that
imports the template and is never imported by it. This deletes it with its configs, scripts,
reports, tests and docs, and the blocks of shared files that enable it: every block between a
``lab:begin`` and a ``lab:end`` marker line. After it, ``make lint``, ``make test-fast`` and
``make train`` pass. Only the standard library is used; it runs once (the second time says so).
"""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DELETED = [
    "src/lab",
    "configs/lab",
    "scripts/activation_study.py",
    "scripts/bench.py",
    "reports",
    "tests/lab",
    "docs/study.md",
    "docs/performance.md",
    "scripts/drop_lab.py",
]
EDITED = [
    "configs/defaults.yaml",
    "configs/speed.yaml",
    "Makefile",
    "pyproject.toml",
    "README.md",
    *(f"docs/{p.name}" for p in (ROOT / "docs").glob("*.md")),
]
# A marker is a comment line of its own: `# lab:begin ...` (YAML, Makefile, TOML) or `<!-- lab:begin -->` (Markdown).
BLOCK = re.compile(r"^[ \t]*(?:#|<!--)[ \t]*lab:begin\b.*?^[ \t]*(?:#|<!--)[ \t]*lab:end\b[^\n]*\n", re.M | re.S)


def main() -> int:
    if not (ROOT / "src" / "lab").exists():
        print("error: there is no lab to drop (src/lab is gone already)", file=sys.stderr)
        return 2
    for name in EDITED:
        path = ROOT / name
        if path.is_file():
            text = path.read_text(encoding="utf-8")
            edited = BLOCK.sub("", text)
            if edited != text:
                path.write_text(edited, encoding="utf-8")
                print(f"edited  {name}")
    for name in DELETED:
        path = ROOT / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
        else:
            continue
        print(f"deleted {name}")
    print("the lab is gone: run `make lint test-fast` to check")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
