"""Tune wiring: the typed settings every trial gets, the Tune trainable (packed or not), the
Tuner of a new run and the one place a Tuner is restored. Ray is imported here."""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import sys
import uuid
from pathlib import Path
from typing import Any

from hpo import packing
from hpo.contract import PACK_KEY, EarlyStop, Settings
from hpo.data import ArrayDataset
from hpo.errors import StorageFault
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
            # a module's function, pickled by name: a lambda is pickled whole, 1.4 KB of hex in
            # every trial's snapshot, twice
            trial_name_creator=trial_name, trial_dirname_creator=trial_name,
        ),
        run_config=tune.RunConfig(
            name=run_dir.name, verbose=verbose, **storage.ray_location(run_dir),
            # PBT restores trials from other trials' older checkpoints: keep them all
            checkpoint_config=tune.CheckpointConfig(
                num_to_keep=None if exp.scheduler.needs_checkpoints else keep_checkpoints(exp)),
            failure_config=tune.FailureConfig(max_failures=spec.failure.retries),
            callbacks=_callbacks(exp, run_dir, storage, events, progress, mirror),
            stop=events.stopper(spec.budget.time_budget_s),
            log_to_file=True,
        ),
    )
    _fit_checked(tuner, forget=forgets_ended(exp, verbose))


def forgets_ended(exp: Experiment, verbose: int) -> bool:
    """Whether the driver forgets each trial once it has finished (hpo.runner.lean): unless the
    scheduler reads ended trials back, or Ray's own table is shown (it counts the trials the
    driver holds)."""
    return not exp.scheduler.reads_ended_trials and int(verbose) == 0


def trial_name(trial: Any) -> str:
    """A trial's name and folder: ``trial_<id>``."""
    from hpo.runner.collect import trial_dir_name

    return trial_dir_name(trial.trial_id)


def _fit_checked(tuner: Any, forget: bool) -> None:
    """Fit the Tuner; a storage that stopped taking writes ends it with a StorageFault.
    `forget`: the driver forgets each trial once it has finished (hpo.runner.lean)."""
    from hpo.runner.events import Events
    from hpo.runner.lean import forgetting_ended, no_result_frames, release_frames

    Events.active = None
    fault = None
    try:
        # Ray's end-of-run DataFrames of every trial: hpo reads none
        with no_result_frames(), forgetting_ended(forget):
            tuner.fit()
    except Exception:
        # Ray's own end (its result grid reads the error files it could not write) fails too
        if Events.active is None or not Events.active.storage_fault:
            raise
    finally:
        release_frames()  # the finished fit's Trials are freed before the tables are built
    fault = Events.active.storage_fault if Events.active is not None else None
    if fault:
        where = rescue_state(Events.active.run_dir)
        raise StorageFault(fault + (f" (Ray's experiment state is kept at {where} for the resume)"
                                    if where else ""))


def _rescue_dir(run_dir: Path) -> Path:
    from hpo.runner.head import home

    return home() / "rescue" / hashlib.sha1(str(Path(run_dir).resolve()).encode()).hexdigest()[:16]


def rescue_state(run_dir: Path) -> Path | None:
    """Ray writes its experiment state next to the driver, then copies it to the storage; a
    storage that fills up cuts that copy short. Keep the driver's whole copy off the storage
    (under $HPO_HOME) for `hpo resume`."""
    import ray

    try:
        session = Path(ray._private.worker._global_node.get_session_dir_path())
    except AttributeError:
        return None
    states = sorted(session.glob(f"artifacts/*/{run_dir.name}/driver_artifacts/experiment_state-*.json"))
    if not states:
        return None
    dest = _rescue_dir(run_dir)
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    for f in states[-1].parent.iterdir():  # the experiment state and the searcher's
        if f.is_file():
            shutil.copy2(f, dest / f.name)
    return dest


def repair_state(run_dir: Path, out: Any) -> bool:
    """Before a resume: Ray's newest experiment state in the run folder must be whole. One cut
    short (a storage that filled up) is replaced by the copy `rescue_state` kept, else set
    aside so that Ray takes an older one, else the resume is refused with the reason. True
    when the kept copy is used."""
    from hpo.errors import SpecError
    from hpo.runner.relink import read_snapshot

    for empty in (*run_dir.glob("trial_*/error.pkl"), *run_dir.glob("trial_*/error.txt")):
        if empty.stat().st_size == 0:  # cut by the fault: Ray's results would fail unpickling it
            empty.unlink()
    states = sorted(run_dir.glob("experiment_state-*.json"))
    if not states:
        return False
    newest, kept = states[-1], _rescue_dir(run_dir) / states[-1].name
    doc, kept_doc = read_snapshot(newest), read_snapshot(kept)  # None: missing or cut short
    if doc is not None:
        if kept_doc is not None and _step(kept_doc) > _step(doc):
            # the storage took no write of the last snapshots at all: the folder's is whole but
            # older, and knows nothing of the trials started since (their folders would be
            # set aside as forgotten)
            _restore_kept(kept, run_dir)
            print(f"hpo: {newest.name} in the run folder is older than the copy kept at "
                  f"{kept.parent} (the storage stopped taking writes); resuming from the kept copy",
                  file=out, flush=True)
            return True
        if kept.parent.exists():  # a storage fault whose state was written whole: its
            _unerror(newest, run_dir)  # trials errored only by failed writes go on
        return False
    if kept_doc is not None:
        _restore_kept(kept, run_dir)
        print(f"hpo: {newest.name} was cut short (the storage stopped taking writes); restored "
              f"it from the copy kept at {kept.parent}", file=out, flush=True)
        return True
    newest.rename(newest.with_name(newest.name + ".cut"))
    if len(states) > 1:
        print(f"hpo: {newest.name} was cut short and no whole copy was kept; resuming from the "
              f"older {states[-2].name} (trials since then restart from their checkpoints)",
              file=out, flush=True)
        return False
    raise SpecError(f"Ray's experiment state {newest.name} was cut short (set aside as .cut) and "
                    f"there is no other; this run cannot be resumed. Its finished trials are "
                    f"intact: `hpo report {run_dir}`; `hpo run SPEC --from {run_dir}` warm-starts "
                    f"a new run from them.", file=str(run_dir))


def _restore_kept(kept: Path, run_dir: Path) -> None:
    for f in kept.parent.iterdir():
        shutil.copy2(f, run_dir / f.name)
    _unerror(run_dir / kept.name, run_dir)


def _step(doc: dict[str, Any]) -> int:
    """How far the Tuner that wrote this experiment state had got (its loop's iteration)."""
    return int(doc.get("runner_data", {}).get("_iteration", 0))


def _unerror(state: Path, run_dir: Path) -> None:
    """In Ray's experiment state, the trials that the storage fault errored (hpo logged no
    error of theirs) become unfinished again: the resume continues them from their checkpoints."""
    from hpo.runner.collect import trial_events

    events = trial_events(run_dir)
    d = json.loads(state.read_text())
    for i, (trial, meta) in enumerate(_state_trials(d)):
        if trial.get("status") == "ERROR" and (events.get(trial["trial_id"]) or {}).get("event") != "error":
            trial["status"] = "PENDING"
            meta.update(num_failures=max(0, int(meta.get("num_failures", 1)) - 1),
                        error_filename=None, pickled_error_filename=None)
            d["trial_data"][i] = [json.dumps(trial), json.dumps(meta)]
    state.write_text(json.dumps(d))


def _state_trials(doc: dict[str, Any]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """The trials of Ray's experiment state: (trial, its run metadata), each stored there as a
    JSON string."""
    return [(json.loads(trial), json.loads(meta)) for trial, meta in doc["trial_data"]]


def set_aside_forgotten(run_dir: Path, out: Any) -> list[str]:
    """Before a resume: trials that started after Ray's last experiment snapshot and had not
    ended when the driver was killed are unknown to the restored Tuner and its searcher, which
    never continue them (a searcher proposes anew); their folders would read as unfinished
    trials. They are moved to `forgotten_trial_<id>` (kept, not read into the tables). Trials
    with an end in events.jsonl stay: they finished (or belong to an earlier Tuner of a run
    extended with --more). Returns the ids set aside."""
    from hpo.runner.collect import trial_events
    from hpo.runner.relink import newest_state

    state = newest_state(run_dir)
    if state is None:  # a bucket's run: Ray's state is not in the local folder
        return []
    known = {trial["trial_id"] for trial, _ in _state_trials(json.loads(state.read_text()))}
    ended = trial_events(run_dir)
    folders = {d.name.removeprefix("trial_"): d for d in sorted(run_dir.glob("trial_*")) if d.is_dir()}
    gone = [t for t in folders if t not in known and t not in ended]
    for t in gone:
        folders[t].rename(folders[t].with_name(f"forgotten_{folders[t].name}"))
    if gone:
        print(f"hpo: {len(gone)} trial(s) started after Ray's last snapshot of the run and were cut "
              f"by the stop ({', '.join(gone)}); the resumed run does not know them, and its "
              f"searcher proposes anew. Their folders are kept as forgotten_trial_<id>.",
              file=out, flush=True)
    return gone


# in a sweep of at least KEEP_ALL_FROM trials, a trial that writes at most KEEP_ALL_UP_TO
# checkpoints keeps them all (see keep_checkpoints)
KEEP_ALL_UP_TO, KEEP_ALL_FROM = 4, 500


def keep_checkpoints(exp: Experiment) -> int | None:
    """Checkpoints kept per trial: at least 2. Ray's experiment snapshot names a trial's
    checkpoint a moment after it is written; keeping one only, a kill in that moment (after Ray
    deleted the older checkpoint, before the snapshot) left the snapshot pointing at a deleted
    checkpoint, and the resumed trial failed ("does not exist on storage anymore").

    None (all of them) in a sweep of many short trials (KEEP_ALL_FROM trials or more, each
    writing at most KEEP_ALL_UP_TO checkpoints): with a limit, Ray forces a snapshot of the
    whole experiment state (every trial's, so O(trials)) whenever a trial has written that many
    checkpoints since the last one, and such a sweep became quadratic (a 5,000-trial ASHA sweep
    spent 63% of the driver's time in those snapshots at 2,800 trials; benchmarks/scaling.py).
    Keeping at most 4 costs at most twice the disk of 2; Ray then snapshots on its own schedule
    (every 10 s or more), so a kill can cost the epochs trained since (retrained from the
    trials' checkpoints on resume).
    """
    spec = exp.spec
    every = spec.checkpoint.every
    if (every and exp.n_trials >= KEEP_ALL_FROM
            and math.ceil(spec.budget.max_epochs / every) <= KEEP_ALL_UP_TO):
        return None
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
    mirror (unless HPO_MIRROR=0), the terminal progress line and, last, what keeps the driver's
    memory down (hpo.runner.lean)."""
    from hpo import trackers
    from hpo.runner.lean import CsvLog, JsonLog, LeanTrials

    spec = exp.spec
    out = [JsonLog(), CsvLog(), events, *trackers.callbacks(exp.tracking, run_dir)]
    if mirror if mirror is not None else os.environ.get("HPO_MIRROR", "1") != "0":
        from hpo.runner.mirror import OptunaMirror, journal_path

        out.append(OptunaMirror(journal_path(storage.root), run_dir, spec.metric, exp.mode,
                                spec.budget.max_epochs, exp.params))
    if progress:
        from hpo.runner.progress import Progress

        out.append(Progress(spec.metric, exp.mode, exp.n_trials, exp.searched_names))
    return [*out, LeanTrials()]


def can_restore(run_dir: Path, storage: Storage) -> bool:
    from ray import tune

    return bool(tune.Tuner.can_restore(**storage.restore_location(run_dir)))


def restore_fit(exp: Experiment, data: ArrayDataset, run_dir: Path, storage: Storage) -> None:
    """Continue the Tuner saved in `run_dir`: finished trials are kept, unfinished ones restart
    from their last checkpoint, errored ones stay errored."""
    from ray import tune

    from hpo.runner.relink import relink

    repair_state(run_dir, sys.stdout)
    set_aside_forgotten(run_dir, sys.stdout)
    relink(run_dir, sys.stdout)
    tuner = tune.Tuner.restore(
        **storage.restore_location(run_dir), trainable=trainable(exp, data, pack_plan(exp)),
        resume_unfinished=True, resume_errored=False, restart_errored=False)
    # Ray's table, or not, as the run was started
    _fit_checked(tuner, forget=forgets_ended(exp, tuner._local_tuner.get_run_config().verbose))
    shutil.rmtree(_rescue_dir(run_dir), ignore_errors=True)  # resumed: no longer needed
