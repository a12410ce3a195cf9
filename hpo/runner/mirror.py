"""A live mirror of every trial into an Optuna storage, so optuna-dashboard (`hpo dashboard`)
shows a run as it goes, whatever its searcher and scheduler.

One journal file per storage folder, ``<storage>/optuna.journal``, one study per run (named by
the run's folder). Optuna's journal file storage appends operations to one file under a file
lock, so several runs (several drivers) can write to it at once and a reader sees a consistent
log; SQLite would need its own care with concurrent writers on network filesystems. For each
trial: its parameters, the selection metric of every epoch as intermediate values, and its end:
completed -> COMPLETE (value: its best), stopped by a scheduler or inside a pack -> PRUNED,
diverged or error -> FAIL. Packed members are mirrored as trials of their own.

The mirror is a Tune callback in the driver. A failure to write it never fails the run: it
warns once and stops mirroring. Its own time is measured and written to ``<run>/mirror.json``.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

from ray.tune import Callback

from hpo.contract import PACK_KEY
from hpo.optuna_space import flat_distributions, flat_values

JOURNAL = "optuna.journal"


def journal_path(storage_root: Path) -> Path:
    return Path(storage_root) / JOURNAL


def open_journal(path: str | Path) -> Any:
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock

    p = str(path)
    return JournalStorage(JournalFileBackend(p, lock_obj=JournalFileOpenLock(p)))


class OptunaMirror(Callback):
    def __init__(self, journal: Path, run_dir: Path, metric: str, mode: str, max_epochs: int,
                 params: dict[str, Any]) -> None:
        """`params`: the experiment's parsed parameters (hpo.space; plain picklable data, as
        Tune pickles its callbacks with the experiment)."""
        self.journal, self.run_dir, self.metric, self.mode = str(journal), run_dir, metric, mode
        self.max_epochs, self.params = max_epochs, params
        self.study_name = run_dir.name
        self._storage: Any = None
        self._study_id: int | None = None
        self._ids: dict[str, int] = {}  # ray trial id (or "<id>_m<i>" for pack members) -> optuna id
        self._best: dict[str, float] = {}
        self._ended: set[str] = set()
        self.broken = False
        self.cost_s = 0.0
        self.n_trials = 0

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.update(_storage=None, _study_id=None)  # reopened after Tune restores the callback
        return state

    # -- Tune hooks ---------------------------------------------------------------------------
    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._safely(self._start, trial)

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict[str, Any],
                        **info: Any) -> None:
        self._safely(self._result, trial, result)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._safely(self._end, trial, False)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._safely(self._end, trial, True)

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        try:
            (self.run_dir / "mirror.json").write_text(json.dumps(
                {"journal": self.journal, "study": self.study_name, "trials": self.n_trials,
                 "seconds": round(self.cost_s, 4),
                 "seconds_per_trial": round(self.cost_s / self.n_trials, 5) if self.n_trials else None,
                 "broken": self.broken}))
        except OSError:
            pass

    # -- mirroring -----------------------------------------------------------------------------
    def _safely(self, fn: Any, *args: Any) -> None:
        if self.broken:
            return
        t0 = time.perf_counter()
        try:
            fn(*args)
        except Exception as e:  # noqa: BLE001 - the mirror must never fail the run
            self.broken = True
            print(f"hpo: warning: the live dashboard mirror ({self.journal}) stopped: "
                  f"{type(e).__name__}: {e}; the run goes on.", flush=True)
        finally:
            self.cost_s += time.perf_counter() - t0

    def _open(self) -> tuple[Any, int]:
        if self._storage is None:
            import optuna
            from optuna.study import StudyDirection

            optuna.logging.set_verbosity(optuna.logging.WARNING)
            self._storage = open_journal(self.journal)
            try:
                self._study_id = self._storage.get_study_id_from_name(self.study_name)
            except KeyError:
                direction = StudyDirection.MAXIMIZE if self.mode == "max" else StudyDirection.MINIMIZE
                self._study_id = self._storage.create_new_study([direction], self.study_name)
                self._storage.set_study_user_attr(self._study_id, "hpo_run_dir", str(self.run_dir))
                self._storage.set_study_user_attr(self._study_id, "metric", self.metric)
                # the dashboard and Optuna's figures say val_acc, not "Objective 0" (Optuna
                # marks set_metric_names experimental; it is the documented way)
                import warnings

                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                    optuna.load_study(study_name=self.study_name, storage=self._storage).set_metric_names(
                        [self.metric])
            better = max if self.mode == "max" else min
            for t in self._storage.get_all_trials(self._study_id, deepcopy=False):  # after a resume
                key = t.user_attrs.get("hpo_trial_id")
                if not key:
                    continue
                self._ids[key] = t._trial_id
                if t.state.is_finished():  # ended before the kill: Ray may replay its end
                    self._ended.add(key)
                elif t.intermediate_values:  # restored mid-way: its best so far goes on
                    self._best[key] = better(t.intermediate_values.values())
        return self._storage, self._study_id  # type: ignore[return-value]

    def _members(self, trial: Any) -> list[tuple[str, dict[str, Any]]]:
        cfg = trial.config or {}
        if PACK_KEY in cfg:
            return [(f"{trial.trial_id}_m{i}", {k: v for k, v in m.items() if k != "_index"})
                    for i, m in enumerate(cfg[PACK_KEY])]
        return [(trial.trial_id, cfg)]

    def _start(self, trial: Any) -> None:
        storage, study_id = self._open()
        dists = flat_distributions(self.params)
        for key, cfg in self._members(trial):
            if key in self._ids:
                continue  # restored after a resume: the same Optuna trial goes on
            tid = storage.create_new_trial(study_id)
            self._ids[key] = tid
            self.n_trials += 1
            storage.set_trial_user_attr(tid, "hpo_trial_id", key)
            for name, value in flat_values(self.params, cfg).items():
                dist = dists[name]
                try:
                    internal = dist.to_internal_repr(value)
                except ValueError:
                    continue  # a value outside the declared space (e.g. mutated by PBT)
                storage.set_trial_param(tid, name, internal, dist)

    def _result(self, trial: Any, result: dict[str, Any]) -> None:
        storage, _ = self._open()
        if "members" in result:  # a pack: one report holds every member's metrics
            pairs = [(f"{trial.trial_id}_m{i}", m) for i, m in enumerate(result["members"]) if m]
        else:
            pairs = [(trial.trial_id, result)]
        for key, r in pairs:
            tid = self._ids.get(key)
            v = r.get(self.metric)
            if tid is None or key in self._ended or not isinstance(v, (int, float)):
                continue
            step = int(r.get("epoch", r.get("training_iteration", 0)))
            if math.isfinite(v) and not r.get("diverged"):
                storage.set_trial_intermediate_value(tid, step, float(v))
                better = max if self.mode == "max" else min
                self._best[key] = better(self._best.get(key, v), float(v))
            ended = r.get("diverged") or r.get("stopped_in_pack") or r.get("early_stopped")
            if "members" in result and ended:  # a member left its pack: it ends now
                self._finish(key, failed=bool(r.get("diverged")), epochs=step,
                             pruned=bool(r.get("stopped_in_pack")), diverged=bool(r.get("diverged")))

    def _end(self, trial: Any, error: bool) -> None:
        last = trial.last_result or {}
        for key, _ in self._members(trial):
            if key in self._ended:
                continue
            if "members" in last:
                i = int(key.rpartition("_m")[2])
                m = last["members"][i] if i < len(last["members"]) else None
                epochs = int((m or {}).get("epoch", last.get("epoch", 0)))
                self._finish(key, failed=error, epochs=epochs, pruned=False, diverged=False)
            else:
                self._finish(key, failed=error or bool(last.get("diverged")),
                             epochs=int(last.get("epoch", 0)), pruned=False,
                             diverged=bool(last.get("diverged")), early=bool(last.get("early_stopped")))

    def _finish(self, key: str, failed: bool, epochs: int, pruned: bool, diverged: bool,
                early: bool = False) -> None:
        from optuna.trial import TrialState

        storage, _ = self._open()
        tid = self._ids.get(key)
        if tid is None:
            return
        self._ended.add(key)
        if failed or diverged or key not in self._best:
            storage.set_trial_state_values(tid, TrialState.FAIL)
        elif pruned or (epochs < self.max_epochs and not early):  # a scheduler stopped it
            storage.set_trial_state_values(tid, TrialState.PRUNED)
        else:
            storage.set_trial_state_values(tid, TrialState.COMPLETE, [self._best[key]])
