"""A run's folder and its state: a fresh folder per run, run.json (what ran, where, its state),
and the end of every run, whatever happened: the collector writes the tables, run.json gets
the final state (finished / interrupted / aborted)."""

from __future__ import annotations

import contextlib
import json
import os
import resource
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from hpo import environment
from hpo.data import ArrayDataset
from hpo.errors import STORAGE_ERRNOS, StorageFault
from hpo.experiment import Experiment
from hpo.results import Outcome, RunFolder
from hpo.runner import collect
from hpo.storage import Storage


def claim_run_dir(storage: Storage | Path, name: str) -> Path:
    """Create `<storage>/<name>`, or `<name>-2`, `-3`, ... and return it. Claimed by an atomic
    mkdir, so two runs started at the same moment into the same storage never share a folder
    (the loser of a race takes the next name). For a bucket, a name already taken there is
    skipped too (a bucket has no atomic claim; the local staging folder has)."""
    st = storage if isinstance(storage, Storage) else Storage(Path(storage))
    st.root.mkdir(parents=True, exist_ok=True)
    i = 1
    while True:
        d = st.root / (name if i == 1 else f"{name}-{i}")
        i += 1
        if st.is_remote and st.taken(d):
            continue
        try:
            d.mkdir()
        except FileExistsError:
            continue
        return d


def run_info(exp: Experiment, data: ArrayDataset) -> dict[str, Any]:
    return {
        "name": exp.spec.name, "started": time.time(), "state": "running",
        "seed": exp.spec.seed, "metric": exp.spec.metric, "mode": exp.mode,
        "metrics": exp.metrics, "searched": exp.searched_names,
        "n_trials_planned": exp.n_trials,
        "objectives": exp.objectives, "constraints": exp.constraints,
        "warm_start": ({"from": str(exp.spec.warm_start), "n_trials": len(exp.prior)}
                       if exp.spec.warm_start else None),
        "dataset": {"name": data.name, "source": data.source, "is_sample": data.is_sample,
                    **data.sizes, **data.extra,
                    # what a saved model needs to be rebuilt and fed (hpo.model_io)
                    "example_shape": list(data.x_train.shape[1:]), "n_classes": data.n_classes,
                    "normalize": {"scale": data.scale, "mean": data.mean, "std": data.std}},
        "trainable": exp.spec.trainable, "model": exp.spec.model,
        "versions": environment.versions(), "hardware": environment.hardware(),
        "git_commit": environment.git_commit(), "argv": sys.argv,
    }


def write_json(path: Path, obj: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=1, default=str))
    tmp.replace(path)


SIGTERM_SEEN = threading.Event()  # a run was asked to stop by SIGTERM (the warm head then stops too)


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """While a run trains, SIGTERM does what Ctrl-C does: the first asks Tune to stop (its own
    SIGUSR1 handler: trials stopped, experiment state saved), a second one stops at once
    (KeyboardInterrupt). Either way the run ends `interrupted` with its tables written and
    resumes. Without this, Ray's handler exits the driver (SystemExit) with a stack dump.
    Only in the main thread (signals cannot be set elsewhere); the previous handler comes back."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    seen = []

    def on_term(signum: int, frame: Any) -> None:
        SIGTERM_SEEN.set()
        tune_stops = signal.getsignal(signal.SIGUSR1) not in (signal.SIG_DFL, signal.SIG_IGN, None)
        if seen or not tune_stops:
            raise KeyboardInterrupt
        seen.append(signum)
        os.kill(os.getpid(), signal.SIGUSR1)

    previous = signal.signal(signal.SIGTERM, on_term)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def storage_fault(e: OSError, run_dir: Path) -> str:
    """What to tell a user whose storage stopped taking writes; any other OSError is raised."""
    if e.errno not in STORAGE_ERRNOS:
        raise e
    where = e.filename or run_dir
    return f"the storage {run_dir} {STORAGE_ERRNOS[e.errno]}: {e.strerror} ({where})"


def execute(exp: Experiment, run_dir: Path, info: dict[str, Any], t0: float, out: Any,
            fit: Callable[[], None], storage: Storage) -> RunFolder:
    """Run `fit`, then always write the tables and the run's state, whatever happened (for a
    URI storage: fetch Ray's trial folders first, upload the driver's files after)."""
    prior = float(info.get("wall_time_s") or 0.0)
    info["state"] = "running"
    write_json(run_dir / "run.json", info)
    state, fault = "interrupted", None
    try:
        with sigterm_as_interrupt():
            fit()
        state = "finished"
    except KeyboardInterrupt:
        pass  # said below, with every other way a run ends unfinished
    except StorageFault as e:
        fault = str(e)
    except OSError as e:
        fault = storage_fault(e, run_dir)
    finally:
        # the driver's peak through the sweep, before the tables (which hold every trial) are built
        info["driver_sweep_peak_rss_mb"] = _peak_rss_mb()
        try:
            storage.download(run_dir)
            trials, history = collect.write_tables(run_dir)
        except OSError as e:
            fault = fault or storage_fault(e, run_dir)
            trials, history, _ = collect.collect(run_dir)  # what the run did, for the summary
        aborted = collect.abort_reason(run_dir)
        ended_by = collect.abort_reason(run_dir, event="time_budget")
        incomplete = bool(len(trials)) and (trials["status"] == "incomplete").any()
        if aborted:
            state = "aborted"
        elif state == "finished" and (incomplete or fault):
            state = "interrupted"
        if ended_by:
            info["ended_by"] = ended_by
        info.update(state=state, finished=time.time(), wall_time_s=prior + time.time() - t0,
                    driver_peak_rss_mb=_peak_rss_mb())
        try:
            write_json(run_dir / "run.json", info)
            storage.upload(run_dir)
        except OSError as e:
            fault = fault or storage_fault(e, run_dir)
    if fault:
        print(f"hpo: STOPPED: {fault}\nhpo: what was written before is kept (finished trials, "
              f"results and checkpoints up to the fault; the tables and run.json may be older). "
              f"Free space or make the storage writable, then `hpo resume {run_dir}`: unfinished "
              f"trials restart from their last readable checkpoint.", file=out, flush=True)
    elif aborted:
        print(f"hpo: ABORTED: {aborted}", file=out)
    elif state == "interrupted":
        print("hpo: INTERRUPTED: finished trials are kept; unfinished ones restart from their last "
              f"checkpoint with `hpo resume {run_dir}`.", file=out, flush=True)
    return RunFolder(run_dir, exp.spec, info, trials, history, exp.spec.metric, exp.mode,
                     outcome=Outcome(time.time() - t0, storage, fault))


def _peak_rss_mb() -> float:
    """This process's peak resident memory so far, in MB (Linux reports KB)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
