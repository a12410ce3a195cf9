"""How far one ulp takes training: the measurement behind the packed-vs-ordinary tolerance.

Torch picks its CPU kernels by the CPU (`ATEN_CPU_CAPABILITY` default / avx2 / avx512). Where a
packed member's batched matmul and an ordinary trial's `nn.Linear` take different kernels, their
float32 sums differ in the last bit, and training amplifies that. This script moves every initial
weight of an ordinary `mlp` trial by one ulp (up or down at random, three draws) and reports how
far each metric then moves over 3 epochs: the spread the *same* trial has under last-bit noise.
`tests/equivalence.py` holds packed members to it where the kernels differ.

    HPO_DATA_DIR=../shared/datasets .venv/bin/python scripts/ulp_spread.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hpo.contract import Settings  # noqa: E402
from hpo.data import load_dataset  # noqa: E402
from hpo.trainables import mlp  # noqa: E402
from tests.test_pack import BASE, GROUPS  # noqa: E402

KEYS = ("train_loss", "val_loss", "test_loss", "train_acc", "val_acc", "test_acc")


def trial(cfg, data, epochs=3):
    reps = []
    mlp.train(cfg, data, Settings(max_epochs=epochs, metric="val_acc"), lambda m, s: reps.append(m))
    return reps


def main() -> None:
    data = load_dataset("mnist_sample", val_size=500, train_size=1500)
    build, draw = mlp.build_model, {"seed": 0}

    def nudged(cfg, n, k):
        model = build(cfg, n, k)
        gen = torch.Generator().manual_seed(draw["seed"])
        with torch.no_grad():
            for p in model.parameters():
                sign = torch.randint(0, 2, p.shape, generator=gen).float() * 2 - 1
                p.copy_(torch.nextafter(p, p + sign))
        return model

    worst: dict[str, dict[str, float]] = {}
    for cfg in [c for g in GROUPS for c in g]:
        base = trial(cfg, data)
        name = cfg.get("optimizer", "sgd")
        mlp.build_model = nudged
        try:
            for draw["seed"] in range(3):
                for b, g in zip(base, trial(cfg, data), strict=True):
                    for k in KEYS:
                        d = abs(b[k] - g[k]) / (abs(b[k]) if k.endswith("loss") else 1)
                        w = worst.setdefault(name, {})
                        w[k] = max(w.get(k, 0.0), d)
        finally:
            mlp.build_model = build
    print(f"capability {torch.backends.cpu.get_cpu_capability()}; BASE {BASE}")
    print("largest move after one ulp (losses relative, accuracies absolute):")
    print(json.dumps({k: {m: round(v, 6) for m, v in w.items()} for k, w in worst.items()}, indent=1))


if __name__ == "__main__":
    main()
