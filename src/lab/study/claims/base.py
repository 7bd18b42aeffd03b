"""What a claim is: a grid of configurations, the numbers to read, a figure, and a verdict from the numbers."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

from lab.study.grid import Variant
from lab.study.results import RunRecord
from lab.study.stats import Difference, Stat, difference, summarise

Groups = dict[str, list[RunRecord]]  # variant name -> its seeds' records
Measure = Callable[[RunRecord], float | None]


@dataclass(frozen=True)
class Column:
    """A table column: a per-run number, summarised over seeds; ``scale`` 100 shows a fraction as %."""

    title: str
    measure: Measure
    spec: str = ".3f"
    scale: float = 1.0
    suffix: str = ""


@dataclass(frozen=True)
class Panel:
    """One plot of a claim's figure.

    Lines are mean ± std over seeds (geometric on a ``log`` axis).
    ``kind``: ``depth`` (a per-layer ``prefix/<i>`` at init or at the end), ``curve`` (a metric over
    training: ``key`` (``prefix/-1``: the output layer), ``minus`` another, or with ``layer_mean`` the
    mean over ``key``'s layers), ``points`` (``column`` per variant with seed error bars, on a zoomed
    axis) or ``heatmap`` (``column`` over the variants' cells). ``only`` limits it to some variants.
    """

    kind: str
    title: str
    key: str = ""
    at: str = "first"
    layer_mean: bool = False
    column: int = 0
    log: bool = False
    ylabel: str = ""
    minus: str = ""
    only: tuple[str, ...] = ()


@dataclass(frozen=True)
class Check:
    """One expected comparison: ``better`` beats ``worse`` on ``column`` (higher, unless ``lower``)."""

    column: int
    better: str
    worse: str
    lower: bool = False


@dataclass
class Verdict:
    """``holds``: True when every check goes the expected way beyond the seed spread, False when one
    goes the other way beyond it, None otherwise (no data, or differences within the seed spread)."""

    holds: bool | None
    lines: list[str] = field(default_factory=list)
    has_data: bool = False
    one_seed: bool = False

    @property
    def label(self) -> str:
        if self.holds is not None:
            return "holds" if self.holds else "does not hold"
        if not self.has_data:
            return "no data"
        return "inconclusive: one seed" if self.one_seed else "inconclusive: within the seed spread"


@dataclass(frozen=True)
class Claim:
    """A section of the report. ``args`` apply to every variant (then the variant's own overrides).

    ``metrics`` are the histories read from MLflow (exact keys, or prefixes ending in ``/``);
    ``checks`` the comparisons the verdict is computed from; ``cost_s`` the estimated training
    seconds of one run on one core, beyond the process start, for the plan printed before the runs.
    """

    name: str
    title: str
    statement: str
    measured: str
    variants: tuple[Variant, ...]
    columns: tuple[Column, ...]
    panels: tuple[Panel, ...]
    checks: tuple[Check, ...] = ()
    args: tuple[str, ...] = ()
    metrics: tuple[str, ...] = ("val/acc",)
    cost_s: float = 5.0
    note: str = ""

    def stat(self, groups: Groups, variant: str, column: int) -> Stat | None:
        """Mean ± std over the variant's finished runs: a failed or stopped run's partial figures stay out."""
        return summarise(self.columns[column].measure(r) for r in groups.get(variant, []) if r.status == "FINISHED")

    def verdict(self, groups: Groups) -> Verdict:
        """Each check's difference of means against the seed spread; the claim holds when all do."""
        return verdict(self, groups)


def verdict(claim: Claim, groups: Groups) -> Verdict:
    """The verdict from the numbers: see :class:`Verdict` for what each outcome means."""
    result = Verdict(None)
    outcomes: list[str] = []  # "shown", "contrary", "within" or "missing", per check
    for check in claim.checks:
        column = claim.columns[check.column]
        a, b = claim.stat(groups, check.better, check.column), claim.stat(groups, check.worse, check.column)
        if a is None or b is None:
            result.lines.append(f"{check.better} vs {check.worse}, {column.title}: no data")
            outcomes.append("missing")
            continue
        d: Difference = difference(a, b)
        expected = d.delta < 0 if check.lower else d.delta > 0
        outcomes.append(
            "single" if min(a.n, b.n) < 2 else "within" if not d.beyond_spread else "shown" if expected else "contrary"
        )
        result.lines.append(
            f"{check.better} vs {check.worse}, {column.title} ({'lower' if check.lower else 'higher'} expected): "
            f"{d.describe(column.spec, column.scale)} → {'as expected' if expected else 'the other way'}"
        )
    result.has_data = any(o != "missing" for o in outcomes)
    result.one_seed = result.has_data and all(o in ("single", "missing") for o in outcomes)
    if "contrary" in outcomes:
        result.holds = False
    elif outcomes and all(o == "shown" for o in outcomes):
        result.holds = True
    return result


def group(records: list[RunRecord]) -> Groups:
    """Records by variant name."""
    out: Groups = defaultdict(list)
    for record in records:
        out[record.variant].append(record)
    return dict(out)
