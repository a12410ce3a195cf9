"""Run a checked experiment on Ray Tune and leave its results on disk.

This and :mod:`trainables._ray` are where Ray is driven; everything before (spec, experiment
checks) and after (results tables, report) works without it.
"""

from __future__ import annotations

import json
import logging
import os
import resource
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from hpo import environment, packing, results
from hpo.data import ArrayDataset, load_dataset
from hpo.errors import SpecError
from hpo.experiment import Experiment
from hpo.space import groups
from hpo.spec import load_spec, spec_to_yaml
from hpo.storage import Storage, open_storage


@dataclass
class RunResult:
    run_dir: Path
    trials: pd.DataFrame
    history: pd.DataFrame
    best: pd.Series | None
    wall_time_s: float
    state: str


def writable_storage(storage: str) -> Path:
    """The local storage folder, created and checked for write access (URIs: see hpo.storage)."""
    return open_storage(storage).root


def unique_run_dir(storage: Storage | Path, name: str) -> Path:
    """`<storage>/<name>`, or `<name>-2`, `-3`, ... so two runs never share a folder."""
    st = storage if isinstance(storage, Storage) else Storage(Path(storage))
    d, i = st.root / name, 1
    while st.taken(d):
        i += 1
        d = st.root / f"{name}-{i}"
    return d


def run(exp: Experiment, *, storage: str | Path | None = None, name: str | None = None,
        address: str | None = None, dashboard: bool = True, verbose: int = 1,
        out: Any = sys.stdout) -> RunResult:
    """Start a new run in a fresh folder `<storage>/<name>` (never reusing an existing one)."""
    spec = exp.spec
    st = open_storage(str(storage or spec.storage))
    run_dir = unique_run_dir(st, name or spec.name)
    t0 = time.time()
    data = _start(exp, address, dashboard, out)
    run_dir.mkdir(parents=True)
    (run_dir / "spec.yaml").write_text(spec_to_yaml(spec))
    info = _run_info(exp, data)
    if st.is_remote:
        info["storage_uri"] = st.display(run_dir)
    _announce(exp, data, st.display(run_dir), out)
    res = _execute(exp, run_dir, info, t0, out, lambda: _fit(exp, data, run_dir, verbose, st), st)
    if spec.confirm and res.state == "finished":
        _confirm(exp, data, res, verbose, out, restore=False, storage=st)
    return res


def resume(exp: Experiment, run_dir: str | Path, *, address: str | None = None,
           dashboard: bool = True, verbose: int = 1, out: Any = sys.stdout,
           storage: Storage | None = None) -> RunResult:
    """Continue an interrupted run in place: finished trials are kept and never rerun,
    unfinished ones restart from their last checkpoint, the searcher's state is restored by Ray.
    Ray does not persist scheduler state: ASHA/Hyperband/median rungs start empty again."""
    from ray import tune

    run_dir = Path(run_dir).resolve()
    st = storage or Storage(run_dir.parent)
    where = st.restore_location(run_dir)
    if not tune.Tuner.can_restore(**where):
        raise SpecError("no Ray experiment state here (tuner.pkl); nothing to resume.",
                        file=str(run_dir))
    t0 = time.time()
    data = _start(exp, address, dashboard, out)
    info = results.read_run_info(run_dir) or _run_info(exp, data)
    info.setdefault("resumed", []).append(t0)
    print(f"hpo: resuming {run_dir} (finished trials are kept; unfinished ones restart from "
          f"their last checkpoint; scheduler rungs start empty)", file=out, flush=True)

    def fit() -> None:
        tuner = tune.Tuner.restore(**where, trainable=_trainable(exp, data, _pack_plan(exp)),
                                   resume_unfinished=True, resume_errored=False,
                                   restart_errored=False)
        tuner.fit()

    res = _execute(exp, run_dir, info, t0, out, fit, st)
    if exp.spec.confirm and res.state == "finished":
        _confirm(exp, data, res, verbose, out, restore=True, storage=st)
    return res


def _confirm(exp: Experiment, data: ArrayDataset, main: RunResult, verbose: int, out: Any,
             restore: bool, storage: Storage | None = None) -> None:
    """The confirmation stage (spec `confirm:`): the top-k configurations x new seeds, run as
    its own grid in <run>/confirm/. A resumed run continues an unfinished confirmation."""
    from ray import tune

    from hpo import confirm
    from hpo.experiment import check

    spec, d = exp.spec, confirm.confirm_dir(main.run_dir)
    assert spec.confirm is not None
    if results.read_run_info(d).get("state") == "finished":
        return
    st = storage or Storage(main.run_dir)
    if restore and tune.Tuner.can_restore(**st.restore_location(d)):
        cexp = check(load_spec(d / "spec.yaml"), local=False)
        info = results.read_run_info(d) or _run_info(cexp, data)

        def fit() -> None:
            tune.Tuner.restore(**st.restore_location(d), trainable=_trainable(cexp, data, _pack_plan(cexp)),
                               resume_unfinished=True, resume_errored=False,
                               restart_errored=False).fit()
    else:
        picks = confirm.pick(main.trials, main.run_dir, spec.metric, exp.mode, spec.confirm.top_k)
        if not picks:
            print("hpo: confirm: no finished trial to confirm.", file=out)
            return
        cexp = check(confirm.confirm_spec(spec, picks), local=False)
        confirm.write_picks(main.run_dir, picks)
        (d / "spec.yaml").write_text(spec_to_yaml(cexp.spec))
        info = _run_info(cexp, data)

        def fit() -> None:
            _fit(cexp, data, d, verbose, st)

    print(f"hpo: confirming the top {spec.confirm.top_k} configuration(s) with "
          f"{spec.confirm.seeds} new seeds each -> {d}", file=out, flush=True)
    _execute(cexp, d, info, time.time(), out, fit, st)
    table = confirm.confirm_table(main.run_dir)
    if table is not None:
        print("hpo: confirmation (mean ± std over new seeds):\n"
              + table.to_string(index=False, float_format=lambda v: f"{v:.4f}"), file=out, flush=True)


def _tune_env() -> None:
    # No TensorBoard logger: it imports torch into the driver (1.5 s, and a crash inside a Ray
    # Job's driver here); result.json (the source of our tables) and progress.csv are kept below.
    os.environ["TUNE_DISABLE_AUTO_CALLBACK_LOGGERS"] = "1"
    # num_to_keep forces an experiment-state snapshot after each checkpoint; measured on the
    # lr_reg grid it costs nothing here, so silence Ray's warning about it
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")


def _start(exp: Experiment, address: str | None, dashboard: bool, out: Any) -> ArrayDataset:
    """Start (or join) Ray while the dataset is read, then check the cluster's resources."""
    _tune_env()
    spec = exp.spec
    with ThreadPoolExecutor(1) as pool:  # Ray's start (seconds, mostly the dashboard) overlaps
        loading = pool.submit(load_dataset, spec.dataset.name, spec.dataset.data_dir,
                              spec.dataset.val_size, spec.dataset.strict, spec.dataset.train_size)
        _init_ray(address, dashboard, out)
        data = loading.result()
    _check_cluster(spec)
    return data


def _announce(exp: Experiment, data: ArrayDataset, run_dir: Path | str, out: Any) -> None:
    s = data.sizes
    print(f"hpo: {exp.spec.name}: {exp.n_trials} trial(s) of `{exp.spec.trainable}` on {data.name} "
          f"({s['train']} train / {s['val']} val / {s['test']} test"
          f"{', EMBEDDED SAMPLE' if data.is_sample else ''}) -> {run_dir}", file=out, flush=True)


def _execute(exp: Experiment, run_dir: Path, info: dict[str, Any], t0: float, out: Any,
             fit: Any, storage: Storage | None = None) -> RunResult:
    """Run `fit`, then always write the tables and the run's state, whatever happened (for a
    URI storage: fetch Ray's trial folders first, upload the driver's files after)."""
    storage = storage or Storage(run_dir.parent)
    prior = float(info.get("wall_time_s") or 0.0)
    info["state"] = "running"
    _write_json(run_dir / "run.json", info)
    state = "interrupted"
    try:
        fit()
        state = "finished"
    except KeyboardInterrupt:
        print("hpo: interrupted; finished trials are kept. Continue with "
              f"`hpo resume {run_dir}`.", file=out)
    finally:
        storage.download(run_dir)
        trials, history = results.write_tables(run_dir)
        aborted = results.abort_reason(run_dir)
        incomplete = bool(len(trials)) and (trials["status"] == "incomplete").any()
        if aborted:
            state = "aborted"
        elif state == "finished" and incomplete:
            state = "interrupted"
        info.update(state=state, finished=time.time(), wall_time_s=prior + time.time() - t0,
                    driver_peak_rss_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1))
        _write_json(run_dir / "run.json", info)
        storage.upload(run_dir)
    if aborted:
        print(f"hpo: ABORTED: {aborted}", file=out)
    best = results.best_trial(trials, exp.spec.metric, exp.mode) if len(trials) else None
    return RunResult(run_dir, trials, history, best, time.time() - t0, state)


def _run_info(exp: Experiment, data: ArrayDataset) -> dict[str, Any]:
    return {
        "name": exp.spec.name, "started": time.time(), "state": "running",
        "seed": exp.spec.seed, "metric": exp.spec.metric, "mode": exp.mode,
        "metrics": exp.trainable.metrics, "searched": exp.searched_names,
        "n_trials_planned": exp.n_trials,
        "dataset": {"name": data.name, "source": data.source, "is_sample": data.is_sample,
                    **data.sizes, **data.extra},
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
    kwargs: dict[str, Any] = {"logging_level": logging.WARNING, "log_to_driver": True}
    if address:
        # no runtime_env of ours here: inside a Ray Job it would replace the job's own (its
        # working_dir, where this driver runs, would then be deleted under it)
        ctx = ray.init(address=address, **kwargs)
    else:
        ctx = ray.init(include_dashboard=dashboard, dashboard_host="127.0.0.1",
                       runtime_env={"worker_process_setup_hook": "trainables._ray.warm_up"},
                       **kwargs)
    url = getattr(ctx, "dashboard_url", None)
    if url:
        print(f"hpo: Ray dashboard: http://{url}  (token authentication is on: the token is "
              f"printed by `ray get-auth-token` and kept in ~/.ray/auth_token)", file=out, flush=True)


def _pack_plan(exp: Experiment) -> packing.PackPlan | None:
    if exp.spec.execution.pack == "off":
        return None
    reason = packing.why_not(exp)
    if reason:
        print(f"hpo: note: execution.pack is set, but trials run unpacked: {reason}.", flush=True)
        return None
    plan = packing.plan(exp)
    if plan is not None:
        print(f"hpo: {plan.describe()}", flush=True)
    return plan


def _trainable(exp: Experiment, data: ArrayDataset, pack: packing.PackPlan | None = None) -> Any:
    """The Tune trainable: data through the object store once, resources per trial."""
    from ray import tune

    from trainables._ray import make_pack_trainable, make_trainable

    spec = exp.spec
    settings = {
        "max_epochs": spec.budget.max_epochs,
        "select": spec.metric,
        "threads": max(1, int(spec.resources.cpu)),
        "checkpoint_every": spec.checkpoint.every,
        "early_stopping": spec.early_stopping.model_dump() if spec.early_stopping else None,
        "groups": groups(exp.params),
        "data_key": uuid.uuid4().hex,  # lets a reused worker keep its converted tensors
    }
    fn = make_trainable(exp.trainable)
    if pack is not None:
        fn = make_pack_trainable(spec.metric, exp.mode)
        settings["sha"] = pack.sha
    return tune.with_resources(
        tune.with_parameters(fn, data=data, settings=settings),
        {"cpu": spec.resources.cpu, "gpu": spec.resources.gpu},
    )


def _fit(exp: Experiment, data: ArrayDataset, run_dir: Path, verbose: int,
         storage: Storage | None = None) -> None:
    from ray import tune
    from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback

    spec = exp.spec
    max_concurrent = spec.budget.max_concurrent_trials
    if exp.scheduler.pauses_trials and max_concurrent:
        print(f"hpo: note: budget.max_concurrent_trials is not applied with scheduler "
              f"`{spec.scheduler.name}` (it pauses trials until a bracket fills; a cap would "
              f"deadlock); resources per trial still bound how many run at once.", flush=True)
        max_concurrent = None
    pack = _pack_plan(exp)
    if pack is not None:  # every configuration known up front; stopping happens inside packs
        from ray.tune.search import BasicVariantGenerator

        search_alg = BasicVariantGenerator(max_concurrent=max_concurrent or 0)
        param_space = {packing.PACK_KEY: tune.grid_search(pack.packs)}
        scheduler = None
    else:
        search_alg, param_space = exp.searcher.build(exp.params, exp.searcher_options, spec.seed,
                                                     max_concurrent)
        if "seed" not in exp.params:
            param_space["seed"] = spec.seed
        scheduler = exp.scheduler.build(exp.scheduler_options, exp.params, spec.budget.max_epochs,
                                        spec.seed)
    events = _events_callback(run_dir, spec.failure.max_failed_trials)
    tuner = tune.Tuner(
        _trainable(exp, data, pack),
        param_space=param_space,
        tune_config=tune.TuneConfig(
            metric=spec.metric, mode=exp.mode, search_alg=search_alg, scheduler=scheduler,
            num_samples=spec.budget.num_samples,  # concurrency: set on the searcher above
            time_budget_s=spec.budget.time_budget_s,
            reuse_actors=True,  # one worker process trains many trials: no re-import per trial
            trial_name_creator=lambda t: f"trial_{t.trial_id}",
            trial_dirname_creator=lambda t: f"trial_{t.trial_id}",
        ),
        run_config=tune.RunConfig(
            name=run_dir.name, verbose=verbose,
            **(storage or Storage(run_dir.parent)).ray_location(run_dir),
            # PBT restores trials from other trials' older checkpoints: keep them all
            checkpoint_config=tune.CheckpointConfig(
                num_to_keep=None if exp.scheduler.needs_checkpoints else spec.checkpoint.keep),
            failure_config=tune.FailureConfig(max_failures=spec.failure.retries),
            callbacks=[JsonLoggerCallback(), CSVLoggerCallback(), events],
            stop=events.stopper(),
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


def _events_callback(run_dir: Path, max_failed: int | None) -> Any:
    from ray.tune import Callback, Stopper

    class Events(Callback):
        """Appends one line per finished trial to events.jsonl as it happens, and aborts the
        experiment (through its stopper) after `max_failed` failed trials."""

        def __init__(self) -> None:
            self.failed = 0
            self.abort: str | None = None
            self.completed: set[str] = set()
            self.started: set[str] = set()

        def setup(self, **info: Any) -> None:
            # On resume Ray may restore a trial that finished after its last experiment snapshot;
            # it then ends at once (its final checkpoint) and must not be logged twice.
            self.completed = {t for t, e in results.trial_events(run_dir).items()
                              if e.get("event") == "complete"}
            self.started = set(results.start_order(run_dir))

        def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            # searchers name trials with random ids: the start order is the trial index
            if trial.trial_id not in self.started:
                self.started.add(trial.trial_id)
                self._write({"trial_id": trial.trial_id, "event": "start"})

        def _write(self, line: dict[str, Any]) -> None:
            line["time"] = time.time()
            with open(run_dir / "events.jsonl", "a") as f:
                f.write(json.dumps(line) + "\n")

        def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            if trial.trial_id not in self.completed:
                self.completed.add(trial.trial_id)
                self._write({"trial_id": trial.trial_id, "event": "complete"})

        def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            err = None
            path = getattr(trial, "error_file", None) or ""
            if path and os.path.exists(path):
                lines = [ln for ln in open(path, errors="replace").read().splitlines() if ln.strip()]
                err = lines[-1] if lines else None
            self._write({"trial_id": trial.trial_id, "event": "error", "error": err})
            self.failed += 1
            if max_failed is not None and self.failed >= max_failed and not self.abort:
                self.abort = (f"{self.failed} trial(s) failed (failure.max_failed_trials = "
                              f"{max_failed}); the remaining trials were stopped.")
                self._write({"trial_id": None, "event": "abort", "reason": self.abort})

        def stopper(self) -> Stopper:
            events = self

            class AbortStopper(Stopper):
                def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
                    return events.abort is not None

                def stop_all(self) -> bool:
                    return events.abort is not None

            return AbortStopper()

    return Events()
