"""CIFAR-10 from its own on-disk format: ``<data_dir>/cifar-10-batches-py/`` holding the pickled
batches ``data_batch_1..5`` and ``test_batch`` (what torchvision and the official
``cifar-10-python.tar.gz`` unpack to).

Batches are read with a restricted unpickler that builds only dicts, lists, strings and numpy
arrays (a pickle can run code; these files come from the internet). Files of the published size
are md5-checked against torchvision's sums. Missing files are downloaded through torchvision when
online (short timeout); offline the error says where to put them.
"""

from __future__ import annotations

import pickle
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from hpo.data.base import ArrayDataset, split_train_val, torchvision_download
from hpo.data.mnist import md5
from hpo.errors import SpecError

FOLDER = "cifar-10-batches-py"
TRAIN = [("data_batch_1", "c99cafc152244af753f735de768cd75f"),
         ("data_batch_2", "d4bba439e000b95fd0a9bffe97cbabec"),
         ("data_batch_3", "54ebc095f3ab1f0389bbae665268c751"),
         ("data_batch_4", "634d18415352ddfa80567beed471001a"),
         ("data_batch_5", "482c414d41f54cd18b22e5b47cb7c3cb")]
TEST = [("test_batch", "40351d587109b95175f43aff81a1287e")]
CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
MEAN = (0.4914, 0.4822, 0.4465)
STD = (0.2470, 0.2435, 0.2616)
RECORDS_PER_BATCH = 10_000
URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"

# what a CIFAR batch pickle may reference: numpy array reconstruction, nothing else
_ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
            ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
            ("copy_reg", "_reconstructor"), ("copyreg", "_reconstructor"),
            ("__builtin__", "object"), ("builtins", "object")}


class _SafeUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}: a CIFAR-10 batch holds "
                                         f"only arrays, lists and strings")
        return super().find_class(module, name)


def folder(data_dir: Path) -> Path:
    return Path(data_dir) / FOLDER


def read_batch(path: Path, labels_key: str = "labels", n_classes: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """(images (N, 3, 32, 32) uint8, labels (N,) int64) from one pickled batch (CIFAR-100's
    files use labels_key="fine_labels" and 100 classes)."""
    try:
        with open(path, "rb") as f:
            d = _SafeUnpickler(f, encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as e:
        raise SpecError(f"{path}: not a CIFAR-10 batch ({e}).", field="dataset") from None
    d = {k.decode() if isinstance(k, bytes) else k: v for k, v in d.items()} if isinstance(d, dict) else {}
    data, labels = d.get("data"), d.get(labels_key)
    if not isinstance(data, np.ndarray) or labels is None:
        raise SpecError(f"{path}: not a CIFAR batch (needs `data` and `{labels_key}`).", field="dataset")
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072 or len(labels) != len(data):
        raise SpecError(f"{path}: expected uint8 data of shape (N, 3072) and N labels, got "
                        f"{data.dtype} {data.shape} and {len(labels)} labels.", field="dataset")
    y = np.asarray(labels, dtype=np.int64)
    if len(y) and (y.min() < 0 or y.max() >= n_classes):
        raise SpecError(f"{path}: labels must be 0-{n_classes - 1}, got {y.min()}..{y.max()}.",
                        field="dataset")
    # each row is 1024 red, 1024 green, 1024 blue values, each a row-major 32x32 image
    return data.reshape(-1, 3, 32, 32), y


def _have_files(data_dir: Path) -> bool:
    return all((folder(data_dir) / n).exists() for n, _ in TRAIN + TEST)


def _download(data_dir: Path) -> bool:
    return torchvision_download(data_dir, "CIFAR10", _have_files, splits=(True,))  # one archive


def _read(data_dir: Path, files: list[tuple[str, str]]) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = [], []
    for name, want in files:
        path = folder(data_dir) / name
        x, y = read_batch(path)
        if len(y) == RECORDS_PER_BATCH and md5(path) != want:
            raise SpecError(f"md5 mismatch for {path} (expected {want}): the file is corrupted; "
                            f"delete {folder(data_dir)} and download it again.", field="dataset")
        xs.append(x)
        ys.append(y)
    return np.concatenate(xs), np.concatenate(ys)


def load_cifar10(data_dir: Path, val_size: int) -> ArrayDataset:
    if not _have_files(data_dir) and not _download(data_dir):
        raise SpecError(
            f"CIFAR-10 was not found in {folder(data_dir)} and could not be downloaded (offline?). "
            f"Download {URL} on a machine with network access and unpack it into {data_dir} "
            f"(`tar xzf cifar-10-python.tar.gz -C {data_dir}` creates {FOLDER}/), or set "
            f"HPO_DATA_DIR / dataset.data_dir to a folder that has {FOLDER}/.", field="dataset")
    x, y = _read(data_dir, TRAIN)
    x_te, y_te = _read(data_dir, TEST)
    if len(y) != 5 * RECORDS_PER_BATCH:
        warnings.warn(f"{folder(data_dir)} holds {len(y)} training images, not CIFAR-10's 50,000.",
                      stacklevel=2)
    x_tr, y_tr, x_val, y_val = split_train_val(x, y, min(val_size, len(y) // 5))
    return ArrayDataset(
        name="cifar10", x_train=x_tr, y_train=y_tr, x_val=x_val, y_val=y_val, x_test=x_te,
        y_test=y_te, n_classes=10, mean=MEAN, std=STD, scale=255.0, source=str(folder(data_dir)),
        extra={"classes": list(CLASSES)},
    )
