"""How often the split rule flags 5 seeds drawn from one normal distribution (issue 25, item 1).

`lab.study.stats.split_at` calls a group split when the widest gap between its sorted values
exceeds SPLIT_GAP (20) times the spread on the two sides. The old rule measured that spread from
the values alone, so tied values (quantised outcomes: steps to a threshold read every 20 steps,
accuracies in steps of 1/512) had zero spread and any gap split them. The rule now adds each
value's rounding to the grid it was read on (q^2/12, q the smallest difference between the
values). This prints both rules' rates for grids of q = 0 (continuous) to 3 sd, one group alone
and two groups compared (`compare`, which reads q from both groups' values). Run:
``python scripts/design/split_rule.py`` (about a minute).
"""

from __future__ import annotations

import math

import numpy as np

from lab.study.stats import SPLIT_GAP, resolution_of, split_at

REPS = 20_000
rng = np.random.default_rng(25)


def old_split(values: np.ndarray) -> bool:
    """The rule before the fix: ties are zero spread."""
    xs = np.sort(values)
    gaps = np.diff(xs)
    i = int(np.argmax(gaps))
    low, high = xs[: i + 1], xs[i + 1 :]
    within = math.sqrt(
        (((low - low.mean()) ** 2).sum() + ((high - high.mean()) ** 2).sum()) / (len(xs) - 2)
    )
    return bool(gaps[i] > SPLIT_GAP * within and gaps[i] > 0)


def main() -> None:
    print(f"{'grid (sd)':>9} {'old, one group':>15} {'new, one group':>15} {'new, a pair':>12}")
    for q in (0.0, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0):
        draws = rng.normal(0.0, 1.0, (REPS, 2, 5))
        if q:
            draws = np.round(draws / q) * q
        old = np.mean([old_split(d[0]) for d in draws])
        new = np.mean([split_at(d[0]) is not None for d in draws])
        pair = np.mean(
            [any(split_at(g, resolution_of(d.ravel())) is not None for g in d) for d in draws]
        )
        print(f"{q:9.2f} {old:15.4f} {new:15.4f} {pair:12.4f}")


if __name__ == "__main__":
    main()
