"""The torchvision family read from small files the tests write in each dataset's own on-disk
format (IDX .gz, EMNIST's transposed IDX, CIFAR-100 pickles, SVHN .mat); no download."""

from __future__ import annotations

import gzip
import pickle
from pathlib import Path

import numpy as np
import pytest

from hpo.data import load_dataset
from hpo.data.idx import write_idx
from hpo.errors import SpecError


def digits(n: int, k: int, seed: int, shape=(28, 28)) -> tuple[np.ndarray, np.ndarray]:
    """Images whose pixel [0, 1] holds the label (to check layout, orientation and labels)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n).astype(np.uint8)
    x = rng.integers(0, 256, (n, *shape)).astype(np.uint8)
    x[:, 0, 1] = y
    return x, y


def write_idx_family(root: Path, folder: str, prefix: str = "", k: int = 10, gz: bool = True,
                     transposed: bool = False) -> None:
    d = root / folder
    d.mkdir(parents=True)
    ext = ".gz" if gz else ""
    for split, n, name in (("train", 300, "train"), ("test", 60, "test" if prefix else "t10k")):
        x, y = digits(n, k, seed=len(split))
        if transposed:
            x = x.transpose(0, 2, 1)  # EMNIST stores images column-major
        for what, arr in (("images-idx3", x), ("labels-idx1", y)):
            path = d / f"{prefix}{name}-{what}-ubyte{ext}"
            if gz:
                raw = path.with_suffix("")
                write_idx(raw, arr)
                path.write_bytes(gzip.compress(raw.read_bytes()))
                raw.unlink()
            else:
                write_idx(path, arr)


@pytest.mark.parametrize("name,folder", [("fashion_mnist", "FashionMNIST/raw"), ("kmnist", "KMNIST/raw")])
def test_idx_datasets(tmp_path, name, folder):
    write_idx_family(tmp_path, folder)
    ds = load_dataset(name, tmp_path, val_size=50)
    assert ds.sizes == {"train": 250, "val": 50, "test": 60} and ds.n_classes == 10
    assert ds.x_train.shape[1:] == (28, 28) and (ds.x_train[:, 0, 1] == ds.y_train).all()


def test_emnist_balanced_is_read_upright(tmp_path):
    write_idx_family(tmp_path, "EMNIST/raw", prefix="emnist-balanced-", k=47, gz=False, transposed=True)
    ds = load_dataset("emnist", tmp_path, val_size=30)
    assert ds.n_classes == 47 and (ds.x_test[:, 0, 1] == ds.y_test).all()


def test_cifar100_fine_labels(tmp_path):
    d = tmp_path / "cifar-100-python"
    d.mkdir()
    rng = np.random.default_rng(0)
    for split, n in (("train", 120), ("test", 40)):
        fine = rng.integers(0, 100, n)
        data = np.repeat(fine.astype(np.uint8)[:, None], 3072, axis=1)
        with open(d / split, "wb") as f:
            pickle.dump({"data": data, "fine_labels": fine.tolist(), "coarse_labels": (fine // 5).tolist(),
                         "filenames": [f"{i}.png" for i in range(n)]}, f, protocol=2)
    ds = load_dataset("cifar100", tmp_path, val_size=20)
    assert ds.n_classes == 100 and ds.x_train.shape[1:] == (3, 32, 32)
    assert (ds.x_test[:, 2, 5, 5] == ds.y_test).all()


def test_svhn_mat_files(tmp_path):
    from scipy.io import savemat

    rng = np.random.default_rng(0)
    for split, n in (("train", 90), ("test", 30)):
        y = rng.integers(1, 11, n)  # SVHN's labels: 1..10, 10 is the digit 0
        x = np.zeros((32, 32, 3, n), np.uint8)
        x[3, 4, 1, :] = y  # row 3, column 4, green
        savemat(tmp_path / f"{split}_32x32.mat", {"X": x, "y": y[:, None]})
    ds = load_dataset("svhn", tmp_path, val_size=10)
    assert ds.n_classes == 10 and ds.x_train.shape[1:] == (3, 32, 32)
    raw = ds.x_test[:, 1, 3, 4]
    assert ((raw % 10) == ds.y_test).all() and 0 in ds.y_test.tolist() + ds.y_train.tolist()


@pytest.mark.parametrize("name,where", [("fashion_mnist", "FashionMNIST"), ("kmnist", "KMNIST"),
                                        ("emnist", "EMNIST"), ("cifar100", "cifar-100-python"),
                                        ("svhn", "svhn")])
def test_offline_message_says_where(tmp_path, name, where):
    with pytest.raises(SpecError, match=r"was not found in .* could not be downloaded \(offline\?\)\. Get it from"):
        load_dataset(name, tmp_path / where, val_size=10)


def test_corrupt_labels_are_refused(tmp_path):
    write_idx_family(tmp_path, "KMNIST/raw", k=12)  # labels up to 11 in a 10-class dataset
    with pytest.raises(SpecError, match=r"labels must be in \[0, 10\)"):
        load_dataset("kmnist", tmp_path, val_size=10)


def test_a_small_folder_gets_a_tenth_for_validation_and_too_large_a_split_is_one_line(tmp_path):
    """300 training images: no val_size gives 30 (10%), not the full dataset's 5,000 (which used
    to end `hpo run` in a traceback); a val_size of 300 or more is refused by name."""
    write_idx_family(tmp_path, "KMNIST/raw")
    ds = load_dataset("kmnist", tmp_path)
    assert ds.sizes == {"train": 270, "val": 30, "test": 60}
    with pytest.raises(SpecError, match=r"dataset\.val_size: val_size 300 leaves no training data: "
                                        r"KMNIST in .* has 300 training images; give at most 299"):
        load_dataset("kmnist", tmp_path, val_size=300)


@pytest.mark.parametrize("command", ["validate", "plan"])
@pytest.mark.parametrize("gz", [True, False])
def test_split_sizes_of_a_small_folder_are_checked_before_ray(tmp_path, command, gz):
    """What the folder holds is read from the IDX header alone: `hpo validate` and `hpo plan`
    refuse a val_size or train_size the 300 images cannot give, in one line (exit 2)."""
    import subprocess
    import sys

    prefix = "emnist-balanced-" if not gz else ""
    folder, name = ("EMNIST/raw", "emnist") if not gz else ("FashionMNIST/raw", "fashion_mnist")
    write_idx_family(tmp_path, folder, prefix=prefix, k=47 if not gz else 10, gz=gz, transposed=not gz)

    def hpo(*sets: str) -> subprocess.CompletedProcess:
        spec = tmp_path / "s.yaml"
        spec.write_text(f"name: s\ntrainable: mlp\ndataset: {{name: {name}, data_dir: {tmp_path}}}\n"
                        "metric: val_acc\nparams: {lr: {grid: [0.1, 0.01]}, hidden: [8]}\n")
        return subprocess.run([sys.executable, "-m", "hpo.cli", command, str(spec),
                               *[a for s in sets for a in ("--set", s)]],
                              cwd=tmp_path, capture_output=True, text=True, timeout=120)

    ok = hpo()
    assert ok.returncode == 0, ok.stderr
    big_val = hpo("dataset.val_size=5000")
    assert big_val.returncode == 2 and "Traceback" not in big_val.stderr
    assert len(big_val.stderr.strip().splitlines()) == 1
    assert "dataset.val_size: val_size 5,000 leaves no training data" in big_val.stderr
    assert "has 300 training examples; give at most 299, or leave val_size out" in big_val.stderr
    big_train = hpo("dataset.train_size=280")  # 300 less the default 30 for validation: 270
    assert big_train.returncode == 2 and "dataset.train_size: train_size 280" in big_train.stderr
    assert "give at most 270" in big_train.stderr
    assert hpo("dataset.train_size=270").returncode == 0
