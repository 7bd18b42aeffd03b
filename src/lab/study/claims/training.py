"""Claims about training: dropout against overfitting, and batch norm's speed, its learning rates,
its two modes."""

from __future__ import annotations

from lab.study.claims import measures as m
from lab.study.claims.base import Check, Claim, Column, Panel
from lab.study.claims.conditions import (
    CB,
    STUDY_CB,
    STUDY_NET,
    at_best,
    difference,
    lowest,
    mean_between,
    sgd,
    steps_to,
)
from lab.study.claims.gradients import act
from lab.study.grid import NET, Variant

DROPOUT_P = (0.0, 0.2, 0.5)
SPLIT_SEEDS = (42, 7)
DROPOUT_LR = 0.01
DROPOUT_EPOCHS = 40
TRAIN_IMAGES = 512


def drop_name(p: float, split: int) -> str:
    return f"dropout {p:g} (split {split})"


def _drop_checks() -> tuple[Check, ...]:
    out = []
    for split in SPLIT_SEEDS:
        none, half, fifth = (drop_name(p, split) for p in (0.0, 0.5, 0.2))
        out += [
            Check(
                0,
                half,
                none,
                lower=True,
                says=f"dropout 0.5 lowers the best validation loss (split {split})",
            ),
            Check(1, half, none, says=f"dropout 0.5 raises validation accuracy (split {split})"),
            Check(1, fifth, none, says=f"dropout 0.2 raises validation accuracy (split {split})"),
            Check(
                3,
                half,
                none,
                lower=True,
                says=f"dropout 0.5 narrows the train - val gap (split {split})",
            ),
        ]
    return tuple(out)


DROPOUT = Claim(
    name="dropout",
    title="Dropout against overfitting",
    statement=(
        "A wide network trained long on few images fits them far better than the validation set; "
        "dropout narrows that gap and gives a better validation loss and accuracy."
    ),
    measured=(
        f"A 2x256 ReLU MLP with He init on {TRAIN_IMAGES:,} training images (`--data.train_size`), "
        f"dropout {', '.join(f'{p:g}' for p in DROPOUT_P)} after each hidden layer, "
        f"{DROPOUT_EPOCHS} epochs (4 batches of 128 each, 160 steps), SGD momentum 0.9, lr "
        f"{DROPOUT_LR:g} constant, no weight decay, no clipping; validation on 2,000 held-out "
        f"images every 2 epochs. Two train/validation splits (`--data.split_seed` {SPLIT_SEEDS[0]} "
        f"and {SPLIT_SEEDS[1]}: other training images, other validation images). Training accuracy "
        "is measured in eval mode (dropout off) on the whole training subset after each epoch; the "
        "best epoch is the validation with the lowest validation loss."
    ),
    variants=tuple(
        Variant(drop_name(p, split), (f"{NET}.dropout={p}", f"--data.split_seed={split}"))
        for split in SPLIT_SEEDS
        for p in DROPOUT_P
    ),
    args=(
        STUDY_CB,
        *act("relu", "kaiming_normal"),
        f"{NET}.depth=2",
        f"{NET}.width=256",
        *sgd(DROPOUT_LR),
        f"--data.train_size={TRAIN_IMAGES}",
        f"--trainer.max_epochs={DROPOUT_EPOCHS}",
        "--trainer.check_val_every_n_epoch=2",
        "--trainer.limit_val_batches=2",
        f"{CB}.every_n_steps=80",
        f"{CB}.probe_every_n_steps=160",
        f"{CB}.train_eval=true",
    ),
    metrics=("val/acc", "val/loss", "study/train_eval_acc"),
    columns=(
        Column("val loss (best epoch)", lowest("val/loss"), ".4f"),
        Column("val acc (best epoch)", at_best("val/acc"), ".2f", 100, "%"),
        Column(
            "train acc, eval mode (end)", lambda r: r.last("study/train_eval_acc"), ".2f", 100, "%"
        ),
        Column(
            "train (eval mode) - val acc (end)",
            difference("study/train_eval_acc", "val/acc"),
            ".2f",
            100,
            " pt",
        ),
        Column("val loss (end)", lambda r: r.last("val/loss"), ".4f"),
    ),
    panels=(
        Panel(
            "curve",
            "training accuracy (eval mode, whole subset) minus validation accuracy",
            key="study/train_eval_acc",
            minus="val/acc",
            ylabel="training - validation accuracy (points)",
            only=tuple(drop_name(p, SPLIT_SEEDS[0]) for p in DROPOUT_P),
        ),
        Panel(
            "curve",
            "validation loss",
            key="val/loss",
            ylabel="validation cross-entropy (nats per image)",
            only=tuple(drop_name(p, SPLIT_SEEDS[0]) for p in DROPOUT_P),
        ),
        Panel("points", "validation accuracy at the best epoch", column=1),
    ),
    checks=_drop_checks(),
    caption=(
        "Left: eval-mode training accuracy minus validation accuracy (points) over training steps, "
        f"split {SPLIT_SEEDS[0]}; middle: validation loss over training steps (it rises again once "
        "the network overfits); right: validation accuracy (%) at the best epoch for every "
        "configuration, mean ± std over seeds. The verdicts for dropout 0.5 (split 42, split 7): a "
        "lower best validation loss {c0}, {c4}; a narrower gap {c3}, {c7}; a higher accuracy at "
        "the best epoch {c1}, {c5} (dropout 0.2: {c2}, {c6})."
    ),
    cost_s=4.5,  # CPU seconds of a warm run (measured under load, 1 thread) minus the 4 s start
)

BN_LRS = (0.01, 0.1, 1.0)
BN_STEPS = 500
BN_EVERY = 25
GAP_LR = 0.1


def bn_name(bn: bool, lr: float, momentum: float = 0.1) -> str:
    return f"{'BN' if bn else 'no BN'} lr={lr:g}" + (
        f" momentum {momentum:g}" if momentum != 0.1 else ""
    )


def _bn_variants() -> tuple[Variant, ...]:
    out = [
        Variant(
            bn_name(bn, lr),
            (f"{NET}.batch_norm={str(bn).lower()}", *sgd(lr)),
            cell=("BN" if bn else "no BN", f"lr {lr:g}"),
        )
        for bn in (False, True)
        for lr in BN_LRS
    ]
    out.append(
        Variant(
            bn_name(True, GAP_LR, 0.01),
            (f"{NET}.batch_norm=true", f"{NET}.bn_momentum=0.01", *sgd(GAP_LR)),
        )
    )
    return tuple(out)


BATCH_NORM = Claim(
    name="batch_norm",
    title=(
        "Batch norm trains faster and tolerates a higher learning rate; its running statistics lag"
    ),
    statement=(
        "Batch norm reaches a given accuracy in fewer steps and tolerates a higher learning rate; "
        "in train mode it normalises with the batch's statistics, in eval mode with running "
        "averages, which lag behind the weights early in training (more so with a small momentum)."
    ),
    measured=(
        "A 4x128 ReLU MLP with He init, batch norm before each activation or none, SGD momentum "
        f"0.9 at a constant lr {', '.join(f'{lr:g}' for lr in BN_LRS)}, no weight decay, no "
        f"clipping, batch 128, {BN_STEPS} steps (5 epochs of 100 batches), validation on 1,000 "
        f"images every {BN_EVERY} steps. Steps to 95% validation accuracy: the first validation "
        f"reaching it; a run that never does counts as {BN_STEPS + BN_EVERY} (the next validation "
        "after the end), and so does a run that diverged (NaN loss: the template stops it and the "
        "run ends FAILED), whose final accuracy counts as chance, 10%. Mode gap: on the "
        "diagnostics' 512 probe images, accuracy in eval mode (running statistics) minus train "
        "mode (the batch's own statistics), measured every 10 steps after the updates (steps "
        f"10-100), at lr {GAP_LR:g} with BN momentum 0.1 (torch's default) and 0.01."
    ),
    variants=_bn_variants(),
    args=(
        STUDY_CB,
        STUDY_NET,
        *act("relu", "kaiming_normal"),
        f"{NET}.width=128",
        "--trainer.max_epochs=5",
        "--trainer.limit_train_batches=100",
        "--trainer.val_check_interval=0.25",
        "--trainer.limit_val_batches=1",
        f"{CB}.every_n_steps=10",
        f"{CB}.probe_every_n_steps=10",
    ),
    metrics=("val/acc", "diag/mode_gap/gap"),
    columns=(
        Column(
            f"steps to 95% (never: {BN_STEPS + BN_EVERY})",
            steps_to("val/acc", 0.95, BN_STEPS + BN_EVERY),
            ".0f",
            failed=BN_STEPS + BN_EVERY,
        ),
        Column("val acc (end; diverged: 10%)", m.val_acc, ".2f", 100, "%", failed=0.1),
        Column(
            "eval - train mode acc, steps 10-100 (fraction)",
            mean_between("diag/mode_gap/gap", 10, 100),
            ".4f",
        ),
    ),
    panels=(
        Panel(
            "heatmap", f"steps to 95% validation accuracy ({BN_STEPS + BN_EVERY}: never)", column=0
        ),
        Panel(
            "curve",
            "validation accuracy",
            key="val/acc",
            only=tuple(bn_name(b, BN_LRS[1]) for b in (0, 1)),
        ),
        Panel(
            "curve",
            f"eval minus train mode accuracy, BN at lr {GAP_LR:g}",
            key="diag/mode_gap/gap",
            ylabel="eval - train mode accuracy (fraction of probe images)",
            only=(bn_name(True, GAP_LR), bn_name(True, GAP_LR, 0.01)),
        ),
    ),
    caption=(
        f"Left: steps to 95% validation accuracy, mean over seeds ({BN_STEPS + BN_EVERY}: never); "
        f"middle: validation accuracy (%) over training steps at lr {BN_LRS[1]:g}; right: eval "
        "minus train mode accuracy (fraction of the probe images) over training steps for BN "
        "momentum 0.1 and 0.01, below 0 where the running statistics lag. The verdicts: fewer "
        "steps to 95% at each lr {c0}, {c1}, {c2}; tolerates the highest lr {c3}; running "
        "statistics lag {c4}, more with momentum 0.01 {c5}."
    ),
    checks=(
        *(
            Check(
                0,
                bn_name(True, lr),
                bn_name(False, lr),
                lower=True,
                says=f"BN reaches 95% in fewer steps (lr {lr:g})",
            )
            for lr in BN_LRS
        ),
        Check(
            1,
            bn_name(True, BN_LRS[-1]),
            bn_name(False, BN_LRS[-1]),
            says=f"BN tolerates a higher LR: at lr {BN_LRS[-1]:g} it ends higher",
        ),
        Check(
            2,
            bn_name(True, GAP_LR),
            "0",
            level=0.0,
            lower=True,
            says="running statistics lag early (momentum 0.1)",
        ),
        Check(
            2,
            bn_name(True, GAP_LR, 0.01),
            bn_name(True, GAP_LR),
            lower=True,
            says="they lag more with momentum 0.01",
        ),
    ),
    # CPU seconds of a warm run (measured under load, 1 thread) minus the 4 s start
    cost_s=7.3,
)
