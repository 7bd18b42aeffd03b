"""How often the split rule flags 5 seeds drawn from one normal distribution, read on a grid.

Issue 25, item 1: the old rule took tied values as zero spread, so quantised outcomes (steps to a
threshold read every 20 steps, accuracies in steps of 1/512) were flagged "split" far more often
than the 0.3% the docs state. The fixed rule (`lab.study.stats.split_at`) counts each value's
rounding as spread (variance q²/12). Prints, for grids of 0.1 to 3 sd, the fraction flagged by
the old rule and by the fixed one. Run: `.venv/bin/python scripts/design/split_rule.py`.
"""

from __future__ import annotations

import numpy as np

from lab.study.stats import SPLIT_GAP, split_at

DRAWS = 20_000


def old_split(values: np.ndarray) -> bool:
    """The rule before the fix: ties are zero spread."""
    xs = np.sort(values)
    gaps = np.diff(xs)
    i = int(np.argmax(gaps))
    low, high = xs[: i + 1], xs[i + 1 :]
    ss = ((low - low.mean()) ** 2).sum() + ((high - high.mean()) ** 2).sum()
    within = np.sqrt(ss / (len(xs) - 2))
    return bool(gaps[i] > SPLIT_GAP * within and gaps[i] > 0)


def main() -> None:
    rng = np.random.default_rng(25)
    print(f"{'grid / sd':>10} {'old rule':>9} {'fixed':>7}   (5 seeds, {DRAWS} draws)")
    for q in (0.0, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0):
        groups = rng.normal(0.0, 1.0, (DRAWS, 5))
        if q:
            groups = np.round(groups / q) * q
        old = np.mean([old_split(g) for g in groups])
        new = np.mean([split_at(g) is not None for g in groups])
        print(f"{q:>10.2f} {old:>9.2%} {new:>7.2%}")


if __name__ == "__main__":
    main()
