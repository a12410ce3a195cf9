"""The `regression2d` dataset and the `regression` trainable, without Ray."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hpo.contract import EarlyStop, Settings
from hpo.data import load_dataset
from hpo.data.synthetic import f, grid
from hpo.trainables import regression


@pytest.fixture(scope="module")
def data():
    return load_dataset("regression2d")


def test_dataset_is_the_function_on_a_test_grid(data):
    assert data.x_train.shape == (10_000, 2) and data.n_classes == 0
    assert data.x_train.min() >= -2 and data.x_train.max() <= 2
    np.testing.assert_allclose(data.y_train, f(data.x_train[:, 0], data.x_train[:, 1]), rtol=1e-6)
    g1, g2 = grid(50)
    np.testing.assert_allclose(data.x_test[:, 0], g1.ravel(), atol=1e-6)
    np.testing.assert_allclose(data.x_test[:, 1], g2.ravel(), atol=1e-6)
    assert data.x_test[1, 0] > data.x_test[0, 0] and data.x_test[1, 1] == data.x_test[0, 1]  # x1 fastest
    assert math.isclose(f(np.array(-1 / math.sqrt(2)), np.array(0.0)), -0.4289, abs_tol=1e-4)  # the minimum
    # the same points every time: m=100 is a subset of m=1000
    np.testing.assert_array_equal(load_dataset("regression2d").x_train, data.x_train)


def run(config, data, epochs=30, settings=None):
    reports = []
    regression.train(config, data, Settings(max_epochs=epochs, metric="val_mse", mode="min", **(settings or {})),
                     lambda m, s: reports.append(m))
    return reports


def test_learns_the_function_and_reports_the_surface(data):
    reps = run({"m": 200, "hidden": [32, 32], "lr": 0.01}, data)
    assert len(reps) == 30 and reps[-1]["val_mse"] < 0.3 * reps[0]["val_mse"]
    assert reps[-1]["test_mse"] < 0.01  # the function's variance on the grid is ~0.04
    with_surface = [r["epoch"] for r in reps if "surface" in r]
    assert with_surface == [3, 6, 9, 12, 15, 18, 21, 24, 27, 30]
    assert len(reps[-1]["surface"]) == 2500 and all(math.isfinite(v) for v in reps[-1]["surface"])
    # the surface is the best-val model's: its MSE against the grid is the reported test_mse
    mse = float(np.mean((np.array(reps[-1]["surface"]) - data.y_test) ** 2))
    assert math.isclose(mse, reps[-1]["test_mse"], rel_tol=1e-3)


def test_more_points_fit_better(data):
    few = run({"m": 20, "hidden": [32], "seed": 1}, data, epochs=40)[-1]["test_mse"]
    many = run({"m": 1000, "hidden": [32], "seed": 1}, data, epochs=40)[-1]["test_mse"]
    assert many < few


def test_divergence_and_early_stopping(data):
    reps = run({"m": 100, "optimizer": "sgd", "lr": 1e6}, data, epochs=10)
    assert reps[-1]["diverged"] and reps[-1]["val_mse"] == math.inf and len(reps) < 10
    reps = run({"m": 100, "lr": 1e-7}, data, epochs=20,
               settings={"early_stopping": EarlyStop(patience=3, min_delta=1e-3)})
    assert len(reps) == 4  # the first epoch sets the best, 3 more fail to beat it
    assert reps[-1]["early_stopped"] and "no val_mse gain" in reps[-1]["early_stopped"]
    assert "surface" in reps[-1]  # a stopped trial still leaves its predictions


def test_m_larger_than_the_pool_is_refused():
    with pytest.raises(ValueError, match="less than or equal to 10000"):
        regression.Config.model_validate({"m": 20_000})
