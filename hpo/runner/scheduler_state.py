"""Scheduler state that survives a resume. Ray does not save a scheduler with the experiment:
after `hpo resume`, ASHA's rungs would start empty and trials restored mid-way would be judged
only against what is reported afterwards. ASHA's state is small (per rung, each trial's value
there; which bracket a trial is in), and so is the median rule's once it is keyed by trial id
instead of Ray's Trial objects and keeps of each result only the epoch and the metric. hpo
writes it to ``<run>/scheduler_state.pkl`` after every decision (atomically) and reads it back
at the first decision after a resume; a trial it already told to stop is told again if Ray
restores it (a kill between the decision and the stop). Hyperband and PBT keep Ray's
behaviour: their state holds Trial objects and their checkpoints, which do not survive."""

from __future__ import annotations

import pickle
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ray.tune.schedulers import AsyncHyperBandScheduler, MedianStoppingRule, TrialScheduler

FILE = "scheduler_state.pkl"


class _Persisted:
    _hpo_path: str
    _hpo_loaded: bool
    _hpo_stopped: set[str]

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._hpo_loaded = False  # unpickled by Tuner.restore: read the saved state first

    def _hpo_load(self) -> None:
        if self._hpo_loaded:
            return
        self._hpo_loaded = True
        p = Path(self._hpo_path)
        if not p.exists():
            return
        for k, v in pickle.loads(p.read_bytes()).items():
            here = self.__dict__.get(k)
            if isinstance(here, defaultdict):  # saved as a plain dict (its factory is a lambda)
                here.clear()
                here.update(v)
            else:
                self.__dict__[k] = v

    def _hpo_save(self) -> None:
        p = Path(self._hpo_path)
        tmp = p.with_name(p.name + ".tmp")
        tmp.write_bytes(pickle.dumps({k: dict(v) if isinstance(v, defaultdict) else v
                                      for k, v in self.__dict__.items()
                                      if k not in ("_hpo_path", "_hpo_loaded")}))
        tmp.replace(p)

    def _knows(self, trial: Any) -> bool:
        return True

    def on_trial_add(self, tune_controller: Any, trial: Any) -> None:
        self._hpo_load()
        if trial.trial_id in self._hpo_stopped:
            return  # restored after it was told to stop: its bracket place is kept
        super().on_trial_add(tune_controller, trial)  # type: ignore[misc]
        self._hpo_save()

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict[str, Any]) -> str:
        self._hpo_load()
        if trial.trial_id in self._hpo_stopped:
            return TrialScheduler.STOP
        decision = super().on_trial_result(tune_controller, trial, result)  # type: ignore[misc]
        if decision == TrialScheduler.STOP:
            self._hpo_stopped.add(trial.trial_id)
        self._hpo_save()
        return decision

    def on_trial_complete(self, tune_controller: Any, trial: Any, result: dict[str, Any]) -> None:
        self._hpo_load()
        if self._knows(trial):
            super().on_trial_complete(tune_controller, trial, result)  # type: ignore[misc]
        self._hpo_save()

    def on_trial_remove(self, tune_controller: Any, trial: Any) -> None:
        self._hpo_load()
        if self._knows(trial):
            super().on_trial_remove(tune_controller, trial)  # type: ignore[misc]
        self._hpo_save()


class PersistedASHA(_Persisted, AsyncHyperBandScheduler):
    def _knows(self, trial: Any) -> bool:  # (a trial restored after it ended was never re-added)
        return trial.trial_id in self._trial_info


@dataclass(frozen=True)
class _Key:
    """What the median rule keys its history by: the trial's id, which outlives the process
    (Ray's Trial objects do not)."""

    trial_id: str


class PersistedMedian(_Persisted, MedianStoppingRule):
    def _slim(self, result: dict[str, Any]) -> dict[str, Any]:
        return {k: result[k] for k in (self._time_attr, self._metric) if k in result}

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict[str, Any]) -> str:
        return super().on_trial_result(tune_controller, _Key(trial.trial_id), self._slim(result))

    def on_trial_complete(self, tune_controller: Any, trial: Any, result: dict[str, Any]) -> None:
        slim = self._slim(result or {})
        if self._time_attr in slim:  # (a final result without an epoch adds nothing to judge by)
            super().on_trial_complete(tune_controller, _Key(trial.trial_id), slim)


PERSISTED = {AsyncHyperBandScheduler: PersistedASHA, MedianStoppingRule: PersistedMedian}


def persisted(scheduler: Any, run_dir: Path) -> Any:
    """The same scheduler, saving its state in `run_dir` (where hpo can; else as it is)."""
    cls = PERSISTED.get(type(scheduler))
    if cls is None:
        return scheduler
    out = cls.__new__(cls)
    out.__dict__.update(scheduler.__dict__)
    out._hpo_path, out._hpo_loaded, out._hpo_stopped = str(run_dir / FILE), True, set()
    return out

