"""Maxout and ReLU6, each against what the notes say of it (softplus is checked with the dead
units)."""

from __future__ import annotations

from lab.study.claims import measures as m
from lab.study.claims.base import Check, Claim, Column, Panel
from lab.study.claims.conditions import STUDY_CB, sgd, unit_run
from lab.study.claims.gradients import act
from lab.study.grid import BAD_START, NET, Variant

VARIANT_LR = 0.01
HIGH_BIAS = 12.0

RELU_WIDE = Variant("relu 2x128", (f"{NET}.depth=2", *act("relu", "kaiming_normal")))
MAXOUT = Variant("maxout k=2 2x128", (f"{NET}.depth=2", *act("maxout", "kaiming_normal")))
RELU_HIGH = Variant(
    f"relu bias +{HIGH_BIAS:g}",
    (BAD_START, f"{NET}.depth=2", *act("relu", "kaiming_normal"), f"{NET}.bias_init={HIGH_BIAS}"),
)
RELU6_HIGH = Variant(
    f"relu6 bias +{HIGH_BIAS:g}",
    (BAD_START, f"{NET}.depth=2", *act("relu6", "kaiming_normal"), f"{NET}.bias_init={HIGH_BIAS}"),
)

RELU_VARIANTS = Claim(
    name="relu_variants",
    title="Maxout and ReLU6 against the notes",
    statement=(
        "Maxout is a learned piecewise-linear unit (the max of k linear pieces) that generalises "
        "ReLU and leaky ReLU at k times the parameters, so with the same units it does at least as "
        "well as ReLU. ReLU6 is ReLU capped at 6: its gradient is 0 above 6, so a unit pushed "
        "above 6 on every input is as dead as a ReLU pushed below 0. (Softplus, a smooth ReLU "
        "whose gradient is never exactly zero, is checked in the dead units section, under the "
        "same rule and learning rate that kill ReLU units.)"
    ),
    measured=(
        f"SGD momentum 0.9, lr {VARIANT_LR:g} constant, no weight decay, no clipping, batch 128, 2 "
        "epochs of 100 batches, validation on 2,000 images after each. Maxout: a 2x128 MLP with "
        "maxout k=2 (each hidden layer emits 256 pieces: twice ReLU's weights) against ReLU with "
        "He init, val accuracy at the end. ReLU6: a 2x128 MLP (He init) whose hidden biases start "
        f"at +{HIGH_BIAS:g} (`bias_init`: the first layer's pre-activations then lie above 6 on "
        "every image), ReLU6 against ReLU; the first hidden layer's dead fraction by the dead-unit "
        "rule (largest slope over 5,000 training images below 1e-3) at init and after training "
        "(the deeper layer sees a near-constant input under either activation, so it is not "
        "compared)."
    ),
    variants=(RELU_WIDE, MAXOUT, RELU_HIGH, RELU6_HIGH),
    args=(STUDY_CB, *sgd(VARIANT_LR), *unit_run(every=100, images=5000)),
    metrics=("val/acc", "study/dead/0"),
    columns=(
        Column("val acc", m.val_acc, ".2f", 100, "%"),
        Column("first hidden layer dead (init)", lambda r: r.first("study/dead/0"), ".3f"),
        Column("first hidden layer dead (end)", lambda r: r.last("study/dead/0"), ".3f"),
    ),
    panels=(
        Panel("points", "validation accuracy at the end", column=0),
        Panel(
            "curve",
            f"first hidden layer's dead fraction, biases starting at +{HIGH_BIAS:g}",
            key="study/dead/0",
            ylabel="dead units of the first hidden layer (fraction)",
            only=(RELU_HIGH.name, RELU6_HIGH.name),
        ),
    ),
    caption=(
        "Left: validation accuracy (%) at the end per configuration, mean ± std over seeds; right: "
        "the first hidden layer's dead fraction over training steps with biases starting at "
        f"+{HIGH_BIAS:g} (1: every unit dead). The verdicts: maxout beats ReLU {{c0}}; ReLU6 units "
        "pushed above 6 die {c1}."
    ),
    checks=(
        Check(
            0,
            MAXOUT.name,
            RELU_WIDE.name,
            says=(
                "maxout (k=2) beats ReLU with the same units "
                "(it generalises ReLU at twice the weights)"
            ),
        ),
        Check(
            2, RELU6_HIGH.name, RELU_HIGH.name, says="ReLU6 units pushed above 6 die and stay dead"
        ),
    ),
    cost_s=2.2,  # CPU seconds of a warm run (measured under load, 1 thread) minus the 4 s start
)
