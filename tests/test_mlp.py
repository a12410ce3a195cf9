"""The mlp trainable and the shared loop, on generated data, without Ray."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from hpo.contract import Settings
from hpo.data.base import ArrayDataset
from hpo.trainables import get_trainable
from hpo.trainables.loop import l1_penalty
from hpo.trainables.mlp import Config, build_model

MLP = get_trainable("mlp")


def blobs(n=600, d=20, k=3, seed=0) -> ArrayDataset:
    """Well-separated Gaussian blobs: a net that learns at all gets > 90% here."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(0, 4, (k, d))

    def make(m):
        y = rng.integers(0, k, m)
        return (centers[y] + rng.normal(0, 1, (m, d))).astype(np.float32), y.astype(np.int64)

    (xt, yt), (xv, yv), (xs, ys) = make(n), make(n // 4), make(n // 4)
    return ArrayDataset("blobs", xt, yt, xv, yv, xs, ys, n_classes=k)


def train(config, epochs=5, data=None, state=None):
    reports, states = [], []

    def report(m, state_fn):
        reports.append(m)
        states.append(state_fn() if state_fn else None)

    MLP.train(config, data or blobs(), Settings(max_epochs=epochs, metric="val_acc"), report, state)
    return reports, states


def test_learns_and_reports_every_declared_metric():
    reports, _ = train({"lr": 0.1, "batch_size": 32, "hidden": [32]})
    assert [r["epoch"] for r in reports] == [1, 2, 3, 4, 5]
    assert set(MLP.metrics) <= set(reports[-1])
    assert reports[-1]["val_acc"] > 0.9 and reports[-1]["test_acc"] > 0.9
    assert reports[-1]["train_loss"] < reports[0]["train_loss"]


def test_test_metrics_belong_to_the_best_validation_epoch():
    reports, _ = train({"lr": 0.05, "batch_size": 16, "hidden": [16]}, epochs=6)
    best = max(range(len(reports)), key=lambda i: reports[i]["val_acc"])
    assert reports[-1]["best_epoch"] == best + 1
    assert reports[-1]["test_acc"] == reports[best]["test_acc"]


def test_huge_lr_diverges_and_stops():
    reports, states = train({"lr": 1e12, "optimizer": "sgd", "momentum": 0.9, "batch_size": 8,
                             "hidden": [16], "activation": "relu"}, epochs=5)
    assert reports[-1]["diverged"] is True and len(reports) < 5
    assert reports[-1]["train_loss"] == math.inf and reports[-1]["val_loss"] == math.inf
    assert reports[-1]["val_acc"] == 0.0  # the searcher is told the worst value, never NaN
    assert states[-1] is None  # no checkpoint of a diverged model


def test_same_seed_same_metrics_different_seed_differs():
    a, _ = train({"lr": 0.05, "seed": 1, "hidden": [8]}, epochs=2)
    b, _ = train({"lr": 0.05, "seed": 1, "hidden": [8]}, epochs=2)
    c, _ = train({"lr": 0.05, "seed": 2, "hidden": [8]}, epochs=2)
    strip = lambda rs: [{k: v for k, v in r.items() if k != "epoch_time_s"} for r in rs]
    assert strip(a) == strip(b) and strip(a) != strip(c)


def test_l1_and_l2_shrink_weights_differently():
    def weights(reg_type, lam):
        torch.manual_seed(0)
        _, states = train({"lr": 0.05, "weight_decay": lam, "reg_type": reg_type,
                           "hidden": [32], "optimizer": "sgd"}, epochs=4)
        return torch.cat([p.flatten() for k, p in states[-1]["model"].items() if "weight" in k])

    none, l1, l2 = weights("none", 0.0), weights("l1", 5e-3), weights("l2", 5e-2)
    assert l1.abs().sum() < none.abs().sum() and l2.norm() < none.norm()
    # L1 drives many weights to (near) zero, L2 only shrinks them
    small = lambda w: (w.abs() < 1e-3).float().mean().item()
    assert small(l1) > 2 * small(l2)


def test_l1_penalty_value():
    model = torch.nn.Linear(2, 1)
    with torch.no_grad():
        model.weight[:] = torch.tensor([[1.0, -2.0]])
        model.bias[:] = 0.5
    assert l1_penalty(model, 0.1).item() == pytest.approx(0.35)


@pytest.mark.parametrize("optimizer", ["sgd", "adam", "adagrad", "rmsprop"])
def test_every_optimizer_learns(optimizer):
    lr = {"sgd": 0.1, "adam": 1e-2, "adagrad": 5e-2, "rmsprop": 1e-3}[optimizer]
    reports, _ = train({"lr": lr, "optimizer": optimizer, "hidden": [32]}, epochs=3)
    assert reports[-1]["val_acc"] > 0.85


def test_architecture_options():
    cfg = Config(hidden=[64, 48, 36], batch_norm=True, dropout=0.2, activation="sigmoid")
    model = build_model(cfg, 784, 10)
    kinds = [type(m).__name__ for m in model]
    assert kinds.count("Linear") == 4 and kinds.count("BatchNorm1d") == 3
    assert kinds.count("Dropout") == 3 and kinds.count("Sigmoid") == 3
    assert model(torch.zeros(5, 1, 28, 28)).shape == (5, 10)


def test_restore_from_checkpoint_continues_where_it_stopped():
    data = blobs()
    cfg = {"lr": 0.05, "hidden": [16], "momentum": 0.9}
    full, _ = train(cfg, epochs=4, data=data)
    first, states = train(cfg, epochs=2, data=data)
    rest, _ = train(cfg, epochs=4, data=data, state=states[-1])
    assert [r["epoch"] for r in rest] == [3, 4]
    assert rest[-1]["val_loss"] == pytest.approx(full[-1]["val_loss"], rel=1e-4)


def test_full_batch_is_one_step_per_epoch():
    data = blobs(n=200)
    reports, _ = train({"lr": 0.5, "batch_size": 200, "hidden": [16]}, epochs=3, data=data)
    assert len(reports) == 3 and reports[-1]["train_loss"] < reports[0]["train_loss"]


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_trains_on_the_gpu_it_was_given():
    from hpo.trainables.loop import device, to_tensors

    assert device().type == "cuda"
    t = to_tensors(blobs(), (20,), key=None)
    assert t.x_train.is_cuda and t.y_val.is_cuda
    reports, states = train({"lr": 0.1, "hidden": [32]}, epochs=2)
    assert reports[-1]["val_acc"] > 0.9
    assert all(v.is_cuda for v in states[-1]["model"].values())


def test_testing_only_at_test_epochs_reports_what_testing_at_every_improvement_does():
    # overlapping blobs: the best epoch (2) is behind the weights when epoch 3 tests them
    data, cfg = blobs(d=2, seed=1), {"lr": 0.05, "batch_size": 16, "hidden": [16], "dropout": 0.2}

    def run(test_epochs, epochs=6, state=None):
        reports, states = [], []
        MLP.train(cfg, data, Settings(max_epochs=epochs, metric="val_acc", test_epochs=test_epochs),
                  lambda m, s: (reports.append(m), states.append(s and s())), state)
        return reports, states

    eager, _ = run(None)
    lazy, states = run(frozenset({3, 6}))
    for a, b in zip(eager, lazy, strict=True):  # training is the same, epoch for epoch
        assert a["val_acc"] == b["val_acc"] and a["train_loss"] == b["train_loss"]
    for i in (2, 5):  # at the test epochs: the test metrics of the best epoch so far
        assert lazy[i]["test_acc"] == eager[i]["test_acc"] and lazy[i]["test_loss"] == eager[i]["test_loss"]
    assert lazy[2]["best_epoch"] == 2 and math.isnan(lazy[1]["test_acc"])
    assert all(math.isnan(r["test_acc"]) or r["test_acc"] == e["test_acc"] for r, e in zip(lazy, eager, strict=True))
    # restored from epoch 2's checkpoint (its best untested): the kept weights are tested at 3
    rest, _ = run(frozenset({3, 6}), state=states[1])
    assert rest[0]["epoch"] == 3 and rest[0]["test_acc"] == eager[2]["test_acc"]
    assert rest[-1]["test_acc"] == eager[-1]["test_acc"]
