"""Scheduler state that survives a resume. Ray does not save a scheduler with the experiment:
after `hpo resume`, ASHA's rungs would start empty and trials restored mid-way would be judged
only against what is reported afterwards. ASHA's state is small (per rung, each trial's value
there; which bracket a trial is in), so hpo writes it to ``<run>/scheduler_state.pkl`` after
every decision (atomically) and reads it back at the first decision after a resume; a trial
it already told to stop is told again if Ray restores it (a kill between the decision and the
stop). Median / Hyperband / PBT keep Ray's behaviour: their state holds Ray's Trial objects,
which do not survive the process."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

from ray.tune.schedulers import AsyncHyperBandScheduler, TrialScheduler

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
        if p.exists():
            saved = pickle.loads(p.read_bytes())
            self.__dict__.update({k: v for k, v in saved.items() if k not in ("_hpo_path", "_hpo_loaded")})

    def _hpo_save(self) -> None:
        p = Path(self._hpo_path)
        tmp = p.with_name(p.name + ".tmp")
        tmp.write_bytes(pickle.dumps({k: v for k, v in self.__dict__.items()
                                      if k not in ("_hpo_path", "_hpo_loaded")}))
        tmp.replace(p)

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
        if trial.trial_id in getattr(self, "_trial_info", {}):
            super().on_trial_complete(tune_controller, trial, result)  # type: ignore[misc]
        self._hpo_save()

    def on_trial_remove(self, tune_controller: Any, trial: Any) -> None:
        self._hpo_load()
        if trial.trial_id in getattr(self, "_trial_info", {}):
            super().on_trial_remove(tune_controller, trial)  # type: ignore[misc]
        self._hpo_save()


class PersistedASHA(_Persisted, AsyncHyperBandScheduler):
    pass


PERSISTED = {AsyncHyperBandScheduler: PersistedASHA}


def persisted(scheduler: Any, run_dir: Path) -> Any:
    """The same scheduler, saving its state in `run_dir` (where hpo can; else as it is)."""
    cls = PERSISTED.get(type(scheduler))
    if cls is None:
        return scheduler
    out = cls.__new__(cls)
    out.__dict__.update(scheduler.__dict__)
    out._hpo_path, out._hpo_loaded, out._hpo_stopped = str(run_dir / FILE), True, set()
    return out

