"""The study's Markdown report: a summary table of verdicts, then one section per claim with its
figure."""

from __future__ import annotations

import re
from pathlib import Path

from lab.study.claims import Claim, Verdict, group, judge
from lab.study.plots import figure
from lab.study.results import RunRecord
from lab.study.stats import ALPHA, RULES, counted

FIGURE_NOTE = (
    "Lines: the mean over seeds with a band of ± 1 standard deviation (on a log axis the geometric "
    "mean ×/÷ the geometric standard deviation; a value of exactly 0 cannot be drawn there and the "
    "legend counts it), or each seed on its own where the seeds split into two outcomes; curves "
    "run over training steps, depth panels over the layers; accuracies in percent, as in the table."
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
            cells.append(
                "—" if stat is None else stat.format(column.spec, column.scale, column.suffix)
            )
        lines.append(f"| {variant.name} | {finished}/{len(runs)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def section(
    claim: Claim, records: list[RunRecord], verdict: Verdict, image: Path, report_dir: Path
) -> str:
    """The claim's section: claim, what was measured, table, figure, and each sub-claim's
    verdict."""
    groups = group(records)
    comparisons = "\n".join(f"- {line}" for line in verdict.lines) or "- no comparison had data"
    note = f"\n\n*{claim.note}*" if claim.note else ""
    caption = f"**Figure.** {claim.caption_for(verdict)}\n\n" if claim.caption else ""
    return (
        f"## {claim.title} (`{claim.name}`)\n\n**Claim.** {claim.statement}\n\n**Measured.** "
        f"{claim.measured}{note}\n\n{table(claim, groups)}\n\n"
        f"![{claim.name}]({image.relative_to(report_dir).as_posix()})\n\n{caption}*{FIGURE_NOTE}*\n\n"
        f"**Holds?** {verdict.label}.\n\n{comparisons}\n"
    )


def write(claims: list[Claim], records: list[RunRecord], header: str, out: Path) -> list[Path]:
    """Write the report to ``out`` and one PNG per claim beside it (``<stem>/<claim>.png``); return
    the PNGs."""
    out.parent.mkdir(parents=True, exist_ok=True)
    images, sections, summary = [], [], []
    mine = {c.name: [r for r in records if r.claim == c.name] for c in claims}
    # Holm over every check of the study
    verdicts = judge([(c, group(mine[c.name])) for c in claims])
    for claim, verdict in zip(claims, verdicts, strict=True):
        image = figure(claim, group(mine[claim.name]), out.parent / out.stem / f"{claim.name}.png")
        images.append(image)
        sections.append(section(claim, mine[claim.name], verdict, image, out.parent))
        link = f"[{claim.title}](#{_anchor(claim)})"
        for outcome in verdict.outcomes:
            c, ch = outcome.comparison, outcome.check
            effect = (
                "—"
                if c is None
                else c.describe(claim.columns[ch.column].spec, claim.columns[ch.column].scale)
            )
            holm_p = "—" if c is None else f"{outcome.p_holm:.2g}"
            said = ch.says or f"{ch.better} vs {ch.worse}, {outcome.title}"
            summary.append(f"| {link} | {said} | {effect} | {holm_p} | {outcome.label} |")
            link = "″"
    overview = (
        "| claim | sub-claim | effect | Holm p | holds? |\n|---|---|---|---|---|\n"
        + "\n".join(summary)
    )
    unsettled = unsettled_section([(c, v) for c, v in zip(claims, verdicts, strict=True)])
    out.write_text(
        f"# Activation study\n\n{header}\n\n{RULES}\n\n{overview}\n\n{unsettled}"
        + "\n".join(sections)
    )
    return images


def unsettled_section(judged: list[tuple[Claim, Verdict]]) -> str:
    """What this study could not settle, and why: a counted comparison has a smallest possible p
    (every seed against none) that Holm's correction over all the checks may put out of reach; other
    checks' intervals include no difference (or, for a "no difference" check, reach beyond the
    margin)."""
    outcomes = [(c, o) for c, v in judged for o in v.outcomes]
    tested = sum(o.comparison is not None for _, o in outcomes)
    lines = []
    for claim, o in outcomes:
        if not o.label.startswith("inconclusive") and o.label != "no data":
            continue
        said = o.check.says or f"{o.check.better} vs {o.check.worse}, {o.title}"
        c = o.comparison
        if c is None:
            why = "no data" if o.missing else "one seed"
        elif c.test.startswith("counted"):
            na, nb = (int(n) for n in re.match(r"counted: \d+/(\d+) vs \d+/(\d+)", c.test).groups())
            floor = counted([1.0] * na, [0.0] * nb, 0.5, "").p_value
            why = (
                f"{c.test.split(' (')[0]}: even {na} of {na} against 0 of {nb} gives p = "
                f"{floor:.2g}, and Holm over {tested} checks asks for p < {ALPHA / tested:.2g} of "
                "the smallest: more seeds would settle it"
            )
        else:
            why = (
                f"raw p = {c.p_value:.2g}, Holm p = {o.p_holm:.2g}: "
                "the effect is within what the seeds vary by"
            )
        lines.append(f"- {claim.title}: {said} ({why}).")
    if not lines:
        return ""
    return "## What this study could not settle\n\n" + "\n".join(lines) + "\n\n"


def _anchor(claim: Claim) -> str:
    """GitHub's anchor for the section heading."""
    heading = f"{claim.title} ({claim.name})".lower()
    return "".join(ch for ch in heading.replace(" ", "-") if ch.isalnum() or ch in "-_")
