"""What a fork does to the tree, on a copy of it: `make drop PART=<part>` for each part alone (no
trace left, lint passes, the whole suite still collects), and `make rename NAME=...` then lint."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from tree import copy_tree, dead_links, run, traces

import mnist_lab

ROOT = Path(__file__).resolve().parents[1]


def drop_script(root: Path) -> ModuleType:
    """``scripts/drop.py`` of the tree at ``root``, imported (it acts on that tree)."""
    spec = importlib.util.spec_from_file_location(
        f"drop_{abs(hash(root))}", root / "scripts" / "drop.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


DROP = drop_script(ROOT)
PARTS = [part for part in DROP.PARTS if DROP.present(part)]  # a fork may have dropped some
LAB = ["from lab", "import lab", "src/lab", "lab.diagnostics", "lab.study", "lab.nets"]
NAMES = {"lab": LAB, "team": ["team.sh", "psycopg2"]}
NAMES["sweep"] = ["import optuna", "from optuna", "configs/sweeps"]
NAMES["export"] = ["onnx"]


def words(part: str) -> list[str]:
    """What names ``part`` in code or config: its module, its markers, its own words."""
    return [f"mnist_lab.parts.{part}", f"{part}:begin", f"{part}:end", *NAMES.get(part, [])]


@pytest.mark.skipif("export" not in PARTS, reason="the export part is dropped")
def test_make_drop_lists_the_parts_and_refuses_what_it_cannot_drop(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    drop = drop_script(copy_tree(ROOT, tmp_path))
    assert drop.main([]) == 0
    listed = capsys.readouterr().out
    assert all(f"  {part} " in listed for part in PARTS) and listed.count("present") == len(PARTS)
    assert drop.main(["nothing"]) == 2 and "the parts: " in capsys.readouterr().err
    assert drop.main(["export"]) == 0 and not (tmp_path / "src/mnist_lab/parts/export.py").exists()
    assert drop.main(["export"]) == 2 and "dropped already" in capsys.readouterr().err
    assert drop.main([]) == 0 and "export          dropped" in capsys.readouterr().out


@pytest.mark.skipif("export" not in PARTS, reason="the export part is dropped")
def test_a_drop_removes_its_tagged_rows_and_leaves_no_blank_line_at_a_file_end(
    tmp_path: Path,
) -> None:
    """A table row ending ``<!-- part -->`` goes, the rows of other parts stay; a block that ended
    a file leaves it ending in one newline (what ``ruff format`` asks)."""
    copy = copy_tree(ROOT, tmp_path)
    table = "| a | b |\n|---|---|\n| gone | x | <!-- export -->\n| kept | y | <!-- other -->\n"
    (copy / "docs" / "rows.md").write_text(table)
    (copy / "tests" / "ending.py").write_text('"""Doc."""\n\n# export:begin\nX = 1\n# export:end\n')
    assert drop_script(copy).main(["export"]) == 0
    assert (copy / "docs" / "rows.md").read_text() == table.replace(
        "| gone | x | <!-- export -->\n", ""
    )
    assert (copy / "tests" / "ending.py").read_text() == '"""Doc."""\n'


@pytest.fixture(scope="module")
def dropped(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, str]]:
    """``{part: (copy, what collecting its whole suite printed)}``: a copy of the tree per part,
    that part dropped, all collected in one process (``collect_each.py``)."""
    root, copies = tmp_path_factory.mktemp("drops"), {}
    for part in PARTS:
        copies[part] = copy_tree(ROOT, root / part)
        # the standard library only, as before `make install`
        dropped = run(["python3", "scripts/drop.py", part], copies[part])
        assert dropped.returncode == 0, dropped.stderr
    trees = [str(copy) for copy in copies.values()]
    # no PYTHONPATH: the script puts each tree's own src first in turn
    collected = run(
        [sys.executable, str(ROOT / "tests" / "collect_each.py"), *trees], root, PYTHONPATH=""
    )
    printed, outputs = collected.stdout, {}
    for part, copy in copies.items():
        before, found, printed = printed.partition(f"collected {copy}: exit ")
        assert found, f"{part}: not collected\n{before[-3000:]}{collected.stderr[-3000:]}"
        outputs[part] = before + found + printed.partition("\n")[0]
        printed = printed.partition("\n")[2]
    return {part: (copies[part], outputs[part]) for part in PARTS}


@pytest.mark.slow
@pytest.mark.subprocess
@pytest.mark.xdist_group("fork_tree")  # they share the copies of `dropped`
@pytest.mark.parametrize("part", PARTS)
def test_a_part_drops_alone_and_the_fork_still_lints_and_collects(
    part: str, dropped: dict[str, tuple[Path, str]]
) -> None:
    """What would break a fork's CI, cheaply: lint, and the copy's whole suite collected (no test
    left that imports or copies what was dropped). The public-API check is the whole tree's (in
    `make lint`): dropping code cannot add a private name."""
    copy, collected = dropped[part]
    assert not traces(copy, words(part))
    assert dead_links(copy) == []
    bin_ = Path(sys.executable).parent
    for command in (
        [str(bin_ / "ruff"), "check", "--no-cache", "src", "tests", "scripts"],
        [str(bin_ / "ruff"), "format", "--check", "--no-cache", "src", "tests", "scripts"],
        [str(bin_ / "lint-imports"), "--no-cache"],
        ["make", "-s", "help"],
    ):
        result = run(command, copy)
        assert result.returncode == 0, f"{command}\n{result.stdout[-3000:]}{result.stderr[-3000:]}"
    assert collected.endswith(": exit 0"), collected[-3000:]
    assert " collected" in collected or "tests collected" in collected


@pytest.mark.slow
@pytest.mark.subprocess
def test_rename_leaves_no_old_name_and_the_fork_lints(tmp_path: Path) -> None:
    copy = copy_tree(ROOT, tmp_path / "fork")
    old = mnist_lab.__name__
    renamed = run(["make", "-s", "rename", "NAME=digit_lab"], copy)
    assert renamed.returncode == 0, renamed.stderr
    assert (copy / "src/digit_lab/__init__.py").is_file() and not (copy / "src" / old).exists()
    assert not traces(copy, [old, old.replace("_", "-")])
    assert 'name = "digit-lab"' in (copy / "pyproject.toml").read_text()
    bin_ = Path(sys.executable).parent
    for command in (
        # the imports still sorted under the new name
        [str(bin_ / "ruff"), "check", "--no-cache", "src", "tests", "scripts"],
        [str(bin_ / "ruff"), "format", "--check", "--no-cache", "src", "tests", "scripts"],
        [str(bin_ / "lint-imports"), "--no-cache"],
        [sys.executable, "-m", "digit_lab", "fit", "--print_config"],
    ):
        result = run(command, copy)
        assert result.returncode == 0, f"{command}\n{result.stdout[-3000:]}{result.stderr[-3000:]}"
    assert "digit_lab.models.components.MLP" in result.stdout
    again = run(["make", "-s", "rename", "NAME=digit_lab"], copy)
    assert again.returncode != 0 and "already called digit_lab" in again.stderr
