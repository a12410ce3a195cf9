"""Which trials are packed together (spec `execution: {pack: off | auto | N}`), decided before
Ray starts. No torch, no Ray, and no concrete trainable: what can be packed is the trainable's
own declaration (`PACKING`, see hpo.contract), read through the registry.

Packing needs every configuration up front and member-level stopping we implement ourselves, so
it applies to: a trainable that declares `PACKING` (the `mlp`, without batch norm), searcher
`grid`, and a scheduler whose entry says how packs follow it (fifo; asha as successive halving
inside each pack at ASHA's rungs, with an explicit size N only: `auto`, the default, packs only
where members reproduce ordinary trials exactly). Anything else runs as ordinary trials, with
the reason printed. Members are grouped by the trainable's pack keys (for the `mlp`: hidden widths, batch
size, activation, optimizer); `auto` packs up to 8 per group, fewer when
the packed input batch (members x batch x features x 4 bytes) would pass 128 MB, so a full-batch
sweep stays unpacked (measured on this machine, BENCHMARKS.md: 2.2x faster at batch 64, 1.9x at
128, 1.4x at 1024).
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from typing import Any

from hpo.contract import Halving, expand_cases
from hpo.space import Constant, Distribution, groups, thaw

AUTO_SIZE = 8
AUTO_BATCH_BYTES = 128 * 2**20  # the packed input batch of one step


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
    if spec.searcher.name != "grid":
        return f"searcher `{spec.searcher.name}` (packing needs every configuration up front: grid)"
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
    return None


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
    """Every trial's trainable config, in grid order (first parameter varies slowest)."""
    params = exp.params
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


def plan(exp: Any) -> PackPlan | None:
    setting = exp.spec.execution.pack
    if setting == "off" or why_not(exp) is not None:
        return None
    model, keys = exp.trainable.config_model, exp.trainable.packing.keys
    by_key: dict[str, list[dict[str, Any]]] = {}
    batch_size: dict[str, int] = {}
    for i, c in enumerate(configs(exp)):
        full = model.model_validate(expand_cases(c, groups(exp.params)))
        key = json.dumps([getattr(full, k) for k in keys])
        by_key.setdefault(key, []).append({**c, "_index": i})
        batch_size[key] = full.batch_size
    packs = []
    for key, ms in by_key.items():
        size = auto_size(batch_size[key], exp) if setting == "auto" else int(setting)
        packs += [ms[i : i + size] for i in range(0, len(ms), size)]
    halving = None
    if exp.scheduler.in_packs == "halving":
        o = exp.scheduler_options
        halving = Halving(o.grace_period, o.reduction_factor)
    return PackPlan(packs, halving)


def auto_size(batch_size: int, exp: Any) -> int:
    import math

    info = exp.dataset
    n_train = min(info.n_train, exp.spec.dataset.train_size or info.n_train)
    per_member = min(batch_size, n_train) * math.prod(info.input_shape) * 4
    return max(1, min(AUTO_SIZE, AUTO_BATCH_BYTES // per_member))
