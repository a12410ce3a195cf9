"""The cnn trainable on generated images, without Ray."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hpo.contract import Settings
from hpo.data.base import ArrayDataset
from hpo.errors import SpecError
from hpo.experiment import load_experiment
from hpo.trainables import get_trainable
from hpo.trainables.cnn import Config, build_model, param_count
from tests.conftest import MINIMAL, write_spec

CNN = get_trainable("cnn")


def squares(n=300, k=4, seed=0) -> ArrayDataset:
    """28x28 uint8 images: class c is a bright 7x7 square in quadrant c, plus noise."""
    rng = np.random.default_rng(seed)

    def make(m):
        y = rng.integers(0, k, m)
        x = rng.integers(0, 60, (m, 28, 28)).astype(np.uint8)
        for i, c in enumerate(y):
            r, q = divmod(int(c), 2)
            x[i, 3 + 14 * r: 10 + 14 * r, 3 + 14 * q: 10 + 14 * q] = 255
        return x, y.astype(np.uint8)

    (xt, yt), (xv, yv), (xs, ys) = make(n), make(n // 3), make(n // 3)
    return ArrayDataset("squares", xt, yt, xv, yv, xs, ys, n_classes=k, mean=0.2, std=0.3, scale=255.0)


@pytest.mark.parametrize("conv_layers", [1, 2])
def test_learns_generated_images(conv_layers):
    reports = []
    CNN.train({"lr": 0.05, "momentum": 0.9, "conv_layers": conv_layers, "filters": [8, 16],
               "dense": 32, "batch_size": 32}, squares(), Settings(max_epochs=3, metric="val_acc"),
              lambda m, s: reports.append(m))
    assert len(reports) == 3 and reports[-1]["val_acc"] > 0.9 and reports[-1]["test_acc"] > 0.9


@pytest.mark.parametrize("cfg", [
    {"conv_layers": 1}, {"conv_layers": 2}, {"batch_norm": True, "dropout": 0.5},
    {"conv_layers": 2, "filters": [4, 6], "dense": 10, "batch_norm": True},
])
def test_param_count_matches_the_built_model(cfg):
    c = Config(**cfg)
    model = build_model(c, (1, 28, 28), 10)
    assert sum(p.numel() for p in model.parameters()) == param_count(c, (1, 28, 28), 10)
    assert model(torch.zeros(3, 1, 28, 28)).shape == (3, 10)
    kinds = [type(m).__name__ for m in model]
    assert kinds.count("Conv2d") == c.conv_layers and kinds.count("MaxPool2d") == c.conv_layers
    assert ("BatchNorm2d" in kinds) == c.batch_norm and ("Dropout" in kinds) == bool(c.dropout)


def test_cnn_specs_are_checked(tmp_path):
    text = MINIMAL.replace("trainable: mlp", "trainable: cnn")
    exp = load_experiment(write_spec(tmp_path, text), ["params.conv_layers={grid: [1, 2]}"])
    assert exp.n_trials == 4
    with pytest.raises(SpecError, match=r"params\.conv_layers\.grid: Input should be 1 or 2"):
        load_experiment(write_spec(tmp_path, text), ["params.conv_layers={grid: [1, 3]}"])
    with pytest.raises(SpecError, match=r"filters needs 2 values"):
        load_experiment(write_spec(tmp_path, text), ["params.filters=[32]"])
    with pytest.raises(SpecError, match=r"trainable `cnn` has no parameter `hidden`"):
        load_experiment(write_spec(tmp_path, text), ["params.hidden=[128]"])
