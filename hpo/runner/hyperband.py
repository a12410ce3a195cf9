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
case, which hangs without this."""

from __future__ import annotations

from typing import Any

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
