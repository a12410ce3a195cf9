"""In-memory datasets: uint8/float numpy arrays split into train / validation / test."""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

SPLIT_SEED = 0  # the validation split is the same for every trial and every seed


@dataclass(frozen=True)
class ArrayDataset:
    """A dataset held in memory, ready to go into Ray's object store once.

    Arrays stay in their compact on-disk dtype (uint8 images); trainables convert and normalize
    with `mean`/`std` on their side, once per worker.
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    n_classes: int  # 0 for regression
    mean: float | tuple[float, ...] = 0.0  # one value, or one per channel (axis 1 of x)
    std: float | tuple[float, ...] = 1.0
    scale: float = 1.0  # divide raw values by this before normalizing (255 for uint8 images)
    source: str = ""  # where it came from, e.g. a folder, or "embedded sample"
    is_sample: bool = False
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def sizes(self) -> dict[str, int]:
        return {"train": len(self.y_train), "val": len(self.y_val), "test": len(self.y_test)}


def split_train_val(x: np.ndarray, y: np.ndarray, val_size: int) -> tuple[np.ndarray, ...]:
    """Seeded split of the training set into (x_train, y_train, x_val, y_val)."""
    if not 0 < val_size < len(y):
        raise ValueError(f"val_size must be between 1 and {len(y) - 1}, got {val_size}")
    perm = np.random.default_rng(SPLIT_SEED).permutation(len(y))
    val, train = np.sort(perm[:val_size]), np.sort(perm[val_size:])
    return x[train], y[train], x[val], y[val]


def default_data_dir() -> Path:
    env = os.environ.get("HPO_DATA_DIR")
    return Path(env) if env else Path.home() / ".cache" / "hpo" / "datasets"


DOWNLOAD_TIMEOUT_S = 15


def torchvision_download(data_dir: Path, dataset: str, have_files: Callable[[Path], bool],
                         splits: tuple[bool, ...] = (True, False), kwargs: dict[str, object] | None = None,
                         splits_arg: str = "train") -> bool:
    """Download `torchvision.datasets.<dataset>` into `data_dir` with a short network timeout
    (never a hang); False when offline (or HPO_OFFLINE=1), torchvision is missing or it fails."""
    if os.environ.get("HPO_OFFLINE") == "1":
        return False
    try:
        import torchvision.datasets as tvd
    except ImportError:
        return False
    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        for train in splits:
            # SVHN names its splits ("train"/"test") where the others take train=True/False
            split = ({"split": "train" if train else "test"} if splits_arg == "split" else {"train": train})
            getattr(tvd, dataset)(root=str(data_dir), download=True, **split, **(kwargs or {}))
        return have_files(data_dir)
    except Exception as e:  # noqa: BLE001 - any network/IO failure means "offline"
        logging.getLogger(__name__).warning("%s download failed: %s", dataset, e)
        return False
    finally:
        socket.setdefaulttimeout(old)


DEFAULT_VAL = 5_000


def default_val(n_train: int) -> int:
    """10% of the training examples, at least 1, at most DEFAULT_VAL."""
    return min(DEFAULT_VAL, max(1, n_train // 10))
