"""Run a checked experiment on Ray Tune and leave its results on disk.

This and :mod:`trainables._ray` are where Ray is driven; everything before (spec, experiment
checks) and after (results tables, report) works without it.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from hpo import environment, results
from hpo.data import ArrayDataset, load_dataset
from hpo.errors import SpecError
from hpo.experiment import Experiment
from hpo.spec import spec_to_yaml

log = logging.getLogger("hpo")


@dataclass
class RunResult:
    run_dir: Path
    trials: pd.DataFrame
    history: pd.DataFrame
    best: pd.Series | None
    wall_time_s: float
    state: str


def unique_run_dir(storage: Path, name: str) -> Path:
    """`<storage>/<name>`, or `<name>-2`, `-3`, ... so two runs never share a folder."""
    d, i = storage / name, 1
    while d.exists():
        i += 1
        d = storage / f"{name}-{i}"
    return d


def run(exp: Experiment, *, storage: str | Path | None = None, name: str | None = None,
        address: str | None = None, dashboard: bool = True, verbose: int = 1,
        out: Any = sys.stdout) -> RunResult:
    spec = exp.spec
    storage_path = Path(storage or spec.storage).expanduser().resolve()
    run_dir = unique_run_dir(storage_path, name or spec.name)
    t0 = time.time()

    # Ray's start (seconds, mostly the dashboard) overlaps with reading the dataset
    with ThreadPoolExecutor(1) as pool:
        loading = pool.submit(load_dataset, spec.dataset.name, spec.dataset.data_dir,
                              spec.dataset.val_size, spec.dataset.strict, spec.dataset.train_size)
        _init_ray(address, dashboard, out)
        data = loading.result()
    _check_cluster(spec)
    run_dir.mkdir(parents=True)
    (run_dir / "spec.yaml").write_text(spec_to_yaml(spec))
    info = _run_info(exp, data)
    _write_json(run_dir / "run.json", info)
    print(f"hpo: {spec.name}: {exp.n_trials} trial(s) of `{spec.trainable}` on {data.name} "
          f"({data.sizes['train']} train / {data.sizes['val']} val / {data.sizes['test']} test"
          f"{', EMBEDDED SAMPLE' if data.is_sample else ''}) -> {run_dir}", file=out, flush=True)

    state = "interrupted"
    try:
        _fit(exp, data, run_dir, verbose)
        state = "finished"
    except KeyboardInterrupt:
        print("hpo: interrupted; results of finished trials are kept.", file=out)
    finally:
        trials, history = results.write_tables(run_dir)
        incomplete = bool(len(trials)) and (trials["status"] == "incomplete").any()
        state = "interrupted" if (state != "finished" or incomplete) else "finished"
        info.update(state=state, finished=time.time(), wall_time_s=time.time() - t0)
        _write_json(run_dir / "run.json", info)
    best = results.best_trial(trials, spec.metric, exp.mode) if len(trials) else None
    return RunResult(run_dir, trials, history, best, time.time() - t0, state)


def _run_info(exp: Experiment, data: ArrayDataset) -> dict[str, Any]:
    return {
        "name": exp.spec.name, "started": time.time(), "state": "running",
        "seed": exp.spec.seed, "metric": exp.spec.metric, "mode": exp.mode,
        "metrics": exp.trainable.metrics, "searched": exp.searched_names,
        "n_trials_planned": exp.n_trials,
        "dataset": {"name": data.name, "source": data.source, "is_sample": data.is_sample,
                    **data.sizes},
        "versions": environment.versions(), "hardware": environment.hardware(),
        "git_commit": environment.git_commit(), "argv": sys.argv,
    }


def _write_json(path: Path, obj: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=1, default=str))
    tmp.replace(path)


def _init_ray(address: str | None, dashboard: bool, out: Any) -> None:
    import ray

    if ray.is_initialized():
        return
    kwargs: dict[str, Any] = {
        "logging_level": logging.WARNING, "log_to_driver": True,
        "runtime_env": {"worker_process_setup_hook": "trainables._ray.warm_up"},
    }
    if address:
        ctx = ray.init(address=address, **kwargs)
    else:
        ctx = ray.init(include_dashboard=dashboard, dashboard_host="127.0.0.1", **kwargs)
    url = getattr(ctx, "dashboard_url", None)
    if url:
        print(f"hpo: Ray dashboard: http://{url}  (token authentication is on: the token is "
              f"printed by `ray get-auth-token` and kept in ~/.ray/auth_token)", file=out, flush=True)


def _fit(exp: Experiment, data: ArrayDataset, run_dir: Path, verbose: int) -> None:
    # num_to_keep forces an experiment-state snapshot after each checkpoint; measured on the
    # lr_reg grid it costs nothing here, so silence Ray's warning about it
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    from ray import tune

    from trainables._ray import make_trainable

    spec = exp.spec
    search_alg, param_space = exp.searcher.build(exp.params, exp.searcher_options, spec.metric,
                                                 exp.mode, spec.seed)
    if "seed" not in exp.params:
        param_space["seed"] = spec.seed
    scheduler = exp.scheduler.build(exp.scheduler_options, exp.params, spec.budget.max_epochs,
                                    spec.seed)
    settings = {
        "max_epochs": spec.budget.max_epochs,
        "select": spec.metric,
        "threads": max(1, int(spec.resources.cpu)),
        "checkpoint_every": spec.checkpoint.every,
        "data_key": uuid.uuid4().hex,  # lets a reused worker keep its converted tensors
    }
    trainable = tune.with_resources(
        tune.with_parameters(make_trainable(exp.trainable), data=data, settings=settings),
        {"cpu": spec.resources.cpu, "gpu": spec.resources.gpu},
    )
    tuner = tune.Tuner(
        trainable,
        param_space=param_space,
        tune_config=tune.TuneConfig(
            metric=spec.metric, mode=exp.mode, search_alg=search_alg, scheduler=scheduler,
            num_samples=spec.budget.num_samples,
            max_concurrent_trials=spec.budget.max_concurrent_trials,
            time_budget_s=spec.budget.time_budget_s,
            reuse_actors=True,  # one worker process trains many trials: no re-import per trial
            trial_name_creator=lambda t: f"trial_{t.trial_id}",
            trial_dirname_creator=lambda t: f"trial_{t.trial_id}",
        ),
        run_config=tune.RunConfig(
            name=run_dir.name, storage_path=str(run_dir.parent), verbose=verbose,
            # PBT restores trials from other trials' older checkpoints: keep them all
            checkpoint_config=tune.CheckpointConfig(
                num_to_keep=None if exp.scheduler.needs_checkpoints else spec.checkpoint.keep),
            callbacks=[_events_callback(run_dir)],
            log_to_file=True,
        ),
    )
    tuner.fit()


def _check_cluster(spec: Any) -> None:
    import ray

    have = ray.cluster_resources()
    for key, need in (("CPU", spec.resources.cpu), ("GPU", spec.resources.gpu)):
        if need > have.get(key, 0):
            ray.shutdown()
            raise SpecError(f"each trial asks for {need} {key}, but the Ray cluster has "
                            f"{have.get(key, 0)}.", field=f"resources.{key.lower()}")


def _events_callback(run_dir: Path) -> Any:
    from ray.tune import Callback

    class Events(Callback):
        """Appends one line per finished trial to events.jsonl as it happens."""

        def _write(self, trial: Any, event: str, error: str | None = None) -> None:
            line = {"trial_id": trial.trial_id, "event": event, "time": time.time()}
            if error:
                line["error"] = error
            with open(run_dir / "events.jsonl", "a") as f:
                f.write(json.dumps(line) + "\n")

        def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            self._write(trial, "complete")

        def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            err = None
            path = getattr(trial, "error_file", None) or ""
            if path and os.path.exists(path):
                lines = [ln for ln in open(path, errors="replace").read().splitlines() if ln.strip()]
                err = lines[-1] if lines else None
            self._write(trial, "error", err)

    return Events()
