"""Claims about hidden units: dead ReLUs, and how the initialisation shapes activations by depth."""

from __future__ import annotations

from lab.study.claims import measures as m
from lab.study.claims.base import Check, Claim, Column, Panel
from lab.study.claims.gradients import VAL_CURVE, act
from lab.study.grid import BAD_START, NET, Variant

HIGH_LR = "0.03"


def _dead_variants() -> tuple[Variant, ...]:
    out = []
    for name in ("relu", "leaky_relu", "prelu", "elu"):
        base = act(name, "kaiming_normal")
        if name == "relu":  # the low-rate baseline; the others only at the high rate (the study's time budget)
            out.append(Variant(name, base, cell=(name, "lr 1e-3")))
        out.append(
            Variant(
                f"{name} lr={HIGH_LR}",
                (*base, f"--model.optimizer.init_args.lr={HIGH_LR}"),
                cell=(name, f"lr {HIGH_LR}"),
            )
        )
        if name == "relu":
            out.append(Variant(f"{name} bias=-1", (*base, BAD_START, f"{NET}.bias_init=-1"), cell=(name, "bias -1")))
    return tuple(out)


DEAD_RELUS = Claim(
    name="dead_relus",
    title="Dead ReLUs: a high learning rate or a negative bias kills units",
    statement=(
        "A ReLU unit whose input is negative for every example has zero gradient and never recovers; a large "
        "step or a negative bias start sends units there. Leaky ReLU, PReLU and ELU keep a gradient."
    ),
    measured=(
        f"A 4x256 MLP with He init, 2 epochs of 100 batches; AdamW at lr {HIGH_LR} for all four, and for ReLU "
        "also at lr 1e-3 and with hidden biases starting at -1 (`bias_init=-1`). Dead fraction: hidden units "
        "constant over the probe batch, at the end."
    ),
    variants=_dead_variants(),
    args=(
        "--trainer.max_epochs=2",
        "--trainer.limit_train_batches=100",
        "--trainer.callbacks.init_args.every_n_steps=25",
        "--trainer.callbacks.init_args.probe_every_n_steps=25",
    ),
    metrics=("val/acc", "diag/dead_frac/"),
    columns=(
        Column("dead fraction (end)", m.hidden("diag/dead_frac/"), ".3f"),
        Column("val acc", m.val_acc, ".2f", 100, "%"),
    ),
    panels=(
        Panel("heatmap", "dead fraction at the end (mean over hidden layers)", column=0),
        Panel("heatmap", "val accuracy (%)", column=1),
        Panel(
            "curve",
            "ReLU dead fraction over training",
            key="diag/dead_frac/",
            layer_mean=True,
            only=("relu", f"relu lr={HIGH_LR}", "relu bias=-1"),
        ),
    ),
    checks=(
        Check(0, f"relu lr={HIGH_LR}", "relu"),
        Check(0, f"relu lr={HIGH_LR}", f"leaky_relu lr={HIGH_LR}"),
        Check(0, f"relu lr={HIGH_LR}", f"elu lr={HIGH_LR}"),
        Check(0, "relu bias=-1", "relu"),
    ),
    cost_s=3.5,
)

INIT = Claim(
    name="init",
    title="Initialisation: symmetry, collapse, explosion, and the matched schemes",
    statement=(
        "Zero init leaves every unit of a layer identical (one distinct unit); too small a normal init collapses "
        "the activations with depth, too large explodes them; Xavier (tanh), He (ReLU) and LeCun (SELU) keep them."
    ),
    measured=(
        "A 6x256 MLP, 2 epochs of 60 batches. Hidden activation std by depth at init (probe batch) and the "
        "ratio last/first hidden layer; the fewest distinct units in a hidden layer at the end; val accuracy."
    ),
    variants=(
        Variant("sigmoid zeros", act("sigmoid", "zeros")),
        Variant("relu normal(0.01)", act("relu", "normal", f"{NET}.weight_init_args={{std: 0.01}}")),
        Variant("relu normal(0.25)", act("relu", "normal", f"{NET}.weight_init_args={{std: 0.25}}")),
        Variant("relu he", act("relu", "kaiming_normal")),
        Variant("tanh xavier", act("tanh", "xavier_normal")),
        Variant("selu lecun", act("selu", "lecun_normal")),
    ),
    args=(
        f"{NET}.depth=6",
        "--trainer.max_epochs=2",
        "--trainer.limit_train_batches=60",
        "--trainer.callbacks.init_args.every_n_steps=20",
        "--trainer.callbacks.init_args.probe_every_n_steps=20",
    ),
    metrics=("val/acc", "diag/act_std/"),
    columns=(
        Column("act std last/first (init)", m.std_ratio, ".2e", log=True),
        Column("distinct units (min, end)", m.min_distinct, ".0f"),
        Column("val acc", m.val_acc, ".2f", 100, "%"),
    ),
    panels=(
        Panel("depth", "hidden activation std by depth at init", key="diag/act_std/", log=True),
        VAL_CURVE,
    ),
    checks=(
        Check(0, "relu he", "relu normal(0.01)"),
        Check(0, "relu normal(0.25)", "relu he"),
        Check(1, "relu he", "sigmoid zeros"),
        Check(2, "relu he", "sigmoid zeros"),
    ),
    cost_s=2.5,
)
