"""The study's Markdown report: a summary table of verdicts, then one section per claim with its figure."""

from __future__ import annotations

from pathlib import Path

from lab.study.claims import Claim, Verdict, group
from lab.study.plots import figure
from lab.study.results import RunRecord

SPREAD_RULE = (
    "Every number is mean ± sample standard deviation over seeds (n = runs that produced it). A difference "
    "of means counts as beyond the seed spread when Welch's t-test gives p < 0.05 (its standard error SE = "
    "sqrt(s1²/n1 + s2²/n2) is shown beside it). With one seed nothing is beyond the spread. A claim "
    "*holds* when every comparison goes the expected way beyond the spread, *does not hold* when one goes the "
    "other way beyond it, and is *inconclusive* otherwise."
)


def table(claim: Claim, groups: dict[str, list[RunRecord]]) -> str:
    """One row per configuration: seeds, finished runs, and each column as mean ± std (n)."""
    head = "| configuration | runs | " + " | ".join(c.title for c in claim.columns) + " |"
    lines = [head, "|---|---|" + "---|" * len(claim.columns)]
    for variant in claim.variants:
        runs = groups.get(variant.name, [])
        if not runs:
            lines.append(f"| {variant.name} | 0 | " + " | ".join("—" for _ in claim.columns) + " |")
            continue
        finished = sum(r.status == "FINISHED" for r in runs)
        cells = []
        for i, column in enumerate(claim.columns):
            stat = claim.stat(groups, variant.name, i)
            cells.append("—" if stat is None else stat.format(column.spec, column.scale, column.suffix))
        lines.append(f"| {variant.name} | {finished}/{len(runs)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def section(claim: Claim, records: list[RunRecord], image: Path, report_dir: Path) -> tuple[str, Verdict]:
    """The claim's section (claim, what was measured, table, figure, verdict) and its verdict."""
    groups = group(records)
    verdict = claim.verdict(groups)
    comparisons = "\n".join(f"- {line}" for line in verdict.lines) or "- no comparison had data"
    note = f"\n\n*{claim.note}*" if claim.note else ""
    text = (
        f"## {claim.title} (`{claim.name}`)\n\n**Claim.** {claim.statement}\n\n"
        f"**Measured.** {claim.measured}{note}\n\n{table(claim, groups)}\n\n"
        f"![{claim.name}]({image.relative_to(report_dir).as_posix()})\n\n"
        f"**Holds?** {verdict.label}.\n\n{comparisons}\n"
    )
    return text, verdict


def write(claims: list[Claim], records: list[RunRecord], header: str, out: Path) -> list[Path]:
    """Write the report to ``out`` and one PNG per claim beside it (``<stem>/<claim>.png``); return the PNGs."""
    out.parent.mkdir(parents=True, exist_ok=True)
    images, sections, summary = [], [], []
    for claim in claims:
        mine = [r for r in records if r.claim == claim.name]
        image = figure(claim, group(mine), out.parent / out.stem / f"{claim.name}.png")
        text, verdict = section(claim, mine, image, out.parent)
        images.append(image)
        sections.append(text)
        summary.append(
            f"| [{claim.title}](#{_anchor(claim)}) | {claim.measured.split('. ')[-1].rstrip('.')} | {verdict.label} |"
        )
    overview = "| claim | measured | holds? |\n|---|---|---|\n" + "\n".join(summary)
    out.write_text(f"# Activation study\n\n{header}\n\n{SPREAD_RULE}\n\n{overview}\n\n" + "\n".join(sections))
    return images


def _anchor(claim: Claim) -> str:
    """GitHub's anchor for the section heading."""
    heading = f"{claim.title} ({claim.name})".lower()
    return "".join(ch for ch in heading.replace(" ", "-") if ch.isalnum() or ch in "-_")
