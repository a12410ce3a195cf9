"""Scheduler registry: when to stop (or perturb) a trial. Each entry is Ray Tune's own class.

`budget.max_epochs` is every scheduler's time budget, counted in reported epochs
(Ray's `training_iteration`, since trainables report once per epoch).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from hpo.contract import rungs
from hpo.errors import SpecError
from hpo.ray_compat import require
from hpo.registry import Registry
from hpo.space import Param, searched, thaw, to_tune

# hpo's own epoch count, not Ray's `training_iteration`: a trial that continues one cut by a stop
# is a new Ray trial (its iterations start at 1) that reports the epochs it goes on from
TIME_ATTR = "epoch"


class _Options(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FifoOptions(_Options):
    pass


class AshaOptions(_Options):
    grace_period: int = Field(1, ge=1, description="epochs before a trial can be stopped")
    reduction_factor: float = Field(3, gt=1, description="keep the top 1/reduction_factor")
    brackets: int = Field(1, ge=1)


class HyperbandOptions(_Options):
    reduction_factor: float = Field(3, gt=1)


class MedianOptions(_Options):
    grace_period: int = Field(1, ge=1, description="epochs before a trial can be stopped")
    min_samples_required: int = Field(3, ge=1)


class PbtOptions(_Options):
    perturbation_interval: int = Field(2, ge=1, description="epochs between exploit/explore")
    quantile_fraction: float = Field(0.25, gt=0, le=0.5)
    resample_probability: float = Field(0.25, ge=0, le=1)


@dataclass(frozen=True)
class SchedulerEntry:
    options: type[_Options]
    build: Callable[..., Any]  # (options, params, max_epochs, seed, metric, mode) -> Ray scheduler or None
    display: str  # who stopped a trial, in status details: "stopped by ASHA at epoch 3"
    stops_early: bool = True  # stops trials before max_epochs (early-stopping audit, plan)
    one_metric: bool = True  # compares trials by one metric (with objectives: the primary)
    needs_checkpoints: bool = False
    searchers: tuple[str, ...] | None = None  # None: any searcher
    # Synchronous HyperBand pauses trials until their bracket fills; a cap on live trials would
    # then deadlock (paused trials hold the slots), so max_concurrent_trials is not applied.
    pauses_trials: bool = False
    # (options, max_epochs) -> None, or a SpecError about this combination
    check: Callable[[Any, int], None] | None = None
    # how packed trials follow it: "none" (train to the end) | "halving" (successive halving
    # inside each pack at its rungs); None: packing is refused with this scheduler
    in_packs: str | None = None
    # its decisions after `hpo resume` are those of an uninterrupted run: it is rebuilt from the
    # record's results (hpo.adapters.replay); else (Hyperband, PBT) it starts empty on resume and
    # judges continued trials only on what they report from then on
    resume_exact: bool = False
    # (options, max_epochs) -> the epochs after which it may stop a trial, or None: any epoch.
    # A trial evaluates the test set (on its best-validation weights) at those epochs and when
    # it ends by itself, instead of at every improvement (hpo.contract.Settings.test_epochs)
    stop_epochs: Callable[[Any, int], set[int]] | None = None
    # it reads ended trials back from Ray's controller (PBT copies an ended trial's checkpoint;
    # HyperBand's brackets hold their trials until they fill): one Tuner then runs the whole
    # sweep, else a long one runs as several (hpo.runner.tuning.trials_per_fit)
    reads_ended_trials: bool = False


def _fifo(o: FifoOptions, params: dict[str, Param], max_epochs: int, seed: int, metric: str,
    mode: str) -> Any:
    return None  # Ray's default FIFOScheduler


def _asha_rungs(o: AshaOptions, max_epochs: int) -> set[int]:
    """ASHA's rung milestones (hpo.contract.rungs)."""
    return set(rungs(o.grace_period, o.reduction_factor, max_epochs, o.brackets))


def _asha(o: AshaOptions, params: dict[str, Param], max_epochs: int, seed: int, metric: str,
    mode: str) -> Any:
    from hpo.adapters.replay import ASHA  # Ray's, seeing trials by hpo's id, rebuilt on resume

    return ASHA(time_attr=TIME_ATTR, metric=metric, mode=mode, max_t=max_epochs,
                grace_period=min(o.grace_period, max_epochs), reduction_factor=o.reduction_factor,
                brackets=o.brackets)


def _hyperband_check(o: HyperbandOptions, max_epochs: int) -> None:
    # below rf^2 Hyperband has at most one halving; Ray's synchronous brackets can then leave a
    # trial PAUSED forever (seen with max_epochs 2, reduction_factor 3)
    require("hyperband", "scheduler.name")  # hpo's HyperBand needs Ray's private bracket names
    rf = o.reduction_factor
    if max_epochs < rf * rf:
        raise SpecError(f"hyperband with reduction_factor {rf:g} needs budget.max_epochs >= "
                        f"{rf * rf:g} (got {max_epochs}); use more epochs, a smaller "
                        f"reduction_factor, or scheduler asha.", field="scheduler.reduction_factor")


def _hyperband(o: HyperbandOptions, params: dict[str, Param], max_epochs: int, seed: int, metric: str,
    mode: str) -> Any:
    from hpo.ray_compat.hyperband import HyperBand  # Ray's, without its deadlock on a failed trial

    require("hyperband", "scheduler.name")
    return HyperBand(time_attr=TIME_ATTR, metric=metric, mode=mode, max_t=max_epochs,
                     reduction_factor=o.reduction_factor)


def _median(o: MedianOptions, params: dict[str, Param], max_epochs: int, seed: int, metric: str,
    mode: str) -> Any:
    from hpo.adapters.replay import Median  # Ray's, seeing trials by hpo's id, rebuilt on resume

    return Median(time_attr=TIME_ATTR, metric=metric, mode=mode, grace_period=o.grace_period,
                  min_samples_required=o.min_samples_required)


def pbt_mutations(params: dict[str, Param]) -> dict[str, Any]:
    """PBT resamples the searched parameters from their own distributions."""
    out: dict[str, Any] = {}
    for k, p in searched(params).items():
        out[k] = [thaw(v) for v in p.values] if p.is_categorical else to_tune(p)
    return out


def _pbt(o: PbtOptions, params: dict[str, Param], max_epochs: int, seed: int, metric: str,
    mode: str) -> Any:
    from hpo.adapters.replay import PBT  # Ray's, taking hpo's plan searcher

    return PBT(
        time_attr=TIME_ATTR, metric=metric, mode=mode, perturbation_interval=o.perturbation_interval,
        quantile_fraction=o.quantile_fraction, resample_probability=o.resample_probability,
        hyperparam_mutations=pbt_mutations(params), synch=False,
    )


SCHEDULERS: Registry[SchedulerEntry] = Registry("scheduler")
SCHEDULERS.add("fifo", SchedulerEntry(FifoOptions, _fifo, "nothing", stops_early=False, one_metric=False,
                                      in_packs="none", resume_exact=True, stop_epochs=lambda o, m: set()))
SCHEDULERS.add("asha", SchedulerEntry(AshaOptions, _asha, "ASHA", in_packs="halving", resume_exact=True,
                                      stop_epochs=_asha_rungs))
SCHEDULERS.add("hyperband", SchedulerEntry(HyperbandOptions, _hyperband, "HYPERBAND",
                                           pauses_trials=True, check=_hyperband_check,
                                           reads_ended_trials=True))
SCHEDULERS.add("median", SchedulerEntry(MedianOptions, _median, "the median rule", resume_exact=True))
# PBT explores by mutating the population itself; Ray refuses a search algorithm beside it
SCHEDULERS.add("pbt", SchedulerEntry(PbtOptions, _pbt, "PBT", needs_checkpoints=True,
                                     searchers=("random", "grid"), reads_ended_trials=True))


def display_name(name: str) -> str:
    """How status details name the scheduler `name` (an unknown name as it is, upper-cased)."""
    return SCHEDULERS.get(name).display if name in SCHEDULERS else name.upper()
