"""Maxout and ReLU6, each against what the notes say of it (softplus is checked with the dead units)."""

from __future__ import annotations

from lab.study.claims import measures as m
from lab.study.claims.base import Check, Claim, Column, Panel
from lab.study.claims.conditions import CB, STUDY_CB, sgd
from lab.study.claims.gradients import act
from lab.study.grid import BAD_START, NET, Variant

VARIANT_LR = 0.01
HIGH_BIAS = 8.0

RELU_WIDE = Variant("relu 2x128", (f"{NET}.depth=2", *act("relu", "kaiming_normal")))
MAXOUT = Variant("maxout k=2 2x128", (f"{NET}.depth=2", *act("maxout", "kaiming_normal")))
RELU_HIGH = Variant(
    f"relu bias +{HIGH_BIAS:g}", (BAD_START, *act("relu", "kaiming_normal"), f"{NET}.bias_init={HIGH_BIAS}")
)
RELU6_HIGH = Variant(
    f"relu6 bias +{HIGH_BIAS:g}", (BAD_START, *act("relu6", "kaiming_normal"), f"{NET}.bias_init={HIGH_BIAS}")
)

RELU_VARIANTS = Claim(
    name="relu_variants",
    title="Maxout and ReLU6 against the notes",
    statement=(
        "Maxout is a learned piecewise-linear unit (the max of k linear pieces) that generalises ReLU and leaky "
        "ReLU at k times the parameters, so with the same units it does at least as well as ReLU. ReLU6 is ReLU "
        "capped at 6: its gradient is 0 above 6, so a unit pushed above 6 on every input is as dead as a ReLU "
        "pushed below 0. (Softplus, a smooth ReLU whose gradient is never exactly zero, is checked in the dead "
        "units section, under the same rule and learning rate that kill ReLU units.)"
    ),
    measured=(
        f"SGD momentum 0.9, lr {VARIANT_LR:g} constant, no weight decay, no clipping, batch 128, 2 epochs of 100 "
        "batches, validation on 2,000 images after each. Maxout: a 2x128 MLP with maxout k=2 (each hidden layer "
        "emits 256 pieces: twice ReLU's weights) against ReLU with He init, val accuracy at the end. ReLU6: a 4x128 "
        "MLP "
        f"(He init) whose hidden biases start at +{HIGH_BIAS:g} (`bias_init`), ReLU6 against ReLU; dead fraction "
        "by the dead-unit rule (largest slope over 5,000 training images below 1e-3) at the end."
    ),
    variants=(RELU_WIDE, MAXOUT, RELU_HIGH, RELU6_HIGH),
    args=(
        STUDY_CB,
        *sgd(VARIANT_LR),
        f"{NET}.width=128",
        "--trainer.max_epochs=2",
        "--trainer.limit_train_batches=100",
        "--trainer.limit_val_batches=2",
        f"{CB}.every_n_steps=100",
        f"{CB}.probe_every_n_steps=200",
        f"{CB}.images=5000",
        f"{CB}.unit_every_n_steps=100",
    ),
    metrics=("val/acc", "study/dead/"),
    columns=(
        Column("val acc", m.val_acc, ".2f", 100, "%"),
        Column("dead fraction (init)", m.hidden("study/dead/", "first"), ".3f"),
        Column("dead fraction (end)", m.hidden("study/dead/"), ".3f"),
    ),
    panels=(
        Panel("points", "validation accuracy at the end", column=0),
        Panel(
            "curve",
            f"dead fraction over training, hidden biases starting at +{HIGH_BIAS:g}",
            key="study/dead/",
            layer_mean=True,
            ylabel="dead units (fraction, mean over hidden layers)",
            only=(RELU_HIGH.name, RELU6_HIGH.name),
        ),
    ),
    checks=(
        Check(0, MAXOUT.name, RELU_WIDE.name, says="maxout (k=2) does at least as well as ReLU with the same units"),
        Check(2, RELU6_HIGH.name, RELU_HIGH.name, says="ReLU6 units pushed above 6 die"),
    ),
    cost_s=2.2,  # CPU seconds of a warm run (measured under load, 1 thread) minus the 4 s start
)
