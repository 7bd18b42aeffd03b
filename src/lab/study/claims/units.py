"""Claims about hidden units: dead units (one rule for every activation), and initialisation by
depth."""

from __future__ import annotations

from lab.study.claims import measures as m
from lab.study.claims.base import Check, Claim, Column, Panel
from lab.study.claims.conditions import (
    CB,
    STUDY_CB,
    STUDY_NET,
    adamw,
    hidden_min,
    per_layer,
    recovered,
    sgd,
    unit_run,
)
from lab.study.claims.gradients import act
from lab.study.grid import NET, Variant

# Learning rates: a usual one and a high one per optimiser (SGD's step is ~10x Adam's for these
# nets).
SGD_LRS = (0.01, 0.1)
ADAMW_LRS = (0.001, 0.03)
DEAD_STEPS = 200
SLOPE_IMAGES = 5000
SOFTPLUS = f"softplus AdamW lr={ADAMW_LRS[1]:g}"


def _optimiser(name: str, lr: float) -> tuple[str, ...]:
    return sgd(lr) if name == "SGD" else adamw(lr)


def dead_name(activation: str, optimiser: str, lr: float) -> str:
    return f"{activation} {optimiser} lr={lr:g}"


def _dead_variants() -> tuple[Variant, ...]:
    out = []
    for optimiser, lrs in (("SGD", SGD_LRS), ("AdamW", ADAMW_LRS)):
        for activation in ("relu", "leaky_relu", "elu"):
            for lr in lrs:
                out.append(
                    Variant(
                        dead_name(activation, optimiser, lr),
                        (*act(activation, "kaiming_normal"), *_optimiser(optimiser, lr)),
                        cell=(activation, f"{optimiser} {lr:g}"),
                    )
                )
    out.append(
        Variant(
            SOFTPLUS,
            (*act("softplus", "kaiming_normal"), *adamw(ADAMW_LRS[1])),
            cell=("softplus", f"AdamW {ADAMW_LRS[1]:g}"),
        )
    )
    return tuple(out)


def _dead_checks() -> tuple[Check, ...]:
    out = []
    for optimiser, (low, high) in (("SGD", SGD_LRS), ("AdamW", ADAMW_LRS)):
        relu_high = dead_name("relu", optimiser, high)
        out += [
            Check(
                0,
                relu_high,
                dead_name("relu", optimiser, low),
                says=f"a high LR kills ReLU units ({optimiser})",
            ),
            Check(
                0,
                dead_name("leaky_relu", optimiser, high),
                relu_high,
                lower=True,
                says=f"leaky ReLU keeps them ({optimiser})",
            ),
            Check(
                0,
                dead_name("elu", optimiser, high),
                "0 (no dead unit)",
                margin=0.02,
                level=0.0,
                says=(
                    "ELU fixes it: no dead units at the high LR, within 2% of the units "
                    f"({optimiser})"
                ),
            ),
            Check(
                2,
                relu_high,
                "0 (no dead unit recovers)",
                margin=0.1,
                level=0.0,
                says=f"dead ReLU units never recover ({optimiser})",
            ),
        ]
    out.append(
        Check(
            0,
            SOFTPLUS,
            dead_name("relu", "AdamW", ADAMW_LRS[1]),
            lower=True,
            says="softplus (never exactly zero gradient) keeps its units",
        )
    )
    return tuple(out)


DEAD_RELUS = Claim(
    name="dead_relus",
    title="Dead units: a high learning rate kills ReLU units; leaky ReLU and ELU keep them",
    statement=(
        "A ReLU unit whose input is negative for every example has zero gradient and never "
        "recovers; a large step sends units there. Leaky ReLU keeps a small gradient, and ELU a "
        "smooth one, so they do not die."
    ),
    measured=(
        "A 4x128 MLP with He init (`kaiming_normal`, the activation's gain), batch 128, "
        f"{DEAD_STEPS} optimiser steps (2 epochs of 100 batches) on the full training split, "
        "validation on 2,000 images after each epoch. Two optimisers, each at a usual and a high "
        "constant learning rate, no clipping: SGD with momentum 0.9, no weight decay, lr "
        f"{SGD_LRS[0]:g} and {SGD_LRS[1]:g}; AdamW (weight decay 1e-4), lr {ADAMW_LRS[0]:g} and "
        f"{ADAMW_LRS[1]:g}. One rule for every activation: a hidden unit is *dead* when its "
        f"largest slope |f'(z)| over {SLOPE_IMAGES:,} training images is below 1e-3 (ReLU: z <= 0 "
        "on every image; ELU: z < -6.9 on every image; leaky ReLU's slope never drops below 0.01, "
        "so by this rule it cannot die, which is the notes' argument, not a measurement). Measured "
        "at init and every 40 steps; *recovered*: of the units found dead at any measurement, the "
        "share alive at the end (runs where no unit ever died have no value: n counts the others); "
        "*all-negative*: units with z <= 0 on every image (where ReLU has no gradient, leaky ReLU "
        "1% of it)."
    ),
    variants=_dead_variants(),
    args=(STUDY_CB, *unit_run(every=40, images=SLOPE_IMAGES)),
    metrics=("val/acc", "study/dead/"),
    columns=(
        Column("dead fraction (end)", m.hidden("study/dead/"), ".3f"),
        Column("dead fraction (max during training)", lambda r: _peak(r, "study/dead/"), ".3f"),
        Column("recovered share of dead units (end)", recovered, ".3f"),
        Column("all-negative (end)", m.hidden("study/negative/"), ".3f"),
        Column("val acc", m.val_acc, ".2f", 100, "%"),
    ),
    panels=(
        Panel("heatmap", "dead fraction at the end (mean over hidden layers)", column=0),
        Panel(
            "curve",
            "dead fraction over training, high learning rates",
            key="study/dead/",
            layer_mean=True,
            ylabel="dead units (fraction, mean over hidden layers)",
            only=tuple(
                dead_name(a, o, lrs[1])
                for o, lrs in (("SGD", SGD_LRS), ("AdamW", ADAMW_LRS))
                for a in ("relu", "elu")
            ),
        ),
        Panel("heatmap", "val accuracy (%)", column=4),
    ),
    checks=_dead_checks(),
    caption=(
        "Left: the dead fraction at the end (mean over hidden layers and seeds) per activation and "
        "optimiser/learning rate; middle: the dead fraction over training steps for ReLU and ELU "
        "at the two high learning rates (a falling line means dead units came back); right: "
        "validation accuracy (%) at the end. The verdicts: a high LR kills ReLU units {c0} (SGD), "
        "{c4} (AdamW); ELU fixes it {c2}, {c6}; dead units never recover {c3}, {c7}."
    ),
    cost_s=2.0,  # CPU seconds of a warm run (measured under load, 1 thread) minus the 4 s start
)


def _peak(r, prefix: str) -> float | None:  # type: ignore[no-untyped-def]
    curve = r.mean_curve(prefix)
    return max(v for _, v in curve) if curve else None


DEPTH = 20
INIT_LR = 0.01
SYMMETRY_LR = 0.1


def _deep(activation: str, scheme: str) -> Variant:
    return Variant(
        f"{activation} {scheme} (depth {DEPTH})",
        (f"{NET}.depth={DEPTH}", f"{NET}.activation={activation}", f"{NET}.hidden_init={scheme}"),
    )


DEEP = tuple(_deep(a, s) for a in ("relu", "tanh") for s in ("xavier", "he"))
SYMMETRIC = tuple(
    Variant(
        f"sigmoid {init} (depth 2)", (f"{NET}.depth=2", *act("sigmoid", init), *sgd(SYMMETRY_LR))
    )
    for init in ("zeros", "xavier_normal")
)

INIT = Claim(
    name="init",
    title="Initialisation: He's factor through depth, and zero init's symmetry",
    statement=(
        "He et al. (2015): with Xavier's variance (1/n) a ReLU layer halves the signal's variance, "
        "so its std shrinks by 1/√2 per layer and a deep ReLU net stalls; He's 2/n keeps it "
        "(factor 1). Xavier suits tanh, He suits ReLU. Zero init leaves every hidden unit of a "
        "layer identical: symmetry never breaks."
    ),
    measured=(
        f"He's factor: {DEPTH}x64 MLPs (`lab.nets.SchemeMLP`: hidden layers N(0, "
        "2/(fan_in+fan_out)) for Xavier (gain 1), N(0, 2/fan_in) for He; output layer the "
        "template's He for a linear unit; biases 0), ReLU and tanh. At init, on 1,000 training "
        "images: each hidden layer's activation std and the RMS of the loss gradient with respect "
        "to its pre-activations; the per-layer factor is (last / first) ** (1/19) of the std, and "
        f"(first / last) ** (1/19) of the gradient. Trained with SGD, momentum 0.9, lr {INIT_LR:g} "
        "constant, no weight decay, no clipping, batch 128, 150 steps (2 epochs of 75 batches), "
        "validation on 2,000 images after each epoch. Symmetry: a 2x64 sigmoid MLP with all "
        "weights zero (`weight_init=zeros`) or Xavier (`xavier_normal`), SGD momentum 0.9, lr "
        f"{SYMMETRY_LR:g}, same steps; *unit spread*: per image, the std across a layer's units "
        "over the layer's overall std (0: every unit computes the same function), the least "
        "spread-out hidden layer, at the end, on 1,000 training images."
    ),
    variants=(*DEEP, *SYMMETRIC),
    args=(
        STUDY_CB,
        STUDY_NET,
        f"{NET}.width=64",
        *sgd(INIT_LR),
        "--trainer.max_epochs=2",
        "--trainer.limit_train_batches=75",
        "--trainer.limit_val_batches=2",
        f"{CB}.every_n_steps=75",
        f"{CB}.probe_every_n_steps=150",
        f"{CB}.images=1000",
        f"{CB}.init_grads=true",
    ),
    metrics=("val/acc", "study/act_std/", "study/preact_grad/"),
    columns=(
        Column("act std factor per layer (init)", per_layer("study/act_std/"), ".3f", log=True),
        Column(
            "gradient factor per layer (init)",
            per_layer("study/preact_grad/", down=True),
            ".3f",
            log=True,
        ),
        Column("val acc", m.val_acc, ".2f", 100, "%"),
        Column("unit spread (end)", hidden_min("study/unit_spread/"), ".3f"),
    ),
    panels=(
        Panel(
            "depth",
            f"activation std by depth at init ({DEPTH} layers)",
            key="study/act_std/",
            log=True,
            ylabel="activation standard deviation",
            only=tuple(v.name for v in DEEP),
        ),
        Panel(
            "depth",
            "RMS gradient w.r.t. pre-activations at init",
            key="study/preact_grad/",
            log=True,
            ylabel="RMS of d loss / d pre-activation",
            only=tuple(v.name for v in DEEP),
        ),
        Panel("curve", "validation accuracy", key="val/acc"),
    ),
    caption=(
        "Left: each hidden layer's activation std at init (log scale): the notes predict a line "
        "falling by 1/√2 a layer for Xavier on ReLU and a flat one for He. Middle: the RMS "
        "gradient w.r.t. each layer's pre-activations at init, from the input (left) to the last "
        "hidden layer. Right: validation accuracy (%) after each epoch of 75 steps; 10% is chance. "
        "The verdicts: Xavier's 1/√2 a layer {c0}, He's 1 {c1}; He suits ReLU {c3}; Xavier suits "
        "tanh {c4}."
    ),
    checks=(
        Check(
            0,
            DEEP[0].name,
            "1/√2",
            level=0.5**0.5,
            margin=0.05,
            says="Xavier: ReLU's std shrinks by 1/√2 a layer",
        ),
        Check(0, DEEP[1].name, "1", level=1.0, margin=0.05, says="He: ReLU's std keeps (factor 1)"),
        Check(
            1,
            DEEP[1].name,
            DEEP[0].name,
            says="He keeps ReLU's gradient through depth better than Xavier",
        ),
        Check(
            2,
            DEEP[1].name,
            DEEP[0].name,
            says="He suits ReLU: it trains at depth 20, Xavier does not",
        ),
        Check(2, DEEP[2].name, DEEP[3].name, says="Xavier suits tanh"),
        Check(
            3, SYMMETRIC[1].name, SYMMETRIC[0].name, says="zero init: hidden units stay identical"
        ),
        Check(
            2, SYMMETRIC[1].name, SYMMETRIC[0].name, says="zero init: the symmetric net learns less"
        ),
    ),
    cost_s=1.7,  # CPU seconds of a warm run (measured under load, 1 thread) minus the 4 s start
)
