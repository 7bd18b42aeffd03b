"""The activation overview: every activation with its recommended init, batch norm off and on."""

from __future__ import annotations

from lab.study.claims import measures as m
from lab.study.claims.base import Check, Claim, Column, Panel
from lab.study.grid import NET, Variant
from mnist_lab.models.components.activations import ACTIVATIONS


def recommended_init(name: str, nonlinearity: str) -> str:
    """The init the textbook pairs with an activation: He for the ReLU family, LeCun for SELU, else Xavier."""
    if name == "selu":
        return "lecun_normal"
    return "kaiming_normal" if nonlinearity in ("relu", "leaky_relu") else "xavier_uniform"


def _variants() -> tuple[Variant, ...]:
    out = []
    for name, spec in ACTIVATIONS.items():
        for bn in (False, True):
            out.append(
                Variant(
                    f"{name}{' + BN' if bn else ''}",
                    (
                        f"{NET}.activation={name}",
                        f"{NET}.weight_init={recommended_init(name, spec.nonlinearity)}",
                        f"{NET}.batch_norm={str(bn).lower()}",
                    ),
                    cell=(name, "BN on" if bn else "BN off"),
                )
            )
    return tuple(out)


OVERVIEW = Claim(
    name="overview",
    title="Every activation, with and without batch norm",
    statement=(
        "Sigmoid's gradient vanishes towards the input and batch norm restores it; identity is a linear "
        "model (~92%) whatever its depth; step never trains below its output layer; the ReLU family lose units."
    ),
    measured=(
        "A 4x256 MLP, each activation with its recommended init (`recommended_init`: Xavier for sigmoid/tanh/"
        "linear gains, He for the ReLU family, LeCun for SELU), batch norm off and on, 1 epoch of 100 batches. "
        "Val accuracy at the end; first/output layer weight-gradient norm at step 0; hidden units constant over "
        "the probe batch at the end; mean hidden activation."
    ),
    variants=_variants(),
    # probes at steps 0, 33, 66 and 99: the last is the end of the run
    args=(
        "--trainer.max_epochs=1",
        "--trainer.limit_train_batches=100",
        "--trainer.callbacks.init_args.every_n_steps=33",
        "--trainer.callbacks.init_args.probe_every_n_steps=33",
    ),
    metrics=("val/acc", "diag/grad_norm/"),
    columns=(
        Column("val acc", m.val_acc, ".2f", 100, "%"),
        Column("grad first/output (init)", m.grad_ratio("first"), ".2e", log=True),
        Column("dead fraction", m.hidden("diag/dead_frac/"), ".3f"),
        Column("mean activation", m.hidden("diag/act_mean/"), "+.3f"),
    ),
    panels=(
        Panel("heatmap", "val accuracy (%), mean over seeds", column=0),
        Panel("heatmap", "dead fraction at the end", column=2),
        Panel(
            "depth",
            "weight-gradient norm by depth at step 0 (no BN)",
            key="diag/grad_norm/",
            log=True,
            only=("identity", "sigmoid", "tanh", "relu", "elu", "selu", "gelu"),
        ),
    ),
    checks=(
        Check(1, "relu", "sigmoid"),
        Check(1, "sigmoid + BN", "sigmoid"),
        Check(0, "tanh", "identity"),
    ),
    cost_s=2.8,
)
