"""Driver memory flat in long sweeps: the driver forgets a trial once it has finished.

Four things grew the driver by ~130 KB per trial, then Ray's Trials themselves ~30 KB per trial
more; with all of them gone it grows ~4-6 KB per trial (hpo's own event ids and the live
mirror's Optuna journal; benchmarks/scaling.py, BENCHMARKS.md):

- Ray Tune's controller keeps every Trial for the whole run (config, last result, checkpoint
  results, storage context, placement group factory), with the cached JSON of each for its
  experiment snapshot, and so do its result-file writers (a config and a flag per trial) and
  its snapshot's checkpoint counter. `forgetting_ended` has the controller drop a trial once it
  has finished (TERMINATED, its actor released) from all of these (`forget_ended`), and
  `JsonLog` / `CsvLog` drop it from the writers. Nothing needs it back: hpo's tables come from
  the trial folders and events.jsonl, the searchers and ASHA / the median rule have seen its
  results (ASHA keeps trial ids), and Ray's end-of-run result grid is not read. Ray's experiment
  snapshot then lists only the trials that have not finished; nothing reads it (`hpo resume`
  reads hpo's own record, hpo.runner.record). Not with a scheduler that reads ended trials
  back (PBT, HyperBand: SchedulerEntry.reads_ended_trials), nor under Ray's own table (it
  counts the trials the driver holds). A forgotten trial's folder in the driver's staging folder
  (Ray's result files, which each of Ray's syncs copied again) is removed once a sync has copied
  it to the run folder (`unstage`).
- Ray keeps with each Trial (every one, where none is forgotten) a running summary of every
  number it ever reported (max, min, average, last, last-5 and last-10 averages, and the
  windows behind them: ~1.7 KB per reported number, ~35 KB per hpo trial), which every experiment
  snapshot writes again as indented JSON (15 of a trial's 21 KB) and the driver keeps cached.
  Nothing reads the summary of a trial that has ended: schedulers and searchers get results as
  they come, hpo's tables come from the trial logs, and Ray reads it only for
  `ExperimentAnalysis.get_best_trial(scope=...)`, which hpo does not call. `LeanTrials` drops it
  when a trial ends (its last result, checkpoints and status stay; a trial that runs again, a
  resume continuing an errored one, starts a new summary as Ray does for a metric it has not seen).
- What the driver frees, glibc keeps (many small JSON strings and dicts freed out of order, in
  several threads' arenas): `LeanTrials` hands it back every `TRIM_EVERY` ended trials.
- Optuna imports its optional backends inside `try_import()`, which keeps the ImportError with its
  traceback for later; the traceback's frames reach up the stack to whatever imported Optuna. Run
  inside `Tuner.fit` (the live mirror, an Optuna searcher), that kept the finished fit's frames,
  and with them the Tuner, every Trial and Ray's end-of-run ExperimentAnalysis (every trial's
  results as DataFrames) alive while the tables and the report were built. `release_frames()`
  drops those tracebacks (the error and its message stay) once the fit has returned.
- At the end of a fit Ray builds an ExperimentAnalysis that reads every trial's result file
  into a DataFrame (~37 KB per trial at once, 1.5 s per 1,200 trials here) for the ResultGrid
  that `Tuner.fit` returns; hpo never reads it (its tables come from the trial logs).
  `no_result_frames()` has Ray skip those DataFrames during hpo's own fit (the grid's trials,
  checkpoints, last results and errors stay).
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ray.tune import Callback, ExperimentAnalysis
from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback
from ray.tune.progress_reporter import TrialProgressCallback

from hpo.ray_compat import usable

TRIM_EVERY = 50  # ended trials between two hand-backs of freed memory (< 0.1 ms each here)


def drop_summary(trial: Any) -> None:
    """Forget `trial`'s running per-metric statistics (Ray's `_TrainingRunMetadata`); setting
    the attributes also clears the trial's cached snapshot JSON, so the next snapshot is small."""
    meta = getattr(trial, "run_metadata", None)
    if meta is None or not getattr(meta, "metric_analysis", None):
        return
    meta.metric_analysis = {}
    meta.metric_n_steps = {}


@functools.cache
def malloc_trim() -> Any:
    """glibc's `malloc_trim` (returns the heap's free pages to the system), or None elsewhere."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):  # musl and others have no malloc_trim
        return None


def release_frames() -> None:
    """Drop the tracebacks of the import errors Optuna keeps for later."""
    if not usable("optuna_frames"):
        return
    try:
        from optuna._imports import _DeferredImportExceptionContextManager as Deferred
    except ImportError:
        return
    for name, module in list(sys.modules.items()):
        if not name.startswith("optuna") or module is None:
            continue
        for value in list(vars(module).values()):
            if isinstance(value, Deferred) and value._deferred and value._deferred[0].__traceback__:
                value._deferred[0].__traceback__ = None


@contextlib.contextmanager
def no_result_frames() -> Iterator[None]:
    """While inside: Ray's ExperimentAnalysis reads no trial's results into a DataFrame (each
    Result's `metrics_dataframe` is None)."""
    if not usable("no_result_frames"):
        yield
        return

    fetch = ExperimentAnalysis.__dict__["_fetch_trial_dataframes"]  # a rename fails the tests
    ExperimentAnalysis._fetch_trial_dataframes = _no_frames
    try:
        yield
    finally:
        ExperimentAnalysis._fetch_trial_dataframes = fetch


def _no_frames(self: Any) -> dict[str, Any]:
    return {}


@contextlib.contextmanager
def forgetting_ended(on: bool = True) -> Iterator[None]:
    """While inside (and `on`): after each step of Ray Tune's controller, the trials that have
    finished are forgotten (`forget_ended`)."""
    if not on or not usable("forget_ended"):
        yield
        return
    from ray.tune.execution.tune_controller import TuneController

    step = TuneController.__dict__["step"]  # a rename fails the tests
    # forgotten trials' storage contexts, each batch with the syncs Ray started since (the one
    # current when they were forgotten first)
    staged: list[tuple[list[Any], list[Any]]] = []

    @functools.wraps(step)
    def lean_step(self: Any) -> None:
        step(self)
        current = self._storage.syncer._sync_process  # a new object per sync; None once waited for
        if self._stopped_trials and (gone := forget_ended(self)):  # a set Ray keeps: free to ask
            staged.append(([current], [t.storage for t in gone]))
        for batch in list(staged):
            syncs, storages = batch
            if current is not None and current not in syncs:
                syncs.append(current)
            if any(not sync.is_running for sync in syncs[1:]):  # a sync started since has ended
                staged.remove(batch)
                if left := unstage(storages):  # not (yet) in the run folder: wait for another
                    staged.append(([current], left))

    TuneController.step = lean_step
    try:
        yield
    finally:
        TuneController.step = step


def forget_ended(controller: Any) -> list[Any]:
    """Drop the trials that finished (TERMINATED, their actor released) from Ray Tune's
    `controller`: its trial list and sets and the cached JSON of each for the experiment
    snapshot. Returns them. Errored trials stay (a resume may retry them)."""
    gone = {t for t in controller._stopped_trials if t.status == "TERMINATED"
            and t not in controller._trial_to_actor and t not in controller._live_trials}
    if not gone:
        return []
    controller._trials[:] = [t for t in controller._trials if t not in gone]  # the callbacks' list
    controller._stopped_trials -= gone
    controller._trials_to_cache -= gone
    # checkpoints since the last snapshot, per trial (Ray forces one when a trial wrote too many)
    written = controller._checkpoint_manager._trial_num_checkpoints_since_last_sync
    for t in gone:
        written.pop(t, None)
        controller._trial_metadata.pop(t.trial_id, None)
        controller._cached_trial_decisions.pop(t.trial_id, None)
        controller._queued_trial_decisions.pop(t.trial_id, None)
    return sorted(gone, key=lambda t: t.trial_id)


def unstage(storages: list[Any]) -> list[Any]:
    """Remove finished trials' folders from the driver's staging folder once Ray has copied
    them to the run folder; returns the storage contexts of those whose files are not all there
    yet (a sync that failed).

    Ray writes a trial's `params.json`, `params.pkl`, `result.json` and `progress.csv` into a
    staging folder next to the driver, and every sync copies that whole folder, every trial's
    files, to the run folder again: O(trials) files listed and copied per sync, the driver's
    peak memory growing with the sweep (~17 MB at 2,000 trials). A forgotten trial's files are
    final. Ray starts each sync in the controller's step, after writing its experiment
    snapshot: one started after a trial was forgotten copies the trial's final files with a
    snapshot that no longer lists it, and later syncs need not see them. (Copying them at once
    instead put the run folder ahead of the snapshot: a kill then had the resume replay the
    trial's last epoch into a result file that already had it.)"""
    left = []
    for st in storages:
        local = Path(st.trial_driver_staging_path)
        if local.resolve() == Path(st.trial_fs_path).resolve():  # never the run folder itself
            continue
        if local.is_dir() and not _in_run_folder(local, st):
            left.append(st)
            continue
        shutil.rmtree(local, ignore_errors=True)
    return left


def _in_run_folder(local: Path, st: Any) -> bool:
    """Whether every file of the staging folder `local` is in the trial's run folder, same size."""
    files = [f for f in local.rglob("*") if f.is_file()]
    try:
        infos = st.storage_filesystem.get_file_info(
            [f"{st.trial_fs_path}/{f.relative_to(local).as_posix()}" for f in files])
        return all(i.size == f.stat().st_size for i, f in zip(infos, files, strict=True))
    except Exception:  # noqa: BLE001 - unreadable: keep the folder for Ray's next sync
        return False


class JsonLog(JsonLoggerCallback):
    """Ray's `result.json` and `params.json` writer, which keeps no trial once it has ended
    (Ray's keeps each trial's config for the whole run; a trial that runs again sets it anew)."""

    def log_trial_end(self, trial: Any, failed: bool = False) -> None:
        super().log_trial_end(trial, failed)
        if usable("writers_forget"):
            self._trial_configs.pop(trial, None)


class CsvLog(CSVLoggerCallback):
    """Ray's `progress.csv` writer, which keeps no trial once it has ended (Ray's keeps whether
    each trial's file had rows; a trial that runs again looks again)."""

    def log_trial_end(self, trial: Any, failed: bool = False) -> None:
        super().log_trial_end(trial, failed)
        if usable("writers_forget"):
            self._trial_continue.pop(trial, None)


class Silent(TrialProgressCallback):
    """Ray's per-trial result printer of its older console output (what a quiet run uses:
    tuning._fit_checked), printing nothing and keeping no trial: Ray's keeps every trial's last
    result and the set of finished ones, and the driver grew with the sweep (1,100 Trials held
    at 1,400 trials ended). Given, Ray adds none of its own."""

    def on_trial_result(self, *a: Any, **k: Any) -> None:
        pass

    def on_trial_error(self, *a: Any, **k: Any) -> None:
        pass

    def on_trial_complete(self, *a: Any, **k: Any) -> None:
        pass


class LeanTrials(Callback):
    """Last of a run's callbacks: every other one has seen the trial's end before it."""

    def __init__(self) -> None:
        self.ended = 0  # (pickled with the Tuner: no ctypes handle kept here)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._ended(trial)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._ended(trial)

    def _ended(self, trial: Any) -> None:
        drop_summary(trial)
        self.ended += 1
        if self.ended % TRIM_EVERY == 0 and (trim := malloc_trim()) is not None:
            trim(0)
