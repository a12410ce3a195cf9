"""Nevergrad on Ray Tune: particle swarm (PSO), differential evolution (DE, TwoPointsDE),
CMA, NGOpt, (1+1), through Ray's ``NevergradSearch``, seeded and with the run's budget."""

from __future__ import annotations

from typing import Any

import numpy as np
from nevergrad.optimization.base import ConfiguredOptimizer
from ray.tune.search.nevergrad import NevergradSearch

from hpo.adapters import Search
from hpo.space import to_param_space


class SeededOptimizer(ConfiguredOptimizer):
    """A registered Nevergrad optimizer whose parametrization is seeded (Ray builds it from
    the converted space; nevergrad draws from the parametrization's random state)."""

    def __init__(self, name: str, seed: int, told: tuple[tuple[dict[str, Any], float], ...] = ()) -> None:  # noqa: D107
        self.name, self.seed, self.told = name, seed, told  # (no super().__init__: __call__ builds)

    def __call__(self, parametrization: Any, budget: int | None = None, num_workers: int = 1) -> Any:
        import nevergrad as ng

        parametrization.random_state = np.random.RandomState(self.seed)
        opt = ng.optimizers.registry[self.name](parametrization, budget=budget, num_workers=num_workers)
        for point, loss in self.told:  # finished trials (a warm start, a resumed run's own)
            opt.tell(parametrization.spawn_child(new_value=point), loss)
        return opt

    def __repr__(self) -> str:
        return f"SeededOptimizer({self.name}, seed={self.seed})"


def build_nevergrad(s: Search) -> tuple[Any, dict[str, Any]]:
    o = s.options
    space = to_param_space(s.params)
    searched = {k: v for k, v in space.items() if hasattr(v, "sample")}
    sign = -1.0 if s.mode == "max" else 1.0  # nevergrad minimizes (as Ray's NevergradSearch tells it)
    told = tuple(({k: v for k, v in point.items() if k in searched}, sign * values[s.metric])
                 for point, values in s.prior if isinstance(values.get(s.metric), (int, float)))
    alg = NevergradSearch(optimizer=SeededOptimizer(o.optimizer, s.seed if o.seed is None else o.seed, told),
                          space=searched, metric=s.metric, mode=s.mode,
                          optimizer_kwargs={"budget": s.num_samples, "num_workers": s.max_concurrent or 1},
                          points_to_evaluate=[dict(p) for p in s.points] or None)
    constants = {k: v for k, v in space.items() if k not in searched}
    return alg, constants  # the cap on running trials: hpo.runner.plan_search
