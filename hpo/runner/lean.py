"""Less driver memory per trial in long sweeps (it still grows: Ray keeps every Trial).

Four things grew the driver by ~130 KB per trial; with them gone its peak grows ~39 KB per trial
(benchmarks/scaling.py, BENCHMARKS.md):

- Ray Tune keeps every Trial in the driver for the whole run, and with each a running summary of
  every number it ever reported (max, min, average, last, last-5 and last-10 averages, and the
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
import sys
from collections.abc import Iterator
from typing import Any

from ray.tune import Callback

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
    from ray.tune import ExperimentAnalysis

    fetch = ExperimentAnalysis.__dict__["_fetch_trial_dataframes"]  # a rename fails the tests
    ExperimentAnalysis._fetch_trial_dataframes = _no_frames
    try:
        yield
    finally:
        ExperimentAnalysis._fetch_trial_dataframes = fetch


def _no_frames(self: Any) -> dict[str, Any]:
    return {}


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
