"""Dataset registry: a name maps to how to load it into memory, and what it holds.

Besides the registered names, a spec's dataset can be a user's own data (hpo.data.arrays):
`npz` or `csv` files (`path:`), or a `module:function` returning arrays. Their DatasetInfo is
read from the loaded arrays (:func:`dataset_info`), which are checked when loaded.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from hpo.data.base import DEFAULT_VAL, ArrayDataset, default_data_dir, default_val, split_train_val
from hpo.registry import Registry

__all__ = ["DATASETS", "DEFAULT_VAL", "ArrayDataset", "DatasetInfo", "dataset_info", "default_data_dir",
           "default_val", "load_dataset", "load_spec_dataset", "split_train_val"]


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
    # data_dir -> are its files there (None: nothing to find on disk); without them and offline,
    # `fallback` (a registered name) is what a run trains on instead
    present: Callable[[Path], bool] | None = None
    fallback: str | None = None
    # data_dir -> how many training examples the files there hold (None: not known before
    # loading), for a folder of any size: checked before Ray starts
    count: Callable[[Path], int | None] | None = None
    source: str = ""  # where the examples were counted (for messages)

    def val_size(self, given: int | None = None) -> int:
        """The validation split: the spec's, else the entry's default, else (0: a folder of any
        size) 10% of the training images, at most DEFAULT_VAL."""
        return given or self.default_val_size or default_val(self.n_train)


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
def _mnist_present(data_dir: Path) -> bool:
    from hpo.data.mnist import _have_files

    return _have_files(data_dir)


DATASETS.add("mnist", DatasetInfo("classification", (1, 28, 28), 60_000, 10_000, 10, 5_000, _mnist,
                                  present=_mnist_present, fallback="mnist_sample"))
DATASETS.add("mnist_sample",
             DatasetInfo("classification", (1, 28, 28), 10_000, 2_000, 10, 1_000, _mnist_sample))
DATASETS.add("cifar10", DatasetInfo("classification", (3, 32, 32), 50_000, 10_000, 10, 5_000, _cifar10))
DATASETS.add("regression2d", DatasetInfo("regression", (2,), 10_000, 2_500, 0, 1_000, _regression2d))


def _family(name: str) -> Callable[[Path, int, bool], ArrayDataset]:
    def load(data_dir: Path, val_size: int, strict: bool) -> ArrayDataset:
        from hpo.data.family import load_family

        return load_family(name, data_dir, val_size)

    return load


def _count(name: str) -> Callable[[Path], int | None]:
    def count(data_dir: Path) -> int | None:
        from hpo.data.family import count_train

        return count_train(name, data_dir)

    return count


# the torchvision family (hpo/data/family.py): (name, input shape, train, test, classes)
for _name, _shape, _n_train, _n_test, _k in (
        ("fashion_mnist", (1, 28, 28), 60_000, 10_000, 10), ("kmnist", (1, 28, 28), 60_000, 10_000, 10),
        ("emnist", (1, 28, 28), 112_800, 18_800, 47), ("cifar100", (3, 32, 32), 50_000, 10_000, 100),
        ("svhn", (3, 32, 32), 73_257, 26_032, 10)):
    # default val_size 0: 10% of the folder's training images, at most 5,000 (a small folder is
    # not refused for the full dataset's 5,000)
    DATASETS.add(_name, DatasetInfo("classification", _shape, _n_train, _n_test, _k, 0, _family(_name),
                                    count=_count(_name)))

USER_KINDS = ("npz", "csv")  # plus any `module:function`


def is_user(name: str) -> bool:
    return name in USER_KINDS or ":" in name


_USER_CACHE: dict[str, ArrayDataset] = {}


def _load_user(ds: Any) -> ArrayDataset:
    """A user's dataset, loaded and checked once per process (the experiment checks and the
    runner share it)."""
    from hpo.data import arrays

    key = json.dumps([ds.name, ds.path, ds.label, ds.task, ds.val_size, ds.n_classes,
                      Path(ds.path).stat().st_mtime if ds.path and Path(ds.path).exists() else None])
    if key not in _USER_CACHE:
        if ds.name == "npz":
            data = arrays.load_npz(ds.path, ds.val_size, ds.task, ds.n_classes)
        elif ds.name == "csv":
            data = arrays.load_csv(ds.path, ds.label, ds.val_size, ds.task, n_classes=ds.n_classes)
        else:
            data = arrays.load_function(ds.name, ds.val_size, ds.task, ds.n_classes)
        _USER_CACHE.clear()
        _USER_CACHE[key] = data
    return _USER_CACHE[key]


def dataset_info(ds: Any) -> DatasetInfo:
    """What a spec's `dataset` holds: a registered dataset's entry, or for user data the info
    read from the loaded (and checked) arrays."""
    if not is_user(ds.name):
        from hpo.errors import SpecError

        info = DATASETS.get(ds.name, field="dataset.name")
        for field in ("path", "label", "task", "n_classes"):
            if getattr(ds, field) is not None:
                raise SpecError(f"`{field}` is for user data (npz, csv, a module:function), not for "
                                f"`{ds.name}`.", field=f"dataset.{field}")
        if info.count is not None:  # a folder of any size: what its files hold
            where = Path(ds.data_dir) if ds.data_dir else default_data_dir()
            n = info.count(where)
            if n is not None:
                info = replace(info, n_train=n, source=str(where.resolve()))
        return info
    data = _load_user(ds)
    task = str(data.extra.get("task", "classification"))
    n = len(data.y_train) + len(data.y_val)
    return DatasetInfo(task, tuple(data.x_train.shape[1:]), n, len(data.y_test), data.n_classes,
                       len(data.y_val), lambda data_dir, val_size, strict: data)


def load_spec_dataset(ds: Any) -> ArrayDataset:
    """The dataset a spec's `dataset` names, in memory (user data: checked)."""
    if is_user(ds.name):
        data = _load_user(ds)
        if ds.train_size is not None and ds.train_size < len(data.y_train):
            data = replace(data, x_train=data.x_train[: ds.train_size], y_train=data.y_train[: ds.train_size])
        return data
    return load_dataset(ds.name, ds.data_dir, ds.val_size, ds.strict, ds.train_size)


def load_dataset(name: str, data_dir: str | Path | None = None, val_size: int | None = None,
                 strict: bool = False, train_size: int | None = None) -> ArrayDataset:
    """Load a registered dataset; `train_size` keeps only the first N training examples."""
    from hpo.data.arrays import check_dataset

    info = DATASETS.get(name)
    ds = check_dataset(info.load(Path(data_dir) if data_dir else default_data_dir(),
                                 val_size or info.default_val_size, strict))  # 0: the loader's default
    if train_size is not None and train_size < len(ds.y_train):
        ds = replace(ds, x_train=ds.x_train[:train_size], y_train=ds.y_train[:train_size])
    return ds
