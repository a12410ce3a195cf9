"""The torchvision datasets a student meets after MNIST, each read from its own on-disk format
in torchvision's layout under the data folder, md5-checked where the files are full size:

* ``fashion_mnist``  FashionMNIST/raw/*-ubyte.gz (IDX, like MNIST), 10 classes
* ``kmnist``         KMNIST/raw/*-ubyte.gz (IDX), 10 classes
* ``emnist``         EMNIST/raw/emnist-balanced-*-ubyte (IDX, as torchvision unpacks them; the
                     images are stored transposed), the `balanced` split, 47 classes
* ``cifar100``       cifar-100-python/{train,test} (pickled like CIFAR-10, ``fine_labels``), 100
* ``svhn``           train_32x32.mat / test_32x32.mat (MATLAB; label 10 is digit 0), 10 classes

Missing files are downloaded through torchvision when online (short timeout, never a hang);
offline the error says where to get the files and where to put them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hpo.data.base import ArrayDataset, default_val, split_train_val, torchvision_download
from hpo.data.cifar import read_batch
from hpo.data.idx import idx_length, read_idx
from hpo.data.mnist import md5
from hpo.errors import SpecError


@dataclass(frozen=True)
class Family:
    name: str
    title: str
    folder: str  # below the data folder
    files: dict[str, tuple[str, str | None]]  # train_x/train_y/test_x/test_y -> (file, md5)
    n_classes: int
    n_train: int
    n_test: int
    mean: float | tuple[float, ...]
    std: float | tuple[float, ...]
    url: str
    read: Callable[[Family, Path], dict[str, np.ndarray]]
    torchvision: tuple[str, dict[str, object]]  # class name and its keyword arguments
    input_shape: tuple[int, ...] = (1, 28, 28)

    def path(self, data_dir: Path, key: str) -> Path:
        return Path(data_dir) / self.folder / self.files[key][0]

    def have_files(self, data_dir: Path) -> bool:
        return all(self.path(data_dir, k).exists() for k in self.files)


def _verify(fam: Family, path: Path, want: str | None, full_size: bool) -> None:
    """md5 against the published sum, for files of the published size (tests use small ones)."""
    if want is None or not full_size:
        return
    got = md5(path)
    if got != want:
        raise SpecError(f"md5 mismatch for {path}: expected {want}, got {got}. The file is corrupted "
                        f"or truncated; delete it and download it again ({fam.url}).", field="dataset")


def _read_idx_family(fam: Family, data_dir: Path) -> dict[str, np.ndarray]:
    out = {}
    for key, (_, want) in fam.files.items():
        path = fam.path(data_dir, key)
        try:
            a = read_idx(path)
        except (ValueError, OSError) as e:
            raise SpecError(f"{path}: not a readable {fam.title} IDX file ({e}).", field="dataset") from None
        full = len(a) == (fam.n_train if key.startswith("train") else fam.n_test)
        _verify(fam, path, want, full)
        out[key] = a
    if fam.name == "emnist":  # EMNIST's IDX images are stored transposed (column-major)
        out = {k: v.transpose(0, 2, 1) if v.ndim == 3 else v for k, v in out.items()}
    return out


def _read_cifar100(fam: Family, data_dir: Path) -> dict[str, np.ndarray]:
    out = {}
    for split in ("train", "test"):
        path = fam.path(data_dir, f"{split}_x")
        x, y = read_batch(path, labels_key="fine_labels", n_classes=100)
        _verify(fam, path, fam.files[f"{split}_x"][1],
                len(y) == (fam.n_train if split == "train" else fam.n_test))
        out[f"{split}_x"], out[f"{split}_y"] = x, y
    return out


def _read_svhn(fam: Family, data_dir: Path) -> dict[str, np.ndarray]:
    try:
        from scipy.io import loadmat
    except ImportError:
        raise SpecError("reading SVHN's .mat files needs scipy: pip install scipy.",
                        field="dataset") from None
    out = {}
    for split in ("train", "test"):
        path = fam.path(data_dir, f"{split}_x")
        try:
            m = loadmat(path)
        except (ValueError, OSError, TypeError) as e:
            raise SpecError(f"{path}: not a readable SVHN .mat file ({e}).", field="dataset") from None
        x, y = m.get("X"), m.get("y")
        if not isinstance(x, np.ndarray) or not isinstance(y, np.ndarray) or x.ndim != 4 \
                or x.shape[:3] != (32, 32, 3) or x.shape[3] != y.size:
            raise SpecError(f"{path}: expected X of shape (32, 32, 3, N) and N labels y.", field="dataset")
        y = y.reshape(-1).astype(np.int64)
        if len(y) and (y.min() < 1 or y.max() > 10):
            raise SpecError(f"{path}: SVHN labels are 1-10, got {y.min()}..{y.max()}.", field="dataset")
        _verify(fam, path, fam.files[f"{split}_x"][1],
                len(y) == (fam.n_train if split == "train" else fam.n_test))
        out[f"{split}_x"] = np.ascontiguousarray(x.transpose(3, 2, 0, 1)).astype(np.uint8)  # (N, 3, 32, 32)
        out[f"{split}_y"] = np.where(y == 10, 0, y)  # SVHN writes digit 0 as 10
    return out


def _idx_files(prefix: str, sums: tuple[str | None, ...],
               gz: bool = True) -> dict[str, tuple[str, str | None]]:
    ext = ".gz" if gz else ""
    names = (f"{prefix}train-images-idx3-ubyte{ext}", f"{prefix}train-labels-idx1-ubyte{ext}",
             f"{prefix}{'test' if prefix else 't10k'}-images-idx3-ubyte{ext}",
             f"{prefix}{'test' if prefix else 't10k'}-labels-idx1-ubyte{ext}")
    return dict(zip(("train_x", "train_y", "test_x", "test_y"), zip(names, sums, strict=True), strict=True))


FAMILY: dict[str, Family] = {f.name: f for f in (
    Family("fashion_mnist", "Fashion-MNIST", "FashionMNIST/raw",
           _idx_files("", ("8d4fb7e6c68d591d4c3dfef9ec88bf0d", "25c81989df183df01b3e8a0aad5dffbe",
                           "bef4ecab320f06d8554ea6380940ec79", "bb300cfdad3c16e7a12a480ee83cd310")),
           10, 60_000, 10_000, 0.2860, 0.3530,
           "https://github.com/zalandoresearch/fashion-mnist (data/fashion/*.gz)", _read_idx_family,
           ("FashionMNIST", {})),
    Family("kmnist", "KMNIST", "KMNIST/raw",
           _idx_files("", ("bdb82020997e1d708af4cf47b453dcf7", "e144d726b3acfaa3e44228e80efcd344",
                           "5c965bf0a639b31b8f53240b1b52f4d7", "7320c461ea6c1c855c0b718fb2a4b134")),
           10, 60_000, 10_000, 0.1918, 0.3483,
           "http://codh.rois.ac.jp/kmnist/dataset/kmnist/ (the four *-ubyte.gz files)", _read_idx_family,
           ("KMNIST", {})),
    # torchvision unpacks EMNIST's gzip.zip (md5 58c8d27c78d21e728a6bc7b3cc06412e) into raw/;
    # no sums are published for the unpacked files, so their sizes are checked instead
    Family("emnist", "EMNIST (balanced)", "EMNIST/raw",
           _idx_files("emnist-balanced-", (None,) * 4, gz=False),
           47, 112_800, 18_800, 0.1751, 0.3332,
           "https://biometrics.nist.gov/cs_links/EMNIST/gzip.zip (unzip, then gunzip the "
           "emnist-balanced-* files)", _read_idx_family, ("EMNIST", {"split": "balanced"})),
    Family("cifar100", "CIFAR-100", "cifar-100-python",
           {"train_x": ("train", "16019d7e3df5f24257cddd939b257f8d"), "train_y": ("train", None),
            "test_x": ("test", "f0ef6b0ae62326f3e7ffdfab6717acfc"), "test_y": ("test", None)},
           100, 50_000, 10_000, (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762),
           "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz (tar xzf it in the data folder)",
           _read_cifar100, ("CIFAR100", {}), input_shape=(3, 32, 32)),
    Family("svhn", "SVHN", ".",
           {"train_x": ("train_32x32.mat", "e26dedcc434d2e4c54c9b2d4a06d8373"),
            "train_y": ("train_32x32.mat", None),
            "test_x": ("test_32x32.mat", "eb5a983be6a315427106f1b69d3c4d3f"),
            "test_y": ("test_32x32.mat", None)},
           10, 73_257, 26_032, (0.4377, 0.4438, 0.4728), (0.1980, 0.2010, 0.1970),
           "http://ufldl.stanford.edu/housenumbers/ (train_32x32.mat, test_32x32.mat)", _read_svhn,
           ("SVHN", {}), input_shape=(3, 32, 32)),
)}


def count_train(name: str, data_dir: Path) -> int | None:
    """How many training examples the family's files in `data_dir` hold, from the IDX header
    alone (before Ray starts: `hpo validate` and `plan` check split sizes against it); None when
    the files are not there or are not IDX (CIFAR-100, SVHN: their published sizes stand)."""
    fam = FAMILY[name]
    if fam.read is not _read_idx_family or not fam.have_files(data_dir):
        return None
    return idx_length(fam.path(data_dir, "train_y"))


def _download(fam: Family, data_dir: Path) -> bool:
    cls, kwargs = fam.torchvision
    return torchvision_download(data_dir, cls, fam.have_files, kwargs=kwargs,
                                splits_arg="split" if cls == "SVHN" else "train")


def load_family(name: str, data_dir: Path, val_size: int) -> ArrayDataset:
    fam = FAMILY[name]
    if not fam.have_files(data_dir) and not _download(fam, data_dir):
        where = (Path(data_dir) / fam.folder).resolve()
        raise SpecError(f"{fam.title} was not found in {where} and could not be downloaded "
                        f"(offline?). Get it from {fam.url} and put the files in {where} (or set "
                        f"HPO_DATA_DIR / dataset.data_dir to a folder that has them).", field="dataset")
    a = fam.read(fam, data_dir)
    for split in ("train", "test"):
        x, y = a[f"{split}_x"], a[f"{split}_y"]
        if len(x) != len(y):
            raise SpecError(f"{fam.path(data_dir, split + '_x')}: {len(x)} images but {len(y)} labels.",
                            field="dataset")
        if len(y) and (y.min() < 0 or y.max() >= fam.n_classes):
            raise SpecError(f"{fam.path(data_dir, split + '_y')}: labels must be in [0, {fam.n_classes}), "
                            f"got {y.min()}..{y.max()}.", field="dataset")
    n = len(a["train_y"])
    if not val_size:  # not given: 10% of what the folder holds, at most 5,000

        val_size = default_val(n)
    elif not 0 < val_size < n:
        raise SpecError(f"val_size {val_size} leaves no training data: {fam.title} in "
                        f"{(Path(data_dir) / fam.folder).resolve()} has {n:,} training images; give "
                        f"at most {n - 1:,}, or leave val_size out (10% of the training images, at "
                        f"most 5,000).", field="dataset.val_size")
    x_tr, y_tr, x_val, y_val = split_train_val(a["train_x"], a["train_y"].astype(np.int64), val_size)
    return ArrayDataset(name=name, x_train=x_tr, y_train=y_tr, x_val=x_val, y_val=y_val,
                        x_test=a["test_x"], y_test=a["test_y"].astype(np.int64), n_classes=fam.n_classes,
                        mean=fam.mean, std=fam.std, scale=255.0,
                        source=str((Path(data_dir) / fam.folder).resolve()))
