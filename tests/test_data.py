from __future__ import annotations

import numpy as np
import pytest

from hpo.data import load_dataset
from hpo.data import mnist as mnist_mod
from hpo.data.base import split_train_val
from hpo.data.idx import read_idx, write_idx
from hpo.errors import SpecError


def fake_mnist(root, n_train=120, n_test=30, monkeypatch=None):
    """Write MNIST-format IDX .gz files (torchvision layout) and point the md5 table at them."""
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    arrays = {
        "train_x": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train_y": rng.integers(0, 10, n_train, dtype=np.uint8),
        "test_x": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "test_y": rng.integers(0, 10, n_test, dtype=np.uint8),
    }
    files = {}
    for key, (fname, _) in mnist_mod.FILES.items():
        write_idx(raw / fname, arrays[key])
        files[key] = (fname, mnist_mod.md5(raw / fname))
    if monkeypatch is not None:
        monkeypatch.setattr(mnist_mod, "FILES", files)
    return arrays


def test_idx_roundtrip(tmp_path):
    a = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    for name in ("x.idx", "x.idx.gz"):
        write_idx(tmp_path / name, a)
        assert np.array_equal(read_idx(tmp_path / name), a)


def test_idx_rejects_truncated_and_garbage(tmp_path):
    write_idx(tmp_path / "x.idx", np.zeros((4, 5), np.uint8))
    data = (tmp_path / "x.idx").read_bytes()
    (tmp_path / "t.idx").write_bytes(data[:-3])
    with pytest.raises(ValueError, match="truncated"):
        read_idx(tmp_path / "t.idx")
    (tmp_path / "g.idx").write_bytes(b"hello world")
    with pytest.raises(ValueError, match="magic"):
        read_idx(tmp_path / "g.idx")


def test_mnist_loader_reads_torchvision_layout(tmp_path, monkeypatch):
    arrays = fake_mnist(tmp_path, monkeypatch=monkeypatch)
    ds = load_dataset("mnist", tmp_path, val_size=20)
    assert ds.sizes == {"train": 100, "val": 20, "test": 30}
    assert ds.x_train.dtype == np.uint8 and ds.x_train.shape[1:] == (28, 28)
    # the split is a partition of the original training set
    together = np.concatenate([ds.x_train, ds.x_val]).reshape(120, -1)
    assert sorted(map(bytes, together)) == sorted(map(bytes, arrays["train_x"].reshape(120, -1)))
    assert np.array_equal(ds.x_test, arrays["test_x"]) and not ds.is_sample


def test_corrupted_file_fails_with_md5_message(tmp_path, monkeypatch):
    fake_mnist(tmp_path, monkeypatch=monkeypatch)
    bad = tmp_path / "MNIST" / "raw" / "train-labels-idx1-ubyte.gz"
    bad.write_bytes(bad.read_bytes()[:-5])
    with pytest.raises(SpecError, match=r"md5 mismatch for .*train-labels-idx1-ubyte\.gz.*delete it"):
        load_dataset("mnist", tmp_path)


def test_offline_without_files_falls_back_to_the_sample_loudly(tmp_path):
    with pytest.warns(UserWarning, match="FALLING BACK to the embedded sample"):
        ds = load_dataset("mnist", tmp_path / "empty")
    assert ds.is_sample and ds.sizes["train"] + ds.sizes["val"] == 10_000


def test_offline_strict_fails_with_what_to_do(tmp_path):
    with pytest.raises(SpecError, match=r"MNIST was not found in .* HPO_DATA_DIR"):
        load_dataset("mnist", tmp_path / "empty", strict=True)


def test_embedded_sample_is_real_balanced_mnist():
    ds = load_dataset("mnist_sample", val_size=1000)
    assert ds.sizes == {"train": 9000, "val": 1000, "test": 2000}
    labels = np.concatenate([ds.y_train, ds.y_val])
    assert np.bincount(labels).tolist() == [1000] * 10
    assert 30 < ds.x_train.mean() < 40  # MNIST's mean pixel is ~33


def test_real_mnist_md5_verified(mnist_dir):
    ds = load_dataset("mnist", mnist_dir, strict=True)
    assert ds.sizes == {"train": 55_000, "val": 5_000, "test": 10_000}


def test_split_is_seeded_and_disjoint():
    x = np.arange(100)
    a = split_train_val(x, x, 10)
    b = split_train_val(x, x, 10)
    assert np.array_equal(a[2], b[2]) and not set(a[0]) & set(a[2])


def test_train_size_keeps_first_examples():
    ds = load_dataset("mnist_sample", train_size=500)
    assert ds.sizes["train"] == 500
