"""What a stack of config files should resolve to, to compare with ``--print_config``: the files
merged in order (the later wins, a list replaces a list), and "the resolved config holds it"."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from mnist_lab.cli import DEFAULT_CONFIGS, main

SUBCLASS_KEYS = ("class_path", "init_args", "dict_kwargs")


def merged(files: list[Path]) -> dict[str, Any]:
    """The CLI's default files, then ``files``, merged as jsonargparse stacks them."""
    result: dict[str, Any] = {}
    for path in [*DEFAULT_CONFIGS, *files]:
        result = merge(result, yaml.safe_load(path.read_text()) or {})
    return normalised(result)


def merge(base: Any, update: Any) -> Any:
    if isinstance(base, dict) and isinstance(update, dict):
        return {**base, **{k: merge(base.get(k), v) for k, v in update.items()}}
    return update


def normalised(tree: Any) -> Any:
    """A subclass entry's arguments under ``init_args`` (a config may give ``data.augment``)."""
    if isinstance(tree, list):
        return [normalised(v) for v in tree]
    if not isinstance(tree, dict):
        return tree
    tree = {k: normalised(v) for k, v in tree.items()}
    if "class_path" in tree:
        loose = {k: v for k, v in tree.items() if k not in SUBCLASS_KEYS}
        init_args = {**(tree.get("init_args") or {}), **loose}
        tree = {k: v for k, v in tree.items() if k in SUBCLASS_KEYS}
        if init_args:
            tree["init_args"] = init_args
    return tree


def differences(resolved: Any, expected: Any, where: str = "") -> list[str]:
    """Where ``resolved`` does not hold ``expected``: every leaf of ``expected`` must be there
    (a resolved config also holds every default ``expected`` leaves out)."""
    if isinstance(expected, dict):
        if not isinstance(resolved, dict):
            return [f"{where}: {resolved!r} is not a mapping"]
        found = [
            differences(resolved.get(k), v, f"{where}.{k}".lstrip(".")) for k, v in expected.items()
        ]
        return [d for diff in found for d in diff]
    if isinstance(expected, (list, tuple)):
        if not isinstance(resolved, (list, tuple)) or len(resolved) != len(expected):
            return [f"{where}: {resolved!r} != {expected!r}"]
        return [
            d
            for i, (r, e) in enumerate(zip(resolved, expected, strict=True))
            for d in differences(r, e, f"{where}[{i}]")
        ]
    return [] if resolved == expected else [f"{where}: {resolved!r} != {expected!r}"]


def at(resolved: dict[str, Any], dotted: str) -> Any:
    """The value of ``--<dotted>`` in a resolved config (``data.dataset``: ``init_args``')."""
    node: Any = resolved
    for key in dotted.split("."):
        if key not in node and "init_args" in node:
            node = node["init_args"]
        node = node[key]
    return node


def resolved(capsys: pytest.CaptureFixture, args: list[str]) -> dict[str, Any]:
    """``python -m mnist_lab <args> --print_config``, in this process, read back."""
    with pytest.raises(SystemExit) as end:
        main([*args, "--print_config"])
    out, err = capsys.readouterr()
    assert end.value.code == 0, err
    return yaml.safe_load(out)
