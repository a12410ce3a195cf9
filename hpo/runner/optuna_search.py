"""Optuna on Ray Tune: every sampler, several objectives, constraints, conditional spaces,
known points and warm starts.

Ray's ``OptunaSearch`` is used as it is, with three changes in a subclass: the define-by-run
space returns the trial's configuration only (not Optuna's internal names); each objective is
told as the best value the trial reached over its epochs (what hpo ranks by), not its last
epoch's; and each constraint's violation is set on the Optuna trial before it is told
(``Trial.set_constraint``, Optuna 5's way; the samplers read ``trial.constraints``).
"""

from __future__ import annotations

import math
import warnings
from typing import Any

from ray.tune.search.optuna import OptunaSearch

from hpo.optuna_space import DefineByRun
from hpo.searchers import Search
from hpo.space import to_param_space

Bounds = dict[str, tuple[float | None, float | None]]


def violations(result: dict[str, Any], constraints: Bounds) -> dict[str, float]:
    """One value per bound, named by it ("n_params<=300000"): how far `result` is outside it
    (<= 0 inside; 1 when the value is unknown)."""
    out = {}
    for metric, (lo, hi) in constraints.items():
        v = result.get(metric)
        ok = isinstance(v, (int, float)) and math.isfinite(v)
        if lo is not None:
            out[f"{metric}>={lo:g}"] = float(lo - v) if ok else 1.0
        if hi is not None:
            out[f"{metric}<={hi:g}"] = float(v - hi) if ok else 1.0
    return out


class _Search(OptunaSearch):
    def __init__(self, space: DefineByRun, goals: dict[str, str], constraints: Bounds,
                 directions: dict[str, str], **kw: Any) -> None:
        self._goals, self._constraints = goals, constraints
        # the best over epochs of each objective and constrained value, as hpo's tables have it
        self._tracked = {m: goals.get(m) or directions.get(m, "min") for m in [*goals, *constraints]}
        self._bests: dict[str, dict[str, float]] = {}
        metrics, modes = list(goals), list(goals.values())
        multi = len(goals) > 1
        super().__init__(space=space, metric=metrics if multi else metrics[0],
                         mode=modes if multi else modes[0], **kw)

    def _suggest_from_define_by_run_func(self, func: Any, ot_trial: Any) -> dict[str, Any]:
        return func(ot_trial)

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        best = self._bests.setdefault(trial_id, {})
        for m, mode in self._tracked.items():
            v = result.get(m)
            if isinstance(v, (int, float)) and math.isfinite(v) and not result.get("diverged"):
                best[m] = v if m not in best else (max if mode == "max" else min)(best[m], v)
        super().on_trial_result(trial_id, result)

    def on_trial_complete(self, trial_id: str, result: dict[str, Any] | None = None,
                          error: bool = False) -> None:
        if result and trial_id in self._ot_trials:
            result = {**result, **self._bests.pop(trial_id, {})}
            for key, value in violations(result, self._constraints).items():
                self._ot_trials[trial_id].set_constraint(key, value)
        super().on_trial_complete(trial_id, result, error)


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
    from optuna.study._constrained_optimization import _CONSTRAINTS_KEY

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = DefineByRun(s.params)
    alg = _Search(space, s.goals, s.constraints, s.directions, sampler=_sampler(s))
    study = alg._ot_study
    for config, values in s.prior:  # an earlier run's finished trials: the sampler knows them
        params, dists = space.encode(config)
        vals = [values.get(m) for m in s.goals]
        ok = all(isinstance(v, (int, float)) and math.isfinite(v) for v in vals)
        # the keys Trial.set_constraint writes (a created trial has no Trial to call it on)
        cons = {f"{_CONSTRAINTS_KEY}:{k}": v for k, v in violations(values, s.constraints).items()}
        study.add_trial(optuna.trial.create_trial(
            params=params, distributions=dists, values=vals if ok else None,
            state=optuna.trial.TrialState.COMPLETE if ok else optuna.trial.TrialState.FAIL,
            user_attrs={"hpo_prior": True}, system_attrs=cons))
    for point in s.points:
        study.enqueue_trial(space.encode(point)[0])
    constants = {k: v for k, v in to_param_space(s.params).items() if k not in space.params}
    return alg, constants  # the cap on running trials: hpo.runner.plan_search
