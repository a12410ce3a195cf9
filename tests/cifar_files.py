"""Write small CIFAR-10 folders in the dataset's own on-disk format (pickled batches, as the
official cifar-10-python.tar.gz unpacks them), for testing the real loader without the data."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np


def image(label: int, i: int) -> np.ndarray:
    """A recognisable (3, 32, 32) uint8 image: channel c is filled with 10*label + c, and the
    top-left pixel of the red channel holds i % 256 (to check order and layout)."""
    img = np.empty((3, 32, 32), np.uint8)
    for c in range(3):
        img[c] = 10 * label + c
    img[0, 0, 0] = i % 256
    return img


def write_cifar10(data_dir: Path, per_batch: int = 40, n_test: int = 50, seed: int = 0) -> Path:
    folder = Path(data_dir) / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for k, name in enumerate(names):
        n = n_test if name == "test_batch" else per_batch
        labels = [int(v) for v in rng.integers(0, 10, n)]
        data = np.stack([image(lb, k * 1000 + i).reshape(3072) for i, lb in enumerate(labels)])
        batch = {"batch_label": f"{name} (test files)", "labels": labels, "data": data,
                 "filenames": [f"img_{k}_{i}.png" for i in range(n)]}
        with open(folder / name, "wb") as f:
            pickle.dump(batch, f, protocol=2)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": ["airplane", "automobile", "bird", "cat", "deer", "dog",
                                     "frog", "horse", "ship", "truck"],
                     "num_cases_per_batch": per_batch, "num_vis": 3072}, f, protocol=2)
    return folder
