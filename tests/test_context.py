"""A user's own training function with the context contract (hpo.Context), run without Ray."""

from __future__ import annotations

import math

import numpy as np
import pytest

import hpo
from hpo.contract import Settings
from hpo.data.base import ArrayDataset
from hpo.errors import SpecError
from hpo.trainables import get_trainable
from hpo.trainables.context import TrialReportError
from tests.conftest import write_spec

CODE = '''
import math
from pydantic import BaseModel, Field

METRICS = {"val_loss": "min", "val_acc": "max"}


class P(BaseModel):
    x: float = Field(1.0, ge=-10, le=10)
    seed: int = 0


def fit(p: P, ctx):
    state = ctx.restore() or {"sum": 0.0}
    for epoch in ctx.epochs():
        state["sum"] += p.x
        loss = math.nan if p.x == 9 and epoch == 2 else (p.x - 2) ** 2 / (epoch + 1)
        ctx.report({"val_loss": loss, "val_acc": 1 / (1 + loss)}, checkpoint=dict(state))


def undeclared(p: P, ctx):
    ctx.report({"val_loss": 1.0, "val_f1": 0.3})


def without_metric(p: P, ctx):
    ctx.report({"val_acc": 0.3})


def three(p, ctx, extra):
    pass
'''


@pytest.fixture
def mod(tmp_path, monkeypatch):
    (tmp_path / "ctx_train.py").write_text(CODE)
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def run(fn, config, epochs=4, state=None, metric="val_loss", mode="min"):
    info = get_trainable(f"ctx_train:{fn}")
    rows, states = [], []
    info.train(config, ArrayDataset("d", *(np.zeros((2, 1)),) * 6, n_classes=2),
               Settings(max_epochs=epochs, metric=metric, mode=mode),
               lambda m, s: (rows.append(m), states.append(s() if s else None)), state)
    return rows, states


def test_reports_epochs_best_epoch_and_checkpoints(mod):
    rows, states = run("fit", {"x": 4.0})
    assert [r["epoch"] for r in rows] == [1, 2, 3, 4] and [r["best_epoch"] for r in rows] == [1, 2, 3, 4]
    assert states[1]["user"] == {"sum": 8.0}
    resumed, _ = run("fit", {"x": 4.0}, state=states[1])
    assert [r["epoch"] for r in resumed] == [3, 4] and resumed == rows[2:]


def test_nan_ends_the_trial_as_diverged_with_the_worst_value(mod):
    rows, _ = run("fit", {"x": 9.0})
    assert len(rows) == 3 and rows[-1]["diverged"] and rows[-1]["val_loss"] == math.inf
    assert rows[-1]["val_acc"] == -math.inf and rows[-1]["best_epoch"] == 2


@pytest.mark.parametrize("fn,match", [("undeclared", r"reported val_f1, which METRICS does not declare"),
                                      ("without_metric", r"a report without `val_loss`, the spec's metric")])
def test_contract_violations_are_clear_trial_errors(mod, fn, match):
    with pytest.raises(TrialReportError, match=match):
        run(fn, {})


def test_checked_before_ray(mod):
    spec = "name: t\ntrainable: ctx_train:{fn}\ndataset: mnist_sample\nmetric: {metric}\nparams: {{x: {{grid: [{x}]}}}}\n"
    exp = hpo.validate(write_spec(mod, spec.format(fn="fit", metric="val_acc", x="1, 3")))
    assert exp.mode == "max" and exp.trainable.takes_context
    with pytest.raises(SpecError, match=r"metric: trainable `ctx_train:fit` does not report metric `val_f1`"):
        hpo.validate(write_spec(mod, spec.format(fn="fit", metric="val_f1", x="1")))
    with pytest.raises(SpecError, match=r"params\.x\.grid: Input should be less than or equal to 10"):
        hpo.validate(write_spec(mod, spec.format(fn="fit", metric="val_acc", x="1, 30")))
    with pytest.raises(SpecError, match=r"trainable: `ctx_train:three` must take \(config, ctx\)"):
        hpo.validate(write_spec(mod, spec.format(fn="three", metric="val_acc", x="1")))


DICT_CODE = '''
METRICS = {"val_loss": "min"}


def fit(config, ctx):  # unannotated: a plain dict, as Ray Tune, Optuna and W&B hand it
    assert type(config) is dict
    for epoch in ctx.epochs():
        ctx.report({"val_loss": (config["x"] - 2) ** 2 + config.get("offset", 0) / (epoch + 1)})


def fit_mapping(config: "dict[str, float]", ctx):
    for epoch in ctx.epochs():
        ctx.report({"val_loss": config["missing_param"]})
'''


def test_a_context_function_that_takes_a_plain_dict(tmp_path, monkeypatch):
    (tmp_path / "dict_train.py").write_text(DICT_CODE)
    monkeypatch.syspath_prepend(str(tmp_path))
    info = get_trainable("dict_train:fit")
    assert info.context_takes_dict and get_trainable("dict_train:fit_mapping").context_takes_dict
    rows = []
    info.train({"x": 3.0, "offset": 1, "seed": 4}, ArrayDataset("d", *(np.zeros((2, 1)),) * 6, n_classes=2),
               Settings(max_epochs=2, metric="val_loss", mode="min"), lambda m, s: rows.append(m), None)
    assert [r["val_loss"] for r in rows] == [2.0, 1.5]
    spec = ("name: t\ntrainable: dict_train:{fn}\ndataset: mnist_sample\nmetric: val_loss\n"
            "params: {{x: {{grid: [1, 3]}}, offset: 2}}\n")
    exp = hpo.validate(write_spec(tmp_path, spec.format(fn="fit")))  # any parameter names
    assert exp.searched_names == ["x"]
    with pytest.raises(KeyError, match="missing_param"):  # the parameter the spec lacks, by name
        get_trainable("dict_train:fit_mapping").train(
            {"x": 1.0}, ArrayDataset("d", *(np.zeros((2, 1)),) * 6, n_classes=2),
            Settings(max_epochs=1, metric="val_loss", mode="min"), lambda m, s: None, None)
