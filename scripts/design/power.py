"""Power and error rates of the pre-registered checks (docs/study-design.md, sections 1-3).

Every number the design's seed counts rest on comes from here: the per-rank Holm thresholds, the
smallest p each test can give at its n, and, for each check, the probability of each of its
verdicts (section 1) when the true effect is 0, the SESOI (or the margin), half of it and the
planned adverse difference, by simulation from the planning model of section 3 (normal arms
unless a mixture is named). Run: ``python scripts/design/power.py`` (seconds); ``--n`` adds the
n search for every check, ``--mixtures`` the error rates of section 1's tests when an arm can
stall (O2).
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import stats as sp

M = 14  # the primary family (C12 left it: O20)
ALPHA = 0.05
A1 = ALPHA / M  # Holm's first (strictest) step, one-sided: every check is powered here
K80 = math.sqrt(4 / sp.chi2.ppf(0.20, 4))  # 80% upper limit of an sd from 5 seeds: 1.56
FLOOR = 8  # no check runs fewer seeds per arm
REPS = 40_000
rng = np.random.default_rng(20261207)

Labels = dict[str, float]


def holm_thresholds(m: int = M) -> list[float]:
    """The level the i-th smallest p is held to (Holm stops at the first p above its level)."""
    return [ALPHA / (m - i) for i in range(m)]


# --- the tests, vectorised over simulated studies (rows) ---------------------------------------


def t_one(d: np.ndarray, shift: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """One-sample t of mean(d) - shift and its df (paired checks: d = per-seed differences)."""
    n = d.shape[1]
    se = d.std(1, ddof=1) / math.sqrt(n)
    return (d.mean(1) - shift) / se, np.full(len(d), n - 1.0)


def t_welch(x: np.ndarray, y: np.ndarray, shift: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    vx, vy = x.var(1, ddof=1) / x.shape[1], y.var(1, ddof=1) / y.shape[1]
    df = (vx + vy) ** 2 / (vx**2 / (x.shape[1] - 1) + vy**2 / (y.shape[1] - 1))
    return (x.mean(1) - y.mean(1) - shift) / np.sqrt(vx + vy), df


def directional(stat: Callable[[float], tuple[np.ndarray, np.ndarray]], sesoi: float, k: int = 1):
    """A directional check's two decisions: shown > 0 at A1 (Holm's first step: the power bound),
    and shown < SESOI at A1 / k (Bonferroni over the k components of an IUT)."""
    t0, df = stat(0.0)
    ts, _ = stat(sesoi)
    above = t0 > sp.t.ppf(1 - A1, df)
    below = ts < -sp.t.ppf(1 - A1 / k, df)
    return above, below


def four(above: np.ndarray, below: np.ndarray) -> Labels:
    """Section 1's verdicts: they partition the outcomes."""
    return {
        "holds": float(np.mean(above & ~below)),
        "holds, below what matters": float(np.mean(above & below)),
        "does not hold": float(np.mean(~above & below)),
        "inconclusive": float(np.mean(~above & ~below)),
    }


def iut(parts: list[tuple[np.ndarray, np.ndarray]]) -> Labels:
    """An intersection-union check: every component shown > 0 for a 'holds'; one component shown
    below its SESOI (at A1 / k) is enough for 'does not hold' when the check is not shown > 0."""
    above = np.logical_and.reduce([a for a, _ in parts])
    below = np.logical_or.reduce([b for _, b in parts])
    return four(above, below)


def tost(stat: Callable[[float], tuple[np.ndarray, np.ndarray]], margin: float) -> Labels:
    """Equivalence: holds when both one-sided tests reject at A1 (no doubling); does not hold when
    the difference is shown beyond the margin on one side (each side at A1 / 2)."""
    lo, df = stat(-margin)
    hi, _ = stat(margin)
    c, c2 = sp.t.ppf(1 - A1, df), sp.t.ppf(1 - A1 / 2, df)
    within = (lo > c) & (hi < -c)
    beyond = (lo < -c2) | (hi > c2)
    return {
        "holds": float(np.mean(within)),
        "does not hold": float(np.mean(beyond)),
        "inconclusive": float(np.mean(~within & ~beyond)),
    }


def ni(stat: Callable[[float], tuple[np.ndarray, np.ndarray]], margin: float) -> Labels:
    """Non-inferiority: holds when shown > -margin at A1; does not hold when shown < -margin."""
    t, df = stat(-margin)
    c = sp.t.ppf(1 - A1, df)
    return {
        "holds": float(np.mean(t > c)),
        "does not hold": float(np.mean(t < -c)),
        "inconclusive": float(np.mean(np.abs(t) <= c)),
    }


def sign_critical(n: int, a: float = A1) -> int:
    """The least count c of n seeds on one side of the margin with P(X >= c | 1/2) <= a."""
    return next((c for c in range(n + 1) if sp.binom.sf(c - 1, n, 0.5) <= a), n + 1)


def sign_margin(shares: np.ndarray, margin: float) -> Labels:
    """C2: holds when enough seeds lie below the margin, does not hold when enough lie above."""
    n = shares.shape[1]
    c = sign_critical(n)
    below, above = (shares < margin).sum(1), (shares > margin).sum(1)
    return {
        "holds": float(np.mean(below >= c)),
        "does not hold": float(np.mean(above >= c)),
        "inconclusive": float(np.mean((below < c) & (above < c))),
    }


def signed_rank_critical(n: int, a: float = A1) -> int:
    """The least W+ (sum of the ranks of the positive differences) with P(W+ >= w) <= a under the
    sharp null (each sign +-1 with probability 1/2): the exact Wilcoxon signed-rank test."""
    counts = np.zeros(n * (n + 1) // 2 + 1)
    counts[0] = 1
    for r in range(1, n + 1):
        counts[r:] = counts[r:] + counts[:-r].copy()
    tail = np.cumsum(counts[::-1])[::-1] / 2**n  # P(W+ >= w)
    return int(next((w for w in range(len(tail)) if tail[w] <= a), len(tail)))


def rank_and_median(d: np.ndarray, sesoi: float, k: int = 1):
    """C3, C4, C6 (arms that can stall): shown > 0 by the exact signed-rank test (valid under the
    sharp null whatever the shape); shown below the SESOI by the exact sign-test bound on the
    median of the differences (valid for any continuous distribution), at A1 / k."""
    n = d.shape[1]
    ranks = np.abs(d).argsort(1).argsort(1) + 1
    w = np.where(d > 0, ranks, 0).sum(1)
    above = w >= signed_rank_critical(n)
    below = (d < sesoi).sum(1) >= sign_critical(n, A1 / k)
    return above, below


# --- the planning models ----------------------------------------------------------------------


def normal(mean: float, sd: float, n: int) -> np.ndarray:
    return rng.normal(mean, sd, (REPS, n))


def mixture(p_stall: float, stall: tuple[float, float], escape: tuple[float, float], n: int):
    """An arm whose runs stall (level, sd) with probability p_stall, else escape (level, sd)."""
    s = rng.random((REPS, n)) < p_stall
    return np.where(s, rng.normal(*stall, (REPS, n)), rng.normal(*escape, (REPS, n)))


@dataclass(frozen=True)
class Check:
    name: str
    n: int
    run: Callable[[int, float], Labels]  # (n, true effect) -> verdict probabilities
    effects: tuple[tuple[str, float], ...]  # the true effects to report, by name
    note: str
    target: float  # the true effect the n is powered at (for "holds")


def paired(sd_d: float, sesoi: float, ranks: bool = False) -> Callable[[int, float], Labels]:
    def run(n: int, delta: float) -> Labels:
        d = normal(delta, sd_d, n)
        if ranks:
            return four(*rank_and_median(d, sesoi))
        return four(*directional(lambda s: t_one(d, s), sesoi))

    return run


def checks() -> list[Check]:
    k = K80
    out = []

    # C1: identity, Welch TOST +-0.5 pt; arm sd 0.17 pt (old depth-0 table) x K80
    sd1 = k * 0.17

    def c1(n: int, delta: float) -> Labels:
        x, y = normal(delta, sd1, n), normal(0.0, sd1, n)
        return tost(lambda s: t_welch(x, y, s), 0.5)

    out.append(
        Check(
            "C1 identity (TOST +-0.5 pt)",
            22,
            c1,
            (("0", 0.0), ("0.2 (old residual)", 0.2), ("0.8", 0.8), ("1.0", 1.0)),
            f"arm sd {sd1:.3f} pt",
            0.2,
        )
    )

    # C2: ReLU's off units never come back: sign test of per-seed revival share against 5%
    def c2(n: int, mean: float) -> Labels:
        sd = 0.02 if mean < 0.05 else k * 0.044  # old AdamW-0.03 ReLU revival: 0.149 +- 0.044
        return sign_margin(np.clip(normal(mean, sd, n), 0, 1), 0.05)

    out.append(
        Check(
            "C2 ReLU's off units stay off (sign test vs 5%)",
            16,
            c2,
            (("0", 0.0), ("0.02", 0.02), ("0.10", 0.10), ("0.149 (old)", 0.149)),
            f"sign test: {sign_critical(16)} of 16 seeds on one side",
            0.02,
        )
    )

    # C3: sigmoid, gain-4 normalised init vs the standard init, AUC, SESOI 15 pt, sd_d 12 (P)
    out.append(
        Check(
            "C3 sigmoid init (AUC, SESOI 15 pt)",
            13,
            paired(12.0, 15.0, ranks=True),
            (("0", 0.0), ("7.5", 7.5), ("15", 15.0)),
            "sd_d 12 pt (P)",
            15.0,
        )
    )

    # C4: He vs Xavier at depth 20, AUC, SESOI 15 pt, sd_d from the old init table x K80
    sd4 = k * math.hypot(5.16, 5.95)
    out.append(
        Check(
            "C4 He vs Xavier (AUC, SESOI 15 pt)",
            13,
            paired(sd4, 15.0, ranks=True),
            (("0", 0.0), ("7.5", 7.5), ("15", 15.0)),
            f"sd_d {sd4:.1f} pt",
            15.0,
        )
    )

    # C5: saturation, slope-only control, L = log10 relative movement, SESOI 0.30, sd_d 0.15 (P)
    out.append(
        Check(
            "C5 saturation (log10 movement, SESOI 0.30)",
            8,
            paired(0.15, 0.30),
            (("0", 0.0), ("0.15", 0.15), ("0.30", 0.30)),
            "sd_d 0.15 (P)",
            0.3,
        )
    )

    # C6: CE vs MSE interaction on a saturated output, AUC, SESOI 10 pt
    sd6 = math.sqrt((k * 0.55) ** 2 + (k * 0.51) ** 2 + 1.5**2 + 6.0**2)
    out.append(
        Check(
            "C6 CE vs MSE x saturation (AUC, SESOI 10 pt)",
            10,
            paired(sd6, 10.0, ranks=True),
            (("0", 0.0), ("5", 5.0), ("10", 10.0)),
            f"sd_I {sd6:.1f} pt (saturated arms P: 1.5, 6)",
            10.0,
        )
    )

    # C7: zig-zag, restricted mean steps to the threshold; SESOI 25% of the slower arm (132 steps)
    sd7 = k * math.hypot(9, 23)
    out.append(
        Check(
            "C7 zig-zag (RMST, SESOI 25% = 33 steps)",
            21,
            paired(sd7, 33.0),
            (("0", 0.0), ("16", 16.0), ("33", 33.0)),
            f"sd_d {sd7:.1f} steps",
            33.0,
        )
    )

    # C8: off fraction at the end, ReLU minus each of leaky, ELU, PReLU > 0.10 (IUT of 3)
    sds8 = {"relu": k * 0.050, "leaky": k * 0.068, "elu": k * 0.042, "prelu": k * 0.068}

    def c8(n: int, delta: float) -> Labels:
        relu = normal(0.0, sds8["relu"], n)
        parts = []
        for arm in ("leaky", "elu", "prelu"):
            x = normal(-delta, sds8[arm], n)
            d = relu - x
            parts.append(directional(lambda s, d=d: t_one(d, s), 0.15, k=3))
        return iut(parts)

    out.append(
        Check(
            "C8 leaky, ELU, PReLU keep units (IUT of 3, SESOI 0.15)",
            16,
            c8,
            (("0", 0.0), ("0.075", 0.075), ("0.15", 0.15)),
            "sds " + ", ".join(f"{a} {s:.3f}" for a, s in sds8.items()),
            0.15,
        )
    )

    # C9: maxout vs parameter-matched ReLU, Welch NI, margin 1 pt, arm sd 0.47 x K80
    sd9 = k * 0.47

    def c9(n: int, delta: float) -> Labels:
        x, y = normal(delta, sd9, n), normal(0.0, sd9, n)
        return ni(lambda s: t_welch(x, y, s), 1.0)

    out.append(
        Check(
            "C9 maxout NI (margin 1 pt)",
            30,
            c9,
            (("0", 0.0), ("-0.3 (planned adverse)", -0.3), ("-2.0", -2.0)),
            f"arm sd {sd9:.2f} pt",
            -0.3,
        )
    )

    # C10: ELU, IUT: (a) per-unit centring index ReLU - ELU > 0.05, sd_d 0.03 (P);
    # (b) log10 noise gain of deactivated units, PReLU - ELU > 0.30, sd_d 0.20 (P)
    def c10(n: int, frac: float) -> Labels:
        a = normal(frac * 0.05, 0.03, n)
        b = normal(frac * 0.30, 0.20, n)
        return iut(
            [
                directional(lambda s: t_one(a, s), 0.05, k=2),
                directional(lambda s: t_one(b, s), 0.30, k=2),
            ]
        )

    out.append(
        Check(
            "C10 ELU centred, noise-robust (IUT of 2)",
            11,
            c10,
            (("0", 0.0), ("half the SESOIs", 0.5), ("the SESOIs", 1.0)),
            "sd_d 0.03 and 0.20 (P)",
            1.0,
        )
    )

    # C11: dropout, train(eval) - val gap narrower by 2 pt; sd_d from the old table x K80 and
    # the subset x dropout interaction (0.2 pt)
    sd11 = math.hypot(k * math.hypot(0.63, 0.31), 0.2)
    out.append(
        Check(
            "C11 dropout narrows the gap (SESOI 2 pt)",
            8,
            paired(sd11, 2.0),
            (("0", 0.0), ("1", 1.0), ("2", 2.0)),
            f"sd_d {sd11:.2f} pt",
            2.0,
        )
    )

    # C13: BN vs none at the same rate, RMST, SESOI a third of no-BN's steps (mu = 1)
    def c13(n: int, delta: float) -> Labels:
        nobn = normal(1.0, k * 0.16, n)
        bn = normal(1.0 - delta, k * 0.16 * (1 - delta), n)
        d = nobn - bn
        return four(*directional(lambda s: t_one(d, s), 1 / 3))

    out.append(
        Check(
            "C13 BN faster (RMST, SESOI 1/3 of no-BN's)",
            14,
            c13,
            (("0", 0.0), ("1/6", 1 / 6), ("1/3", 1 / 3)),
            "arm sd 16% x K80 (old)",
            1 / 3,
        )
    )

    # C14: BN before vs after, NI on AUC, margin 1 pt; arm sd 0.26 pt x K80 (the old BN arm at
    # its best rate, lr 0.1; the after arm's the same, P)
    sd14 = math.sqrt(2) * k * 0.26

    def c14(n: int, delta: float) -> Labels:
        d = normal(delta, sd14, n)
        return ni(lambda s: t_one(d, s), 1.0)

    out.append(
        Check(
            "C14 BN before, NI vs after (margin 1 pt)",
            13,
            c14,
            (("0", 0.0), ("-0.3 (planned adverse)", -0.3), ("-2.0", -2.0)),
            f"sd_d {sd14:.2f} pt",
            -0.3,
        )
    )

    # C15: ReLU < tanh < sigmoid in restricted mean steps, IUT, SESOI a third at each step
    def c15(n: int, frac: float) -> Labels:
        sig = normal(1.0, k * 0.16, n)
        tanh = normal(1.0 - frac / 3, k * 0.16 * (1 - frac / 3), n)
        relu = normal((1.0 - frac / 3) ** 2, k * 0.16 * (1 - frac / 3) ** 2, n)
        d1, d2 = (tanh - relu) / (1 - frac / 3), sig - tanh  # each relative to the slower arm
        return iut(
            [
                directional(lambda s: t_one(d1, s), 1 / 3, k=2),
                directional(lambda s: t_one(d2, s), 1 / 3, k=2),
            ]
        )

    out.append(
        Check(
            "C15 ReLU > tanh > sigmoid (RMST, IUT of 2)",
            17,
            c15,
            (("0", 0.0), ("half the SESOI", 0.5), ("the SESOI", 1.0)),
            "arm sd 16% x K80",
            1.0,
        )
    )
    return out


# --- O2: the t-test's error rates when an arm is a stall/escape mixture -----------------------


def robustness() -> None:
    """For the checks whose arms can stall (C3, C4, C6): the rate of a false 'holds' when the true
    mean difference is 0 and of a false 'does not hold' when it is the SESOI, with one arm a
    mixture (stall probability p) and the other normal; the mixture's escape level is set so the
    means differ by exactly 0 or the SESOI. For the rank/median rule the null of 'does not hold'
    is the median at the SESOI. Each should stay at or below A1."""
    cases = [  # name, n, SESOI, good arm (mean, sd), stall level and sd, escape sd
        ("C3", 13, 15.0, (55.0, 8.0), (11.0, 1.0), 8.0),
        ("C4", 13, 15.0, (70.0, K80 * 5.16), (11.35, 0.3), K80 * 5.95),
        ("C6", 10, 10.0, (0.0, 2.0), (-40.0, 3.0), 6.0),  # the MSE-saturated arm's cost
    ]
    print(f"\nO2: error rates with one arm a stall/escape mixture (nominal {A1:.4f})")
    for name, n, sesoi, (gm, gs), (sl, ss), es in cases:
        for p_stall in (0.1, 0.2, 0.4):
            row = []
            for delta, label in ((0.0, "holds"), (sesoi, "does not hold")):
                level = (gm - delta - p_stall * sl) / (1 - p_stall)
                d = normal(gm, gs, n) - mixture(p_stall, (sl, ss), (level, es), n)
                t = four(*directional(lambda s, d=d: t_one(d, s), sesoi))
                # the median rule's own null: the escape level that puts the median at the SESOI
                r = four(*rank_and_median(d, sesoi))
                if label == "holds":
                    row.append(
                        f"false holds: t {t['holds'] + t['holds, below what matters']:.4f}"
                        f", signed rank {r['holds'] + r['holds, below what matters']:.4f}"
                    )
                else:
                    row.append(f"false does not hold (mean at SESOI): t {t[label]:.4f}")
            print(f"  {name} n={n} stall p={p_stall}: " + "; ".join(row))
        # the median rule at its own null: seeds that escape sit at the SESOI, stalls above it
        for p_stall in (0.1, 0.3):
            d = normal(gm, gs, n) - mixture(p_stall, (sl, ss), (gm - sesoi, es), n)
            r = four(*rank_and_median(d, sesoi))
            print(
                f"  {name} stall p={p_stall}, median at the SESOI: false does not hold by the"
                f" sign-test bound {r['does not hold'] + r['holds, below what matters']:.4f}"
            )


def smallest_n(check: Check, lo: int = FLOOR) -> int:
    """The least n (>= FLOOR) with P(holds) >= 0.8 at the check's target effect."""
    n = lo
    while check.run(n, check.target)["holds"] < 0.8:
        n += 1
    return n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", action="store_true", help="search the n of every check")
    parser.add_argument("--mixtures", action="store_true", help="O2's robustness runs")
    args = parser.parse_args()
    print(f"family {M}, one-sided level at Holm's first step {A1:.5f}, K80 {K80:.3f}")
    print("Holm's levels by rank:", ", ".join(f"{t:.5f}" for t in holm_thresholds()))
    print(
        "smallest p at n seeds: t and Welch tests none (continuous); exact signed-rank and sign"
        " tests 2^-n: " + ", ".join(f"n={n} {0.5**n:.1e}" for n in (8, 10, 13, 16))
    )
    for c in checks():
        print(f"\n{c.name}: n = {c.n} per arm ({c.note})")
        for what, e in c.effects:
            labels = c.run(c.n, e)
            print(f"  true {what:>24}: " + ", ".join(f"{k} {v:.3f}" for k, v in labels.items()))
        if args.n:
            print(f"  smallest n with 80% at {c.target:g}: {smallest_n(c)}")
    if args.mixtures:
        robustness()


if __name__ == "__main__":
    main()
