"""What spans the Tuners of one run (hpo.runner.tuning.fit): hpo's event log, the trackers, the
live mirror and the progress line see every trial of the run as one experiment.

A long sweep runs as several Tuners one after another (so that Ray Tune's controller, which
keeps every Trial until its fit ends, lets each part's trials go). Tune calls a callback's
`setup` when each fit starts and `on_experiment_end` when each ends; these callbacks are set up
once, with the first Tuner, and told the experiment ended after the last one only (an MLflow
parent run, the mirror's summary, the progress line's last word are the whole sweep's).
"""

from __future__ import annotations

from typing import Any

from ray.tune import Callback

_HOOKS = ("on_step_begin", "on_step_end", "on_trial_start", "on_trial_restore", "on_trial_save",
          "on_trial_result", "on_trial_complete", "on_trial_recover", "on_trial_error",
          "on_checkpoint")


def _forward(hook: str) -> Any:
    def call(self: Spanning, *args: Any, **kwargs: Any) -> None:
        for cb in self.callbacks:
            getattr(cb, hook)(*args, **kwargs)
    call.__name__ = hook
    return call


class Spanning(Callback):
    def __init__(self, callbacks: list[Callback]) -> None:
        self.callbacks = list(callbacks)
        self.last = True  # the Tuner now fitted is the run's last: its end is the experiment's
        self.set_up = False

    def setup(self, **info: Any) -> None:
        if not self.set_up:
            self.set_up = True
            for cb in self.callbacks:
                cb.setup(**info)

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        """Passed on after the run's last Tuner (the runner calls it itself when a stop ends
        the run before its last part)."""
        if self.last:
            for cb in self.callbacks:
                cb.on_experiment_end(trials, **info)


for _hook in _HOOKS:
    setattr(Spanning, _hook, _forward(_hook))
