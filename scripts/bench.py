"""`make bench`: what the template costs per epoch against a hand-written PyTorch loop.

    python scripts/bench.py --data-dir ../shared/data [--models mlp cnn] [--epochs 4] [--quick]

For each model (the network, optimiser and batch size of ``configs/net/<model>.yaml`` over the CLI's
``configs/defaults.yaml``), in one process:

  (a)   hand    a hand-written loop over the datamodule's tensors: forward, loss, backward, step;
  (a')  floor   a minimal LightningModule over the same tensors (no logging, metrics or callbacks);
  (b)   lean    the template (``TemplateCLI`` from the config) with only its checkpoint and
              recovery callbacks, no logger, no progress bar;
  (c)   default the template at its defaults (MLflow run in a throwaway store, diagnostics,
              progress bar);
  (d0)  tv0     (b) fed by ``torchvision.datasets.MNIST`` + ``ToTensor``/``Normalize`` +
              ``DataLoader``;
  (d2)  tv2     the same with ``num_workers=2``.

(a) and (a') use a hand-written ``nn.Sequential`` with the config's layer sizes (its parameter count
is checked against the template's network), the config's optimiser, no clipping and no schedule;
they apply the config's batched augmentation when it has one, so every variant does the same work.
An epoch is one training pass plus one validation pass; its time is the median over the epochs after
the first (warm-up), as wall time and as this process's CPU time (``time.process_time``: on a
machine shared with other jobs, the CPU time of a single-threaded run is the steadier of the two;
DataLoader workers' CPU is not in it). Images per second count training plus validation images.
Writes ``<out>.json`` and ``<out>.md`` and logs both, with every figure, to MLflow (experiment
``bench``); ``--quick`` (a smoke run, no measurement) writes to the untracked
``outputs/bench_quick.*`` and says so.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
import yaml
from torch import Tensor, nn

from mnist_lab.cli import CONFIG_DIR, DEFAULT_CONFIGS, TemplateCLI
from mnist_lab.data.augment import random_affine
from mnist_lab.data.mnist_datamodule import MNIST_MEAN, MNIST_STD, MNISTDataModule
from mnist_lab.models.classifier import Classifier
from mnist_lab.models.components.cnn import ConvBlockSpec

REPO = Path(__file__).resolve().parents[1]
VARIANTS = {
    "hand": "(a) hand-written loop",
    "floor": "(a') minimal LightningModule",
    "lean": "(b) template, logger/diagnostics/bar off",
    "default": "(c) template at its defaults",
    "tv0": "(d) torchvision DataLoader, 0 workers",
    "tv2": "(d) torchvision DataLoader, 2 workers",
}
RATIOS = {  # name: (numerator, denominator), on epoch time
    "(a')/(a)": ("floor", "hand"),
    "(b)/(a')": ("lean", "floor"),
    "(c)/(a')": ("default", "floor"),
    "(c)/(a)": ("default", "hand"),
    "(d0)/(b)": ("tv0", "lean"),
    "(d2)/(b)": ("tv2", "lean"),
}
TARGETS = {  # issue 9's, on wall time: model -> ratio -> at most
    "mlp": {"(b)/(a')": 1.10, "(c)/(a')": 1.20, "(c)/(a)": 1.35},
    "cnn": {"(b)/(a')": 1.10, "(c)/(a')": 1.20, "(c)/(a)": 1.15},
}


def verdict(per_repeat: list[float], target: float) -> str:
    """``met`` if every repeat's ratio is within the target, ``missed`` if none is; else the repeats
    disagree, and the machine's noise, not the template, decides a verdict from their median."""
    if max(per_repeat) <= target:
        return "met"
    if min(per_repeat) > target:
        return "missed"
    return "within the noise"


# ---- the hand-written networks -------------------------------------------------------------------
def hand_mlp(net_args: dict[str, Any]) -> nn.Module:
    """``configs/net/mlp.yaml``'s MLP written out: Linear, ReLU, Dropout per hidden layer."""
    widths = net_args.get("hidden_sizes") or [net_args.get("width", 512)] * net_args.get("depth", 2)
    layers: list[nn.Module] = [nn.Flatten()]
    features = 28 * 28
    for width in widths:
        layers += [nn.Linear(features, width, bias=not net_args.get("batch_norm", False))]
        layers += [nn.BatchNorm1d(width)] if net_args.get("batch_norm", False) else []
        layers += [nn.ReLU()] + (
            [nn.Dropout(net_args["dropout"])] if net_args.get("dropout", 0) > 0 else []
        )
        features = width
    return nn.Sequential(*layers, nn.Linear(features, 10))


def hand_cnn(net_args: dict[str, Any]) -> nn.Module:
    """``configs/net/cnn.yaml``'s CNN written out: Conv, BatchNorm, ReLU, [MaxPool], Dropout; then
    the dense head."""
    drop, layers, channels, size = net_args.get("dropout", 0.0), [], 1, 28
    for block in (
        b if isinstance(b, ConvBlockSpec) else ConvBlockSpec(**b) for b in net_args["blocks"]
    ):
        layers += [
            nn.Conv2d(
                channels, block.channels, block.kernel_size, padding=block.padding, bias=False
            )
        ]
        layers += [nn.BatchNorm2d(block.channels), nn.ReLU()]
        if block.pool == "max":
            layers.append(nn.MaxPool2d(2))
            size //= 2
        layers += [nn.Dropout(drop)] if drop > 0 else []
        channels = block.channels
    head = net_args["head_width"]
    layers += [
        nn.Flatten(),
        nn.Linear(channels * size * size, head, bias=False),
        nn.BatchNorm1d(head),
        nn.ReLU(),
    ]
    layers += [nn.Dropout(drop)] if drop > 0 else []
    return nn.Sequential(*layers, nn.Linear(head, 10))


HAND_NETS = {"mlp": hand_mlp, "cnn": hand_cnn}


# ---- shared pieces -------------------------------------------------------------------------------
class Batches:
    """Shuffled (or ordered) batches cut from tensors with one gather each: what a hand loop
    does."""

    def __init__(
        self, x: Tensor, y: Tensor, batch_size: int, shuffle: bool, limit: int | None
    ) -> None:
        self.x, self.y, self.batch_size, self.shuffle = x, y, batch_size, shuffle
        self.n = -(-len(y) // batch_size) if limit is None else min(limit, -(-len(y) // batch_size))

    def __len__(self) -> int:
        return self.n

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        order = torch.randperm(len(self.y)) if self.shuffle else torch.arange(len(self.y))
        for idx in order.split(self.batch_size)[: self.n]:
            yield self.x[idx], self.y[idx]


def augmenter(data: MNISTDataModule) -> Callable[[Tensor], Tensor]:
    h = data.hparams
    if not h.augment:
        return lambda x: x
    bg = -MNIST_MEAN / MNIST_STD
    return lambda x: random_affine(
        x, degrees=h.augment_degrees, translate=h.augment_translate, background=bg
    )


class EpochTimer(L.Callback):
    """Wall time of each training epoch, its validation pass included (Lightning 2 validates inside
    it)."""

    def __init__(self) -> None:
        self.times: list[tuple[float, float]] = []

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start = clocks()

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.times.append(since(self._start))


def clocks() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def since(start: tuple[float, float]) -> tuple[float, float]:
    wall, cpu = clocks()
    return wall - start[0], cpu - start[1]


# ---- (a) and (a') --------------------------------------------------------------------------------
def run_hand(ctx: dict[str, Any]) -> list[tuple[float, float]]:
    net, opt, train, val, aug = ctx["hand_net"](), None, ctx["train"], ctx["val"], ctx["augment"]
    opt = ctx["optimizer"](net.parameters())
    times = []
    for _ in range(ctx["epochs"]):
        start = clocks()
        net.train()
        for x, y in train:
            loss = F.cross_entropy(net(aug(x)), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        net.eval()
        with torch.inference_mode():
            correct = sum(int((net(x).argmax(1) == y).sum()) for x, y in val)
        times.append(since(start))
        ctx.setdefault("hand_val_acc", []).append(correct / ctx["val_images"])
    return times


class Minimal(L.LightningModule):
    def __init__(
        self, net: nn.Module, optimizer: Callable, augment: Callable[[Tensor], Tensor]
    ) -> None:
        super().__init__()
        self.net, self.optimizer_factory, self.augment = net, optimizer, augment

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        x, y = batch
        return F.cross_entropy(self.net(self.augment(x)), y)

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        x, y = batch
        self.net(x).argmax(1)

    def configure_optimizers(self) -> Any:
        return self.optimizer_factory(self.parameters())


def run_floor(ctx: dict[str, Any]) -> list[tuple[float, float]]:
    timer = EpochTimer()
    trainer = L.Trainer(
        max_epochs=ctx["epochs"],
        logger=False,
        callbacks=[timer],
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        num_sanity_val_steps=0,
        default_root_dir=ctx["tmp"],
    )
    model = Minimal(ctx["hand_net"](), ctx["optimizer"], ctx["augment"])
    trainer.fit(model, train_dataloaders=ctx["train"], val_dataloaders=ctx["val"])
    return timer.times


# ---- (b), (c), (d): the template through its own CLI ---------------------------------------------
def template_config(ctx: dict[str, Any], lean: bool) -> Path:
    """Over the model's network: the run's length, a throwaway store, and for (b) the extras off."""
    trainer: dict[str, Any] = {
        "max_epochs": ctx["epochs"],
        "default_root_dir": str(ctx["tmp"] / "outputs"),
    }
    if ctx["limit_train"] is not None:
        trainer.update(limit_train_batches=ctx["limit_train"], limit_val_batches=ctx["limit_val"])
    data = {"data_dir": str(ctx["data_dir"])}
    config: dict[str, Any] = {"trainer": trainer, "data": {"init_args": data}, "run_test": False}
    if ctx["val_size"] is not None:
        data["val_size"] = ctx["val_size"]
    if lean:  # the defaults' checkpoints and recovery; no logger, so nothing that logs
        trainer.update(logger=False, enable_progress_bar=False)
        defaults = yaml.safe_load((CONFIG_DIR / "defaults.yaml").read_text())["trainer"][
            "callbacks"
        ]
        kept = ("ModelCheckpoint", "Recovery")
        trainer["callbacks"] = [c for c in defaults if c["class_path"].endswith(kept)]
    else:
        store = {"tracking_uri": f"sqlite:///{ctx['tmp'] / 'mlflow.db'}"}
        store["artifact_location"] = (ctx["tmp"] / "artifacts").as_uri()
        trainer["logger"] = {"class_path": "mnist_lab.tracking.RunLogger", "init_args": store}
    path = ctx["tmp"] / f"{ctx['model']}-{'lean' if lean else 'default'}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def build_template(ctx: dict[str, Any], lean: bool) -> TemplateCLI:
    """The template as ``make train MODEL=<model>`` builds it (network, its recipe), plus the run's
    settings."""
    # what `make train MODEL=<model>` stacks too
    recipe = CONFIG_DIR / "recipes" / f"{ctx['model']}.yaml"
    stack = [CONFIG_DIR / "net" / f"{ctx['model']}.yaml", *([recipe] if recipe.is_file() else [])]
    args = [arg for path in stack for arg in ("--config", str(path))] + [
        "--config",
        str(template_config(ctx, lean)),
    ]
    return TemplateCLI(
        Classifier,
        L.LightningDataModule,
        subclass_mode_data=True,
        save_config_callback=None,
        auto_configure_optimizers=False,
        parser_kwargs={"default_config_files": [str(f) for f in DEFAULT_CONFIGS]},
        seed_everything_default=42,
        args=args,
        run=False,
    )


def run_template(
    ctx: dict[str, Any], lean: bool, datamodule: L.LightningDataModule | None = None
) -> list[tuple[float, float]]:
    cli = build_template(ctx, lean)
    timer = EpochTimer()
    cli.trainer.callbacks.append(timer)
    data = datamodule or cli.datamodule
    if datamodule is not None:
        datamodule.hparams.augment = cli.datamodule.hparams.augment
    cli.trainer.fit(cli.model, datamodule=data)
    return timer.times


class TorchvisionMNIST(MNISTDataModule):
    """The usual baseline: per-sample ``torchvision.datasets.MNIST`` + ``ToTensor``/``Normalize`` +
    ``DataLoader``, over the same train/validation split; batch augmentation as in the template."""

    def __init__(
        self, data_dir: str, batch_size: int, eval_batch_size: int, val_size: int, workers: int
    ) -> None:
        super().__init__(
            data_dir, batch_size=batch_size, eval_batch_size=eval_batch_size, val_size=val_size
        )
        self.workers = workers

    def setup(self, stage: str | None = None) -> None:
        from torch.utils.data import Subset
        from torchvision import datasets, transforms

        pipeline = transforms.Compose(
            [transforms.ToTensor(), transforms.Normalize((MNIST_MEAN,), (MNIST_STD,))]
        )
        full = datasets.MNIST(str(self.data_dir), train=True, transform=pipeline)
        order = torch.randperm(
            len(full), generator=torch.Generator().manual_seed(self.hparams.split_seed)
        )
        n_val = self.hparams.val_size
        self.val_set, self.train_set = (
            Subset(full, order[:n_val].tolist()),
            Subset(full, order[n_val:].tolist()),
        )

    def _tv_loader(self, data: Any, batch_size: int, shuffle: bool) -> torch.utils.data.DataLoader:
        return torch.utils.data.DataLoader(
            data,
            batch_size=batch_size,
            shuffle=shuffle,
            num_workers=self.workers,
            persistent_workers=self.workers > 0,
        )

    def train_dataloader(self) -> torch.utils.data.DataLoader:
        return self._tv_loader(self.train_set, self.hparams.batch_size, shuffle=True)

    def val_dataloader(self) -> torch.utils.data.DataLoader:
        return self._tv_loader(self.val_set, self.hparams.eval_batch_size, shuffle=False)


def torchvision_data(ctx: dict[str, Any], workers: int) -> TorchvisionMNIST:
    return TorchvisionMNIST(
        str(ctx["data_dir"]), ctx["batch_size"], ctx["eval_batch_size"], ctx["val_size"], workers
    )


RUNNERS: dict[str, Callable[[dict[str, Any]], list[tuple[float, float]]]] = {
    "hand": run_hand,
    "floor": run_floor,
    "lean": lambda ctx: run_template(ctx, lean=True),
    "default": lambda ctx: run_template(ctx, lean=False),
    "tv0": lambda ctx: run_template(ctx, lean=True, datamodule=torchvision_data(ctx, workers=0)),
    "tv2": lambda ctx: run_template(ctx, lean=True, datamodule=torchvision_data(ctx, workers=2)),
}


# ---- the parts of a step that the profile pointed at --------------------------------------------
def parts(ctx: dict[str, Any], repeats: int = 200) -> dict[str, float]:
    """Milliseconds per call of what a training step does besides forward and backward."""
    from torchmetrics import MeanMetric
    from torchmetrics.classification import MulticlassAccuracy

    net = ctx["hand_net"]()
    for p in net.parameters():
        # under the clipping limit, the usual case late in training
        p.grad = torch.randn_like(p) * 1e-4
    n = ctx["batch_size"]
    preds, labels, loss = torch.randint(0, 10, (n,)), torch.randint(0, 10, (n,)), torch.rand(())
    acc, mean = MulticlassAccuracy(10, average="micro"), MeanMetric()
    acc_lean = MulticlassAccuracy(10, average="micro", validate_args=False)
    plain = torch.optim.AdamW(net.parameters(), lr=1e-9, weight_decay=1e-4)
    fused = torch.optim.AdamW(net.parameters(), lr=1e-9, weight_decay=1e-4, fused=True)
    params = list(net.parameters())
    calls = {
        "AdamW step, PyTorch's CPU default (for-loop)": plain.step,
        "AdamW step, fused=True": fused.step,
        "clip_grad_norm_ (norm + rescale)": lambda: torch.nn.utils.clip_grad_norm_(params, 1e9),
        "gradient norm only": lambda: torch.nn.utils.get_total_norm([p.grad for p in params]),
        "torchmetrics forward: accuracy + mean (per-step values)": lambda: (
            acc(preds, labels),
            mean(loss),
        ),
        "torchmetrics update only, no validation": lambda: (
            acc_lean.update(preds, labels),
            mean.update(loss),
        ),
    }
    out = {}
    for name, call in calls.items():
        for _ in range(10):
            call()
        start = time.process_time()
        for _ in range(repeats):
            call()
        out[name] = (time.process_time() - start) / repeats * 1e3
    return out


# ---- one model -----------------------------------------------------------------------------------
def context(model: str, args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    """Everything (a) and (a') share with the template: its data tensors, optimiser and network
    sizes."""
    ctx: dict[str, Any] = {
        "model": model,
        "epochs": args.epochs,
        "data_dir": Path(args.data_dir),
        "tmp": tmp,
    }
    ctx["limit_train"], ctx["limit_val"] = args.limit_train_batches, args.limit_val_batches
    ctx["val_size"] = args.val_size
    cli = build_template(ctx, lean=True)
    dm, net = cli.datamodule, cli.model.net
    dm.prepare_data()
    dm.setup("fit")
    ctx["batch_size"], ctx["eval_batch_size"] = dm.hparams.batch_size, dm.hparams.eval_batch_size
    ctx["val_size"] = dm.hparams.val_size
    net_args = cli.config["model"]["net"]["init_args"].as_dict()
    ctx["hand_net"] = lambda: HAND_NETS[model](net_args)
    n_template, n_hand = (sum(p.numel() for p in m.parameters()) for m in (net, ctx["hand_net"]()))
    if n_template != n_hand:
        raise SystemExit(
            f"error: the hand-written {model} has {n_hand} parameters, the template's {n_template}"
        )
    ctx["params"] = n_template
    ctx["optimizer"] = cli.model.optimizer_factory
    ctx["optimizer_repr"] = repr(ctx["optimizer"](nn.Linear(1, 1).parameters())).replace("\n", " ")
    ctx["augment"] = augmenter(dm)
    train, val = dm._splits["train"], dm._splits["val"]
    ctx["train"] = Batches(train.images, train.labels, ctx["batch_size"], True, ctx["limit_train"])
    ctx["val"] = Batches(val.images, val.labels, ctx["eval_batch_size"], False, ctx["limit_val"])
    n_train = min(len(train), len(ctx["train"]) * ctx["batch_size"])
    ctx["val_images"] = min(len(val), len(ctx["val"]) * ctx["eval_batch_size"])
    ctx["images_per_epoch"] = n_train + ctx["val_images"]
    return ctx


def bench_model(model: str, args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    ctx = context(model, args, tmp)
    rows: dict[str, list[tuple[float, float]]] = {v: [] for v in args.variants}
    # each repeat's median epoch, wall
    repeat_s: dict[str, list[float]] = {v: [] for v in args.variants}
    # interleaved, so drift in the machine's load hits every variant alike
    for _ in range(args.repeats):
        for variant in args.variants:
            L.seed_everything(42, verbose=False)
            times = RUNNERS[variant](ctx)
            timed = times[1:] if len(times) > 1 else times  # the first epoch is the warm-up
            rows[variant] += timed
            repeat_s[variant].append(statistics.median(t[0] for t in timed))
            shown = " ".join(f"{w:6.2f}/{c:.2f}" for w, c in times)
            print(f"  {model:<4} {variant:<8} wall/cpu s: {shown}", flush=True)
    result: dict[str, Any] = {
        "params": ctx["params"],
        "optimizer": ctx["optimizer_repr"],
        "batch_size": ctx["batch_size"],
        "eval_batch_size": ctx["eval_batch_size"],
        "images_per_epoch": ctx["images_per_epoch"],
        "variants": {},
    }
    for variant, times in rows.items():
        wall, cpu = statistics.median(t[0] for t in times), statistics.median(t[1] for t in times)
        result["variants"][variant] = {
            "label": VARIANTS[variant],
            "epoch_s": wall,
            "epoch_cpu_s": cpu,
            "images_per_s": ctx["images_per_epoch"] / wall,
            "epochs_timed": len(times),
            "epoch_times_s": [t[0] for t in times],
            "epoch_cpu_times_s": [t[1] for t in times],
        }
    result["parts_ms"] = parts(ctx)
    v = result["variants"]
    pairs = [(name, a, b) for name, (a, b) in RATIOS.items() if a in v and b in v]
    result["ratios"] = {name: v[a]["epoch_s"] / v[b]["epoch_s"] for name, a, b in pairs}
    result["cpu_ratios"] = {name: v[a]["epoch_cpu_s"] / v[b]["epoch_cpu_s"] for name, a, b in pairs}
    by_repeat = {
        name: [x / y for x, y in zip(repeat_s[a], repeat_s[b], strict=True)] for name, a, b in pairs
    }
    result["ratios_by_repeat"] = by_repeat
    result["targets"] = {  # no verdict from a quick run: it measures nothing
        name: {
            "at_most": at_most,
            "verdict": "none (quick mode)" if args.quick else verdict(by_repeat[name], at_most),
        }
        for name, at_most in TARGETS.get(model, {}).items()
        if name in by_repeat
    }
    return result


# ---- report --------------------------------------------------------------------------------------
def machine() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {
        "cpu": cpu,
        "cpu_cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "gpu": gpu,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "lightning": L.__version__,
        "load_avg_at_start": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
    }


QUICK_CAVEAT = (
    "**Quick mode: a few batches, to check that the bench runs; "
    "its times and ratios measure nothing.**"
)


def markdown(report: dict[str, Any]) -> str:
    m = report["machine"]
    lines = [
        f"`{report['command']}`  ",
        f"{m['cpu']}, {m['cpu_cores']} cores ({m['torch_threads']} torch threads), GPU: "
        f"{m['gpu'] or 'none'}; torch {m['torch']}, Lightning {m['lightning']}; "
        f"{report['repeats']} interleaved repeats of {report['epochs']} epochs per variant, the "
        f"first of each left out; {'quick mode; ' if report['quick'] else ''}load average at start "
        f"{m['load_avg_at_start']:.2f}; {report['date']}.",
        "",
        *([QUICK_CAVEAT, ""] if report["quick"] else []),
        "| model | variant | epoch wall s (median) | epoch CPU s (median) | images/s (wall) |",
        "|---|---|---|---|---|",
    ]
    for model, res in report["models"].items():
        for v in res["variants"].values():
            cells = f"{v['epoch_s']:.2f} | {v['epoch_cpu_s']:.2f} | {v['images_per_s']:,.0f}"
            lines.append(f"| {model} | {v['label']} | {cells} |")
    names = list(RATIOS)
    lines += [
        "",
        "| model | clock | " + " | ".join(names) + " |",
        "|---|---|" + "---|" * len(names),
    ]
    for model, res in report["models"].items():
        for clock, key in (("wall", "ratios"), ("CPU", "cpu_ratios")):
            cells = [f"{res[key][n]:.2f}" if n in res[key] else "—" for n in names]
            lines.append(f"| {model} | {clock} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "| model | target | median (wall) | each repeat | verdict |",
        "|---|---|---|---|---|",
    ]
    for model, res in report["models"].items():
        for name, target in res["targets"].items():
            each = ", ".join(f"{r:.2f}" for r in res["ratios_by_repeat"][name])
            lines.append(
                f"| {model} | {name} <= {target['at_most']} | {res['ratios'][name]:.2f} | {each} | "
                f"{target['verdict']} |"
            )
    models = list(report["models"])
    lines += [
        "",
        "| per call, CPU ms | " + " | ".join(models) + " |",
        "|---|" + "---|" * len(models),
    ]
    for part in report["models"][models[0]]["parts_ms"]:
        cells = [f"{report['models'][m]['parts_ms'][part]:.3f}" for m in models]
        lines.append(f"| {part} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def mlflow_key(ratio: str) -> str:
    """``(c)/(a')`` -> ``c_over_ap``: MLflow keys take no brackets or quotes."""
    return ratio.replace("(", "").replace(")", "").replace("'", "p").replace("/", "_over_")


def log_to_mlflow(report: dict[str, Any], files: list[Path], tracking_uri: str) -> str:
    import mlflow

    from mnist_lab.names import resolve_tracking_uri

    mlflow.set_tracking_uri(resolve_tracking_uri(tracking_uri))
    if mlflow.get_experiment_by_name("bench") is None and tracking_uri.startswith("sqlite:"):
        root = Path(tracking_uri.removeprefix("sqlite:///")).parent / "artifacts"
        mlflow.create_experiment("bench", artifact_location=root.resolve().as_uri())
    mlflow.set_experiment("bench")
    with mlflow.start_run(run_name=f"bench-{'quick' if report['quick'] else 'full'}") as run:
        mlflow.log_params({f"machine.{k}": v for k, v in report["machine"].items()})
        mlflow.log_params(
            {"epochs": report["epochs"], "quick": report["quick"], "repeats": report["repeats"]}
        )
        metrics = {}
        for model, res in report["models"].items():
            for variant, v in res["variants"].items():
                metrics[f"{model}/{variant}/epoch_s"] = v["epoch_s"]
                metrics[f"{model}/{variant}/images_per_s"] = v["images_per_s"]
                metrics[f"{model}/{variant}/epoch_cpu_s"] = v["epoch_cpu_s"]
            for clock in ("ratios", "cpu_ratios"):
                for name, ratio in res[clock].items():
                    metrics[f"{model}/{clock.removesuffix('s')}/{mlflow_key(name)}"] = ratio
        mlflow.log_metrics(metrics)
        targets = [
            (model, name, t)
            for model, res in report["models"].items()
            for name, t in res["targets"].items()
        ]
        mlflow.set_tags(
            {f"verdict/{model}/{mlflow_key(name)}": t["verdict"] for model, name, t in targets}
        )
        for f in files:
            mlflow.log_artifact(str(f))
        return run.info.run_id


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default="data/")
    parser.add_argument("--models", nargs="+", default=["mlp", "cnn"], choices=sorted(HAND_NETS))
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument(
        "--epochs", type=int, default=2, help="per variant and repeat; the first is a warm-up"
    )
    parser.add_argument(
        "--repeats", type=int, default=3, help="interleaved repeats of the whole set"
    )
    parser.add_argument(
        "--quick", action="store_true", help="2 epochs of a few batches: checks it runs, not times"
    )
    parser.add_argument(
        "--limit-train-batches", type=int, default=None, help="training batches per epoch (all)"
    )
    parser.add_argument(
        "--limit-val-batches", type=int, default=None, help="validation batches per epoch (all)"
    )
    parser.add_argument(
        "--val-size", type=int, default=None, help="validation images (default: the config's)"
    )
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads (default: torch's choice)"
    )
    parser.add_argument(
        "--out",
        default=None,
        help="<out>.json, <out>.md (reports/bench; quick: outputs/bench_quick)",
    )
    parser.add_argument(
        "--tracking-uri",
        default=os.environ.get("MLFLOW_TRACKING_URI", "sqlite:///mlruns/mlflow.db"),
    )
    parser.add_argument("--no-mlflow", action="store_true")
    args = parser.parse_args(argv)
    if args.quick:
        args.epochs, args.repeats = min(args.epochs, 2), 1
        args.limit_train_batches = args.limit_train_batches or 4
        args.limit_val_batches = args.limit_val_batches or 2
    # quick: not a report
    args.out = args.out or ("outputs/bench_quick" if args.quick else "reports/bench")
    if args.threads:
        torch.set_num_threads(args.threads)

    report: dict[str, Any] = {
        "command": "python scripts/bench.py "
        + " ".join(argv if argv is not None else sys.argv[1:]),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": machine(),
        "epochs": args.epochs,
        "repeats": args.repeats,
        "quick": args.quick,
        "models": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        for model in args.models:
            report["models"][model] = bench_model(model, args, Path(tmp))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    files = [out.with_suffix(".json"), out.with_suffix(".md")]
    files[0].write_text(json.dumps(report, indent=2) + "\n")
    files[1].write_text(markdown(report))
    print(files[1].read_text())
    if not args.no_mlflow:
        report["mlflow_run_id"] = log_to_mlflow(report, files, args.tracking_uri)
        print(f"logged to MLflow: experiment 'bench', run {report['mlflow_run_id']}")
    return report


if __name__ == "__main__":
    main()
