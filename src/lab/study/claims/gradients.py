"""Claims about gradients under the textbook's plain SGD: vanishing with depth, saturation, the
output loss, zig-zag.

Every run here trains with SGD at a constant learning rate, no weight decay, no schedule and no
clipping (:func:`lab.study.grid.sgd`), for a fixed number of optimiser steps
(:func:`lab.study.grid.by_steps`), on the network :class:`lab.nets.StudyMLP`.
"""

from __future__ import annotations

from dataclasses import dataclass

from lab.study.claims import curves as cv
from lab.study.claims import measures as m
from lab.study.claims.base import Check, Claim, Column, Groups, Panel
from lab.study.grid import DIAG, NET, STUDY_NET, Variant, by_steps, sgd
from lab.study.stats import Stat, summarise

TEXTBOOK_LOSS = "--model.loss=lab.losses.TextbookLoss"  # the template's loss is nn.CrossEntropyLoss
LOSS = "--model.loss.init_args"
SMALL_VAL = "--data.val_size=2000"  # validation every few dozen steps: 2,000 images keep it cheap


def loss_pair(loss: str, output: str) -> tuple[str, ...]:
    """The overrides choosing :class:`lab.losses.TextbookLoss` with ``loss`` on the ``output``
    squashing."""
    return (TEXTBOOK_LOSS, f"{LOSS}.loss={loss}", f"{LOSS}.output={output}")


def act(name: str, init: str, *more: str) -> tuple[str, ...]:
    """The overrides choosing an activation and its init."""
    return (f"{NET}.activation={name}", f"{NET}.weight_init={init}", *more)


VAL_CURVE = Panel(
    "curve", "validation accuracy after each epoch (mean ± std over seeds)", key="val/acc"
)


def val_curve(*only: str) -> Panel:
    """Validation accuracy over the training steps, for the ``only`` variants (all when none)."""
    return Panel(
        "curve",
        "validation accuracy over training (mean ± std over seeds)",
        key="val/acc",
        only=only,
    )


@dataclass(frozen=True)
class Gap:
    """A derived row: per seed, ``minuend``'s value minus ``subtrahend``'s (same seed: same init and
    data order), so comparing two gaps tests an interaction (does a difference grow from one
    condition to another?)."""

    name: str
    minuend: str
    subtrahend: str


@dataclass(frozen=True)
class PairedClaim(Claim):
    """A claim whose checks may also compare :class:`Gap` rows (by name) besides its variants."""

    gaps: tuple[Gap, ...] = ()

    def stat(self, groups: Groups, variant: str, column: int) -> Stat | None:
        gap = next((g for g in self.gaps if g.name == variant), None)
        if gap is None:
            return super().stat(groups, variant, column)
        col = self.columns[column]

        def per_seed(name: str) -> dict[int, float | None]:
            return {r.seed: col.measure(r) for r in groups.get(name, []) if r.status == "FINISHED"}

        a, b = per_seed(gap.minuend), per_seed(gap.subtrahend)
        both = sorted(s for s in a.keys() & b.keys() if a[s] is not None and b[s] is not None)
        return summarise((a[s] - b[s] for s in both), col.log)  # type: ignore[operator]


# -- vanishing gradients ---------------------------------------------------------------------------

SIG, SIG4, TANH, RELU, SIG_BN = (
    "sigmoid, Xavier",
    "sigmoid, Xavier x4",
    "tanh, Xavier",
    "ReLU, He",
    "sigmoid + BN",
)
VANISHING_STEPS = 400

VANISHING = Claim(
    name="vanishing_gradients",
    title="Vanishing gradients with depth",
    statement=(
        "In a deep sigmoid MLP the gradient shrinks on its way back to the input (sigmoid's slope "
        "is at most 1/4), so the first layers barely learn under SGD; tanh shrinks it less, ReLU "
        "with He init keeps it, and so do Glorot's 4x larger init for sigmoid and batch norm."
    ),
    measured=(
        "An 8x128 MLP on 10,000 training images; plain SGD (no momentum), constant learning rate "
        f"0.1, no weight decay, no clipping, batch 128, {VANISHING_STEPS} steps (5 epochs); "
        "validation (2,000 held-out images) every 50 steps. The gradient of the loss w.r.t. each "
        "layer's pre-activations z = Wx + b (before batch norm), per example, on the training "
        "batch at step 0 (init) and step 350 (the last measurement): the ratio first / last hidden "
        "layer (7 layers apart; << 1: it shrinks with depth), compared on log10. Val accuracy: the "
        "mean of the last 3 validations. Xavier x4: Xavier uniform with the hidden layers' weights "
        "multiplied by 4."
    ),
    variants=(
        Variant(SIG, act("sigmoid", "xavier_uniform")),
        Variant(SIG4, act("sigmoid", "xavier_uniform", f"{NET}.hidden_gain=4")),
        Variant(TANH, act("tanh", "xavier_uniform")),
        Variant(RELU, act("relu", "kaiming_normal")),
        Variant(SIG_BN, act("sigmoid", "xavier_uniform", f"{NET}.batch_norm=true")),
    ),
    args=(
        STUDY_NET,
        f"{NET}.depth=8",
        f"{NET}.width=128",
        "--data.train_size=10000",
        SMALL_VAL,
        *sgd(0.1),
        *by_steps(VANISHING_STEPS, 50, 50),
    ),
    metrics=("val/acc", cv.PREACT),
    columns=(
        Column("z-gradient first/last hidden (init)", cv.preact_ratio("first"), ".2e", log=True),
        Column("z-gradient first/last hidden (end)", cv.preact_ratio("last"), ".2e", log=True),
        Column("val acc (last 3 checks)", cv.settled_acc(3), ".2f", 100, "%"),
    ),
    panels=(
        Panel(
            "depth", "z-gradient by layer at step 0 (layer 8: the logits)", key=cv.PREACT, log=True
        ),
        Panel(
            "depth",
            "z-gradient by layer at the last measurement (step 350)",
            key=cv.PREACT,
            at="last",
            log=True,
        ),
        val_curve(),
    ),
    checks=(
        Check(
            0, RELU, SIG, says="sigmoid's gradient shrinks through depth more than ReLU+He's (init)"
        ),
        Check(0, TANH, SIG, says="tanh's shrinks less than sigmoid's (init)"),
        Check(0, SIG4, SIG, says="Xavier x4 gain reduces sigmoid's shrinking (init)"),
        Check(0, SIG_BN, SIG, says="batch norm reduces sigmoid's shrinking (init)"),
        Check(1, RELU, SIG, says="after training, sigmoid's still shrinks more than ReLU+He's"),
        Check(2, RELU, SIG, says="sigmoid trains slower under SGD than ReLU+He"),
        Check(2, SIG4, SIG, says="Xavier x4 makes sigmoid train faster"),
        Check(2, SIG_BN, SIG, says="batch norm makes sigmoid train faster"),
    ),
    cost_s=4.5,
    caption=(
        "Left and middle: the per-example gradient w.r.t. each layer's pre-activations (log axis; "
        "layer 8 is the output's logits) at init and at the end; a line falling to the left is a "
        "gradient that shrinks towards the input. Right: validation accuracy over the training "
        "steps. Verdicts: shrinks more than ReLU's: {c0}; less with tanh: {c1}, with the x4 gain: "
        "{c2}, with batch norm: {c3}; sigmoid trains slower: {c5}."
    ),
)

# -- saturation ------------------------------------------------------------------------------------

SIGMAS = (0.1, 0.3, 1.0, 3.0)
SAT_STEPS = 300


def sigma(s: float) -> str:
    return f"tanh, normal({s:g})"


SAT_XAVIER = "tanh, Xavier"

SATURATION = Claim(
    name="saturation",
    title="Saturated tanh units pass back little gradient",
    statement=(
        "Large initial weights push tanh units into their flat tails, where the slope is near 0: "
        "the gradient reaching those layers is small and they barely learn."
    ),
    measured=(
        "A 4x128 tanh MLP on 10,000 training images; the hidden layers start normal(0, sigma) for "
        f"sigma in {', '.join(f'{s:g}' for s in SIGMAS)} (a first-layer pre-activation then has a "
        "std of about 28 sigma: the pixels are standardised), the output layer Xavier in every "
        "run, beside Xavier throughout. Plain SGD (no momentum), constant learning rate 0.05, no "
        f"weight decay, no clipping, batch 128, {SAT_STEPS} steps; validation (2,000 images) every "
        "50 steps. Saturated: a hidden unit's output on the probe batch (512 validation images) "
        "where tanh's slope is under 1% of its maximum (|z| > 3), averaged over the hidden layers, "
        "at step 0 and at the end. The gradient reaching the saturated layers, on the training "
        "batch at step 0, compared on log10: the per-example gradient w.r.t. the first hidden "
        "layer's pre-activations (it passes back through every hidden layer), and the first "
        "layer's weight gradient relative to its weights, ||grad W|| / ||W|| (how far a step moves "
        "the layer for its size). Val accuracy: mean of the last 3 validations."
    ),
    variants=(
        Variant(SAT_XAVIER, act("tanh", "xavier_uniform")),
        *(
            Variant(
                sigma(s),
                act(
                    "tanh",
                    "normal",
                    f"{NET}.weight_init_args={{std: {s:g}}}",
                    f"{NET}.output_init=xavier_uniform",
                ),
            )
            for s in SIGMAS
        ),
    ),
    args=(
        STUDY_NET,
        f"{NET}.depth=4",
        f"{NET}.width=128",
        "--data.train_size=10000",
        SMALL_VAL,
        *sgd(0.05),
        *by_steps(SAT_STEPS, 50, 50),
    ),
    metrics=("val/acc", "diag/saturation/", f"{cv.PREACT}0", f"{cv.REL_GRAD}0"),
    columns=(
        Column("saturated (init)", m.hidden("diag/saturation/", "first"), ".3f"),
        Column("saturated (end)", m.hidden("diag/saturation/", "last"), ".3f"),
        Column(
            "z-gradient, first layer (init)", cv.layer_value(cv.PREACT, 0, "first"), ".2e", log=True
        ),
        Column(
            "|grad W|/|W|, first layer (init)",
            cv.layer_value(cv.REL_GRAD, 0, "first"),
            ".2e",
            log=True,
        ),
        Column("val acc (last 3 checks)", cv.settled_acc(3), ".2f", 100, "%"),
    ),
    panels=(
        Panel(
            "curve",
            "saturated fraction (mean over hidden layers) over training",
            key="diag/saturation/",
            layer_mean=True,
        ),
        Panel(
            "curve",
            "z-gradient reaching the first hidden layer over training",
            key=f"{cv.PREACT}0",
            log=True,
            ylabel="gradient w.r.t. first-layer pre-activations (L2, per example)",
        ),
        val_curve(),
    ),
    checks=(
        Check(0, sigma(1), sigma(0.1), says="sigma 1 saturates more units than sigma 0.1"),
        Check(0, sigma(3), sigma(0.3), says="sigma 3 saturates more units than sigma 0.3"),
        Check(
            2,
            sigma(0.1),
            sigma(1),
            says="less gradient reaches the saturated layers' pre-activations: sigma 1 vs 0.1",
        ),
        Check(
            3,
            sigma(0.1),
            sigma(1),
            says="relative to its weights, the saturated first layer gets less gradient",
        ),
        Check(
            1,
            sigma(1),
            sigma(0.1),
            says="the units stay saturated through training (sigma 1 vs 0.1, end)",
        ),
        Check(
            4, sigma(0.1), sigma(1), says="saturated nets learn slower: sigma 1 behind sigma 0.1"
        ),
    ),
    cost_s=2.0,
    caption=(
        "Left: the share of saturated hidden units over the training steps; middle: the gradient "
        "w.r.t. the first hidden layer's pre-activations (log axis); right: validation accuracy. "
        "Verdicts: more saturation: {c0}; less gradient at the pre-activations: {c2}, relative to "
        "the weights: {c3}; slower learning: {c5}."
    ),
)

# -- output loss -----------------------------------------------------------------------------------

LOSS_STEPS = 600
PAIRS = (
    ("softmax", "cross_entropy", "CE"),
    ("softmax", "mse", "MSE"),
    ("sigmoid", "cross_entropy", "CE"),
)
PAIRS += (("sigmoid", "mse", "MSE"),)


def out(output: str, loss: str, gain: int) -> str:
    return f"{output} + {loss}, gain {gain}"


def gap_name(output: str, gain: int) -> str:
    return f"{output}: CE − MSE at gain {gain}"


OUTPUT_LOSS = PairedClaim(
    name="output_loss",
    title="Cross-entropy vs squared error on a saturated output",
    statement=(
        "With a saturated output the squared-error gradient vanishes (it carries the output's "
        "slope), the cross-entropy one does not (its log cancels the exponential): squared error "
        "learns slower, and the more so the more the output saturates."
    ),
    measured=(
        "A 2x128 ReLU MLP (He init) on 10,000 training images whose output layer starts 1x or 20x "
        "its init (`output_gain`; 20 saturates it), softmax or per-class sigmoid outputs, "
        "cross-entropy or squared error. Plain SGD (no momentum), constant learning rate 0.1, no "
        f"weight decay, no clipping, batch 128, {LOSS_STEPS} steps; validation (2,000 images) "
        "every 25 steps. Steps to 80%: updates before the first validation at >= 80%; a run that "
        "never got there counts as such (the speed column is 1000 / steps, 0 for never, and a "
        "group with zeros is compared by counting the runs that got there). Gradient norms of "
        "different losses are not comparable (squared error carries 2/C), so speed is compared, "
        "not norms. The interaction: per seed (same init and data order in every configuration), "
        "CE's val accuracy minus MSE's, at gain 20 against gain 1."
    ),
    variants=tuple(
        Variant(
            out(o, name, g),
            (*loss_pair(loss, o), f"{NET}.output_gain={g}"),
            cell=(f"{o} + {name}", f"gain {g}"),
        )
        for g in (1, 20)
        for o, loss, name in PAIRS
    ),
    gaps=tuple(
        Gap(gap_name(o, g), out(o, "CE", g), out(o, "MSE", g))
        for o in ("softmax", "sigmoid")
        for g in (1, 20)
    ),
    args=(
        STUDY_NET,
        *act("relu", "kaiming_normal"),
        f"{NET}.depth=2",
        f"{NET}.width=128",
        "--data.train_size=10000",
        SMALL_VAL,
        *sgd(0.1),
        *by_steps(LOSS_STEPS, 25, 100),
    ),
    metrics=("val/acc",),
    columns=(
        Column("val acc (last 3 checks)", cv.settled_acc(3), ".2f", 100, "%"),
        Column("speed to 80% (1000/steps; 0: never)", cv.speed_to(0.8), ".2f", log=True),
        Column("steps to 80% (runs that got there)", cv.steps_to(0.8), ".0f"),
    ),
    panels=(
        val_curve(*(out(o, n, 1) for o, _, n in PAIRS)),
        val_curve(*(out(o, n, 20) for o, _, n in PAIRS)),
        Panel("heatmap", "speed to 80% (1000 / steps; 0: never), mean over seeds", column=1),
    ),
    checks=(
        Check(
            1,
            out("softmax", "CE", 20),
            out("softmax", "MSE", 20),
            says="saturated softmax: CE reaches 80% sooner",
        ),
        Check(
            1,
            out("sigmoid", "CE", 20),
            out("sigmoid", "MSE", 20),
            says="saturated sigmoid: CE reaches 80% sooner",
        ),
        Check(
            0,
            out("softmax", "MSE", 1),
            out("softmax", "MSE", 20),
            says="saturation slows softmax + MSE",
        ),
        Check(
            0,
            out("sigmoid", "MSE", 1),
            out("sigmoid", "MSE", 20),
            says="saturation slows sigmoid + MSE",
        ),
        Check(
            0,
            gap_name("softmax", 20),
            gap_name("softmax", 1),
            says="softmax: the CE − MSE gap grows with saturation",
        ),
        Check(
            0,
            gap_name("sigmoid", 20),
            gap_name("sigmoid", 1),
            says="sigmoid: the CE − MSE gap grows with saturation",
        ),
    ),
    cost_s=3.8,
    caption=(
        "Left: validation accuracy over the training steps with the output at its usual init; "
        "middle: the same with the output 20x too large; right: the speed to 80% per configuration "
        "(1000 / steps; 0: never got there). Verdicts: CE sooner on a saturated output: softmax "
        "{c0}, sigmoid {c1}; the gap grows with saturation: softmax {c4}, sigmoid {c5}."
    ),
)

# -- zig-zag ---------------------------------------------------------------------------------------

# (centred, its shift), (shifted, its shift), the function, and the rates: sigmoid's small slope
# wants larger ones (below 0.5 no sigmoid run reached 90% in 400 steps, so the speed check could
# not tell them apart)
PAIRS_ZIG = (
    (("tanh", 0.0), ("tanh + 1", 1.0), "tanh", (0.1, 0.2, 0.5)),
    (("sigmoid − ½", -0.5), ("sigmoid", 0.0), "sigmoid", (0.5, 1.0, 2.0)),
)
ZIG_STEPS = 400
SHOWN = {"tanh": 0.2, "sigmoid": 1.0}  # the rate each pair is drawn at over training


def zig(name: str, lr: float) -> str:
    return f"{name}, lr {lr:g}"


def _zig_variants() -> tuple[Variant, ...]:
    out_ = []
    for pair in PAIRS_ZIG:
        centred, shifted, fn, rates = pair
        for lr in rates:
            for name, shift in (centred, shifted):
                overrides = (
                    *act(fn, "xavier_uniform"),
                    f"{NET}.act_shift={shift:g}",
                    f"--model.optimizer.lr={lr:g}",
                )
                out_.append(Variant(zig(name, lr), overrides, cell=(name, f"lr {lr:g}")))
    return tuple(out_)


def _zig_checks() -> tuple[Check, ...]:
    """Per pair and rate: the cosine (check 2k) and the speed to 90% (check 2k + 1), centred vs
    shifted."""
    out_: list[Check] = []
    for (centred, _), (shifted, _), _, rates in PAIRS_ZIG:
        for lr in rates:
            a, b = zig(centred, lr), zig(shifted, lr)
            says = f"lr {lr:g}: {shifted}'s consecutive updates zig-zag more than {centred}'s"
            out_.append(Check(0, a, b, says=says))
            out_.append(
                Check(1, a, b, says=f"lr {lr:g}: {shifted} reaches 90% later than {centred}")
            )
    return tuple(out_)


def _shown() -> tuple[str, ...]:
    return tuple(zig(name, SHOWN[fn]) for (c, _), (sh, _), fn, _ in PAIRS_ZIG for name in (c, sh))


ZIGZAG = Claim(
    name="zigzag",
    title="Non-zero-centred activations make updates zig-zag",
    statement=(
        "When a layer's inputs are all positive (sigmoid), the gradients of a unit's incoming "
        "weights share one sign, so each step moves them all up or all down and the updates "
        "zig-zag towards the optimum: zero-centred outputs (tanh) train faster."
    ),
    measured=(
        "A 2x128 MLP on 10,000 training images, Xavier init (tanh's gain for both tanh rows); each "
        "pair has the same derivative and differs only in the centre of its outputs: tanh (-1, 1) "
        "vs tanh + 1 (0, 2), sigmoid - ½ (-½, ½) vs sigmoid (0, 1). Plain SGD (no momentum, the "
        "condition of the argument), constant learning rate "
        f"{', '.join(f'{lr:g}' for lr in PAIRS_ZIG[0][3])} for tanh and "
        f"{', '.join(f'{lr:g}' for lr in PAIRS_ZIG[1][3])} for sigmoid, no weight decay, no "
        f"clipping, batch 128, {ZIG_STEPS} steps; validation (2,000 images) every 20 steps. Update "
        "cosine: per unit of layer 1 (the first layer whose inputs are the activation's outputs; "
        "layer 0 sees pixels), the cosine between its incoming weights' updates at two consecutive "
        "steps, averaged over units, measured every 10 steps and averaged over training (-1: back "
        "and forth). Steps to 90% as in the output-loss claim (0 speed: never)."
    ),
    variants=_zig_variants(),
    args=(
        STUDY_NET,
        f"{NET}.depth=2",
        f"{NET}.width=128",
        "--data.train_size=10000",
        SMALL_VAL,
        *sgd(0.1),
        *by_steps(ZIG_STEPS, 20, 10),
        # the probe batch is not needed here: once at the end
        f"{DIAG}.probe_every_n_steps={ZIG_STEPS}",
    ),
    metrics=("val/acc", f"{cv.COSINE}1"),
    columns=(
        Column("update cosine, layer 1", cv.mean_over_training(f"{cv.COSINE}1"), ".3f"),
        Column("speed to 90% (1000/steps; 0: never)", cv.speed_to(0.9), ".2f", log=True),
        Column("steps to 90% (runs that got there)", cv.steps_to(0.9), ".0f"),
        Column("val acc (last 3 checks)", cv.settled_acc(3), ".2f", 100, "%"),
    ),
    panels=(
        Panel(
            "curve",
            "update cosine of layer 1 over training, tanh pair at lr 0.2, sigmoid pair at lr 1",
            key=f"{cv.COSINE}1",
            ylabel="cosine between consecutive updates (per unit, mean)",
            only=_shown(),
        ),
        val_curve(*_shown()),
        Panel("heatmap", "update cosine of layer 1 (mean over training and seeds)", column=0),
    ),
    checks=_zig_checks(),
    cost_s=3.5,
    caption=(
        "Left: the cosine between consecutive updates of layer 1 over the training steps, the tanh "
        "pair at lr 0.2 and the sigmoid pair at lr 1 (below 0: updates reverse); middle: "
        "validation accuracy of the same runs; right: the mean cosine of every configuration (a "
        "cell per activation and rate). Verdicts at those rates: tanh + 1 zig-zags more than tanh: "
        "{c2}, and is slower: {c3}; sigmoid zig-zags more than sigmoid − ½: {c8}, and is slower: "
        "{c9}."
    ),
)
