"""The exact variance decomposition of a complete grid (hpo.report.importance), on constructed
tables: the numbers a reader is shown must be the grid's own."""

from __future__ import annotations

import math

import pytest

from hpo.report.importance import grid_cells, grid_importance
from tests.report_fixtures import grid_run, rundata


def _grid(f, lrs=(1.0, 0.1, 0.05, 0.01), wds=(0.1, 0.01, 0.001, 0.0001), status=None):
    trials = []
    for i, (lr, wd) in enumerate((lr, wd) for lr in lrs for wd in wds):
        trials.append({"trial_id": f"x_{i:05d}", "param.lr": lr, "param.weight_decay": wd,
                       "best_val_acc": f(lr, wd), "epochs": 2, "best_epoch": 2,
                       "status": (status or {}).get((lr, wd), "completed")})
    return rundata(trials, [], {"lr": {"grid": list(lrs)}, "weight_decay": {"grid": list(wds)}})


def shares(data):
    return dict(zip(*grid_importance(data)["table"][["source", "share_%"]].T.values, strict=True))


def test_only_one_parameter_matters():
    s = shares(_grid(lambda lr, wd: 0.9 if lr < 1 else 0.1))
    assert s["lr"] == pytest.approx(100) and s["weight_decay"] == pytest.approx(0)
    assert s["interactions"] == pytest.approx(0, abs=1e-9)


def test_lr_reg_shaped_grid_lr_dominates():
    # lr = 1 collapses every trial to chance; weight decay moves the others by a few points
    acc = lambda lr, wd: 0.1 if lr == 1.0 else 0.97 - 0.02 * (wd == 0.1) - 0.005 * (lr == 0.01)  # noqa: E731
    s = shares(_grid(acc))
    assert s["lr"] > 95 and s["weight_decay"] < 3
    assert sum(s.values()) == pytest.approx(100)


def test_additive_and_interacting_effects():
    # y = a(lr) + b(wd): no interaction; y = a * b: some; each exactly what ANOVA says
    lrs = (1.0, 0.1, 0.01, 0.001)  # log-spaced like the weight decays: equal variance of log10
    add = shares(_grid(lambda lr, wd: math.log10(lr) + 2 * math.log10(wd), lrs=lrs))
    assert add["interactions"] == pytest.approx(0, abs=1e-9)
    assert add["weight_decay"] == pytest.approx(80) and add["lr"] == pytest.approx(20)  # var ratio 4:1
    mul = shares(_grid(lambda lr, wd: math.log10(lr) * math.log10(wd), lrs=lrs))
    assert mul["interactions"] > 10


def test_a_cell_without_a_finite_value_counts_as_the_worst_seen():
    d = _grid(lambda lr, wd: float("nan") if (lr, wd) == (1.0, 0.1) else 0.5 + lr / 10)
    cells, filled = grid_cells(d)
    assert filled == 1 and cells["value"].min() == pytest.approx(0.501)


def test_not_a_complete_grid():
    d = _grid(lambda lr, wd: 0.5)
    d.trials = d.trials.iloc[:-1]  # a cell never ran
    assert grid_importance(d) is None
    assert grid_importance(grid_run()) is not None  # the 2x2 fixture is complete


def test_a_table_without_a_searched_parameter_is_not_a_grid():
    d = _grid(lambda lr, wd: 0.5)
    d.spec.params["activation"] = {"grid": ["relu", "tanh"]}  # the spec says more than the table
    assert grid_cells(d) is None and grid_importance(d) is None
