"""A run's folder and its state: a fresh folder per run, run.json (what ran, where, its state),
and the end of every run, whatever happened: the collector writes the tables, run.json gets
the final state (finished / interrupted / aborted)."""

from __future__ import annotations

import json
import resource
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from hpo import environment, results
from hpo.data import ArrayDataset
from hpo.experiment import Experiment
from hpo.runner import collect
from hpo.storage import Storage


@dataclass
class RunResult:
    run_dir: Path
    trials: pd.DataFrame
    history: pd.DataFrame
    best: pd.Series | None
    wall_time_s: float
    state: str
    storage: Storage  # where the run folder lives (its bucket, for a URI storage)


def unique_run_dir(storage: Storage | Path, name: str) -> Path:
    """`<storage>/<name>`, or `<name>-2`, `-3`, ... so two runs never share a folder."""
    st = storage if isinstance(storage, Storage) else Storage(Path(storage))
    d, i = st.root / name, 1
    while st.taken(d):
        i += 1
        d = st.root / f"{name}-{i}"
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


def execute(exp: Experiment, run_dir: Path, info: dict[str, Any], t0: float, out: Any,
            fit: Callable[[], None], storage: Storage) -> RunResult:
    """Run `fit`, then always write the tables and the run's state, whatever happened (for a
    URI storage: fetch Ray's trial folders first, upload the driver's files after)."""
    prior = float(info.get("wall_time_s") or 0.0)
    info["state"] = "running"
    write_json(run_dir / "run.json", info)
    state = "interrupted"
    try:
        fit()
        state = "finished"
    except KeyboardInterrupt:
        print("hpo: interrupted; finished trials are kept. Continue with "
              f"`hpo resume {run_dir}`.", file=out)
    finally:
        storage.download(run_dir)
        trials, history = collect.write_tables(run_dir)
        aborted = collect.abort_reason(run_dir)
        incomplete = bool(len(trials)) and (trials["status"] == "incomplete").any()
        if aborted:
            state = "aborted"
        elif state == "finished" and incomplete:
            state = "interrupted"
        info.update(state=state, finished=time.time(), wall_time_s=prior + time.time() - t0,
                    driver_peak_rss_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1))
        write_json(run_dir / "run.json", info)
        storage.upload(run_dir)
    if aborted:
        print(f"hpo: ABORTED: {aborted}", file=out)
    best = results.best_trial(trials, exp.spec.metric, exp.mode)
    return RunResult(run_dir, trials, history, best, time.time() - t0, state, storage)
