"""MNIST from torchvision's on-disk layout (``<data_dir>/MNIST/raw/*.gz``), md5-checked.

Files are read in place (never written), so a read-only shared folder works. When they are
missing we try torchvision's download (with a short network timeout, never a hang); offline we
fall back to the embedded sample with a loud warning, or fail when ``strict`` is set.
"""

from __future__ import annotations

import hashlib
import logging
import warnings
from pathlib import Path

import numpy as np

from hpo.data.base import ArrayDataset, split_train_val, torchvision_download
from hpo.data.idx import read_idx
from hpo.errors import SpecError

log = logging.getLogger(__name__)

# torchvision's published md5 sums of the gzipped files
FILES = {
    "train_x": ("train-images-idx3-ubyte.gz", "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
    "train_y": ("train-labels-idx1-ubyte.gz", "d53e105ee54ea40749a09fcbcd1e9432"),
    "test_x": ("t10k-images-idx3-ubyte.gz", "9fb629c4189551a2d022fa330f9573f3"),
    "test_y": ("t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c"),
}
MEAN, STD = 0.1307, 0.3081
SAMPLE_FILE = Path(__file__).with_name("mnist_sample.npz")


def md5(path: Path) -> str:
    h = hashlib.md5()  # noqa: S324 - integrity check against published sums, not security
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def raw_dir(data_dir: Path) -> Path:
    return Path(data_dir) / "MNIST" / "raw"


def _have_files(data_dir: Path) -> bool:
    return all((raw_dir(data_dir) / fname).exists() for fname, _ in FILES.values())


def _read_verified(data_dir: Path) -> dict[str, np.ndarray]:
    out = {}
    for key, (fname, want) in FILES.items():
        path = raw_dir(data_dir) / fname
        got = md5(path)
        if got != want:
            raise SpecError(
                f"md5 mismatch for {path}: expected {want}, got {got}. The file is corrupted or "
                f"truncated; delete it and rerun with network access to download it again, or "
                f"copy a good copy from another machine.",
                field="dataset",
            )
        out[key] = read_idx(path)
    return out


def _download(data_dir: Path) -> bool:
    """Try torchvision's download into ``data_dir``; False when offline or it fails."""
    return torchvision_download(data_dir, "MNIST", _have_files)


def load_mnist(data_dir: Path, val_size: int, strict: bool = False) -> ArrayDataset:
    if not _have_files(data_dir) and not _download(data_dir):
        msg = (
            f"MNIST was not found in {raw_dir(data_dir)} and could not be downloaded. "
            f"Put the four torchvision MNIST .gz files there (or set HPO_DATA_DIR / "
            f"dataset.data_dir to a folder that has MNIST/raw/), or run online once."
        )
        if strict:
            raise SpecError(msg, field="dataset")
        warnings.warn(
            f"{msg} FALLING BACK to the embedded sample (10,000 train / 2,000 test images); "
            f"results are not comparable to full-MNIST ones. Set dataset.strict: true to fail "
            f"instead.",
            stacklevel=2,
        )
        return load_mnist_sample(min(val_size, 1000))
    a = _read_verified(data_dir)
    x_tr, y_tr, x_val, y_val = split_train_val(a["train_x"], a["train_y"], val_size)
    return ArrayDataset(
        name="mnist", x_train=x_tr, y_train=y_tr, x_val=x_val, y_val=y_val,
        x_test=a["test_x"], y_test=a["test_y"], n_classes=10, mean=MEAN, std=STD, scale=255.0,
        source=str(raw_dir(data_dir)),
    )


def load_mnist_sample(val_size: int) -> ArrayDataset:
    """The real MNIST subset shipped in the package (see scripts/make_mnist_sample.py)."""
    with np.load(SAMPLE_FILE) as z:
        a = {k: z[k] for k in z.files}
    x_tr, y_tr, x_val, y_val = split_train_val(a["train_x"], a["train_y"], val_size)
    return ArrayDataset(
        name="mnist_sample", x_train=x_tr, y_train=y_tr, x_val=x_val, y_val=y_val,
        x_test=a["test_x"], y_test=a["test_y"], n_classes=10, mean=MEAN, std=STD, scale=255.0,
        source="embedded sample (hpo/data/mnist_sample.npz)", is_sample=True,
    )
