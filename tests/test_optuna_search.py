"""hpo's Optuna searcher without running trials: the define-by-run space, known points, warm
starts and constraints, asked for suggestions directly."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hpo.adapters.optuna_search import build, violations
from hpo.searchers import OptunaOptions, Search
from hpo.space import parse_param

LR = {"lr": parse_param("lr", {"loguniform": [1e-4, 1.0]})}


def _search(params, prior=(), points=(), seed=0, **opts):
    s = Search(params, OptunaOptions(**opts), seed, None, "val_acc", "max", prior=prior, points=points)
    return build(s)[0]


@pytest.mark.parametrize("seed", range(5))
def test_warm_started_tpe_proposes_around_the_known_best(seed):
    # 20 finished random trials of a function that peaks at lr = 0.1 (log10 = -1)
    rng = np.random.default_rng(seed)
    lrs = 10 ** rng.uniform(-4, 0, 20)
    prior = tuple(({"lr": float(x)}, {"val_acc": 1 - abs(math.log10(x) + 1) / 3}) for x in lrs)
    alg = _search(LR, prior, seed=seed, n_startup_trials=5)
    assert len(alg.study.trials) == 20
    proposed = [alg.suggest(f"t{i}")["lr"] for i in range(5)]
    off = lambda v: np.median(np.abs(np.log10(v) + 1))  # noqa: E731
    assert off(proposed) < off(lrs) / 2


def test_known_points_come_first_then_the_sampler():
    alg = _search(LR, points=({"lr": 0.5}, {"lr": 0.001}))
    assert [alg.suggest(f"t{i}")["lr"] for i in range(2)] == [0.5, 0.001]
    assert alg.suggest("t2")["lr"] not in (0.5, 0.001)


def test_conditional_cases_are_sampled_under_their_own_names():
    params = {"setup": parse_param("setup", {"choice": [
        {"optimizer": "sgd", "lr": {"loguniform": [0.01, 0.5]}, "momentum": {"uniform": [0, 0.9]}},
        {"optimizer": "adam", "lr": {"loguniform": [1e-4, 1e-2]}}]}),
        "hidden": parse_param("hidden", {"choice": [[8], [16, 16]]})}
    alg = _search(params, n_startup_trials=2)
    seen = set()
    for i in range(12):
        cfg = alg.suggest(f"t{i}")
        case = cfg["setup"]
        seen.add(case["optimizer"])
        assert cfg["hidden"] in ([8], [16, 16])  # lists come back as lists, not JSON text
        if case["optimizer"] == "sgd":
            assert set(case) == {"optimizer", "lr", "momentum"} and 0.01 <= case["lr"] <= 0.5
        else:
            assert set(case) == {"optimizer", "lr"} and 1e-4 <= case["lr"] <= 1e-2
    assert seen == {"sgd", "adam"}
    names = set().union(*(t.params for t in alg.study.trials))
    assert {"setup", "lr[optimizer=sgd]", "momentum[optimizer=sgd]", "lr[optimizer=adam]"} <= names


def test_constraint_violations():
    bounds = {"n_params": (None, 1000.0), "val_acc": (0.5, None)}
    assert violations({"n_params": 800, "val_acc": 0.7}, bounds) == {
        "n_params<=1000": -200.0, "val_acc>=0.5": pytest.approx(-0.2)}
    assert violations({"n_params": 1200, "val_acc": 0.4}, bounds) == {
        "n_params<=1000": 200.0, "val_acc>=0.5": pytest.approx(0.1)}
    assert set(violations({}, bounds).values()) == {1.0}  # unknown values: infeasible


def test_constraints_reach_the_sampler_for_told_and_known_trials():
    params = {"x": parse_param("x", {"uniform": [0, 1]})}
    prior = (({"x": 0.9}, {"val_acc": 0.9, "n_params": 5000}), ({"x": 0.1}, {"val_acc": 0.5, "n_params": 10}))
    s = Search(params, OptunaOptions(), 0, None, "val_acc", "max", prior=prior,
               constraints={"n_params": (None, 1000.0)}, directions={"val_acc": "max", "n_params": "min"})
    alg = build(s)[0]
    alg.suggest("t0")
    alg.on_trial_result("t0", {"val_acc": 0.7, "n_params": 2000, "training_iteration": 1})
    alg.on_trial_complete("t0", {"val_acc": 0.6, "n_params": 2000, "training_iteration": 2})
    got = [t.constraints for t in alg.study.trials]
    assert got == [{"n_params<=1000": 4000.0}, {"n_params<=1000": -990.0}, {"n_params<=1000": 1000.0}]
    assert alg.study.trials[2].values == [0.7]  # told its best over epochs, not its last


def test_flat_values_name_a_case_by_its_label_and_keep_its_own_parameters():
    import optuna.distributions as od

    from hpo.optuna_space import flat_distributions, flat_values

    params = {"setup": parse_param("setup", {"choice": [
        {"optimizer": "sgd", "lr": {"loguniform": [0.01, 0.5]}, "momentum": {"uniform": [0, 0.9]}},
        {"optimizer": "adam", "lr": {"loguniform": [1e-4, 1e-2]}}]}),
        "hidden": parse_param("hidden", {"choice": [[8], [16, 16]]}), "batch_size": parse_param("b", 64)}
    d = flat_distributions(params)
    assert d["setup"] == od.CategoricalDistribution(["optimizer=sgd", "optimizer=adam"])
    assert d["lr"] == od.FloatDistribution(1e-4, 0.5, log=True)  # one axis spanning both cases
    assert set(d) == {"setup", "lr", "momentum", "hidden"}
    v = flat_values(params, {"setup": {"optimizer": "adam", "lr": 0.001}, "hidden": [16, 16], "batch_size": 64})
    assert v == {"setup": "optimizer=adam", "lr": 0.001, "hidden": "[16, 16]"}
    for k, x in v.items():  # every value is one its distribution takes
        d[k].to_internal_repr(x)
