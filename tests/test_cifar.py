"""CIFAR-10 loading on generated files in its on-disk format, augmentation, and the two CIFAR
trainables (`cifar_cnn`, `resnet18`) trained for real on them, without Ray."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest
import torch

from hpo.contract import Settings
from hpo.data import load_dataset
from hpo.data.cifar import read_batch
from hpo.errors import SpecError
from hpo.trainables import cifar_cnn, resnet18
from hpo.trainables.augment import random_crop_flip
from tests.cifar_files import image, write_cifar10


@pytest.fixture(scope="module")
def cifar_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("data")
    write_cifar10(d)
    return d


def test_loader_reads_the_pickled_batches(cifar_dir):
    ds = load_dataset("cifar10", data_dir=cifar_dir, val_size=20)
    assert ds.x_train.shape == (180, 3, 32, 32) and ds.x_val.shape == (20, 3, 32, 32)
    assert ds.x_test.shape == (50, 3, 32, 32) and ds.x_train.dtype == np.uint8
    assert ds.n_classes == 10 and len(ds.mean) == 3 and ds.scale == 255.0
    # layout: rows of 1024 R, 1024 G, 1024 B values become (3, 32, 32) images with their labels
    for x, y in zip(ds.x_test[:10], ds.y_test[:10], strict=True):
        np.testing.assert_array_equal(x[:, 1:, :], image(int(y), 0)[:, 1:, :])
    x, y = read_batch(cifar_dir / "cifar-10-batches-py" / "test_batch")
    assert [int(v) for v in x[:5, 0, 0, 0]] == [(5000 + i) % 256 for i in range(5)]


def test_a_pickle_that_runs_code_is_refused(tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned > " + str(tmp_path / "pwned"),))

    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps({"data": Evil(), "labels": [0]}, protocol=2))
    with pytest.raises(SpecError, match=r"refusing to load posix\.system"):
        read_batch(path)
    assert not (tmp_path / "pwned").exists()


@pytest.mark.parametrize("content,match", [
    ({"labels": [0]}, r"needs `data` and `labels`"),
    ({"data": np.zeros((2, 100), np.uint8), "labels": [0, 1]}, r"shape \(N, 3072\)"),
    ({"data": np.zeros((2, 3072), np.uint8), "labels": [0, 12]}, r"labels must be 0-9"),
])
def test_malformed_batches(tmp_path, content, match):
    path = tmp_path / "b"
    path.write_bytes(pickle.dumps(content, protocol=2))
    with pytest.raises(SpecError, match=match):
        read_batch(path)


def test_offline_without_files_says_what_to_do(tmp_path):
    with pytest.raises(SpecError, match=r"CIFAR-10 was not found in .*cifar-10-batches-py and could "
                                        r"not be downloaded.*tar xzf cifar-10-python\.tar\.gz"):
        load_dataset("cifar10", data_dir=tmp_path)


def test_augmentation_crops_and_flips_on_tensors():
    x = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).reshape(2, 3, 8, 8)
    gen = torch.Generator().manual_seed(0)
    out = random_crop_flip(x, gen, pad=2)
    assert out.shape == x.shape
    for b in range(2):  # every output is a shifted (and maybe mirrored) window of the padded input
        xp = torch.nn.functional.pad(x[b], (2, 2, 2, 2))
        windows = [xp[:, i:i + 8, j:j + 8] for i in range(5) for j in range(5)]
        assert any(torch.equal(out[b], w) or torch.equal(out[b], w.flip(2)) for w in windows)
    same = random_crop_flip(x, torch.Generator().manual_seed(0), pad=2)
    assert torch.equal(out, same)  # seeded
    # over many draws both flips and all shifts happen
    outs = [random_crop_flip(x[:1], gen, pad=0) for _ in range(40)]
    assert any(torch.equal(o, x[:1]) for o in outs) and any(torch.equal(o, x[:1].flip(3)) for o in outs)


def fit(module, config, data, epochs=2):
    reports = []
    module.train(config, data, Settings(max_epochs=epochs, metric="val_acc"), lambda m, s: reports.append(m))
    return reports


@pytest.mark.parametrize("augment", [False, True])
def test_cifar_cnn_trains_on_the_files(cifar_dir, augment):
    ds = load_dataset("cifar10", data_dir=cifar_dir, val_size=20)
    reps = fit(cifar_cnn, {"augment": augment, "batch_size": 32, "conv_layers": 2}, ds)
    assert len(reps) == 2 and all(0 <= r["val_acc"] <= 1 for r in reps)
    assert reps[-1]["n_params"] == cifar_cnn.cnn.param_count(
        cifar_cnn.Config(conv_layers=2), (3, 32, 32), 10)


@pytest.mark.parametrize("mode,trained", [
    ("head", 512 * 10 + 10),
    ("last_block", resnet18.N_PARAMS_LAYER4 + 512 * 10 + 10),
    ("all", resnet18.N_PARAMS_BODY + 512 * 10 + 10),
])
def test_resnet18_fine_tune_modes(mode, trained, monkeypatch, tmp_path):
    monkeypatch.setenv("HPO_DATA_DIR", str(tmp_path))  # no weights file there
    model, init = resnet18.build_model(resnet18.Config(finetune=mode), 10)
    assert init == "random init"
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == trained
    model.train()
    frozen_bn = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)
                 and not m.weight.requires_grad]
    assert all(not m.training for m in frozen_bn) and (mode == "all" or frozen_bn)


def test_resnet18_uses_local_imagenet_weights(cifar_dir, monkeypatch, tmp_path):
    from torchvision.models import resnet18 as tv_resnet18

    (tmp_path / "weights").mkdir()
    ref = tv_resnet18(weights=None)
    torch.save(ref.state_dict(), tmp_path / "weights" / resnet18.WEIGHTS_FILE)
    monkeypatch.setenv("HPO_DATA_DIR", str(tmp_path))
    model, init = resnet18.build_model(resnet18.Config(finetune="head", weights="imagenet"), 10)
    assert init == "imagenet (resnet18-f37072fd.pth)"
    assert torch.equal(model.inner.conv1.weight, ref.conv1.weight)
    ds = load_dataset("cifar10", data_dir=cifar_dir, val_size=20)
    reports, states = [], []
    resnet18.train({"finetune": "head", "weights": "imagenet", "batch_size": 64, "lr": 0.01}, ds,
                   Settings(max_epochs=1, metric="val_acc"), lambda m, s: (reports.append(m), states.append(s())))
    assert reports[-1]["weights"].startswith("imagenet") and reports[-1]["finetune"] == "head"
    trained = states[-1]["model"]
    # the frozen body (weights and batch-norm statistics) is exactly ImageNet's after training
    for k in ("conv1.weight", "layer1.0.conv1.weight", "layer4.1.bn2.running_mean"):
        assert torch.equal(trained[f"inner.{k}"], ref.state_dict()[k]), k
    assert trained["inner.fc.weight"].shape == (10, 512)


def test_resnet18_imagenet_without_the_file_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("HPO_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    with pytest.raises(FileNotFoundError, match=r"weights: imagenet, but resnet18-f37072fd\.pth is not on this node"):
        resnet18.build_model(resnet18.Config(weights="imagenet"), 10)
