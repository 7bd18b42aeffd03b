"""The study's time plan (docs/study-design.md, section 7): runs x seconds a run, at JOBS=2.

A run costs RUN_START_S in a warm worker plus its training, priced per optimiser step from the
old claims' measured ``cost_s`` (warm, one torch thread, on this 2-core machine under load;
``src/lab/study/claims/*.py``), divided by the steps each of those runs took. The wall time is
the workers' start plus the summed cost over the two workers. Run:
``python scripts/design/budget.py``.
"""

from __future__ import annotations

WORKER_START_S = 12.0  # lab.study.runner.WORKER_START_S (measured)
RUN_START_S = 4.0  # lab.study.runner.RUN_START_S (measured: 5-6 s for a quick run)
JOBS = 2

# ms a step, with validation and diagnostics at the old claims' cadence: cost_s / steps
MS = {
    "small": 1000 * 2.0 / 300,  # saturation: 4x128 tanh, 300 steps, val/diag every 50
    "loss": 1000 * 3.8 / 600,  # output_loss: 2x128, 600 steps, validation every 25
    "zig": 1000 * 3.5 / 400,  # zigzag: 2x128, 400 steps, val every 20, diag every 10
    "deep": 1000 * 1.7 / 150,  # init: 20x64, 150 steps
    "vanish": 1000 * 4.5 / 400,  # vanishing: 8x128 sigmoid, 400 steps
    "units": 1000 * 2.0 / 200,  # dead_relus: 200 steps, unit probes on 5,000 images every 40
    "bn": 1000 * 7.3 / 500,  # batch_norm: 4x128 + BN, 500 steps, diagnostics every 10
    "identity": 1000 * 4.0 / 600,  # identity_depth: batch 250, val on 5,000 every 50
    "variants": 1000 * 2.2 / 200,  # relu_variants: maxout / ReLU 2x128, 200 steps
}
DROPOUT_VAL_S = (4.5 - 160 * MS["small"] / 1000) / 20  # dropout: 160 steps, 20 evaluations

SIG5 = (MS["small"] + MS["vanish"]) / 2  # a 5x128 sigmoid net: between 4x128 and 8x128

# (block, runs, steps, ms a step, extra seconds a run, what it serves)
BLOCKS = [
    ("C1 identity: depth 4, depth 0", 2 * 22, 800, MS["identity"], 0.0, "C1"),
    ("C1 ReLU 2x64 control (described)", 2, 800, MS["identity"], 0.0, "described"),
    ("C3 sigmoid 5x128: gain 4, standard", 2 * 13, 400, SIG5, 0.0, "C3"),
    ("C3 sigmoid: gain 1 (described)", 3, 400, SIG5, 0.0, "described"),
    ("C4 20x64 ReLU: He, Xavier", 2 * 13, 300, MS["deep"], 0.0, "C4"),
    ("C4 Xavier, 1,000 steps (described)", 3, 1000, MS["deep"], 0.0, "described"),
    ("C5 tanh+s: true slope, unshifted slope", 2 * 8, 300, MS["small"], 0.0, "C5"),
    ("C5 ReLU at 0 and +s (described)", 2 * 2, 300, MS["small"], 0.0, "described"),
    ("C6 CE/MSE x bias 0/-5", 4 * 10, 400, MS["loss"], 0.0, "C6"),
    ("C7 tanh, tanh+1 compensated", 2 * 21, 300, MS["zig"], 0.0, "C7"),
    ("D ReLU, leaky, ELU, PReLU (AdamW 0.03)", 4 * 16, 200, MS["units"], 0.0, "C2, C8"),
    ("C9 maxout 2x128, ReLU 2x229", 2 * 30, 300, MS["small"], 0.0, "C9"),
    ("A ReLU, tanh, sigmoid", 3 * 17, 300, MS["zig"], 0.3, "C10, C13, C15"),
    ("A ELU, PReLU", 2 * 11, 300, MS["zig"], 0.3, "C10"),
    ("A tanh, sigmoid at ReLU's rate (described)", 2 * 3, 300, MS["zig"], 0.3, "described"),
    ("B BN before (C13's rate), BN after", 14 + 13, 300, MS["bn"], 0.0, "C13, C14"),
    ("B BN before at C14's rate if it differs", 13, 300, MS["bn"], 0.0, "C14"),
    ("B BN and none at lr 1 (described)", 3 + 3, 300, MS["bn"], 0.0, "described"),
    (
        "C11 dropout 0, 0.5 (1,024 images)",
        2 * 8,
        640,
        MS["small"],
        10 * DROPOUT_VAL_S + 0.5,
        "C11, weight scaling",
    ),
]

# The pilot (section 8): seeds 900-902 for the choices, 900-905 at the chosen settings
PILOT = [
    ("C1 both depths, to 1,200 steps", 2 * 6, 1200, MS["identity"], 0.0, ""),
    ("C3 2 arms x 3 rates x 3 seeds, +3 seeds", 2 * 3 * 3 + 2 * 3, 400, SIG5, 0.0, ""),
    ("C4 both arms, to 600 steps", 2 * 6, 600, MS["deep"], 0.0, ""),
    ("C5, C6, D, C9 as planned", 2 * 6 + 4 * 6 + 4 * 6 + 2 * 6, 300, MS["units"], 0.0, ""),
    ("C7 2 arms x 3 rates x 3 seeds, +3 seeds", 2 * 3 * 3 + 2 * 3, 300, MS["zig"], 0.0, ""),
    ("A 5 arms x 4 rates x 3 seeds, +3 seeds", 5 * 4 * 3 + 5 * 3, 300, MS["zig"], 0.3, ""),
    ("B 2 arms x 4 rates x 3 seeds, +3 seeds", 2 * 4 * 3 + 3 * 3, 300, MS["bn"], 0.0, ""),
    ("C11 both arms, to 960 steps", 2 * 6, 960, MS["small"], 15 * DROPOUT_VAL_S + 0.5, ""),
]


def plan(blocks: list[tuple[str, int, int, float, float, str]], title: str) -> float:
    total = runs = 0.0
    print(f"\n{title}\n{'block':44} {'runs':>5} {'s/run':>6} {'worker-s':>9}")
    for name, n, steps, ms, extra, _ in blocks:
        per = RUN_START_S + steps * ms / 1000 + extra
        total += n * per
        runs += n
        print(f"{name:44} {n:5d} {per:6.1f} {n * per:9.0f}")
    wall = WORKER_START_S + total / JOBS
    print(f"{'total':44} {runs:5.0f} {'':6} {total:9.0f}")
    print(f"wall at JOBS={JOBS}: {wall:.0f} s = {wall / 60:.1f} min")
    return wall


def main() -> None:
    for k, v in MS.items():
        print(f"  {k:9} {v:5.2f} ms a step")
    print(f"  dropout evaluation {DROPOUT_VAL_S:.2f} s")
    plan(BLOCKS, "The study")
    plan(PILOT, "The pilot (not part of the study's 30 minutes)")


if __name__ == "__main__":
    main()
