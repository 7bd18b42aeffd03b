"""Depth without a non-linearity: an identity MLP of any depth is one linear map, so it learns what
softmax regression learns. The template's activations are listed here; the claims that test them
follow."""

from __future__ import annotations

from lab.study.claims import curves as cv
from lab.study.claims.base import Check, Claim, Column, Panel
from lab.study.grid import NET, STUDY_NET, Variant, by_steps, sgd

from mnist_lab.models.components.activations import ACTIVATIONS


def recommended_init(name: str, nonlinearity: str) -> str:
    """The init the textbook pairs with an activation: He for the ReLU family, LeCun for SELU, else
    Xavier."""
    if name == "selu":
        return "lecun_normal"
    return "kaiming_normal" if nonlinearity in ("relu", "leaky_relu") else "xavier_uniform"


DEPTHS = (0, 1, 2, 4, 8)
MARGIN = 0.003  # 0.3 points of val accuracy: TOST's equivalence margin
IDENTITY_STEPS = 600
SETTLE = 5  # validations averaged for the settled accuracy (the last 200 steps)
BASE_LR = 0.04
RELU = "ReLU, depth 2"


def lr_for(depth: int) -> float:
    """``BASE_LR / (depth + 1)``: a product of ``depth + 1`` balanced layers moves about ``depth +
    1`` times as far per step as one layer at the same rate (Arora et al., 2018), so this keeps the
    end-to-end step, and SGD's noise around the optimum, alike at every depth (one rate for all left
    depth 8 noisy: -2 points in a pilot)."""
    return round(BASE_LR / (depth + 1), 5)


def identity(depth: int) -> str:
    return "identity, depth 0 (softmax regression)" if depth == 0 else f"identity, depth {depth}"


ACTIVATION_LIST = ", ".join(
    f"{name} ({recommended_init(name, spec.nonlinearity).replace('_', ' ')})"
    for name, spec in ACTIVATIONS.items()
)

OVERVIEW = Claim(
    name="identity_depth",
    title="Without a non-linearity, depth adds nothing",
    statement=(
        "A stack of linear layers is one linear layer: an identity-activation MLP of any depth is "
        "softmax regression (the notes: about 92% on MNIST), while a ReLU net of the same width "
        "does better."
    ),
    measured=(
        f"Identity MLPs of depth {', '.join(map(str, DEPTHS))} (width 64, Xavier init at the "
        "linear gain; depth 0 is softmax regression) and a 2x64 ReLU MLP (He init), on 10,000 "
        "training images; SGD with momentum 0.9 (the argument is about what the model can express, "
        f"not the optimiser), constant learning rate {BASE_LR:g} / (depth + 1) (`lr_for`: the same "
        "end-to-end step at every depth; one rate for all left depth 8 noisy), no weight decay, no "
        f"clipping, batch 250, {IDENTITY_STEPS} steps (15 epochs); validation on 5,000 held-out "
        f"images every 50 steps. Val accuracy: the mean of the last {SETTLE} validations (a "
        "constant learning rate leaves SGD's noise in any one); drift: that minus the mean of the "
        f"{SETTLE} before (near 0: converged). Each depth is tested for equivalence with depth 0 "
        f"(TOST, margin ±{100 * MARGIN:g} points)."
    ),
    note=(
        "The template's activations, each with the init the textbook pairs with it: "
        f"{ACTIVATION_LIST}. An overview run of every one of them was dropped from the study for "
        "its cost; the claims below test sigmoid, tanh, ReLU and identity, the others test the "
        "ReLU family, SELU, maxout, ReLU6 and softplus."
    ),
    variants=(
        *(
            Variant(
                identity(d),
                (
                    f"{NET}.depth={d}",
                    f"{NET}.activation=identity",
                    f"--model.optimizer.lr={lr_for(d):g}",
                ),
            )
            for d in DEPTHS
        ),
        Variant(
            RELU,
            (
                f"{NET}.depth=2",
                f"{NET}.activation=relu",
                f"{NET}.weight_init=kaiming_normal",
                f"--model.optimizer.lr={lr_for(2):g}",
            ),
        ),
    ),
    args=(
        STUDY_NET,
        f"{NET}.width=64",
        f"{NET}.weight_init=xavier_uniform",
        "--data.train_size=10000",
        "--data.batch_size=250",
        *sgd(BASE_LR, momentum=0.9),  # each variant sets its rate
        *by_steps(IDENTITY_STEPS, 50, IDENTITY_STEPS),
    ),
    columns=(
        Column(f"val acc (last {SETTLE} checks)", cv.settled_acc(SETTLE), ".2f", 100, "%"),
        Column(
            f"drift (last {SETTLE} checks - the {SETTLE} before)",
            cv.acc_drift(SETTLE),
            ".2f",
            100,
            " pt",
        ),
    ),
    panels=(
        Panel("points", "val accuracy after training, by depth", column=0),
        Panel("curve", "validation accuracy over training (mean ± std over seeds)", key="val/acc"),
    ),
    checks=(
        *(
            Check(
                0,
                identity(d),
                identity(0),
                margin=MARGIN,
                says=f"identity at depth {d} ≡ softmax regression",
            )
            for d in DEPTHS[1:]
        ),
        Check(0, RELU, identity(0), says="a ReLU net of the same width beats it"),
    ),
    cost_s=4.0,
    caption=(
        "Left: the settled validation accuracy of each configuration (mean ± std over seeds); "
        "right: validation accuracy over the training steps. Verdicts, equivalent to softmax "
        "regression: depth 1 {c0}, 2 {c1}, 4 {c2}, 8 {c3}; the ReLU net better: {c4}."
    ),
)
