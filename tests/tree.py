"""A copy of the repository's tree, as a fork starts from it, and what names a dropped part."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path


def copy_tree(repo_root: Path, dest: Path) -> Path:
    """The files git tracks, and the new ones it does not ignore, as in the working tree."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=repo_root,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for name in filter(None, listed.split("\0")):
        source = repo_root / name
        if source.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)
    return dest


def run(
    command: list[str], cwd: Path, timeout: int = 300, **env: str
) -> subprocess.CompletedProcess:
    """``command`` in ``cwd`` with this venv's tools first on the PATH and the copy's ``src``."""
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    full = {**os.environ, "PATH": path, "PYTHONPATH": str(cwd / "src"), **env}
    full.pop("DATA_DIR", None)
    return subprocess.run(
        command, cwd=cwd, env=full, capture_output=True, text=True, timeout=timeout
    )


LINK = re.compile(r"\]\(([^)#\s]+)")  # a Markdown link's target, without its anchor


def dead_links(root: Path) -> list[str]:
    """``page: target`` for every relative link of README and the docs that names no file."""
    pages = [root / "README.md", *(root / "docs").glob("*.md")]
    return [
        f"{page.relative_to(root)}: {target}"
        for page in pages
        for target in LINK.findall(page.read_text())
        if "://" not in target and not (page.parent / target).exists()
    ]


KNOWS_THE_PARTS = ("scripts/drop.py", "tests/test_fork_tree.py")  # they list every part


def traces(root: Path, words: list[str]) -> list[str]:
    """``path:line: text`` of every line of a code or config file (not Markdown, which may tell what
    was dropped) that names one of ``words``."""
    pattern = re.compile("|".join(re.escape(w) for w in words))
    found = []
    for path in sorted(p for p in root.rglob("*") if p.is_file() and ".git" not in p.parts):
        data = path.read_bytes()
        if b"\0" in data or path.suffix in (".md", ".png"):
            continue
        if str(path.relative_to(root)) in KNOWS_THE_PARTS:
            continue
        for number, line in enumerate(data.decode("utf-8", "replace").splitlines(), start=1):
            if pattern.search(line):
                found.append(f"{path.relative_to(root)}:{number}: {line.strip()}")
    return found
