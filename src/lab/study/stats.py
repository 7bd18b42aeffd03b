"""Seed statistics for a handful of seeds (5 by default): summaries, comparisons with 95%
intervals, Holm.

The rules, stated in the report (:data:`RULES`):

- a comparison of two configurations is Welch's t-test (unequal variances) on the per-seed values,
  on log10 for quantities compared as ratios (gradient norms: the table then shows geometric means
  and the effect is the ratio a/b); the effect comes with its 95% confidence interval;
- a "no difference" claim is an equivalence test (TOST: two one-sided Welch tests against a stated
  margin);
- a group is *split* (bimodal: e.g. some seeds collapsed) when the widest gap between its sorted
  values is more than :data:`SPLIT_GAP` times the standard deviation within the two sides it
  separates. That spread counts each value's rounding to the grid it was read on (variance q²/12
  for a grid of step q, the smallest difference between the compared seeds' values): tied values
  are not zero spread. 5 seeds drawn from one normal distribution are flagged about 0.3% of the
  time, and no more often when their values are rounded to a grid (`scripts/design/split_rule.py`:
  0-0.2% for grids of 0.1-3 sd, where ignoring the rounding flagged 4-55% at 0.5-3 sd);
- split groups, groups that are constant in both configurations and non-positive values on a log
  scale are not t-tested: the seeds above a threshold that depends on the pooled values alone (the
  middle of their widest gap, never one group's mean) are counted, and the counts compared with
  Fisher's exact test;
- the p-values of all the checks of a study are corrected together with Holm's step-down method.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats as sp

ALPHA = 0.05
SPLIT_GAP = 20.0

RULES = (
    "Each configuration ran with several seeds; a table cell is mean ± sample standard deviation "
    "(n = runs that produced the number), or for quantities compared as ratios (marked ×/÷) the "
    "geometric mean ×/÷ the geometric standard deviation. Each check compares two configurations "
    "with Welch's t-test (on log10 for ratios) and gives the effect with its 95% confidence "
    "interval: the difference a - b, or the ratio a/b. A 'no difference' check is an equivalence "
    "test (TOST) against the margin it states: it holds when the difference is shown smaller than "
    "the margin, and does not hold when it is shown larger. A group is *split* when the widest gap "
    f"between its sorted values exceeds {SPLIT_GAP:g} times the standard deviation on either side "
    "of the gap (e.g. some seeds collapsed), a value's rounding to the grid it was read on "
    "counting as spread (tied values are not zero spread); split groups, groups constant in both "
    "configurations and zeros on a log scale are not t-tested: the seeds above a threshold (the "
    "middle of the widest gap between both groups' values pooled) are counted and the counts "
    "compared with Fisher's exact test. The p-values of all the study's checks are corrected "
    f"together with Holm's method; a check *holds* when its corrected p < {ALPHA} and the effect "
    "goes the way the notes say, *does not hold* when it goes the other way, and is *inconclusive* "
    "otherwise. A claim holds when all its checks hold and does not hold when one does not."
)


@dataclass(frozen=True)
class Stat:
    """The per-seed values of one configuration; ``log``: summarised and compared as ratios (on
    log10)."""

    values: tuple[float, ...]
    log: bool = False

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float:
        return float(np.mean(self.values))

    @property
    def std(self) -> float:
        return float(np.std(self.values, ddof=1)) if self.n > 1 else 0.0

    @property
    def positive(self) -> bool:
        return all(v > 0 for v in self.values)

    @property
    def split(self) -> bool:
        return split_at(self.values) is not None

    def format(self, spec: str = ".4f", scale: float = 1.0, suffix: str = "") -> str:
        flag = " ⚠ split" if self.split else ""
        if self.log and self.positive:
            logs = np.log10(self.values)
            gstd = 10 ** float(np.std(logs, ddof=1)) if self.n > 1 else 1.0
            middle = format(scale * 10 ** float(np.mean(logs)), spec)
            return f"{middle}{suffix} ×/÷ {gstd:.2f} (n={self.n}){flag}"
        zeros = f", {sum(v <= 0 for v in self.values)} ≤ 0" if self.log else ""
        mean, std = format(scale * self.mean, spec), format(scale * self.std, spec)
        return f"{mean} ± {std}{suffix} (n={self.n}{zeros}){flag}"


def summarise(values: Iterable[float | None], log: bool = False) -> Stat | None:
    """The seeds' statistic, ignoring runs that did not produce the value; None when none did."""
    xs = tuple(float(v) for v in values if v is not None and math.isfinite(v))
    return Stat(xs, log) if xs else None


def resolution_of(values: Sequence[float]) -> float:
    """The grid the values were read on, as far as they show it: the smallest positive difference
    between two of them (0 when all are equal). Accuracies on 2,000 images move in steps of 0.0005,
    steps to a threshold in steps of the validation interval; for continuous values this is a small
    fraction of their spread."""
    xs = np.unique(np.asarray(values, dtype=float))
    return float(np.diff(xs).min()) if len(xs) > 1 else 0.0


def split_at(values: Sequence[float], resolution: float | None = None) -> float | None:
    """The middle of the widest gap when it splits ``values`` in two (:data:`SPLIT_GAP`), else None.

    A value read on a grid of step q is known to within ±q/2, so the spread on each side counts that
    rounding (variance q²/12): tied values are not zero spread. ``resolution`` is q, by default
    :func:`resolution_of` the values.
    """
    xs = np.sort(np.asarray(values, dtype=float))
    if len(xs) < 3:
        return None
    q = resolution_of(xs) if resolution is None else float(resolution)
    gaps = np.diff(xs)
    i = int(np.argmax(gaps))
    low, high = xs[: i + 1], xs[i + 1 :]
    within = math.sqrt(
        (((low - low.mean()) ** 2).sum() + ((high - high.mean()) ** 2).sum()) / (len(xs) - 2)
        + q**2 / 12
    )
    return float(xs[i] + gaps[i] / 2) if gaps[i] > SPLIT_GAP * within and gaps[i] > 0 else None


def widest_gap(values: Sequence[float]) -> float | None:
    """The middle of the widest gap between the sorted distinct ``values``; None when all are equal.

    It depends on the values alone, not on which group each came from: the threshold is the same
    under every relabelling of the seeds, so Fisher's exact test of the counts above it keeps its
    level."""
    xs = np.unique(np.asarray(values, dtype=float))
    if len(xs) < 2:
        return None
    i = int(np.argmax(np.diff(xs)))
    return float((xs[i] + xs[i + 1]) / 2)


@dataclass(frozen=True)
class Comparison:
    """``a`` against ``b``: the test used, the effect with its 95% interval, and the p-value
    (uncorrected).

    ``sign`` is the observed direction (+1: a above b); for an equivalence test ``sign`` 0 means the
    difference was shown within the margin and ±1 that it was shown beyond it (whichever p is
    smaller).
    """

    test: str
    effect: float
    low: float
    high: float
    p_value: float
    sign: int
    flags: tuple[str, ...] = ()

    def describe(self, spec: str, scale: float = 1.0, suffix: str = "") -> str:
        """The effect in the column's units with its interval, or the counts when counted."""
        if self.test.startswith("counted"):
            return self.test[len("counted: ") :]
        if self.test.startswith("Welch on log10"):
            return f"ratio {self.effect:.3g} [95% CI {self.low:.3g}, {self.high:.3g}]"
        e, lo, hi = (format(scale * x, "+" + spec) for x in (self.effect, self.low, self.high))
        return f"Δ {e}{suffix} [95% CI {lo}, {hi}]"


def welch(a: Sequence[float], b: Sequence[float]) -> tuple[float, float, float, float]:
    """Difference of means a - b, its 95% Welch interval and the two-sided p-value (scipy's
    ``ttest_ind``)."""
    result = sp.ttest_ind(a, b, equal_var=False)
    ci = result.confidence_interval(1 - ALPHA)
    return float(np.mean(a) - np.mean(b)), float(ci.low), float(ci.high), float(result.pvalue)


def tost(a: Sequence[float], b: Sequence[float], margin: float) -> tuple[float, float]:
    """Two one-sided Welch tests: p that |mean a - mean b| < ``margin``, and p that it exceeds it.

    The first is TOST's p (the larger of the two one-sided p-values); the second the one-sided p
    that the difference lies beyond the margin on the side it was observed.
    """
    a = np.asarray(a, dtype=float)
    above = sp.ttest_ind(
        a + margin, b, equal_var=False, alternative="greater"
    ).pvalue  # H0: δ <= -margin
    below = sp.ttest_ind(
        a - margin, b, equal_var=False, alternative="less"
    ).pvalue  # H0: δ >= margin
    side = "greater" if a.mean() >= np.mean(b) else "less"
    beyond = sp.ttest_ind(
        a - margin if side == "greater" else a + margin, b, equal_var=False, alternative=side
    )
    return float(max(above, below)), float(beyond.pvalue)


def counted(a: Sequence[float], b: Sequence[float], threshold: float, why: str) -> Comparison:
    """Seeds above ``threshold`` in each group, compared with Fisher's exact test (two-sided)."""
    ka, kb = sum(v > threshold for v in a), sum(v > threshold for v in b)
    table = [[ka, len(a) - ka], [kb, len(b) - kb]]
    p = float(sp.fisher_exact(table).pvalue)
    effect = ka / len(a) - kb / len(b)
    text = (
        f"counted: {ka}/{len(a)} vs {kb}/{len(b)} seeds above {threshold:.3g} "
        f"({why}; Fisher's exact test)"
    )
    return Comparison(text, effect, math.nan, math.nan, p, int(np.sign(effect)), (why,))


def compare(
    a: Stat, b: Stat, margin: float | None = None, names: tuple[str, str] = ("a", "b")
) -> Comparison | None:
    """The comparison the module docstring's rules call for; None with fewer than two seeds on a
    side."""
    if a.n < 2 or b.n < 2:
        return None
    x, y = list(a.values), list(b.values)
    log = a.log or b.log
    if log and not (a.positive and b.positive):
        return counted(x, y, 0.0, "values ≤ 0 on a log scale")
    if log:
        x, y = list(np.log10(x)), list(np.log10(y))
    flags = tuple(
        f"{name} constant in every seed"
        for name, s in zip(names, (x, y), strict=True)
        if np.ptp(s) == 0
    )
    grid = resolution_of([*x, *y])  # both groups' seeds show the grid better than one group's
    if split_at(x, grid) is not None or split_at(y, grid) is not None:
        # The pooled values' widest gap, on the scale the groups were split on; never one group's
        # mean, a threshold that hangs on the labels (He 79.2 ± 5.2% against Xavier 13.3 ± 6.0%,
        # perfectly separated, came out "3/5 vs 0/5 above 0.792").
        middle = widest_gap([*x, *y])
        assert middle is not None  # a split group holds two distinct values
        threshold = 10**middle if log else middle
        return counted(a.values, b.values, threshold, "a split group")
    if len(flags) == 2:
        if x[0] == y[0] and margin is None:
            return Comparison("constant: identical in every seed", 0.0, 0.0, 0.0, 1.0, 0)
        if (
            x[0] == y[0]
        ):  # no spread to test: a sign test, each seed as likely outside the margin as inside
            n = min(len(x), len(y))
            return Comparison(
                f"constant: identical in every seed (sign test, n = {n})", 0.0, 0.0, 0.0, 0.5**n, 0
            )
        return counted(a.values, b.values, (a.values[0] + b.values[0]) / 2, "both constant")
    effect, low, high, p = welch(x, y)
    if margin is not None:
        p_within, p_beyond = tost(x, y, margin)
        within = p_within <= p_beyond
        # both alternatives are tested: Bonferroni over the two keeps the check at its level
        p, sign = min(1.0, 2 * min(p_within, p_beyond)), 0 if within else int(np.sign(effect))
        test = f"TOST, margin ±{margin:g}" + (" on log10" if log else "")
        return Comparison(test, effect, low, high, p, sign, flags)
    if log:
        return Comparison(
            "Welch on log10", 10**effect, 10**low, 10**high, p, int(np.sign(effect)), flags
        )
    return Comparison("Welch", effect, low, high, p, int(np.sign(effect)), flags)


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values, in the input's order (compare each with ALPHA)."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted, running = [0.0] * m, 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted
