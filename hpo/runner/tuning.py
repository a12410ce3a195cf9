"""Tune wiring: the typed settings every trial gets, the Tune trainable (packed or not), the
Tuner of a new run and the one place a Tuner is restored. Ray is imported here."""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

from hpo import packing
from hpo.contract import PACK_KEY, EarlyStop, Settings
from hpo.data import ArrayDataset
from hpo.experiment import Experiment
from hpo.refs import search_path
from hpo.searchers import Search
from hpo.space import groups
from hpo.storage import Storage


def settings(exp: Experiment, pack: packing.PackPlan | None = None) -> Settings:
    """Everything a trial needs from the spec, read from it in this one place."""
    spec = exp.spec
    es = spec.early_stopping
    return Settings(
        max_epochs=spec.budget.max_epochs, metric=spec.metric, mode=exp.mode,
        threads=max(1, int(spec.resources.cpu)), checkpoint_every=spec.checkpoint.every,
        early_stopping=EarlyStop(es.patience, es.min_delta) if es else None,
        groups=tuple(groups(exp.params)),
        data_key=uuid.uuid4().hex,  # lets a reused worker keep its converted tensors
        halving=pack.halving if pack is not None else None, model=spec.model,
        search_path=tuple(search_path()), test_epochs=test_epochs(exp))


def test_epochs(exp: Experiment) -> frozenset[int] | None:
    """Where trials evaluate the test set: after the epochs a trial can be stopped from outside
    and the last one, when those are known (the scheduler's entry says, and no time budget or
    abort can cut a trial anywhere); else None, at every validation improvement."""
    spec, stops = exp.spec, exp.scheduler.stop_epochs
    if stops is None or spec.budget.time_budget_s or spec.failure.max_failed_trials:
        return None
    return frozenset(stops(exp.scheduler_options, spec.budget.max_epochs) | {spec.budget.max_epochs})


def pack_plan(exp: Experiment) -> packing.PackPlan | None:
    if exp.spec.execution.pack == "off":
        return None
    reason = packing.why_not(exp)
    if reason:
        print(f"hpo: trials run unpacked (execution.pack: {exp.spec.execution.pack}): {reason}.", flush=True)
        return None
    plan = packing.plan(exp)
    if plan is not None:
        print(f"hpo: {plan.describe()}", flush=True)
    return plan


def trainable(exp: Experiment, data: ArrayDataset, pack: packing.PackPlan | None = None) -> Any:
    """The Tune trainable: data through the object store once, resources per trial."""
    from ray import tune

    from hpo.trainables._ray import make_pack_trainable, make_trainable

    fn = make_trainable(exp.trainable) if pack is None else make_pack_trainable(exp.trainable)
    return tune.with_resources(
        tune.with_parameters(fn, data=data, settings=settings(exp, pack)),
        {"cpu": exp.spec.resources.cpu, "gpu": exp.spec.resources.gpu},
    )


def fit(exp: Experiment, data: ArrayDataset, run_dir: Path, verbose: int, storage: Storage,
        progress: bool = False, mirror: bool | None = None) -> None:
    """A new Tuner for the run folder `run_dir`, fitted to the end. `verbose`: Ray's own
    progress table (1) or not (0); `progress`: hpo's one-line progress (hpo.runner.progress)."""
    from ray import tune

    from hpo.runner.events import Events

    spec = exp.spec
    pack = pack_plan(exp)
    search_alg, param_space, scheduler = _search(exp, pack)
    if scheduler is not None:
        from hpo.runner.scheduler_state import persisted

        scheduler = persisted(scheduler, run_dir)
    events = Events(run_dir, spec.failure.max_failed_trials)
    tuner = tune.Tuner(
        trainable(exp, data, pack),
        param_space=param_space,
        tune_config=tune.TuneConfig(
            metric=spec.metric, mode=exp.mode, search_alg=search_alg, scheduler=scheduler,
            num_samples=spec.budget.num_samples,  # concurrency: set on the searcher
            reuse_actors=True,  # one worker process trains many trials: no re-import per trial
            trial_name_creator=lambda t: f"trial_{t.trial_id}",
            trial_dirname_creator=lambda t: f"trial_{t.trial_id}",
        ),
        run_config=tune.RunConfig(
            name=run_dir.name, verbose=verbose, **storage.ray_location(run_dir),
            # PBT restores trials from other trials' older checkpoints: keep them all
            checkpoint_config=tune.CheckpointConfig(
                num_to_keep=None if exp.scheduler.needs_checkpoints else keep_checkpoints(spec)),
            failure_config=tune.FailureConfig(max_failures=spec.failure.retries),
            callbacks=_callbacks(exp, run_dir, storage, events, progress, mirror),
            stop=events.stopper(spec.budget.time_budget_s),
            log_to_file=True,
        ),
    )
    tuner.fit()


def keep_checkpoints(spec: Any) -> int:
    """Checkpoints kept per trial: at least 2. Ray's experiment snapshot names a trial's
    checkpoint a moment after it is written; keeping one only, a kill in that moment (after Ray
    deleted the older checkpoint, before the snapshot) left the snapshot pointing at a deleted
    checkpoint, and the resumed trial failed ("does not exist on storage anymore")."""
    return max(2, spec.checkpoint.keep)


def _search(exp: Experiment, pack: packing.PackPlan | None) -> tuple[Any, dict[str, Any], Any]:
    """(search algorithm with the concurrency cap, param space, scheduler) of a new run."""
    from ray import tune

    spec = exp.spec
    max_concurrent = spec.budget.max_concurrent_trials
    if exp.scheduler.pauses_trials and max_concurrent:
        print(f"hpo: note: budget.max_concurrent_trials is not applied with scheduler "
              f"`{spec.scheduler.name}` (it pauses trials until a bracket fills; a cap would "
              f"deadlock); resources per trial still bound how many run at once.", flush=True)
        max_concurrent = None
    if pack is not None:  # every configuration known up front; stopping happens inside packs
        from ray.tune.search import BasicVariantGenerator

        return (BasicVariantGenerator(max_concurrent=max_concurrent or 0),
                {PACK_KEY: tune.grid_search(pack.packs)}, None)
    search_alg, param_space = exp.searcher.build(Search(
        exp.params, exp.searcher_options, spec.seed, max_concurrent, spec.metric, exp.mode,
        objectives=exp.objectives, constraints=exp.constraints,
        points=tuple(spec.points_to_evaluate), prior=exp.prior, num_samples=spec.budget.num_samples,
        directions={**exp.metrics, **exp.trainable.attributes}))
    if "seed" not in exp.params:
        param_space["seed"] = spec.seed
    scheduler = exp.scheduler.build(exp.scheduler_options, exp.params, spec.budget.max_epochs, spec.seed)
    return search_alg, param_space, scheduler


def _callbacks(exp: Experiment, run_dir: Path, storage: Storage, events: Any, progress: bool,
               mirror: bool | None) -> list[Any]:
    """Ray's result files (the collector reads them), hpo's event log, the trackers, the live
    mirror (unless HPO_MIRROR=0) and the terminal progress line."""
    from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback

    from hpo import trackers

    spec = exp.spec
    out = [JsonLoggerCallback(), CSVLoggerCallback(), events, *trackers.callbacks(exp.tracking, run_dir)]
    if mirror if mirror is not None else os.environ.get("HPO_MIRROR", "1") != "0":
        from hpo.runner.mirror import OptunaMirror, journal_path

        out.append(OptunaMirror(journal_path(storage.root), run_dir, spec.metric, exp.mode,
                                spec.budget.max_epochs, exp.params))
    if progress:
        from hpo.runner.progress import Progress

        out.append(Progress(spec.metric, exp.mode, exp.n_trials, exp.searched_names))
    return out


def can_restore(run_dir: Path, storage: Storage) -> bool:
    from ray import tune

    return bool(tune.Tuner.can_restore(**storage.restore_location(run_dir)))


def restore_fit(exp: Experiment, data: ArrayDataset, run_dir: Path, storage: Storage) -> None:
    """Continue the Tuner saved in `run_dir`: finished trials are kept, unfinished ones restart
    from their last checkpoint, errored ones stay errored."""
    from ray import tune

    tune.Tuner.restore(**storage.restore_location(run_dir), trainable=trainable(exp, data, pack_plan(exp)),
                       resume_unfinished=True, resume_errored=False, restart_errored=False).fit()
