"""Trainable throughput: seconds per epoch of the `mlp` trainable's loop against a plain torch
loop over the same in-memory tensors, same threads, same batch sizes, in one process.

    HPO_DATA_DIR=../shared/datasets python benchmarks/throughput.py [--threads 1] [--epochs 2]

The plain loop is the practical limit (what a careful user writes by hand: index-slice batches,
no evaluation). The trainable's epoch also evaluates validation (5,000 images) and, when
validation improves, test (10,000 images): that is included in its time, as a user pays it.
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F
from torch import nn

from hpo.data import load_dataset
from trainables import get_trainable


def plain_epoch_s(x: torch.Tensor, y: torch.Tensor, bs: int, epochs: int) -> float:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 10))
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-4)
    times = []
    for _ in range(epochs):
        t0 = time.perf_counter()
        perm = torch.randperm(len(y))
        for i in range(0, len(y), bs):
            idx = perm[i:i + bs]
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        times.append(time.perf_counter() - t0)
    return min(times)


def hpo_epoch_s(ds, bs: int, epochs: int) -> float:
    times: list[float] = []
    get_trainable("mlp").train(
        {"lr": 0.05, "momentum": 0.9, "weight_decay": 1e-4, "batch_size": bs, "hidden": [128]},
        ds, {"max_epochs": epochs, "data_key": "bench"}, lambda m, s: times.append(m["epoch_time_s"]))
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--epochs", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    ds = load_dataset("mnist", strict=True)
    from trainables.loop import to_tensors

    t = to_tensors(ds, (784,), key="bench")
    n = len(t.y_train)
    print(f"MLP 784-128-10, {n} training images, {args.threads} thread(s), best of {args.epochs} epochs")
    print(f"{'batch':>7} {'plain s/epoch':>14} {'hpo s/epoch':>12} {'ratio plain/hpo':>16} "
          f"{'hpo samples/s':>14}")
    for bs in (64, 128, 1024, n):
        p, h = plain_epoch_s(t.x_train, t.y_train, bs, args.epochs), hpo_epoch_s(ds, bs, args.epochs)
        print(f"{bs:>7} {p:>14.3f} {h:>12.3f} {p / h:>16.2f} {n / h:>14,.0f}")


if __name__ == "__main__":
    main()
