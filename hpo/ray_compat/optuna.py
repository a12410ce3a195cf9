"""Ray's OptunaSearch as hpo needs it: private overrides, in hpo.ray_compat (TOUCHES["optuna_search"]).

Three changes in a subclass: the define-by-run space returns the trial's configuration only (not
Optuna's internal names: Ray's `_suggest_from_define_by_run_func`); each objective is told as the
best value the trial reached over its epochs (what hpo ranks by), not its last epoch's; and each
constraint's violation is set on the Optuna trial before it is told (``Trial.set_constraint``,
Optuna 5's way; Ray keeps the trials in `_ot_trials`). A warm start's earlier trials carry their
constraints under Optuna's private key (`constraints_key()`): a created trial has no Trial to call
`set_constraint` on.
"""

from __future__ import annotations

import math
from typing import Any

from ray.tune.search.optuna import OptunaSearch

Bounds = dict[str, tuple[float | None, float | None]]


def constraints_key() -> str:
    """Optuna's system-attribute prefix of a trial's constraint values (checked by
    hpo.ray_compat before an `optuna` search is built)."""
    from optuna.study._constrained_optimization import _CONSTRAINTS_KEY

    return _CONSTRAINTS_KEY


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


class HpoOptunaSearch(OptunaSearch):
    def __init__(self, space: Any, goals: dict[str, str], constraints: Bounds,
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
