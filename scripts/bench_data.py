"""Time one MLP training epoch with torchvision's per-sample pipeline versus the tensor-resident one.

    python scripts/bench_data.py --data-dir ../shared/data

Same network, optimiser and batch size; only the way batches are produced differs.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Iterable

import torch
from torch.utils.data import DataLoader
from torchvision import datasets, transforms

from mnist_lab.data.mnist_datamodule import MNIST_MEAN, MNIST_STD, MNISTDataModule
from mnist_lab.models.components import MLP


def train_epoch(batches: Iterable, limit: int | None) -> tuple[float, int]:
    torch.manual_seed(0)
    net = MLP(depth=2, width=512)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3)
    start, steps = time.perf_counter(), 0
    for x, y in batches:
        opt.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(net(x), y).backward()
        opt.step()
        steps += 1
        if limit and steps >= limit:
            break
    return time.perf_counter() - start, steps


def iterate(batches: Iterable, limit: int | None) -> tuple[float, int]:
    """Only produce the batches: the data pipeline's own cost."""
    start, steps = time.perf_counter(), 0
    for _ in batches:
        steps += 1
        if limit and steps >= limit:
            break
    return time.perf_counter() - start, steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default="data/")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--limit", type=int, default=None, help="stop after this many steps")
    args = parser.parse_args()

    pipeline = transforms.Compose([transforms.ToTensor(), transforms.Normalize((MNIST_MEAN,), (MNIST_STD,))])
    per_sample = DataLoader(
        datasets.MNIST(args.data_dir, train=True, transform=pipeline), batch_size=args.batch_size, shuffle=True
    )
    dm = MNISTDataModule(args.data_dir, batch_size=args.batch_size, val_size=1)
    dm.setup("fit")
    resident = dm.train_dataloader()

    print(f"torch threads: {torch.get_num_threads()}, batch size {args.batch_size}, one epoch of MNIST train")
    for what, run in (("batches only", iterate), ("MLP training epoch", train_epoch)):
        slow, n_slow = run(per_sample, args.limit)
        fast, n_fast = run(resident, args.limit)
        print(f"{what}:")
        print(f"  torchvision + ToTensor + DataLoader : {slow:6.2f} s for {n_slow} steps")
        print(f"  tensor-resident (this template)     : {fast:6.2f} s for {n_fast} steps")
        print(f"  speed-up                            : {slow / fast * n_fast / n_slow:6.1f}x")


if __name__ == "__main__":
    main()
