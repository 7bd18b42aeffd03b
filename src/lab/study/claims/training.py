"""Claims about training: dropout against overfitting, and batch norm's speed and its two modes."""

from __future__ import annotations

from lab.study.claims import measures as m
from lab.study.claims.base import Check, Claim, Column, Panel
from lab.study.claims.gradients import VAL_CURVE, act
from lab.study.grid import NET, Variant

DROPOUT = Claim(
    name="dropout",
    title="Dropout against overfitting",
    statement=(
        "A wide MLP on few images fits its training set far better than the validation set; dropout narrows "
        "that gap. In eval mode (dropout off) the network scores higher than in train mode."
    ),
    measured=(
        "A 2x1024 ReLU MLP on 5,000 training images (`--data.train_size=5000`, validation unchanged), 10 epochs, "
        "dropout 0 and 0.5. Train accuracy (train mode) minus val accuracy by epoch; probe-batch accuracy in "
        "eval mode minus train mode at the end."
    ),
    variants=(
        Variant("no dropout", (f"{NET}.dropout=0.0",)),
        Variant("dropout 0.5", (f"{NET}.dropout=0.5",)),
    ),
    args=(
        *act("relu", "kaiming_normal"),
        f"{NET}.depth=2",
        f"{NET}.width=1024",
        "--data.train_size=5000",
        "--trainer.max_epochs=10",
        "--trainer.callbacks.init_args.every_n_steps=40",
        "--trainer.callbacks.init_args.probe_every_n_steps=40",
    ),
    metrics=("val/acc", "train/acc", "diag/mode_gap/gap"),
    columns=(
        Column("train - val acc (end)", m.train_val_gap, ".2f", 100, " pt"),
        Column("val acc (end)", m.val_acc, ".2f", 100, "%"),
        Column("eval - train mode acc", m.mode_gap("last"), ".2f", 100, " pt"),
    ),
    panels=(
        Panel(
            "curve",
            "training minus validation accuracy after each epoch",
            key="train/acc",
            minus="val/acc",
            ylabel="training - validation accuracy (points)",
        ),
        VAL_CURVE,
    ),
    checks=(Check(0, "dropout 0.5", "no dropout", lower=True), Check(2, "dropout 0.5", "no dropout")),
    cost_s=30.0,
)

BN_LR = "0.01"

BATCH_NORM = Claim(
    name="batch_norm",
    title="Batch norm trains faster, at a higher learning rate too",
    statement=(
        "Batch norm reaches a given accuracy in fewer epochs and tolerates a higher learning rate; in train mode "
        "it normalises with the batch's statistics, in eval mode with running ones, which lag at the start."
    ),
    measured=(
        f"A 4x256 ReLU MLP with He init, 16 epochs of 50 batches (an 'epoch' here is 50 batches), lr 1e-3 and "
        f"{BN_LR}, BN off and on. First epoch with val accuracy >= 97% (n counts the seeds that reached it); val "
        "accuracy after epoch 3; probe-batch accuracy in eval minus train mode at step 0 and at the end."
    ),
    variants=(
        Variant("no BN", ()),
        Variant("BN", (f"{NET}.batch_norm=true",)),
        Variant(f"no BN lr={BN_LR}", (f"--model.optimizer.init_args.lr={BN_LR}",)),
        Variant(f"BN lr={BN_LR}", (f"{NET}.batch_norm=true", f"--model.optimizer.init_args.lr={BN_LR}")),
    ),
    args=(
        *act("relu", "kaiming_normal"),
        "--trainer.max_epochs=16",
        "--trainer.limit_train_batches=50",
        "--trainer.callbacks.init_args.every_n_steps=50",
        "--trainer.callbacks.init_args.probe_every_n_steps=50",
    ),
    metrics=("val/acc", "diag/mode_gap/gap"),
    columns=(
        Column("epochs to 97%", m.epochs_to(0.97), ".1f"),
        Column("val acc epoch 3", m.val_acc_at(3), ".2f", 100, "%"),
        Column("val acc (end)", m.val_acc, ".2f", 100, "%"),
        Column("eval - train mode (step 0)", m.mode_gap("first"), ".2f", 100, " pt"),
        Column("eval - train mode (end)", m.mode_gap("last"), ".2f", 100, " pt"),
    ),
    panels=(VAL_CURVE, Panel("points", "val accuracy after epoch 3", column=1)),
    checks=(Check(1, "BN", "no BN"), Check(1, f"BN lr={BN_LR}", f"no BN lr={BN_LR}")),
    cost_s=15.0,
)
