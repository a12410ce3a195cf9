"""Tune wiring: the typed settings every trial gets, the Tune trainable (packed or not), the
Tuner of a new run and the one place a Tuner is restored. Ray is imported here."""

from __future__ import annotations

import contextlib
import gc
import math
import os
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hpo import packing, trackers
from hpo.contract import PACK_KEY, RECORD_KEY, EarlyStop, Settings
from hpo.data import ArrayDataset
from hpo.errors import SpecError, StorageFault
from hpo.experiment import Experiment, prior_from, search_args
from hpo.ray_compat.ray_init import callbacks_counted_by_name
from hpo.refs import search_path
from hpo.runner import record
from hpo.runner.collect import write_tables
from hpo.space import groups, searched
from hpo.storage import Storage


def settings(exp: Experiment, pack: packing.PackPlan | None = None, run_root: str | None = None) -> Settings:
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
        search_path=tuple(search_path()), test_epochs=test_epochs(exp), run_root=run_root)


def test_epochs(exp: Experiment) -> frozenset[int] | None:
    """Where trials evaluate the test set: after the epochs a trial can be stopped from outside
    and the last one, when those are known (the scheduler's entry says, and no time budget or
    abort can cut a trial anywhere); else None, at every validation improvement."""
    spec, stops = exp.spec, exp.scheduler.stop_epochs
    if stops is None or spec.budget.time_budget_s or spec.failure.max_failed_trials:
        return None
    return frozenset(stops(exp.scheduler_options, spec.budget.max_epochs) | {spec.budget.max_epochs})


def pack_plan(exp: Experiment, out: Any = None) -> packing.PackPlan | None:
    out = out or sys.stdout
    if exp.spec.execution.pack == "off":
        return None
    reason = packing.why_not(exp)
    if reason:
        print(f"hpo: trials run unpacked (execution.pack: {exp.spec.execution.pack}): {reason}.",
              file=out, flush=True)
        return None
    plan = packing.plan(exp)
    if plan is not None:
        print(f"hpo: {plan.describe()}", file=out, flush=True)
    return plan


def trainable(exp: Experiment, data: ArrayDataset, pack: packing.PackPlan | None = None,
              run_root: str | None = None) -> Any:
    """The Tune trainable: data through the object store once, resources per trial."""
    from ray import tune

    from hpo.trainables._ray import make_pack_trainable, make_trainable

    fn = make_trainable(exp.trainable) if pack is None else make_pack_trainable(exp.trainable)
    return tune.with_resources(
        tune.with_parameters(fn, data=data, settings=settings(exp, pack, run_root)),
        {"cpu": exp.spec.resources.cpu, "gpu": exp.spec.resources.gpu},
    )


@dataclass
class Work:
    """What one Tuner runs: fixed configurations (each tagged with hpo's key: its plan index,
    and for a trial continued after a stop the checkpoint it starts from), then `samples` from
    a searcher that learns (segment `segment` of the plan), which is told `prior` first. On
    resume, `replay` rebuilds the scheduler from the record (hpo.adapters.replay)."""

    configs: list[dict[str, Any]] = field(default_factory=list)
    samples: int = 0
    segment: int | None = None
    prior: tuple[Any, ...] = ()
    replay: list[Any] = field(default_factory=list)
    points: bool = True  # the spec's points_to_evaluate go to the searcher that learns
    reseed: int = 0  # added to the searcher's seed (a resume: hpo.experiment.search_args)

    @property
    def n(self) -> int:
        return len(self.configs) + self.samples

    @property
    def packed(self) -> bool:
        return any(PACK_KEY in c for c in self.configs)


def plan_work(exp: Experiment, run_dir: Path, pack: packing.PackPlan | None) -> Work:
    """A new run's (or an extension's) work, added to the run's plan before any trial starts:
    every configuration of a grid or random search (or every pack), drawn now; else the
    number of samples a searcher that learns draws."""
    spec = exp.spec
    if pack is not None:
        # members are numbered after the configurations the run already has (an extension)
        before = sum(len(c[PACK_KEY]) if PACK_KEY in c else 1
                     for s in record.read_plan(run_dir) if s.planned for c in s.configs or ())
        configs: list[dict[str, Any]] | None = [
            {PACK_KEY: [{**m, "_index": m["_index"] + before} for m in p]} for p in pack.packs]
    elif exp.searcher.draw is not None:
        configs = exp.searcher.draw(search_args(exp, spec.budget.max_concurrent_trials),
                                    None if "seed" in exp.params else {"seed": spec.seed})
    else:
        configs = None
    seg = record.add_segment(run_dir, configs, spec.budget.num_samples)
    if configs is None:
        return Work(samples=seg.n, segment=seg.index, prior=exp.prior)
    return Work([{**c, RECORD_KEY: {"plan": seg.first + j}} for j, c in enumerate(configs)])


def fit(exp: Experiment, data: ArrayDataset, run_dir: Path, verbose: int, storage: Storage,
        progress: bool = False, mirror: bool | None = None, work: Work | None = None,
        out: Any = None) -> None:
    """New Tuners for the run folder `run_dir`, fitted to the end: a new run's work (drawn
    into its plan here), or `work` (what a resume has left). `verbose`: Ray's own progress
    table (1) or not (0); `progress`: hpo's one-line progress (hpo.runner.progress); `out`:
    where hpo's own lines go (the caller's: a quiet API run hands a buffer).

    A long sweep runs as one Tuner per `trials_per_fit` trials (`parts`), one after another,
    all with the same searcher, scheduler, event log, trackers, mirror and progress line: Ray
    Tune's controller keeps every Trial it ran until its fit ends (there is no public way to let
    one go), so the driver forgets each part's trials by ending its fit, and its memory stays
    flat however long the sweep (BENCHMARKS.md, benchmarks/scaling.py)."""
    from ray import tune
    from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback

    from hpo.ray_compat.lean import LeanTrials, Silent, malloc_trim
    from hpo.runner.events import Events, trial_name
    from hpo.runner.plan_search import PlanSearcher
    from hpo.runner.spanning import Spanning

    spec = exp.spec
    if work is None:
        pack = pack_plan(exp, out)
        work = plan_work(exp, run_dir, pack)
    else:
        pack = packing.PackPlan([], packing.halving(exp)) if work.packed else None
    if not work.n:
        return
    inner, param_space, max_concurrent = _search(exp, work, out or sys.stdout)
    scheduler = None if work.packed else _scheduler(exp, work)
    events = Events(run_dir, spec.failure.max_failed_trials, storage)
    stop = events.stopper(spec.budget.time_budget_s)
    spanning = Spanning(_callbacks(exp, run_dir, storage, events, progress, mirror))
    quiet = int(verbose) == 0
    Events.active = None
    fn = trainable(exp, data, pack, storage.run_root(run_dir))  # the data in Ray's store once
    each = trials_per_fit(exp, verbose)
    configs, samples = list(work.configs), work.samples
    work.configs.clear()  # handed to the searchers, which let each go once its trial is made
    while configs or samples:
        part = configs[:each]
        del configs[:len(part)]
        n_samples = min(samples, each - len(part))
        samples -= n_samples
        spanning.last = not (configs or samples)
        search_alg = PlanSearcher(part, inner if n_samples else None, work.segment, max_concurrent)
        n = len(part) + n_samples
        lean = LeanTrials()
        tuner = tune.Tuner(
            fn, param_space=param_space if n_samples else {},
            tune_config=tune.TuneConfig(
                # metric and mode: the scheduler and the searcher have their own
                search_alg=search_alg, scheduler=scheduler, num_samples=n,
                reuse_actors=True,  # one worker process trains many trials: no re-import per trial
                # a module's function, pickled by name: a lambda is pickled whole, 1.4 KB of hex
                # in every trial's snapshot, twice
                trial_name_creator=trial_name, trial_dirname_creator=trial_name,
            ),
            run_config=tune.RunConfig(
                name=run_dir.name, verbose=verbose, **storage.ray_location(run_dir),
                # PBT restores trials from other trials' older checkpoints: keep them all
                checkpoint_config=tune.CheckpointConfig(
                    num_to_keep=None if exp.scheduler.needs_checkpoints else keep_checkpoints(exp)),
                failure_config=tune.FailureConfig(max_failures=spec.failure.retries),
                # Ray's result files (params.json, result.json, progress.csv), then what spans
                # the parts, and last what keeps the driver's memory down (hpo.ray_compat.lean)
                callbacks=[JsonLoggerCallback(), CSVLoggerCallback(), spanning,
                           *([Silent()] if quiet else []), lean],
                stop=stop,
                log_to_file=True,
            ),
        )
        del part
        _fit_checked(tuner, quiet=quiet, pending=search_alg.max_pending())
        del tuner, search_alg  # the part's Trials go with its Tuner
        lean.unstage(storage.is_remote)
        if spanning.last:
            break
        if lean.ended < n or events.abort or events.stop_now or (
                spec.budget.time_budget_s and stop.stop_all()):
            # stopped (Ctrl-C, the abort rule, the time budget): no more parts
            spanning.last = True
            spanning.on_experiment_end([])
            break
        gc.collect()  # before the next part: what this one freed goes back (glibc)
        if (trim := malloc_trim()) is not None:
            trim(0)


def trials_per_fit(exp: Experiment, verbose: int) -> int:
    """How many trials one Tuner runs (`fit`): the environment's HPO_TRIALS_PER_FIT if set;
    else TRIALS_PER_FIT, or PER_SLOT times the trials that run at once where that is more (a
    Tuner's last trials run with slots idle, so a part is kept long against the slots: at most
    ~1% of them idle); one Tuner for the whole sweep where the scheduler reads ended trials back
    (PBT, HyperBand: SchedulerEntry.reads_ended_trials) or Ray's own table is shown (it counts
    the trials of the whole sweep)."""
    if exp.scheduler.reads_ended_trials or int(verbose) != 0:
        return 1 << 62
    if os.environ.get("HPO_TRIALS_PER_FIT"):
        return max(1, int(os.environ["HPO_TRIALS_PER_FIT"]))
    return max(TRIALS_PER_FIT, PER_SLOT * _slots(exp))


def _slots(exp: Experiment) -> int:
    """How many trials run at once: the spec's cap, else what the cluster's CPUs (and GPUs)
    hold at the trial's resources."""
    spec = exp.spec
    if spec.budget.max_concurrent_trials:
        return int(spec.budget.max_concurrent_trials)
    import ray

    if not ray.is_initialized():
        return 1
    have = ray.cluster_resources()
    fits = [have.get("CPU", 1) / spec.resources.cpu] if spec.resources.cpu else []
    if spec.resources.gpu:
        fits.append(have.get("GPU", 0) / spec.resources.gpu)
    return max(1, int(min(fits))) if fits else 1


TRIALS_PER_FIT = 500  # ~28 KB of the driver per trial held (benchmarks/scaling.py); ~0.3 s per Tuner
PER_SLOT = 50


@contextlib.contextmanager
def _env(**values: str | None) -> Iterator[None]:
    """These environment variables set while inside (None: left as they are), then restored."""
    old = {k: os.environ.get(k) for k, v in values.items() if v is not None}
    os.environ.update({k: v for k, v in values.items() if v is not None})
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _fit_checked(tuner: Any, quiet: bool = False, pending: int | None = None) -> None:
    """Fit the Tuner; a storage that stopped taking writes ends it with a StorageFault.
    `quiet`: Ray prints nothing (its new console output prints a configuration box even at
    verbose 0; Ray's documented switch RAY_AIR_NEW_OUTPUT=0 gives its older reporter, silent at
    0). `pending`: how many trials Tune may hold waiting for resources (its documented switch
    TUNE_MAX_PENDING_TRIALS_PG): Tune allows one for any searcher but its own variant generator
    or a ConcurrencyLimiter, so with hpo's plan searcher a second worker was never started while
    the first was busy, and trials ran one at a time at max_concurrent_trials 2."""
    from hpo.ray_compat.lean import no_result_frames, release_frames
    from hpo.runner.events import Events

    try:
        # Ray's end-of-run DataFrames of every trial: hpo reads none
        with no_result_frames(), callbacks_counted_by_name(), \
                _env(RAY_AIR_NEW_OUTPUT="0" if quiet else None,
                     TUNE_MAX_PENDING_TRIALS_PG=str(pending) if pending else None):
            tuner.fit()
    except Exception:
        # Ray's own end (its result grid reads the error files it could not write) fails too
        if Events.active is None or not Events.active.storage_fault:
            raise
    finally:
        release_frames()  # the finished fit's Trials are freed before the tables are built
    fault = Events.active.storage_fault if Events.active is not None else None
    if fault:
        raise StorageFault(fault)


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


def _search(exp: Experiment, work: Work, out: Any) -> tuple[Any, dict[str, Any], int | None]:
    """(the searcher that learns, its param space, the cap on running trials) of `work`; the
    plan searcher of each Tuner hands out the fixed configurations first, then asks it."""
    spec = exp.spec
    max_concurrent = spec.budget.max_concurrent_trials
    if exp.scheduler.pauses_trials and max_concurrent:
        print(f"hpo: note: budget.max_concurrent_trials is not applied with scheduler "
              f"`{spec.scheduler.name}` (it pauses trials until a bracket fills; a cap would "
              f"deadlock); resources per trial still bound how many run at once.", file=out, flush=True)
        max_concurrent = None
    inner, param_space = None, {}
    if work.samples:
        assert exp.searcher.build is not None  # (a searcher that draws up front has no samples)
        inner, param_space = exp.searcher.build(search_args(
            exp, max_concurrent, work.samples, work.prior, work.points, work.reseed))
        if "seed" not in exp.params:
            param_space["seed"] = spec.seed
    return inner, param_space, max_concurrent


def _scheduler(exp: Experiment, work: Work) -> Any:
    """The scheduler of `work`, rebuilt from the record's results on resume."""
    spec = exp.spec
    scheduler = exp.scheduler.build(exp.scheduler_options, exp.params, spec.budget.max_epochs,
                                    spec.seed, spec.metric, exp.mode)
    if scheduler is not None and work.replay and exp.scheduler.resume_exact:
        from hpo.adapters.replay import replay

        replay(scheduler, work.replay)
    return scheduler


def _callbacks(exp: Experiment, run_dir: Path, storage: Storage, events: Any, progress: bool,
               mirror: bool | None) -> list[Any]:
    """hpo's event log, the trackers, the live mirror (unless HPO_MIRROR=0) and the terminal
    progress line: what spans a run's Tuners (`Spanning`)."""
    spec = exp.spec
    out = [events, *trackers.callbacks(exp.tracking, run_dir, exp)]
    if mirror if mirror is not None else os.environ.get("HPO_MIRROR", "1") != "0":
        from hpo.runner.mirror import OptunaMirror, journal_path

        out.append(OptunaMirror(journal_path(storage.root), run_dir, spec.metric, exp.mode,
                                spec.budget.max_epochs, exp.params))
    if progress:
        from hpo.runner.progress import Progress

        out.append(Progress(spec.metric, exp.mode, exp.n_trials, exp.searched_names))
    return out


@dataclass
class Resumption:
    """What `hpo resume` found in the record: the work left, and what it keeps and ends."""

    work: Work
    kept: int  # finished trials (complete or errored), kept as they are
    continued: int  # unfinished trials that go on from their last checkpoint
    restarted: int  # unfinished trials without a checkpoint: they start again at epoch 1
    ended: int  # unfinished trials that had nothing left to train (the scheduler or their end)


def resume_work(exp: Experiment, run_dir: Path, storage: Storage) -> Resumption:
    """What a resume has left, from hpo's record alone (hpo.runner.record): finished trials
    are kept; an unfinished one continues from the newest checkpoint its log names (or starts
    again without one), unless the rebuilt scheduler stops it or it had trained to its end,
    in which case it is ended as such; plan items never started run; a searcher that learns is
    told the run's finished trials and draws the samples left."""
    spec = exp.spec
    plan = record.read_plan(run_dir)
    if not plan:  # a run from before hpo kept a plan: drawn again as the run drew it
        pack = packing.plan(exp) if spec.execution.pack != "off" and not packing.why_not(exp) else None
        plan_work(exp, run_dir, pack)
        plan = record.read_plan(run_dir)
    trials = record.read_trials(run_dir)
    left = record.left(plan, trials)
    learning = [s for s in plan if not s.planned]
    stray = [] if learning else left.unplanned
    if stray:
        raise SpecError(f"{len(stray)} trial(s) of this run ({', '.join(t.trial_id for t in stray[:3])}) "
                        f"are not in its plan (a run started by an older hpo with another plan); "
                        f"resuming could run configurations twice. Its results are kept: "
                        f"`hpo report {run_dir}`.", file=str(run_dir))
    starts: dict[str, tuple[str, int] | None] = {}
    for t, _, _ in left.continued:
        starts[t.trial_id] = t.checkpoint(run_dir)
    # trials that had trained to their end, or that the rebuilt scheduler stops, are ended
    over = {t.trial_id for t, _, _ in left.continued if _trained_out(t, spec.budget.max_epochs, starts)}
    packed = any(PACK_KEY in c for s in plan for c in (s.configs or ()))
    steps: list[Any] = []
    if not packed and exp.scheduler.resume_exact and spec.scheduler.name != "fifo":
        steps = record.steps([*left.done, *(t for t, _, _ in left.continued)],
                             {tid: (s[1] if s else 0) for tid, s in starts.items()})
        over |= _replayed_stops(exp, steps) & set(starts)
    for tid in sorted(over):
        record.add_event(run_dir, {"trial_id": tid, "event": "complete",
                                   "note": "ended on resume (nothing left to train)"})
    configs = []
    order = sorted(left.continued, key=lambda x: (x[1] if x[1] is not None else 1 << 30, x[0].started))
    for t, i, seg in order:
        if t.trial_id in over:
            continue
        start = starts[t.trial_id]
        tag: dict[str, Any] = {"trial": t.trial_id}
        tag.update({"plan": i} if i is not None else {"segment": seg})
        if start is not None:
            tag.update(checkpoint_rel=start[0], epoch=start[1])
        configs.append({**t.config, RECORD_KEY: tag})
    configs += [{**c, RECORD_KEY: {"plan": i}} for i, c in left.fresh]
    samples = sum(left.samples.values())
    prior: tuple[Any, ...] = ()
    if samples:
        done, _ = write_tables(run_dir)  # the record's finished trials, as the searcher is told them
        prior = (*exp.prior, *prior_from(done, spec, searched(exp.params)))
    segment = learning[-1].index if learning else None
    # the spec's known points go to the searcher only if none of its trials has started
    work = Work(configs, samples, segment, prior, steps,
                points=not any(t.tag.get("segment", segment) == segment for t in left.unplanned),
                # a new seed per state of the record: the start-up draws are not repeated
                reseed=100_003 * len(trials) if samples else 0)
    n_cont = sum(1 for t, _, _ in left.continued if t.trial_id not in over)
    n_restart = sum(1 for t, _, _ in left.continued if t.trial_id not in over and starts[t.trial_id] is None)
    return Resumption(work, len(left.done), n_cont - n_restart, n_restart, len(over))


def _trained_out(t: record.TrialRecord, max_epochs: int, starts: dict[str, Any]) -> bool:
    """Whether an unfinished trial had trained to its end before the stop: its checkpoint is
    that of its last epoch, or of the epoch it stopped itself (early stopping, divergence)."""
    start = starts.get(t.trial_id)
    if start is None or not t.rows:
        return False
    last = t.rows[-1]
    ended = int(last.get("epoch", 0)) >= max_epochs or bool(last.get("early_stopped") or last.get("diverged"))
    return ended and start[1] >= int(last.get("epoch", 0))


def _replayed_stops(exp: Experiment, steps: list[Any]) -> set[str]:
    from hpo.adapters.replay import replay

    spec = exp.spec
    scheduler = exp.scheduler.build(exp.scheduler_options, exp.params, spec.budget.max_epochs,
                                    spec.seed, spec.metric, exp.mode)
    return replay(scheduler, steps) if scheduler is not None else set()
