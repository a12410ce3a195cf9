from __future__ import annotations

import pytest

from hpo.errors import SpecError
from hpo.space import Constant, Distribution, grid_size, parse_param, to_param_space


def test_constants_and_lists_are_not_searched():
    assert parse_param("hidden", [128, 64]) == Constant([128, 64])
    assert parse_param("lr", 0.1) == Constant(0.1)


def test_distributions_parse():
    assert parse_param("lr", {"grid": [1, 0.1]}) == Distribution("grid", values=(1, 0.1))
    d = parse_param("lr", {"loguniform": [1e-4, 1e-1]})
    assert (d.kind, d.low, d.high) == ("loguniform", 1e-4, 1e-1)
    q = parse_param("d", {"quniform": [0, 0.5, 0.1]})
    assert q.q == 0.1
    assert parse_param("h", {"choice": [[128], [256, 192]]}).values == ((128,), (256, 192))


@pytest.mark.parametrize("raw,match", [
    ({"grid": []}, r"params\.lr\.grid: `grid` needs at least one value"),
    ({"uniform": [1, 0.5]}, r"low must be < high"),
    ({"loguniform": [0, 1]}, r"loguniform needs low > 0"),
    ({"logunifrom": [0.1, 1]}, r"unknown distribution `logunifrom`\. Did you mean `loguniform`"),
    ({"uniform": [0, "a"]}, r"expected \[low, high\]"),
    ({"quniform": [0, 1, 0]}, r"q must be > 0"),
    ({"randint": [1.5, 4]}, r"randint bounds must be integers"),
    ({"grid": [1], "choice": [2]}, r"exactly one key"),
])
def test_bad_distributions(raw, match):
    with pytest.raises(SpecError, match=match):
        parse_param("lr", raw)


def test_grid_size():
    params = {"a": parse_param("a", {"grid": [1, 2, 3]}), "b": parse_param("b", {"grid": [1, 2]}),
              "c": parse_param("c", {"uniform": [0, 1]}), "d": Constant(1)}
    assert grid_size(params) == 6


def test_to_tune_maps_every_distribution():
    from ray.tune.search.sample import Categorical, Float, Integer

    raw = {"g": {"grid": [1, 2]}, "c": {"choice": [[1], [2, 3]]}, "u": {"uniform": [0, 1]},
           "l": {"loguniform": [1e-3, 1]}, "r": {"randint": [1, 3]},
           "q": {"quniform": [0, 1, 0.25]}, "ql": {"qloguniform": [1e-3, 1, 1e-3]}, "k": 5}
    space = to_param_space({k: parse_param(k, v) for k, v in raw.items()})
    assert space["g"] == {"grid_search": [1, 2]}
    assert isinstance(space["c"], Categorical) and space["c"].categories == [[1], [2, 3]]
    assert isinstance(space["u"], Float) and isinstance(space["l"].sampler, Float._LogUniform)
    assert isinstance(space["r"], Integer) and (space["r"].lower, space["r"].upper) == (1, 4)
    assert space["q"].sampler.q == 0.25 and space["k"] == 5


def test_a_grid_of_mappings_is_a_group_of_cases():
    from hpo.contract import expand_cases
    from hpo.space import case_label, groups

    p = parse_param("setup", {"grid": [{"optimizer": "adam", "lr": 0.001},
                                       {"optimizer": "sgd", "momentum": 0.9, "lr": 0.01}]})
    assert isinstance(p, Distribution) and p.is_group and grid_size({"setup": p}) == 2
    assert groups({"setup": p, "lr": Constant(0.1)}) == ["setup"]
    assert case_label(p.values[1]) == "optimizer=sgd, momentum=0.9, lr=0.01"
    cfg = {"setup": {"optimizer": "adam", "lr": 0.001}, "batch_size": 64}
    assert expand_cases(cfg, ["setup"]) == {"batch_size": 64, "optimizer": "adam", "lr": 0.001}
    assert to_param_space({"setup": p})["setup"] == {"grid_search": [
        {"optimizer": "adam", "lr": 0.001}, {"optimizer": "sgd", "momentum": 0.9, "lr": 0.01}]}


@pytest.mark.parametrize("raw,match", [
    ({"grid": [{"lr": 0.1}, 0.2]}, r"mix of mappings and plain values"),
    ({"grid": [{}]}, r"case 1 is empty"),
    ({"choice": [{"lr": {"grid": [0.1, 1]}}]}, r"case 1: `lr` is a `grid`"),
    ({"choice": [{"a": {"choice": [{"lr": 1}]}}]}, r"case 1: `a` holds cases of its own"),
    ({"choice": [{"lr": {"uniform": [1, 0]}}]}, r"params.lr.uniform: low must be < high"),
])
def test_bad_groups(raw, match):
    with pytest.raises(SpecError, match=match):
        parse_param("setup", raw)
