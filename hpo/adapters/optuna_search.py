"""Optuna on Ray Tune: every sampler, several objectives, constraints, conditional spaces,
known points and warm starts.

Ray's ``OptunaSearch`` is used as it is, with three changes in a subclass (hpo.ray_compat.optuna):
the define-by-run space returns the trial's configuration only (not Optuna's internal names); each
objective is told as the best value the trial reached over its epochs (what hpo ranks by), not its last
epoch's; and each constraint's violation is set on the Optuna trial before it is told
(``Trial.set_constraint``, Optuna 5's way; the samplers read ``trial.constraints``).
"""

from __future__ import annotations

import math
import warnings
from typing import Any

from hpo.adapters import Search
from hpo.optuna_space import DefineByRun
from hpo.ray_compat import require
from hpo.ray_compat.optuna import HpoOptunaSearch, constraints_key, violations
from hpo.space import to_param_space

__all__ = ["build", "violations"]


def _sampler(s: Search) -> Any:
    import optuna

    o = s.options
    seed = s.seed if o.seed is None else o.seed
    conditional = any(getattr(p, "is_conditional", False) for p in s.params.values())
    makers = {
        "tpe": lambda: optuna.samplers.TPESampler(
            seed=seed, n_startup_trials=o.n_startup_trials, multivariate=o.multivariate,
            group=o.multivariate and conditional),
        "gp": lambda: optuna.samplers.GPSampler(seed=seed, n_startup_trials=o.n_startup_trials),
        "cmaes": lambda: optuna.samplers.CmaEsSampler(seed=seed, n_startup_trials=max(1, o.n_startup_trials)),
        "qmc": lambda: optuna.samplers.QMCSampler(seed=seed, scramble=True),
        "random": lambda: optuna.samplers.RandomSampler(seed=seed),
        "nsgaii": lambda: optuna.samplers.NSGAIISampler(
            seed=seed, population_size=o.population_size),
    }
    with warnings.catch_warnings():  # TPE's `group` (conditional spaces) is marked experimental
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return makers[o.sampler]()


def build(s: Search) -> tuple[Any, dict[str, Any]]:
    """Ray's OptunaSearch over the define-by-run space; constants go in the param space."""
    import optuna

    require("optuna_search", "searcher.name")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = DefineByRun(s.params)
    storage = optuna.storages.InMemoryStorage()  # given, so the study is had by its public name
    alg = HpoOptunaSearch(space, s.goals, s.constraints, s.directions, sampler=_sampler(s),
                          storage=storage, study_name="hpo")
    study = optuna.load_study(study_name="hpo", storage=storage)
    key = constraints_key()
    for config, values in s.prior:  # an earlier run's finished trials: the sampler knows them
        params, dists = space.encode(config)
        vals = [values.get(m) for m in s.goals]
        ok = all(isinstance(v, (int, float)) and math.isfinite(v) for v in vals)
        # the keys Trial.set_constraint writes (a created trial has no Trial to call it on)
        cons = {f"{key}:{k}": v for k, v in violations(values, s.constraints).items()}
        study.add_trial(optuna.trial.create_trial(
            params=params, distributions=dists, values=vals if ok else None,
            state=optuna.trial.TrialState.COMPLETE if ok else optuna.trial.TrialState.FAIL,
            user_attrs={"hpo_prior": True}, system_attrs=cons))
    for point in s.points:
        study.enqueue_trial(space.encode(point)[0])
    constants = {k: v for k, v in to_param_space(s.params).items() if k not in space.params}
    return alg, constants  # the cap on running trials: hpo.runner.plan_search
