"""``make lint``'s check that the project uses only the public APIs of its libraries.

A name that starts with ``_`` (not a dunder) is flagged when it is imported from one of LIBRARIES,
read from an object (``x._y``) but defined nowhere in the project, or used on ``self`` in a class
whose library base class has it (``self._run_id`` in an ``MLFlowLogger``). Only stdlib and ast, plus
importing the library base classes the project derives from.
"""

from __future__ import annotations

import ast
import contextlib
import importlib
import inspect
import re
import sys
from pathlib import Path

LIBRARIES = (
    "lightning",
    "pytorch_lightning",
    "mlflow",
    "jsonargparse",
    "optuna",
    "optuna_integration",
)
LIBRARIES += ("torch", "torchvision", "torchmetrics")


def private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def from_library(module: str) -> bool:
    return module.split(".")[0] in LIBRARIES


def ours(trees: dict[Path, ast.Module]) -> set[str]:
    """Every private name the project defines: functions, classes, attributes it assigns."""
    names: set[str] = set()
    for tree in trees.values():
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.add(node.name)
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
                names.add(node.attr)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                names.add(node.id)
            elif isinstance(node, ast.arg):
                names.add(node.arg)
    return {name for name in names if private(name)}


def library_privates(tree: ast.Module, cls: ast.ClassDef) -> set[str]:
    """The private names that ``cls``'s library base classes use on ``self``."""
    imported = {
        alias.asname or alias.name: f"{node.module}.{alias.name}"
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module and from_library(node.module)
        for alias in node.names
    }
    found: set[str] = set()
    for base in cls.bases:
        dotted = ast.unparse(base)
        target = imported.get(dotted.split(".")[0])
        if target is None:
            continue
        module, _, name = (target + dotted[len(dotted.split(".")[0]) :]).rpartition(".")
        try:
            base_class = getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError):
            continue
        for klass in inspect.getmro(base_class):
            if from_library(klass.__module__):
                with contextlib.suppress(OSError, TypeError):  # no source: nothing to compare
                    found |= set(re.findall(r"self\.(_[a-zA-Z]\w*)", inspect.getsource(klass)))
    return {name for name in found if private(name)}


def problems(path: Path, tree: ast.Module, defined: set[str]) -> list[str]:
    found = []
    for node in ast.walk(tree):
        where = f"{path}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.ImportFrom) and node.module and from_library(node.module):
            parts = node.module.split(".") + [alias.name for alias in node.names]
            found += [f"{where}: imports {node.module}: {p}" for p in parts if private(p)]
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if from_library(alias.name) and any(private(p) for p in alias.name.split(".")):
                    found.append(f"{where}: imports {alias.name}")
        elif isinstance(node, ast.Attribute) and private(node.attr):
            on_self = isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")
            if not on_self and node.attr not in defined:
                found.append(f"{where}: {ast.unparse(node)} is no name of this project")
        elif isinstance(node, ast.ClassDef):
            theirs = library_privates(tree, node)
            for inner in ast.walk(node):
                if (
                    isinstance(inner, ast.Attribute)
                    and isinstance(inner.value, ast.Name)
                    and inner.value.id == "self"
                    and inner.attr in theirs
                ):
                    found.append(
                        f"{path}:{inner.lineno}: self.{inner.attr} is the library base's own"
                    )
    return found


def main(roots: list[str]) -> int:
    files = sorted(p for root in roots for p in Path(root).rglob("*.py"))
    trees = {path: ast.parse(path.read_text(), str(path)) for path in files}
    defined = ours(trees)
    found = [line for path, tree in trees.items() for line in problems(path, tree, defined)]
    print("\n".join(found) or f"public APIs only: {len(files)} files")
    return 1 if found else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:] or ["src", "scripts"]))
