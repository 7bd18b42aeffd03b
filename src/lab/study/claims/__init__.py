"""The claims registry: name -> :class:`Claim` (a grid of CLI overrides, metrics, figure, verdict),
in report order.

Adding a claim is one :class:`Claim` in a module here and one entry below; ``make compare
CLAIM=<name>`` then runs it alone.
"""

from __future__ import annotations

from lab.study.claims.base import Check, Claim, Column, Outcome, Panel, Verdict, group, judge
from lab.study.claims.gradients import OUTPUT_LOSS, SATURATION, VANISHING, ZIGZAG
from lab.study.claims.overview import OVERVIEW
from lab.study.claims.training import BATCH_NORM, DROPOUT
from lab.study.claims.units import DEAD_RELUS, INIT
from lab.study.claims.variants import RELU_VARIANTS

from mnist_lab.errors import ConfigError

CLAIMS: dict[str, Claim] = {
    c.name: c
    for c in (
        OVERVIEW,
        VANISHING,
        SATURATION,
        OUTPUT_LOSS,
        ZIGZAG,
        DEAD_RELUS,
        INIT,
        DROPOUT,
        BATCH_NORM,
        RELU_VARIANTS,
    )
}


def select(names: list[str] | None) -> list[Claim]:
    """The named claims in report order (all when ``names`` is empty); names may be
    comma-separated."""
    wanted = [n.strip() for name in names or [] for n in name.split(",") if n.strip()]
    unknown = [n for n in wanted if n not in CLAIMS]
    if unknown:
        raise ConfigError(
            f"unknown claim(s) {', '.join(unknown)}; choose from: {', '.join(CLAIMS)}"
        )
    return [c for c in CLAIMS.values() if not wanted or c.name in wanted]


__all__ = [
    "CLAIMS",
    "Check",
    "Claim",
    "Column",
    "Outcome",
    "Panel",
    "Verdict",
    "group",
    "judge",
    "select",
]
