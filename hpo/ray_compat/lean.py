"""Driver memory flat in long sweeps.

Four things grew the driver by ~130 KB per trial, then Ray's Trials themselves ~30 KB per trial
more (benchmarks/scaling.py, BENCHMARKS.md):

- Ray Tune's controller keeps every Trial for the whole fit (config, last result, checkpoint
  results, storage context, placement group factory), with the cached JSON of each for its
  experiment snapshot, and so do its result-file writers (a config and a flag per trial) and
  its snapshot's checkpoint counter; there is no public way to let one go. A long sweep
  therefore runs as one Tuner per `HPO_TRIALS_PER_FIT` trials (hpo.runner.tuning.fit): ending a
  fit lets its Trials go. (hpo once removed them from the controller's private lists after each
  step: 13 private names, gone.) Each Tuner's ended trials' folders in the driver's staging
  folder (Ray's result files, which each of Ray's syncs copies again, whole) are removed once
  its fit has ended (`LeanTrials.unstage`).
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
    """Last of a Tuner's callbacks: every other one has seen the trial's end before it. Drops
    each ended trial's running summary, hands freed memory back every TRIM_EVERY ended trials,
    counts them (`ended`) and, once the fit has ended, removes their folders from the driver's
    staging folder (`unstage`)."""

    def __init__(self) -> None:
        self.ended = 0  # (pickled with the Tuner: no ctypes handle kept here)
        self.staged: list[tuple[str, str]] = []  # (staging folder, run folder) of ended trials

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._ended(trial)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._ended(trial)

    def _ended(self, trial: Any) -> None:
        drop_summary(trial)
        self.ended += 1
        with contextlib.suppress(Exception):  # a trial without storage (a stub): nothing staged
            self.staged.append((str(trial.local_path), str(trial.path)))
        if self.ended % TRIM_EVERY == 0 and (trim := malloc_trim()) is not None:
            trim(0)

    def unstage(self, remote: bool) -> None:
        """Remove the ended trials' folders from the driver's staging folder, once their fit
        has ended (Ray's last sync of it, awaited, has copied them to the run folder).

        Ray writes a trial's `params.json`, `params.pkl`, `result.json` and `progress.csv` into
        a staging folder next to the driver, and every sync copies that whole folder, every
        trial's files, to the run folder again: O(trials) files listed and copied per sync. A
        long sweep runs as several Tuners (hpo.runner.tuning.fit): each starts with an empty
        staging folder. A local run folder's copy is checked first (every file there, same
        size; a folder not copied stays for Ray's next sync); a bucket's (`remote`) is the one
        Ray's awaited sync wrote."""
        staged, self.staged = self.staged, []
        for local, run in staged:
            here, there = Path(local), Path(run)
            if not here.is_dir() or here.resolve() == there.resolve():  # never the run folder itself
                continue
            if not remote and not _copied(here, there):
                continue  # kept for Ray's next sync
            shutil.rmtree(here, ignore_errors=True)


def _copied(local: Path, run: Path) -> bool:
    """Whether every file of the staging folder `local` is in the run folder `run`, same size."""
    try:
        return all((run / f.relative_to(local)).stat().st_size == f.stat().st_size
                   for f in local.rglob("*") if f.is_file())
    except OSError:
        return False
