"""torch.func packs: one packed training step of 8 members against the same 8 members' ordinary
steps one after another (hpo.trainables.func_pack.probe, the timing `execution.pack: auto` makes
before Ray starts), for the `cnn`, the `cifar_cnn` and a user's tabular MLP (`model:`), at 1 and
2 threads, on this machine's device, and what `auto` decides from it.

    python benchmarks/func_pack.py [--members 8] [--repeats 5]
"""

from __future__ import annotations

import argparse

import torch
from torch import nn

from hpo.packing import AUTO_MIN_SPEEDUP
from hpo.trainables import cifar_cnn, cnn
from hpo.trainables.config import OptimConfig
from hpo.trainables.func_pack import probe


class TabularConfig(OptimConfig):
    width: int = 64


def tabular(c: TabularConfig) -> nn.Module:  # a user's own small MLP on 20 features, 3 classes
    return nn.Sequential(nn.Linear(20, c.width), nn.ReLU(), nn.Linear(c.width, c.width), nn.ReLU(),
                         nn.Linear(c.width, 3))


CASES = [  # (label, config model, fixed fields, build, example shape, classes)
    ("cnn 32-64 filters, dense 128, batch 64", cnn.Config, {"batch_size": 64},
     lambda c: cnn.build_model(c, (1, 28, 28), 10), (1, 28, 28), 10),
    ("cnn 8-16 filters, dense 32, batch 64", cnn.Config, {"batch_size": 64, "filters": [8, 16], "dense": 32},
     lambda c: cnn.build_model(c, (1, 28, 28), 10), (1, 28, 28), 10),
    ("cifar_cnn 3 blocks, no batch norm, batch 128", cifar_cnn.Config, {"batch_norm": False},
     lambda c: cnn.build_model(c, (3, 32, 32), 10), (3, 32, 32), 10),
    ("user tabular MLP 20-64-64-3, batch 64", TabularConfig, {"batch_size": 64},
     tabular, (20,), 3),
    ("user tabular MLP 20-64-64-3, batch 256", TabularConfig, {"batch_size": 256},
     tabular, (20,), 3),
]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--members", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    dev = "CUDA" if torch.cuda.is_available() else "CPU"
    print(f"### One packed step of {args.members} members vs their {args.members} ordinary steps one after "
          f"another ({dev}; SGD with momentum, per-member lr and seed; best of {args.repeats})\n")
    print("| model | threads | packed speed-up | `auto` decides |\n|---|---|---|---|")
    for label, model, fixed, build, shape, n_classes in CASES:
        cfgs = [model.model_validate({**fixed, "lr": 0.01 * (i + 1), "momentum": 0.9, "seed": i})
                for i in range(args.members)]
        for threads in (1, 2):
            reason, inexact, speedup = probe(cfgs, build, shape, n_classes, threads, args.repeats)
            verdict = reason or inexact or ("packs" if speedup >= AUTO_MIN_SPEEDUP else "runs unpacked")
            print(f"| {label} | {threads} | {speedup:.2f}x | {verdict} |")
    print(f"\n`auto` packs a torch.func model from {AUTO_MIN_SPEEDUP}x (hpo/packing.py AUTO_MIN_SPEEDUP): "
          f"below it, ordinary trials side by side on the other cores do as well. The `mlp` keeps its "
          f"hand-written pack (Trial packing above).")


if __name__ == "__main__":
    main()
