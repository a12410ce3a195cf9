"""Optuna on Ray Tune: every sampler, several objectives, constraints, conditional spaces,
known points and warm starts.

`OptunaSearcher` is a Ray Tune `Searcher` (Ray's public API) over Optuna's ask-and-tell
interface (Optuna's public API): a trial's configuration is the define-by-run space run on the
trial Optuna asks for (hpo.optuna_space); each objective is told as the best value the trial
reached over its epochs (what hpo ranks by), not its last epoch's; each constraint's violation is
set on the trial before it is told (``Trial.set_constraint``; the samplers read
``trial.constraints``), and on an earlier run's trials before they are added
(``FrozenTrial.set_constraint``). Ray's own ``OptunaSearch`` does none of the three without
reaching into its private methods (it tells a trial's last result and returns Optuna's flat
names), which hpo once did.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

from ray.tune.search import Searcher

from hpo.adapters import Search
from hpo.optuna_space import DefineByRun
from hpo.space import to_param_space

__all__ = ["OptunaSearcher", "build", "violations"]

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


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


class OptunaSearcher(Searcher):
    """Ray Tune asks (`suggest`) and tells (`on_trial_result`, `on_trial_complete`); this hands
    both to one Optuna `study`. The cap on running trials is hpo's (hpo.runner.plan_search)."""

    def __init__(self, study: Any, space: DefineByRun, goals: dict[str, str], constraints: Bounds,
                 directions: dict[str, str]) -> None:
        metrics, modes = list(goals), list(goals.values())
        multi = len(goals) > 1
        super().__init__(metric=metrics if multi else metrics[0], mode=modes if multi else modes[0])
        self.study, self.space = study, space
        self._goals, self._constraints = goals, constraints
        # the best over epochs of each objective and constrained value, as hpo's tables have it
        self._tracked = {m: goals.get(m) or directions.get(m, "min") for m in [*goals, *constraints]}
        self._bests: dict[str, dict[str, float]] = {}
        self._asked: dict[str, Any] = {}  # Ray trial id -> the Optuna trial asked for it

    def set_search_properties(self, metric: str | None, mode: str | None, config: dict[str, Any],
                              **spec: Any) -> bool:
        return True  # the space, metrics and modes are the spec's, set when it was built

    def suggest(self, trial_id: str) -> dict[str, Any]:
        trial = self.study.ask()
        self._asked[trial_id] = trial
        return self.space(trial)

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        best = self._bests.setdefault(trial_id, {})
        for m, mode in self._tracked.items():
            v = result.get(m)
            if _finite(v) and not result.get("diverged"):
                best[m] = v if m not in best else (max if mode == "max" else min)(best[m], v)
        trial = self._asked.get(trial_id)
        if trial is not None and len(self._goals) == 1 and _finite(v := result.get(self.metric)):
            trial.report(v, int(result.get("training_iteration", 0)))  # (what a pruner reads)

    def on_trial_complete(self, trial_id: str, result: dict[str, Any] | None = None,
                          error: bool = False) -> None:
        import optuna

        trial = self._asked.pop(trial_id, None)
        bests = self._bests.pop(trial_id, {})
        if trial is None:
            return
        state = optuna.trial.TrialState
        if not result:  # no result at all: failed, or stopped before its first
            self.study.tell(trial, state=state.FAIL if error else state.PRUNED)
            return
        result = {**result, **bests}
        for key, value in violations(result, self._constraints).items():
            trial.set_constraint(key, value)
        values = [result.get(m) for m in self._goals]
        if not all(_finite(v) for v in values):  # diverged from its first epoch: nothing to tell
            self.study.tell(trial, state=state.FAIL)
            return
        self.study.tell(trial, values if len(values) > 1 else values[0])


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
    """hpo's Optuna searcher over the define-by-run space; constants go in the param space."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = DefineByRun(s.params)
    study = optuna.create_study(sampler=_sampler(s), directions=[
        "maximize" if mode == "max" else "minimize" for mode in s.goals.values()])
    alg = OptunaSearcher(study, space, s.goals, s.constraints, s.directions)
    for config, values in s.prior:  # an earlier run's finished trials: the sampler knows them
        params, dists = space.encode(config)
        vals = [values.get(m) for m in s.goals]
        ok = all(_finite(v) for v in vals)
        trial = optuna.trial.create_trial(
            params=params, distributions=dists, values=vals if ok else None,
            state=optuna.trial.TrialState.COMPLETE if ok else optuna.trial.TrialState.FAIL,
            user_attrs={"hpo_prior": True})
        for key, value in violations(values, s.constraints).items():
            trial.set_constraint(key, value)
        study.add_trial(trial)
    for point in s.points:
        study.enqueue_trial(space.encode(point)[0])
    constants = {k: v for k, v in to_param_space(s.params).items() if k not in space.params}
    return alg, constants  # the cap on running trials: hpo.runner.plan_search
