"""Schedulers that see trials by hpo's id and are rebuilt on resume from the record.

Ray does not save a scheduler with the experiment. hpo does not save it either: on `hpo resume`
a fresh ASHA or median rule is handed the record's results again, in the order the driver
logged them (`replay`), through the same public calls Tune makes (on_trial_add /
on_trial_result / on_trial_complete). Its rungs (or running means) are then those of the run
that was stopped, and it goes on deciding as an uninterrupted run would; a cut trial it would
have stopped is ended, not continued. ASHA's bracket of a trial is drawn at random (Ray's global
generator) when there are several brackets: with `brackets: 1` (the default) the replay is exact.

A trial that continues one cut by a stop runs as a new Ray trial; `Aliased` hands the scheduler
the hpo id it continues (hpo.contract.RECORD_KEY), so its rungs are the ones it reached before.
The median rule keeps of each result only the epoch and the metric, keyed by that id.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ray.tune.schedulers import (
    AsyncHyperBandScheduler,
    MedianStoppingRule,
    PopulationBasedTraining,
    TrialScheduler,
)

from hpo.contract import RECORD_KEY


@dataclass(frozen=True)
class Key:
    """A trial as the scheduler sees it: by hpo's id, which outlives the process."""

    trial_id: str


def hpo_id(trial: Any) -> str:
    """The hpo id of a Ray trial: the trial it continues, else its own."""
    tag = (getattr(trial, "config", None) or {}).get(RECORD_KEY) or {}
    return str(tag.get("trial") or trial.trial_id)


class NoController:
    """Stands for Tune's controller during a replay: no trial is waiting."""

    @staticmethod
    def get_live_trials() -> list[Any]:
        return []


class Aliased:
    """Mixin: every trial reaches the scheduler as its hpo id (`Key`)."""

    def _slim(self, result: dict[str, Any]) -> dict[str, Any]:
        return result

    def on_trial_add(self, tune_controller: Any, trial: Any) -> None:
        super().on_trial_add(tune_controller, Key(hpo_id(trial)))  # type: ignore[misc]

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict[str, Any]) -> str:
        return super().on_trial_result(tune_controller, Key(hpo_id(trial)), self._slim(result))  # type: ignore[misc]

    def on_trial_complete(self, tune_controller: Any, trial: Any, result: dict[str, Any]) -> None:
        super().on_trial_complete(tune_controller, Key(hpo_id(trial)), self._slim(result or {}))  # type: ignore[misc]

    def on_trial_remove(self, tune_controller: Any, trial: Any) -> None:
        super().on_trial_remove(tune_controller, Key(hpo_id(trial)))  # type: ignore[misc]

    def on_trial_error(self, tune_controller: Any, trial: Any) -> None:
        super().on_trial_error(tune_controller, Key(hpo_id(trial)))  # type: ignore[misc]


class ASHA(Aliased, AsyncHyperBandScheduler):
    pass


class Median(Aliased, MedianStoppingRule):
    def __init__(self, time_attr: str, metric: str, **kw: Any) -> None:
        super().__init__(time_attr=time_attr, metric=metric, **kw)
        self.keep = (time_attr, metric)

    def _slim(self, result: dict[str, Any]) -> dict[str, Any]:
        return {k: result[k] for k in self.keep if k in result}

    def on_trial_complete(self, tune_controller: Any, trial: Any, result: dict[str, Any]) -> None:
        if self.keep[0] in (result or {}):  # a final result without an epoch adds nothing
            super().on_trial_complete(tune_controller, trial, result)


def replay(scheduler: Any, steps: Iterable[Any]) -> set[str]:
    """Hand `scheduler` the record's calls in the order they happened; returns the ids of the
    trials it told to stop."""
    stopped: set[str] = set()
    ctl = NoController()
    for s in sorted(steps, key=lambda s: s.when):
        t = Key(s.trial_id)
        if s.kind == "add":
            scheduler.on_trial_add(ctl, t)
        elif s.kind == "result":
            if scheduler.on_trial_result(ctl, t, s.result or {}) == TrialScheduler.STOP:
                stopped.add(s.trial_id)
        elif s.kind == "complete":
            scheduler.on_trial_complete(ctl, t, s.result or {})
    return stopped


class _WithoutSearcher:
    """Tune's controller as PBT's trial check sees it: no search algorithm."""

    search_alg = None

    def __init__(self, controller: Any) -> None:
        self._controller = controller

    def __getattr__(self, name: str) -> Any:
        return getattr(self._controller, name)


class PBT(PopulationBasedTraining):
    """Ray's PopulationBasedTraining fed by hpo's plan searcher (hpo.runner.plan_search). Ray's
    refuses any searcher Tune wraps (SearchGenerator): a searcher would propose configurations
    PBT then mutates. hpo's only hands out the configurations drawn up front, as Ray's own
    variant generator does, so the check is passed a controller without one. Not rebuilt on
    resume (its population's state holds Ray's Trials)."""

    def on_trial_add(self, tune_controller: Any, trial: Any) -> None:
        super().on_trial_add(_WithoutSearcher(tune_controller), trial)
