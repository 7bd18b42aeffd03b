"""Claims about gradients: vanishing with depth, saturation, the output loss, and zig-zag updates."""

from __future__ import annotations

from lab.study.claims import measures as m
from lab.study.claims.base import Check, Claim, Column, Panel
from lab.study.grid import BAD_START, NET, Variant

TEXTBOOK_LOSS = "--model.loss=lab.losses.TextbookLoss"  # the template's loss is nn.CrossEntropyLoss
LOSS = "--model.loss.init_args"


def loss_pair(loss: str, output: str) -> tuple[str, ...]:
    """The overrides choosing :class:`lab.losses.TextbookLoss` with ``loss`` on the ``output`` squashing."""
    return (TEXTBOOK_LOSS, f"{LOSS}.loss={loss}", f"{LOSS}.output={output}")


def act(name: str, init: str, *more: str) -> tuple[str, ...]:
    """The overrides choosing an activation and its init."""
    return (f"{NET}.activation={name}", f"{NET}.weight_init={init}", *more)


VAL_CURVE = Panel("curve", "validation accuracy after each epoch (mean ± std over seeds)", key="val/acc")

VANISHING = Claim(
    name="vanishing_gradients",
    title="Vanishing gradients with depth",
    statement="In a deep sigmoid MLP the weight gradient shrinks towards the input; ReLU and batch norm keep it.",
    measured=(
        "An 8x128 MLP, 3 epochs of 80 batches. Weight-gradient norm per layer at step 0 and at the last "
        "measurement; the ratio first hidden / output layer; val accuracy."
    ),
    variants=(
        Variant("sigmoid", act("sigmoid", "xavier_uniform")),
        Variant("relu", act("relu", "kaiming_normal")),
        Variant("sigmoid + BN", act("sigmoid", "xavier_uniform", f"{NET}.batch_norm=true")),
    ),
    args=(
        f"{NET}.depth=8",
        f"{NET}.width=128",
        "--trainer.max_epochs=3",
        "--trainer.limit_train_batches=80",
        "--trainer.callbacks.init_args.every_n_steps=20",
        "--trainer.callbacks.init_args.probe_every_n_steps=80",
    ),
    metrics=("val/acc", "diag/grad_norm/"),
    columns=(
        Column("grad first/output (init)", m.grad_ratio("first"), ".2e", log=True),
        Column("grad first/output (end)", m.grad_ratio("last"), ".2e", log=True),
        Column("val acc", m.val_acc, ".2f", 100, "%"),
    ),
    panels=(
        Panel("depth", "weight-gradient norm by depth at step 0", key="diag/grad_norm/", log=True),
        Panel(
            "depth", "weight-gradient norm by depth at the last measurement", key="diag/grad_norm/", at="last", log=True
        ),
        VAL_CURVE,
    ),
    checks=(Check(0, "relu", "sigmoid"), Check(0, "sigmoid + BN", "sigmoid")),
    cost_s=3.0,
)

SATURATION = Claim(
    name="saturation",
    title="Saturated sigmoid and tanh units learn slowly",
    statement="Large initial weights push sigmoid/tanh units into their flat tails, where they barely learn.",
    measured=(
        "A 4x256 MLP, 3 epochs of 80 batches; normal(std=1) init (saturating) against Xavier. Fraction of "
        "hidden outputs where the slope is < 1% of its maximum, at init and over training; val accuracy."
    ),
    variants=(
        Variant("sigmoid xavier", act("sigmoid", "xavier_uniform")),
        Variant("sigmoid normal(1)", act("sigmoid", "normal", f"{NET}.weight_init_args={{std: 1.0}}")),
        Variant("tanh xavier", act("tanh", "xavier_uniform")),
        Variant("tanh normal(1)", act("tanh", "normal", f"{NET}.weight_init_args={{std: 1.0}}")),
    ),
    args=(
        "--trainer.max_epochs=3",
        "--trainer.limit_train_batches=80",
        "--trainer.callbacks.init_args.every_n_steps=10",
        "--trainer.callbacks.init_args.probe_every_n_steps=10",
    ),
    metrics=("val/acc", "diag/saturation/"),
    columns=(
        Column("saturated (init)", m.hidden("diag/saturation/", "first"), ".3f"),
        Column("saturated (end)", m.hidden("diag/saturation/", "last"), ".3f"),
        Column("val acc epoch 1", m.val_acc_at(1), ".2f", 100, "%"),
        Column("val acc (end)", m.val_acc, ".2f", 100, "%"),
    ),
    panels=(
        Panel(
            "curve",
            "saturated fraction (mean over hidden layers) over training",
            key="diag/saturation/",
            layer_mean=True,
        ),
        VAL_CURVE,
    ),
    checks=(
        Check(0, "sigmoid normal(1)", "sigmoid xavier"),
        Check(0, "tanh normal(1)", "tanh xavier"),
        Check(2, "sigmoid xavier", "sigmoid normal(1)"),
        Check(2, "tanh xavier", "tanh normal(1)"),
    ),
    cost_s=3.5,
)

OUTPUT_LOSS = Claim(
    name="output_loss",
    title="Cross-entropy vs squared error on a saturated output",
    statement=(
        "With a saturated output, the squared-error gradient vanishes (it carries the output's slope), the "
        "cross-entropy one does not: with sigmoid outputs, the log of cross-entropy cancels the exponential."
    ),
    measured=(
        "A 4x256 ReLU MLP whose output layer starts 20x too large (`output_gain=20`), 3 epochs of 80 batches. "
        "Output layer weight-gradient norm at step 0 and over training; val accuracy after epoch 1 and at the end."
    ),
    variants=(
        Variant("softmax + cross-entropy", loss_pair("cross_entropy", "softmax")),
        Variant("softmax + MSE", loss_pair("mse", "softmax")),
        Variant("sigmoid + cross-entropy", loss_pair("cross_entropy", "sigmoid")),
        Variant("sigmoid + MSE", loss_pair("mse", "sigmoid")),
    ),
    args=(
        *act("relu", "kaiming_normal"),
        BAD_START,
        f"{NET}.output_gain=20",
        "--trainer.max_epochs=3",
        "--trainer.limit_train_batches=80",
        "--trainer.callbacks.init_args.every_n_steps=5",
        "--trainer.callbacks.init_args.probe_every_n_steps=40",
    ),
    metrics=("val/acc", "diag/grad_norm/"),
    columns=(
        Column("output grad (init)", m.output_grad("first"), ".2e", log=True),
        Column("val acc epoch 1", m.val_acc_at(1), ".2f", 100, "%"),
        Column("val acc (end)", m.val_acc, ".2f", 100, "%"),
    ),
    panels=(
        Panel(
            "curve",
            "output layer weight-gradient norm over training",
            key="diag/grad_norm/-1",
            log=True,
            ylabel="output-layer weight-gradient norm (L2)",
        ),
        VAL_CURVE,
    ),
    checks=(
        Check(0, "softmax + cross-entropy", "softmax + MSE"),
        Check(0, "sigmoid + cross-entropy", "sigmoid + MSE"),
        Check(1, "softmax + cross-entropy", "softmax + MSE"),
        Check(1, "sigmoid + cross-entropy", "sigmoid + MSE"),
    ),
    cost_s=3.5,
)

ZIGZAG = Claim(
    name="zigzag",
    title="Non-zero-centred activations make updates zig-zag",
    statement=(
        "When a layer's inputs are all positive (sigmoid, ReLU), the gradients of a unit's incoming weights "
        "share one sign, so each step moves them all up or all down; tanh's zero-centred outputs do not."
    ),
    measured=(
        "A 4x256 MLP, 3 epochs of 80 batches. `diag/grad_sign_agreement/<i>`: the fraction of each unit's "
        "incoming weight gradients with the majority sign (1: all one sign; 0.5: balanced), averaged over "
        "training and the layers fed by activations (layer 0 sees pixels); val accuracy."
    ),
    variants=(
        Variant("sigmoid", act("sigmoid", "xavier_uniform")),
        Variant("tanh", act("tanh", "xavier_uniform")),
        Variant("relu", act("relu", "kaiming_normal")),
    ),
    args=(
        "--trainer.max_epochs=3",
        "--trainer.limit_train_batches=80",
        "--trainer.callbacks.init_args.every_n_steps=10",
        "--trainer.callbacks.init_args.probe_every_n_steps=80",
    ),
    metrics=("val/acc", "diag/grad_sign_agreement/"),
    columns=(
        Column("sign agreement", m.over_training("diag/grad_sign_agreement/", skip_first=True), ".3f"),
        Column("val acc epoch 1", m.val_acc_at(1), ".2f", 100, "%"),
        Column("val acc (end)", m.val_acc, ".2f", 100, "%"),
    ),
    panels=(
        Panel(
            "depth", "gradient sign agreement by layer (last measurement)", key="diag/grad_sign_agreement/", at="last"
        ),
        VAL_CURVE,
    ),
    checks=(Check(0, "sigmoid", "tanh"), Check(1, "tanh", "sigmoid")),
    cost_s=3.5,
)
