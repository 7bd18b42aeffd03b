"""Seed statistics: mean ± standard deviation (n), and whether a difference exceeds the seed spread.

The rule is deliberately simple and stated in the report: a difference of means counts as beyond
the seed spread when Welch's t-test (unequal variances) gives p < 0.05; its standard error,
sqrt(s1²/n1 + s2²/n2), is printed beside it. With three seeds that asks for a difference of
several standard errors, as it should. With one seed there is no spread to compare with, so
nothing is called significant; identical seeds (std 0 on both sides) differ beyond their spread.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from scipy import stats as scipy_stats

ALPHA = 0.05


@dataclass(frozen=True)
class Stat:
    """Mean, sample standard deviation (0 for one value) and count of the per-seed values."""

    mean: float
    std: float
    n: int

    def format(self, spec: str = ".4f", scale: float = 1.0, suffix: str = "") -> str:
        return f"{format(scale * self.mean, spec)} ± {format(scale * self.std, spec)}{suffix} (n={self.n})"


def summarise(values: Iterable[float | None]) -> Stat | None:
    """The seeds' statistic, ignoring runs that did not produce the value; None when none did."""
    xs = [float(v) for v in values if v is not None and math.isfinite(v)]
    if not xs:
        return None
    mean = sum(xs) / len(xs)
    std = math.sqrt(sum((x - mean) ** 2 for x in xs) / (len(xs) - 1)) if len(xs) > 1 else 0.0
    return Stat(mean, std, len(xs))


@dataclass(frozen=True)
class Difference:
    """``a - b`` with its standard error, Welch's p-value and the verdict on the seed spread."""

    delta: float
    stderr: float
    p_value: float | None
    beyond_spread: bool

    def describe(self, spec: str = ".4f", scale: float = 1.0) -> str:
        if math.isnan(self.stderr):
            return f"Δ = {format(scale * self.delta, '+' + spec)} (one seed: no spread to compare with)"
        p = f", Welch p = {self.p_value:.3f}" if self.p_value is not None else ""
        spread = "beyond the seed spread" if self.beyond_spread else "within the seed spread"
        delta, se = format(scale * self.delta, "+" + spec), format(scale * self.stderr, spec)
        return f"Δ = {delta} (SE {se}{p}: {spread})"


def difference(a: Stat, b: Stat) -> Difference:
    """Compare two configurations' seed statistics (see the module docstring for the rule)."""
    delta = a.mean - b.mean
    if a.n < 2 or b.n < 2:
        return Difference(delta, math.nan, None, False)
    stderr = math.sqrt(a.std**2 / a.n + b.std**2 / b.n)
    p_value: float | None = None
    if stderr > 0:
        result = scipy_stats.ttest_ind_from_stats(a.mean, a.std, a.n, b.mean, b.std, b.n, equal_var=False)
        p_value = float(result.pvalue)
    beyond = p_value < ALPHA if p_value is not None else delta != 0
    return Difference(delta, stderr, p_value, beyond)
