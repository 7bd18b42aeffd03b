"""What a claim is: a grid of configurations, the numbers to read, a figure, and a verdict from the
numbers."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

from lab.study.grid import Variant
from lab.study.results import RunRecord
from lab.study.stats import ALPHA, Comparison, Stat, compare, holm, summarise

Groups = dict[str, list[RunRecord]]  # variant name -> its seeds' records
Measure = Callable[[RunRecord], float | None]


@dataclass(frozen=True)
class Column:
    """A table column: a per-run number, summarised over seeds; ``scale`` 100 shows a fraction as
    %."""

    title: str
    measure: Measure
    spec: str = ".3f"
    scale: float = 1.0
    suffix: str = ""
    log: bool = False  # a ratio: geometric mean, compared on log10
    # what a FAILED run (e.g. diverged: NaN loss) counts as; None: left out
    failed: float | None = None


@dataclass(frozen=True)
class Panel:
    """One plot of a claim's figure.

    Lines are mean ± std over seeds (geometric on a ``log`` axis). ``kind``: ``depth`` (a per-layer
    ``prefix/<i>`` at init or at the end), ``curve`` (a metric over training: ``key``
    (``prefix/-1``: the output layer), ``minus`` another, or with ``layer_mean`` the mean over
    ``key``'s layers), ``points`` (``column`` per variant with seed error bars, on a zoomed axis) or
    ``heatmap`` (``column`` over the variants' cells). ``only`` limits it to some variants.
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
    """One sub-claim: ``better`` beats ``worse`` on ``column`` (higher, unless ``lower``); with
    ``margin`` it is "no difference": the two differ by less than ``margin`` (raw units; log10 units
    on a log column), tested for equivalence. ``says`` is the sub-claim in the notes' words. With
    ``level`` the other side is that number, as if every seed had measured it (Welch's test then
    reduces to a one-sample t-test)."""

    column: int
    better: str
    worse: str
    lower: bool = False
    margin: float | None = None
    says: str = ""
    level: float | None = None  # compare ``better`` with this number (``worse`` then only names it)


@dataclass
class Outcome:
    """One check's result: its comparison (None: no data, or one seed) and its Holm-corrected
    p-value."""

    check: Check
    title: str  # the column compared
    comparison: Comparison | None
    missing: bool = False
    p_holm: float = math.nan

    @property
    def label(self) -> str:
        c = self.comparison
        if c is None:
            return "no data" if self.missing else "inconclusive: one seed"
        if not self.p_holm < ALPHA:
            return "inconclusive"
        expected = 0 if self.check.margin is not None else -1 if self.check.lower else 1
        return "holds" if c.sign == expected else "does not hold"

    def line(self, column: Column) -> str:
        """The check in words: what was compared, the effect, the test, p (raw and corrected), the
        verdict."""
        ch, c = self.check, self.comparison
        way = (
            f"within ±{ch.margin:g}" if ch.margin is not None else "lower" if ch.lower else "higher"
        )
        head = (
            f"{ch.says + ': ' if ch.says else ''}{ch.better} vs {ch.worse}, "
            f"{self.title} ({way} expected)"
        )
        if c is None:
            return (
                f"{head}: {'no data' if self.missing else 'one seed, nothing to test'} "
                f"→ {self.label}"
            )
        flags = f"; {', '.join(c.flags)}" if c.flags and not c.test.startswith("counted") else ""
        return (
            f"{head}: {c.describe(column.spec, column.scale, column.suffix)} ({c.test}, p = "
            f"{c.p_value:.2g}, Holm p = {self.p_holm:.2g}{flags}) → {self.label}"
        )


@dataclass
class Verdict:
    """The claim's checks, each a sub-claim with its own verdict; ``holds`` True when every check
    holds, False when one does not hold, None otherwise (no data, one seed, or a check
    inconclusive)."""

    outcomes: list[Outcome] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)

    @property
    def holds(self) -> bool | None:
        labels = [o.label for o in self.outcomes]
        if "does not hold" in labels:
            return False
        return True if labels and all(label == "holds" for label in labels) else None

    @property
    def label(self) -> str:
        labels = [o.label for o in self.outcomes]
        if self.holds is not None:
            return "holds" if self.holds else "does not hold"
        if all(label == "no data" for label in labels):
            return "no data"
        if all(label in ("no data", "inconclusive: one seed") for label in labels):
            return "inconclusive: one seed"
        unsettled = sum(label != "holds" for label in labels)
        return f"inconclusive: {unsettled} of {len(labels)} checks unsettled"


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
    # Printed under the figure: what it shows; ``{c0}``, ``{c1}`` ... become the verdicts of
    # checks 0, 1 ...
    caption: str = ""

    def caption_for(self, verdict: Verdict) -> str:
        """The caption with each ``{c<i>}`` replaced by check ``i``'s verdict, so it says whether
        the figure agrees."""
        return self.caption.format(**{f"c{i}": o.label for i, o in enumerate(verdict.outcomes)})

    def stat(self, groups: Groups, variant: str, column: int) -> Stat | None:
        """Mean ± std over the variant's finished runs: a failed or stopped run's partial figures
        stay out."""
        # (unless the column says what a FAILED run counts as: ``Column.failed``)
        col = self.columns[column]
        runs = groups.get(variant, [])
        failed = [col.failed for r in runs if r.status == "FAILED" and col.failed is not None]
        return summarise(
            [*(col.measure(r) for r in runs if r.status == "FINISHED"), *failed], col.log
        )

    def outcomes(self, groups: Groups) -> list[Outcome]:
        """Each check's comparison, before any correction."""
        out = []
        for check in self.checks:
            title = self.columns[check.column].title
            a, b = (
                self.stat(groups, check.better, check.column),
                self.stat(groups, check.worse, check.column),
            )
            if check.level is not None:
                b = (
                    None
                    if a is None
                    else Stat((check.level,) * max(2, a.n), self.columns[check.column].log)
                )
            if a is None or b is None:
                out.append(Outcome(check, title, None, missing=True))
            else:
                out.append(
                    Outcome(check, title, compare(a, b, check.margin, (check.better, check.worse)))
                )
        return out

    def verdict(self, groups: Groups) -> Verdict:
        """This claim's verdict with Holm's correction over its own checks (a report corrects over
        the study)."""
        return judge([(self, groups)])[0]


def judge(studied: list[tuple[Claim, Groups]]) -> list[Verdict]:
    """Every claim's verdict, the p-values of all their checks corrected together (Holm)."""
    per_claim = [claim.outcomes(groups) for claim, groups in studied]
    tested = [o for outcomes in per_claim for o in outcomes if o.comparison is not None]
    for outcome, p in zip(tested, holm([o.comparison.p_value for o in tested]), strict=True):
        outcome.p_holm = p
    return [
        Verdict(outcomes, [o.line(claim.columns[o.check.column]) for o in outcomes])
        for (claim, _), outcomes in zip(studied, per_claim, strict=True)
    ]


def group(records: list[RunRecord]) -> Groups:
    """Records by variant name."""
    out: Groups = defaultdict(list)
    for record in records:
        out[record.variant].append(record)
    return dict(out)
