"""Ray's synchronous HyperBand, with its deadlock on a trial that leaves a bracket fixed.

A bracket waits until every live trial in it reaches the milestone, pausing those that get
there first. When a trial leaves the bracket instead (it fails, or ends by itself), Ray
processes the bracket again only if it is not finished and its ``is_being_processed`` flag is
clear; but the flag, set at the bracket's first halving, is never cleared, and a bracket whose
remaining trials all wait at the last milestone counts as finished, so its paused trials,
which only processing stops, were never stopped. Either way the trials waiting for the one that
left stayed paused forever: no trial running, none to start, and the sweep never ended (Ray
says "No trial is running and no new trial has been started within the last 60 seconds"
every minute). Here the flag is set only while the bracket is being processed (the stops of
its bad or finished trials call back into the scheduler, which must not process it again),
and a trial's leaving processes the bracket: the trials waiting at a milestone are halved and
the good ones go on, or, at the last one, stopped. Tested by test_schedulers' failing-trial
case, which hangs without this.

One more way in: a trial told to pause is saved first and counts as RUNNING until the save is
done, and a bracket that finishes meanwhile stops only the trials already PAUSED; the one whose
save was in flight then became PAUSED with nothing left to stop or resume it. So before each
choice of a trial to run, a bracket whose live trials are all at its milestone, none running,
some paused and not about to resume, is processed (nothing else would: no trial can report)."""

from __future__ import annotations

from typing import Any

from ray.tune.experiment import Trial
from ray.tune.schedulers import HyperBandScheduler


class HyperBand(HyperBandScheduler):
    def _process_bracket(self, tune_controller: Any, bracket: Any) -> str:
        bracket.is_being_processed = True
        try:
            return super()._process_bracket(tune_controller, bracket)
        finally:
            bracket.is_being_processed = False

    def on_trial_remove(self, tune_controller: Any, trial: Any) -> None:
        bracket, _ = self._trial_info[trial]
        bracket.cleanup_trial(trial)
        if not bracket.is_being_processed:
            self._process_bracket(tune_controller, bracket)

    def choose_trial_to_run(self, tune_controller: Any) -> Any:
        for band in self._hyperbands:
            for bracket in band:
                if bracket is not None and _stuck(bracket):
                    self._process_bracket(tune_controller, bracket)
        return super().choose_trial_to_run(tune_controller)


def _stuck(bracket: Any) -> bool:
    """Every live trial of the bracket is at its milestone and none runs, yet some wait paused
    without being due to resume: only processing the bracket moves them."""
    if bracket.is_being_processed:
        return False
    trials = bracket.current_trials()
    return (any(t.status == Trial.PAUSED and t not in bracket.trials_to_unpause for t in trials)
            and not any(t.status == Trial.RUNNING for t in trials) and bracket.cur_iter_done())
