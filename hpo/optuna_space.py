"""hpo's search space as an Optuna define-by-run function, and the way back.

Optuna samples a group of cases as one categorical parameter (the case's label) and then only
that case's own distributions, under names that say which case they belong to
(``lr[optimizer=sgd]``), so a parameter exists in its case only and TPE models it per case.
The same encoding turns known points (``points_to_evaluate``) and an earlier run's trials (a
warm start) into Optuna parameters. No Ray here; the sampler factories import Optuna lazily.
"""

from __future__ import annotations

import math
from typing import Any

from hpo.space import Distribution, Param, optuna_category, thaw


def case_param(group_label: str, name: str) -> str:
    """The Optuna name of a parameter sampled inside a case: `lr[optimizer=sgd]`."""
    return f"{name}[{group_label}]"


def _choices(p: Distribution) -> list[Any]:
    return [optuna_category(thaw(v)) for v in p.values]


def _suggest(trial: Any, name: str, p: Distribution) -> Any:
    if p.is_categorical:
        choices = _choices(p)
        return thaw(p.values[choices.index(trial.suggest_categorical(name, choices))])
    if p.is_integer:
        return trial.suggest_int(name, int(p.low), int(p.high))
    x = trial.suggest_float(name, p.low, p.high, log=p.is_log)
    return _quantize(x, p)


def _quantize(x: float, p: Distribution) -> float:
    if p.q is None:
        return x
    return min(max(round(x / p.q) * p.q, p.low), p.high)


def to_distribution(p: Distribution) -> Any:
    """The Optuna distribution `_suggest` asks for (groups: their case labels)."""
    import optuna.distributions as od

    if p.is_group:
        return od.CategoricalDistribution(p.labels())
    if p.is_categorical:
        return od.CategoricalDistribution(_choices(p))
    if p.is_integer:
        return od.IntDistribution(int(p.low), int(p.high))
    return od.FloatDistribution(p.low, p.high, log=p.is_log)


class DefineByRun:
    """The search space as Optuna's define-by-run function (a class: Tune pickles it)."""

    def __init__(self, params: dict[str, Param]) -> None:
        self.params = {k: p for k, p in params.items() if isinstance(p, Distribution)}

    def __call__(self, trial: Any) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, p in self.params.items():
            if not p.is_group:
                out[name] = _suggest(trial, name, p)
                continue
            labels = p.labels()
            label = trial.suggest_categorical(name, labels)
            case = p.values[labels.index(label)]
            out[name] = {k: _suggest(trial, case_param(label, k), v) if isinstance(v, Distribution)
                         else thaw(v) for k, v in case.items()}
        return out

    def encode(self, point: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """A configuration (a group's value: the case's mapping) as Optuna (params,
        distributions), the names and values `__call__` would have sampled."""
        params: dict[str, Any] = {}
        dists: dict[str, Any] = {}
        for name, p in self.params.items():
            v = point[name]
            if p.is_group:
                i = p.case_of(v)
                if i is None:
                    raise ValueError(f"{name}: {v!r} is none of the cases")
                label = p.labels()[i]
                params[name], dists[name] = label, to_distribution(p)
                for k, sub in p.values[i].items():
                    if isinstance(sub, Distribution):
                        params[case_param(label, k)] = _external(sub, v[k])
                        dists[case_param(label, k)] = to_distribution(sub)
            else:
                params[name], dists[name] = _external(p, v), to_distribution(p)
        return params, dists


def _external(p: Distribution, v: Any) -> Any:
    return optuna_category(thaw(v)) if p.is_categorical else v


def point_error(p: Distribution, v: Any) -> str | None:
    """Why `v` is not a value of `p` (None when it is one): the check of a known point."""
    if p.is_group:
        if not isinstance(v, dict) or p.case_of(v) is None:
            return (f"{v!r} matches none of the cases (a case's mapping with the same "
                    f"parameters and fixed values): {'; '.join(p.labels())}")
        case = p.values[p.case_of(v)]
        for k, sub in case.items():
            if isinstance(sub, Distribution):
                err = point_error(sub, v[k])
                if err:
                    return f"{k}: {err}"
        return None
    if p.is_categorical:
        values = [thaw(x) for x in p.values]
        return None if v in values else f"{v!r} is not one of {values}"
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        return f"{v!r} is not a number"
    if p.is_integer and not float(v).is_integer():
        return f"{v!r} is not an integer"
    if not p.low <= v <= p.high:
        return f"{v!r} is outside [{p.low:g}, {p.high:g}]"
    return None


def flat_distributions(params: dict[str, Param]) -> dict[str, Any]:
    """One Optuna distribution per name a reader sees in the tables: each searched parameter (a
    group: its case labels) and each parameter sampled inside cases, with one range spanning
    every case's (the live view and the report draw one axis per name)."""
    import optuna.distributions as od

    out = {}
    for name, p in params.items():
        if not isinstance(p, Distribution):
            continue
        out[name] = to_distribution(p)
        if not p.is_conditional:
            continue
        for case in p.values:
            for k, sub in case.items():
                if not isinstance(sub, Distribution):
                    continue
                d, prev = to_distribution(sub), out.get(k)
                if isinstance(prev, od.FloatDistribution) and isinstance(d, od.FloatDistribution):
                    d = od.FloatDistribution(min(prev.low, d.low), max(prev.high, d.high),
                                             log=prev.log and d.log)
                elif isinstance(prev, od.IntDistribution) and isinstance(d, od.IntDistribution):
                    d = od.IntDistribution(min(prev.low, d.low), max(prev.high, d.high))
                out[k] = d
    return out


def flat_values(params: dict[str, Param], config: dict[str, Any]) -> dict[str, Any]:
    """A trial's configuration as values of :func:`flat_distributions` (a group: its case's
    label; a parameter of the case: its value; lists as JSON text)."""
    out: dict[str, Any] = {}
    for name, p in params.items():
        if not isinstance(p, Distribution) or name not in config:
            continue
        v = config[name]
        if p.is_group and isinstance(v, dict):
            i = p.case_of(v)
            if i is None:
                continue
            out[name] = p.labels()[i]
            out.update({k: v[k] for k, sub in p.values[i].items() if isinstance(sub, Distribution)})
        else:
            out[name] = _external(p, v)
    return out
