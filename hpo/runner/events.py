"""The driver's event log and abort rule, as a Ray Tune callback and stopper.

`Events` appends one line per trial start / end to ``events.jsonl`` as it happens (the
collector reads it for start order, errors and aborts), keeps each trial's own log
(``trial_<id>/trial.jsonl``: its configuration, then every result) and decides to abort the
experiment after `failure.max_failed_trials` failed trials; `AbortStopper` carries that decision
to Tune; `BudgetStopper` is the time budget, logged.

Why hpo logs each trial itself when Ray writes ``params.json`` / ``result.json``: Ray writes those
next to the driver and a background sync copies the driver's folder to the run folder, rewriting
every trial's files each time, in place. A driver killed during that copy left files of trials
that had finished long before cut to nothing (CI: two finished trials lost from the tables, one
left with 0 epochs). Ray never writes, copies or restores ``trial.jsonl`` (its restore fetches
only ``*.json`` / ``*.pkl``), so what it holds stays whole; the collector reads it (Ray's files
only for runs from before it). A trial that starts again at its first epoch (a retry, or a
trial continued without a checkpoint) starts its log again; one restored from a checkpoint
appends to it. These logs, events.jsonl and plan.json are the run's record
(hpo.runner.record): each result line says when it was logged and which checkpoint it wrote.

A trial that continues one cut by a stop (`hpo resume`) is a new Ray trial whose config names
the trial it continues (hpo.contract.RECORD_KEY): it is logged under that trial's id, in its
log; its checkpoints go to a folder of its own, ``resumed_<id>_<Ray id>`` (`trial_name`).
"""

from __future__ import annotations

import errno
import json
import os
import re
import signal
import time
from pathlib import Path
from typing import Any

from ray.tune import Callback, Stopper
from ray.tune.stopper import CombinedStopper, TimeoutStopper
from ray.tune.utils.util import SafeFallbackEncoder

from hpo.adapters.replay import hpo_id
from hpo.contract import RECORD_KEY
from hpo.errors import STORAGE_ERRNOS
from hpo.runner.collect import read_jsonl, start_order, trial_dir_name, trial_events
from hpo.runner.record import add_event, append_line
from hpo.storage import EVENTS_FILE, TRIAL_LOG


def continued(trial: Any) -> dict[str, Any] | None:
    """hpo's tag of a Ray trial that continues one cut by a stop, else None."""
    tag = (getattr(trial, "config", None) or {}).get(RECORD_KEY) or {}
    return tag if tag.get("trial") else None


def trial_name(trial: Any) -> str:
    """A Ray trial's name and folder: ``trial_<id>``, or for one that continues trial <id>
    after a stop ``resumed_<id>_<its Ray id>`` (Ray takes no nested folder)."""
    tag = continued(trial)
    if tag:
        return f"resumed_{tag['trial']}_{trial.trial_id}"
    return trial_dir_name(trial.trial_id)


PUBLISH_EVERY_S = 10.0  # a bucket's run: at most this often per trial, its log goes to the bucket


class Events(Callback):
    active: Events | None = None  # this driver's (one experiment at a time), for the runner
    # class defaults too: an Events pickled (tuner.pkl) before these existed restores without them
    storage_fault: str | None = None
    stop_now = False
    storage: Any = None
    _published: dict[str, float] = {}  # noqa: RUF012 - replaced per instance

    def __init__(self, run_dir: Path, max_failed: int | None, storage: Any = None) -> None:
        self.run_dir = run_dir
        self.storage = storage  # a bucket's: the record goes there as it grows (`_publish`)
        self.max_failed = max_failed
        self.failed = 0
        self.abort: str | None = None
        self.storage_fault: str | None = None  # the storage stopped taking writes: stop at once
        self.stop_now = False  # ... through the stopper (where Tune's graceful stop is not set)
        self.completed: set[str] = set()
        self.started: set[str] = set()
        self._published: dict[str, float] = {}

    def setup(self, **info: Any) -> None:
        # On resume Ray may restore a trial that finished after its last experiment snapshot;
        # it then ends at once (its final checkpoint) and must not be logged twice.
        self.completed = {t for t, e in trial_events(self.run_dir).items() if e.get("event") == "complete"}
        self.started = set(start_order(self.run_dir))
        Events.active = self

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        # searchers name trials with random ids: the start order is the trial index
        tid, tag = hpo_id(trial), continued(trial)
        if tid not in self.started:
            self.started.add(tid)
            self._write({"trial_id": tid, "event": "start"})
        log = self._trial_log(trial)
        restored = getattr(trial, "checkpoint", None) is not None
        if tag and not restored:
            self._write({"trial_id": tid, "event": "resume", "ray_trial_id": trial.trial_id,
                         "from": tag.get("checkpoint_rel"), "epoch": tag.get("epoch")})
        if not (tag and not restored and tag.get("checkpoint_rel") and log.exists()):
            if not restored or not log.exists():
                self._new_log(log, trial, restored)  # a trial that starts (again) at its first epoch
        self._publish(trial)

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict[str, Any],
                        **info: Any) -> None:
        row = {k: v for k, v in result.items() if k != "config"}
        row["logged"] = time.time()
        if result.get("checkpoint_dir_name"):  # where, relative to the run folder
            row["checkpoint"] = f"{trial_name(trial)}/{result['checkpoint_dir_name']}"
        self._append(self._trial_log(trial), row)
        if row.get("checkpoint") and time.time() - self._published.get(hpo_id(trial), 0.0) > PUBLISH_EVERY_S:
            self._publish(trial)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        tid = hpo_id(trial)
        if tid not in self.completed:
            self.completed.add(tid)
            self._write({"trial_id": tid, "event": "complete"})
        self._publish(trial)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        error = _last_line(trial)
        if storage_errno(error):  # not the trial's fault: every other trial would fail too
            self._storage(error or "")
            return
        self._write({"trial_id": hpo_id(trial), "event": "error", "error": error})
        self._publish(trial)
        self.failed += 1
        if self.max_failed is not None and self.failed >= self.max_failed and not self.abort:
            self.abort = (f"{self.failed} trial(s) failed (failure.max_failed_trials = "
                          f"{self.max_failed}); the remaining trials were stopped.")
            self._write({"trial_id": None, "event": "abort", "reason": self.abort})

    def stopper(self, time_budget_s: float | None) -> Stopper:
        """What stops the experiment: too many failures, and the time budget if there is one."""
        if not time_budget_s:
            return AbortStopper(self)
        return CombinedStopper(AbortStopper(self), BudgetStopper(self, time_budget_s))

    def _publish(self, trial: Any) -> None:
        """A bucket's run: the record's files this trial changed go to the bucket now (its
        start, end, and every PUBLISH_EVERY_S its checkpoints), not only at the run's end. The
        trial's log first: a kill between the two uploads never leaves the bucket an end event
        without the epochs it ends (a resume would keep that trial as finished, with nothing)."""
        if self.storage is None or not self.storage.is_remote:
            return
        head = [] if self._published else ["spec.yaml", "run.json"]  # once: what the run is
        self._published[hpo_id(trial)] = time.time()
        log = f"{trial_dir_name(hpo_id(trial))}/{TRIAL_LOG}"
        try:
            self.storage.upload_files(self.run_dir, [log, *head, "plan.json", EVENTS_FILE])
        except OSError as e:  # the run goes on; the bucket gets the record at the end
            self._fault(e, self.run_dir / log) if e.errno in STORAGE_ERRNOS else None

    def _new_log(self, log: Path, trial: Any, restored: bool) -> None:
        """The trial's log: its configuration, then (a trial of a run from before hpo kept this
        log, `restored` from a checkpoint) the results Ray's own file holds."""
        rows = []
        if restored:
            rows = [{k: v for k, v in r.items() if k != "config"}
                    for r in read_jsonl(log.with_name("result.json"))]
        tmp = log.with_name(log.name + ".tmp")
        try:
            log.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_text("".join(json.dumps(line, cls=SafeFallbackEncoder) + "\n"
                                   for line in ({"config": trial.config}, *rows)))
            tmp.replace(log)
        except OSError as e:
            self._fault(e, log)

    def _trial_log(self, trial: Any) -> Path:
        return self.run_dir / trial_dir_name(hpo_id(trial)) / TRIAL_LOG

    def _write(self, line: dict[str, Any]) -> None:
        try:
            add_event(self.run_dir, line, SafeFallbackEncoder)
        except OSError as e:
            self._fault(e, self.run_dir / EVENTS_FILE)

    def _append(self, path: Path, line: dict[str, Any]) -> None:
        """One line at the end of `path` (hpo.runner.record.append_line)."""
        try:
            append_line(path, line, SafeFallbackEncoder)
        except OSError as e:
            self._fault(e, path)

    def _fault(self, e: OSError, path: Path) -> None:
        if e.errno not in STORAGE_ERRNOS:
            raise e
        self._storage(f"{e.strerror} [Errno {e.errno}] ({path})")

    def _storage(self, error: str) -> None:
        if self.storage_fault:
            return
        code = storage_errno(error) or errno.EIO
        self.storage_fault = (f"the storage {self.run_dir} {STORAGE_ERRNOS.get(code, 'failed')}: "
                              f"{error.strip()[:300]}")
        # stop as Ctrl-C does (Tune's own graceful stop, SIGUSR1): the trials stay resumable;
        # the stopper would end them as finished. Without Tune's handler (not the main thread),
        # the stopper it is.
        if signal.getsignal(signal.SIGUSR1) not in (signal.SIG_DFL, signal.SIG_IGN, None):
            os.kill(os.getpid(), signal.SIGUSR1)
        else:
            self.stop_now = True


def storage_errno(error: str | None) -> int | None:
    """The errno of a storage that stopped taking writes, if `error` (a trial's or Ray's
    message) is one; else None."""
    for m in re.finditer(r"\[errno (\d+)\]", error or "", re.I):
        if int(m.group(1)) in STORAGE_ERRNOS:
            return int(m.group(1))
    return None


class AbortStopper(Stopper):
    """Stops every trial once the events callback decided to abort, or saw the storage fail."""

    def __init__(self, events: Events) -> None:
        self.events = events

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        return self.stop_all()

    def stop_all(self) -> bool:
        return self.events.abort is not None or self.events.stop_now


class BudgetStopper(TimeoutStopper):
    """Tune's time budget (it counts the time spent training, across resumes), which also logs
    when it ran out: the collector marks the trials it cut short as stopped by it, and the run
    ends `finished` (its budget spent), not `interrupted`."""

    def __init__(self, events: Events, budget_s: float) -> None:
        super().__init__(budget_s)
        self.events = events
        self.logged = False

    def stop_all(self) -> bool:
        spent = super().stop_all()
        if spent and not self.logged:
            self.logged = True
            self.events._write({"trial_id": None, "event": "time_budget",
                                "reason": f"time budget ({self._timeout_seconds:g} s)"})
        return spent


def _last_line(trial: Any) -> str | None:
    """The exception line of a failed trial's error file (the message a user needs)."""
    path = getattr(trial, "error_file", None) or ""
    if not (path and os.path.exists(path)):
        return None
    lines = [ln for ln in Path(path).read_text(errors="replace").splitlines() if ln.strip()]
    return lines[-1] if lines else None
