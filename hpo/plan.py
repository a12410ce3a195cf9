"""`hpo plan`: what a spec would do, before spending any compute on it.

Counts trials and trial-epochs, and estimates wall time from a one-batch timing of the
trainable's model on this machine (a few configurations drawn from the space).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hpo.data import DATASETS, default_data_dir
from hpo.experiment import Experiment
from hpo.results import bound_text
from hpo.space import sample_configs as space_samples

LARGE_GRID = 300
RAY_STARTUP_S = 10.0  # Ray + dashboard start and the first trial's imports, measured here


@dataclass
class Plan:
    n_trials: int
    max_epochs: int
    max_trial_epochs: int
    concurrency: int
    epoch_s: float | None  # mean estimated seconds per epoch over the timed configs
    wall_s: float | None  # upper bound: every trial runs to max_epochs
    warnings: list[str]
    data: str = ""  # which data a run will train on, said before it starts


def sample_configs(exp: Experiment, k: int = 4) -> list[dict[str, Any]]:
    """k configurations spread over the space (hpo.space.sample_configs)."""
    return space_samples(exp.params, k)


def make_plan(exp: Experiment, time_it: bool = True) -> Plan:
    spec = exp.spec
    n, epochs = exp.n_trials, spec.budget.max_epochs
    cpus = os.cpu_count() or 1
    by_cpu = max(1, int(cpus // spec.resources.cpu))
    conc = min(spec.budget.max_concurrent_trials or by_cpu, by_cpu, n)
    warnings = []
    if spec.searcher.name == "grid" and n > LARGE_GRID:
        warnings.append(f"{n} grid points: a grid this large rarely pays; consider random or "
                        f"optuna with an early-stopping scheduler.")
    epoch_s = wall_s = None
    info, data = _data(exp)
    timer = exp.trainable.estimate_epoch_s()
    if time_it and timer is not None:
        val = info.val_size(spec.dataset.val_size)
        n_train = min(info.n_train - val, spec.dataset.train_size or info.n_train)
        sizes = {"train": n_train, "val": val, "test": info.n_test}
        times = [timer(cfg, info.input_shape, info.n_classes, sizes, max(1, int(spec.resources.cpu)))
                 for cfg in sample_configs(exp)]
        epoch_s = sum(times) / len(times)
        wall_s = RAY_STARTUP_S + math.ceil(n / conc) * epochs * epoch_s
    return Plan(n, epochs, n * epochs, conc, epoch_s, wall_s, warnings, data)


def _data(exp: Experiment) -> tuple[Any, str]:
    """(the DatasetInfo a run will train on, a line saying so): a dataset whose files are not
    on disk is downloaded when online; offline it is its fallback (the embedded sample)."""
    ds, info = exp.spec.dataset, exp.dataset
    if info.present is None:
        return info, f"data: `{ds.name}`"
    where = Path(ds.data_dir).expanduser() if ds.data_dir else default_data_dir()
    if info.present(where):
        return info, f"data: `{ds.name}` from {where}"
    offline = os.environ.get("HPO_OFFLINE") == "1"
    if ds.strict or info.fallback is None:
        return info, (f"data: `{ds.name}` is not in {where}; the run downloads it"
                      + (", but HPO_OFFLINE=1 is set here: it will FAIL" if offline else " (online only)"))
    if offline:
        return DATASETS.get(info.fallback), (
            f"data: `{ds.name}` is not in {where} and HPO_OFFLINE=1 is set: the run will train on the "
            f"EMBEDDED SAMPLE (`{info.fallback}`), not full `{ds.name}`; the estimate is for the sample")
    return info, (f"data: `{ds.name}` is not in {where}: the run downloads it (without a network it "
                  f"falls back to the EMBEDDED SAMPLE, `{info.fallback}`)")


def describe(exp: Experiment, plan: Plan) -> str:
    s = exp.spec
    lines = [
        f"{s.name}: {plan.n_trials} trial(s) of `{s.trainable}` on `{s.dataset.name}`",
        *([f"  {plan.data}"] if plan.data else []),
        f"  searcher {s.searcher.name}, scheduler {s.scheduler.name}; "
        + (f"objectives {', '.join(f'{k} ({v})' for k, v in exp.objectives.items())}, primary {s.metric}"
           if exp.objectives else f"selecting on {s.metric} ({exp.mode})"),
        *([f"  constraints: {', '.join(bound_text(k, *b) for k, b in exp.constraints.items())}"]
          if exp.constraints else []),
        f"  searched: {', '.join(exp.searched_names)}"
        + (f"; {len(s.points_to_evaluate)} known point(s) first" if s.points_to_evaluate else "")
        + (f"; warm-started from {len(exp.prior)} trials of {s.warm_start}" if exp.prior else ""),
        f"  epochs per trial: up to {plan.max_epochs}; trial-epochs at most {plan.max_trial_epochs}"
        + (f" ({s.scheduler.name} stops many trials earlier)" if exp.scheduler.stops_early else ""),
        f"  resources per trial: {s.resources.cpu:g} CPU, {s.resources.gpu:g} GPU; "
        f"{plan.concurrency} trial(s) at a time on this machine",
    ]
    if s.execution.pack != "off":
        from hpo import packing

        reason = packing.why_not(exp)
        pk = None if reason else packing.plan(exp)
        lines.append(f"  packing: {pk.describe()}" if pk else f"  packing: off here ({reason})")
    if plan.epoch_s is not None:
        lines.append(f"  estimated {plan.epoch_s:.2f} s per epoch (one-batch timing here); wall time "
                     f"at most ~{_dur(plan.wall_s)}")
    lines += [f"  WARNING: {w}" for w in plan.warnings]
    return "\n".join(lines)


def _dur(s: float | None) -> str:
    if s is None:
        return "?"
    return f"{s:.0f} s" if s < 120 else f"{s / 60:.1f} min" if s < 7200 else f"{s / 3600:.1f} h"
