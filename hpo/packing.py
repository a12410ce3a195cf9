"""Which trials are packed together (spec `execution: {pack: off | auto | N}`), decided before
Ray starts. No Ray and no concrete trainable: what can be packed is the trainable's own
declaration (`PACKING`, see hpo.contract), read through the registry. (torch only for the
timing probe of a torch.func pack, imported when it runs.)

Packing needs every configuration up front and member-level stopping we implement ourselves, so
it applies to: a trainable that declares `PACKING` (the `mlp` without batch norm, hand-written;
the `cnn`, `cifar_cnn` and a user's `model:` without dropout, through torch.func), a
classification dataset, a searcher that draws every configuration up front (`grid`, and
`random`: its draws with the run's seed, as the unpacked run draws them), and a scheduler whose
entry says how packs follow it (fifo; asha as successive halving inside each pack at ASHA's
rungs, with an explicit size N only: `auto`, the default, packs only where members reproduce
ordinary trials exactly).
Anything else runs as ordinary trials, with the reason printed. Members are grouped by the
trainable's pack keys (for the `mlp`: hidden widths, batch size, activation, optimizer; for the
others every field but the per-member ones); `auto` packs up to 8 per group, fewer when the
packed input batch (members x batch x features x 4 bytes) would pass 128 MB, so a full-batch
sweep stays unpacked (measured on this machine, BENCHMARKS.md: 2.2x faster at batch 64, 1.9x at
128, 1.4x at 1024); a torch.func pack is first timed against its members one after another
(`probe`) and `auto` packs it only at AUTO_MIN_SPEEDUP or more.
"""

from __future__ import annotations

import itertools
import json
import math
from dataclasses import dataclass
from typing import Any

from hpo.contract import PER_MEMBER, Halving, expand_cases
from hpo.experiment import search_args
from hpo.space import Constant, Distribution, groups, thaw

AUTO_SIZE = 8
AUTO_BATCH_BYTES = 128 * 2**20  # the packed input batch of one step
# `auto` packs a torch.func model only where one packed step is at least this much faster than
# its members' steps one after another: below it, ordinary trials side by side on the other
# cores do as well (two trials on this 2-core machine: ~1.2x, BENCHMARKS.md)
AUTO_MIN_SPEEDUP = 1.3


@dataclass(frozen=True)
class PackPlan:
    packs: list[list[dict[str, Any]]]  # each member: its trainable config plus "_index"
    halving: Halving | None  # successive halving inside packs (scheduler asha)

    @property
    def n_members(self) -> int:
        return sum(len(p) for p in self.packs)

    def describe(self) -> str:
        sizes = sorted((len(p) for p in self.packs), reverse=True)
        return (f"{self.n_members} trials packed into {len(self.packs)} vectorized trial(s) "
                f"(sizes {', '.join(map(str, sizes))})"
                + ("; successive halving inside packs at ASHA's rungs" if self.halving else ""))


def why_not(exp: Any) -> str | None:
    """None when the experiment can be packed, else the reason it runs unpacked."""
    spec, packing = exp.spec, exp.trainable.packing
    if packing is None:
        packable = ", ".join(f"`{n}`" for n in _packable_trainables()) or "none"
        return f"trainable `{spec.trainable}` (packing supports {packable})"
    if exp.searcher.draw is None:
        return (f"searcher `{spec.searcher.name}` (packing needs every configuration up front: "
                f"grid or random)")
    if exp.scheduler.in_packs is None:
        from hpo.schedulers import SCHEDULERS

        ok = [n for n in SCHEDULERS if SCHEDULERS.get(n).in_packs is not None]
        return f"scheduler `{spec.scheduler.name}` (packing supports {' and '.join(ok)})"
    if spec.execution.pack == "auto":  # only where a member is an ordinary trial in every way
        reason = _auto_refuses(exp)
        if reason:
            return (f"{reason}; `auto` packs only where members behave as ordinary trials "
                    f"(execution.pack: N packs anyway)")
    if packing.refuse is not None:
        model = exp.trainable.config_model
        for c in configs(exp):
            reason = packing.refuse(model.model_validate(expand_cases(c, groups(exp.params))))
            if reason:
                return reason
    if not exp.dataset.n_classes:
        return f"dataset `{spec.dataset.name}` is a regression (packs train classifiers)"
    if packing.probe:
        return _probe_verdict(exp)
    return None


def _probe_verdict(exp: Any) -> str | None:
    reason, inexact, speedup = probe(exp)
    if reason:
        return reason
    if exp.spec.execution.pack != "auto":
        return None
    if inexact:
        return f"{inexact}; `auto` packs only where they do (execution.pack: N packs anyway)"
    if speedup < AUTO_MIN_SPEEDUP:
        return (f"a packed training step of `{_model_name(exp)}` measured {speedup:.2f}x the speed of its "
                f"members' steps one after another here (`auto` packs from {AUTO_MIN_SPEEDUP}x; "
                f"execution.pack: N packs anyway)")
    return None


def _model_name(exp: Any) -> str:
    return exp.spec.model or exp.spec.trainable


def probe(exp: Any) -> tuple[str | None, str | None, float]:
    """(why the torch.func pack cannot be built, or None; why its members would not reproduce
    their trials exactly, or None; the measured speed-up of one packed step over its members'
    steps one after another), for the largest group of the plan, timed once per process
    (TrainableInfo.time_pack; imports torch)."""
    members = max(_groups(exp).values(), key=len)
    full = [_full(exp, c) for c in members]
    size = _size(exp, full[0].batch_size)
    key = json.dumps([exp.spec.trainable, exp.spec.model, exp.spec.dataset.name, exp.spec.resources.cpu,
                      [c.model_dump() for c in full[:size]]], sort_keys=True, default=str)
    return _probe(key, exp, full[:size])


_PROBED: dict[str, tuple[str | None, str | None, float]] = {}


def _probe(key: str, exp: Any, cfgs: list[Any]) -> tuple[str | None, str | None, float]:
    if key not in _PROBED:
        ds = exp.dataset
        _PROBED[key] = exp.trainable.time_pack(cfgs, tuple(ds.input_shape), ds.n_classes,
                                               int(exp.spec.resources.cpu) or 1)
    return _PROBED[key]


def _auto_refuses(exp: Any) -> str | None:
    spec = exp.spec
    if exp.scheduler.in_packs != "none":
        return (f"scheduler `{spec.scheduler.name}` inside packs compares members with their own "
                f"pack, not the whole sweep")
    if spec.tracking:
        return f"tracking ({', '.join(spec.tracking)}) logs one run per Ray trial, and a pack is one"
    if spec.failure.max_failed_trials:
        return "failure.max_failed_trials counts failed Ray trials, and a pack is one"
    return None


def _packable_trainables() -> list[str]:
    from hpo.trainables import TRAINABLES, TrainableInfo

    return [n for n in TRAINABLES if TrainableInfo(n, TRAINABLES.get(n)).packing is not None]


def configs(exp: Any) -> list[dict[str, Any]]:
    """Every trial's trainable config: a grid's in grid order (first parameter varies slowest);
    a random search's as its searcher draws them (hpo.searchers.draw, with the run's seed)."""
    params = exp.params
    if exp.spec.searcher.name != "grid":
        extra = None if "seed" in params else {"seed": exp.spec.seed}
        return exp.searcher.draw(search_args(exp, exp.spec.budget.max_concurrent_trials), extra)
    base = {k: thaw(p.value) for k, p in params.items() if isinstance(p, Constant)}
    grid = {k: [thaw(v) for v in p.values] for k, p in params.items()
            if isinstance(p, Distribution) and p.kind == "grid"}
    out = []
    for _ in range(exp.spec.budget.num_samples):
        for combo in itertools.product(*grid.values()):
            cfg = {**base, **dict(zip(grid, combo, strict=True))}
            cfg.setdefault("seed", exp.spec.seed)
            out.append(cfg)  # groups stay as cases here (the trial table labels them)
    return out


def _groups(exp: Any) -> dict[str, list[dict[str, Any]]]:
    """The grid's configs (each with its "_index") by pack key: equal in every field but the
    per-member ones."""
    model, keys = exp.trainable.config_model, exp.trainable.packing.keys
    if keys is None:  # (a user's model: every hyperparameter it declares may shape it)
        keys = tuple(k for k in model.model_fields if k not in PER_MEMBER)
    by_key: dict[str, list[dict[str, Any]]] = {}
    for i, c in enumerate(configs(exp)):
        full = _full(exp, c)
        key = json.dumps([getattr(full, k) for k in keys], default=str)
        by_key.setdefault(key, []).append({**c, "_index": i})
    return by_key


def _full(exp: Any, member: dict[str, Any]) -> Any:
    """A member's trainable config (groups of cases merged in), validated."""
    config = {k: v for k, v in member.items() if k != "_index"}
    return exp.trainable.config_model.model_validate(expand_cases(config, groups(exp.params)))


def _size(exp: Any, batch_size: int) -> int:
    setting = exp.spec.execution.pack
    return auto_size(batch_size, exp) if setting == "auto" else int(setting)


def plan(exp: Any) -> PackPlan | None:
    setting = exp.spec.execution.pack
    if setting == "off" or why_not(exp) is not None:
        return None
    packs = []
    for ms in _groups(exp).values():
        size = _size(exp, _full(exp, ms[0]).batch_size)
        packs += [ms[i : i + size] for i in range(0, len(ms), size)]
    return PackPlan(packs, halving(exp))


def halving(exp: Any) -> Halving | None:
    """Successive halving inside packs, where the scheduler asks for it (asha)."""
    if exp.scheduler.in_packs != "halving":
        return None
    o = exp.scheduler_options
    return Halving(o.grace_period, o.reduction_factor)


def auto_size(batch_size: int, exp: Any) -> int:
    info = exp.dataset
    n_train = min(info.n_train, exp.spec.dataset.train_size or info.n_train)
    per_member = min(batch_size, n_train) * math.prod(info.input_shape) * 4
    return max(1, min(AUTO_SIZE, AUTO_BATCH_BYTES // per_member))
