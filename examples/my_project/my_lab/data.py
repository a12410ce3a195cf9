"""The project's own data, generated: `python -m my_lab.data data/` writes data/blobs.npz (a
3-class problem with 8 features) and data/houses.csv (a regression table), and `spirals` is a
dataset function hpo can call directly (`dataset: my_lab.data:spirals`)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np


def blobs(n: int = 3000, d: int = 8, k: int = 3, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    centers = rng.normal(0, 2.0, (k, d))
    y = rng.integers(0, k, n)
    x = (centers[y] + rng.normal(0, 3.0, (n, d))).astype(np.float32)
    cut = n * 4 // 5
    return {"x_train": x[:cut], "y_train": y[:cut], "x_test": x[cut:], "y_test": y[cut:]}


def houses(n: int = 800, seed: int = 1) -> str:
    """CSV text: four numeric features and a numeric target `price`."""
    rng = np.random.default_rng(seed)
    area, rooms, age, dist = rng.uniform(30, 200, n), rng.integers(1, 7, n), rng.uniform(0, 80, n), \
        rng.uniform(0.5, 30, n)
    price = 3 * area + 20 * rooms - 0.8 * age - 6 * dist + rng.normal(0, 15, n)
    rows = ["area,rooms,age,distance,price"] + [
        f"{a:.1f},{r},{g:.1f},{s:.2f},{p:.1f}"
        for a, r, g, s, p in zip(area, rooms, age, dist, price, strict=True)]
    return "\n".join(rows) + "\n"


def spirals(n: int = 900, seed: int = 2) -> dict[str, np.ndarray]:
    """Two interleaved spirals (2 classes, 2 features), as a dataset function."""
    rng = np.random.default_rng(seed)
    t = np.sqrt(rng.uniform(0, 1, n)) * 3 * np.pi
    y = rng.integers(0, 2, n)
    sign = np.where(y == 0, 1.0, -1.0)
    x = np.stack([sign * t * np.cos(t), sign * t * np.sin(t)], 1) / 10 + rng.normal(0, 0.05, (n, 2))
    cut = n * 4 // 5
    return {"x_train": x[:cut].astype(np.float32), "y_train": y[:cut],
            "x_test": x[cut:].astype(np.float32), "y_test": y[cut:]}


def write(folder: str | Path) -> None:
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    np.savez(out / "blobs.npz", **blobs())
    (out / "houses.csv").write_text(houses())


if __name__ == "__main__":
    write(sys.argv[1] if len(sys.argv) > 1 else "data")
