"""Dataset registry: a name maps to how to load it into memory, and what it holds."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from hpo.data.base import ArrayDataset, default_data_dir, split_train_val
from hpo.registry import Registry

__all__ = ["DATASETS", "ArrayDataset", "DatasetInfo", "default_data_dir", "load_dataset",
           "split_train_val"]


@dataclass(frozen=True)
class DatasetInfo:
    task: str  # "classification" | "regression"
    input_shape: tuple[int, ...]
    n_train: int  # before the validation split
    n_test: int
    n_classes: int  # 0 for regression
    default_val_size: int
    # (data_dir, val_size, strict) -> ArrayDataset
    load: Callable[[Path, int, bool], ArrayDataset]


def _mnist(data_dir: Path, val_size: int, strict: bool) -> ArrayDataset:
    from hpo.data.mnist import load_mnist

    return load_mnist(data_dir, val_size, strict)


def _mnist_sample(data_dir: Path, val_size: int, strict: bool) -> ArrayDataset:
    from hpo.data.mnist import load_mnist_sample

    return load_mnist_sample(val_size)


def _cifar10(data_dir: Path, val_size: int, strict: bool) -> ArrayDataset:
    from hpo.data.cifar import load_cifar10

    return load_cifar10(data_dir, val_size)


def _regression2d(data_dir: Path, val_size: int, strict: bool) -> ArrayDataset:
    from hpo.data.synthetic import load_regression2d

    return load_regression2d(val_size)


DATASETS: Registry[DatasetInfo] = Registry("dataset")
DATASETS.add("mnist", DatasetInfo("classification", (1, 28, 28), 60_000, 10_000, 10, 5_000, _mnist))
DATASETS.add("mnist_sample",
             DatasetInfo("classification", (1, 28, 28), 10_000, 2_000, 10, 1_000, _mnist_sample))
DATASETS.add("cifar10", DatasetInfo("classification", (3, 32, 32), 50_000, 10_000, 10, 5_000, _cifar10))
DATASETS.add("regression2d", DatasetInfo("regression", (2,), 10_000, 2_500, 0, 1_000, _regression2d))


def load_dataset(name: str, data_dir: str | Path | None = None, val_size: int | None = None,
                 strict: bool = False, train_size: int | None = None) -> ArrayDataset:
    """Load a registered dataset; `train_size` keeps only the first N training examples."""
    info = DATASETS.get(name)
    ds = info.load(Path(data_dir) if data_dir else default_data_dir(),
                   val_size or info.default_val_size, strict)
    if train_size is not None and train_size < len(ds.y_train):
        ds = replace(ds, x_train=ds.x_train[:train_size], y_train=ds.y_train[:train_size])
    return ds
