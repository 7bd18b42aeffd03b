"""Command lines for quick CLI runs on the tiny MNIST of ``mnist_fakes`` (seconds each)."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MLP_CONFIG = str(REPO / "configs" / "net" / "mlp.yaml")
CNN_CONFIG = str(REPO / "configs" / "net" / "cnn.yaml")
LEAN = str(REPO / "tests" / "configs" / "lean.yaml")
QUIET = ["--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false"]


def tiny_args(
    subcommand: str, data_dir: Path, *extra: str, config: str = MLP_CONFIG, lean: bool = True
) -> list[str]:
    """A small, quick run of ``subcommand`` on the tiny MNIST; ``lean``: the core's callbacks only
    (``tests/configs/lean.yaml``), else the shipped defaults' (every part on)."""
    stack = ["--config", config, *(["--config", LEAN] if lean else [])]
    sizes = (
        []
        if lean
        else ["--data.val_size=200", "--data.batch_size=64", "--trainer.log_every_n_steps=5"]
    )
    return [
        subcommand,
        *stack,
        f"--data.data_dir={data_dir}",
        *sizes,
        *([] if lean else QUIET),
        *extra,
    ]


def tiny_cnn(data_dir: Path, *extra: str, lean: bool = True) -> list[str]:
    """A two-block CNN (leaky ReLU, batch norm) fitted for one epoch."""
    blocks = "--model.net.init_args.blocks=[{channels: 8, pool: max}, {channels: 8, pool: max}]"
    net = [
        "--model.net.init_args.head_width=32",
        blocks,
        "--model.net.init_args.activation=leaky_relu",
    ]
    return tiny_args(
        "fit", data_dir, "--trainer.max_epochs=1", *net, *extra, config=CNN_CONFIG, lean=lean
    )
