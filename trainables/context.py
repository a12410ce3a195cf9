"""The context a user's own training function receives (spec `trainable: module:function`).

    METRICS = {"val_loss": "min", "val_acc": "max"}      # what it reports, with directions

    class Params(BaseModel):                              # its hyperparameters, checked up front
        lr: float = Field(0.01, gt=0)
        seed: int = 0

    def train(p: Params, ctx: hpo.Context) -> None:
        model = ...
        state = ctx.restore()                             # a checkpoint's dict, or None
        for epoch in ctx.epochs():                        # resumes after the last checkpoint
            ...
            ctx.report({"val_loss": vl, "val_acc": va}, checkpoint={"model": model.state_dict()})

`ctx.data` (the dataset's arrays), `ctx.device` (CUDA when the trial has a GPU), `ctx.seed`,
`ctx.max_epochs`. One report per epoch. A report must hold the spec's metric and only declared
metrics (a clear trial error otherwise); a NaN/inf value ends the trial as `diverged`, with the
worst value reported instead, as for the built-in trainables.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from hpo.contract import Reporter, Settings


class TrialReportError(ValueError):
    """A report that breaks the declared contract (one string argument: Ray pickles it)."""


class _Diverged(Exception):
    pass


class Context:
    def __init__(self, data: Any, settings: Settings, metrics: dict[str, str], report: Reporter,
                 state: dict[str, Any] | None, seed: int) -> None:
        self.data = data
        self.settings = settings
        self.max_epochs = settings.max_epochs
        self.seed = seed
        self._metrics = metrics
        self._report = report
        self._state = state
        self._epoch = int(state["epoch"]) if state else 0
        self._best: tuple[float, int] = (float(state["best"]), int(state["best_epoch"])) if state \
            else (-math.inf, 0)

    @property
    def device(self) -> Any:
        import torch

        return torch.device("cuda" if torch.cuda.is_available() else "cpu")

    def epochs(self) -> range:
        """The epochs left to train (all of them, or those after a restored checkpoint)."""
        return range(self._epoch, self.max_epochs)

    def restore(self) -> dict[str, Any] | None:
        """The `checkpoint` dict of the last checkpointed report, when the trial was restored."""
        return self._state["user"] if self._state else None

    def report(self, metrics: dict[str, float], checkpoint: dict[str, Any] | None = None) -> None:
        """Report one epoch's metrics (and optionally a checkpoint to restore from)."""
        select, sign = self.settings.metric, self.settings.sign
        unknown = sorted(set(metrics) - set(self._metrics) - {"epoch"})
        if unknown:
            raise TrialReportError(f"reported {', '.join(unknown)}, which METRICS does not declare "
                                   f"(declared: {', '.join(self._metrics)})")
        if select not in metrics:
            raise TrialReportError(f"a report without `{select}`, the spec's metric; every report "
                                   f"must hold it (got {', '.join(metrics) or 'nothing'})")
        self._epoch = int(metrics.get("epoch", self._epoch + 1))
        row: dict[str, Any] = {k: float(v) for k, v in metrics.items() if k != "epoch"}
        diverged = not all(math.isfinite(v) for v in row.values())
        if diverged:  # the searcher must see the worst value, never NaN
            row = {k: v if math.isfinite(v) else (math.inf if self._metrics[k] == "min" else -math.inf)
                   for k, v in row.items()}
        elif sign * row[select] > self._best[0]:
            self._best = (sign * row[select], self._epoch)
        row.update(epoch=self._epoch, best_epoch=self._best[1], diverged=diverged)
        state_fn: Callable[[], dict[str, Any]] | None = None
        if checkpoint is not None and not diverged:
            epoch, best = self._epoch, self._best

            def state_fn() -> dict[str, Any]:
                return {"epoch": epoch, "best": best[0], "best_epoch": best[1], "user": checkpoint}
        self._report(row, state_fn)
        if diverged:
            raise _Diverged


def any_params() -> Any:
    """The parameters of a (config, ctx) function that takes a plain dict: whatever the spec gives."""
    from pydantic import BaseModel, ConfigDict

    class AnyParams(BaseModel):
        model_config = ConfigDict(extra="allow")

    return AnyParams


def run_with_context(fn: Callable[..., Any], config: Any, data: Any, settings: Settings,
                     metrics: dict[str, str], report: Reporter, state: dict[str, Any] | None) -> None:
    """Call a context-style training function; a divergence ends it quietly (already reported)."""
    seed = config.get("seed", 0) if isinstance(config, dict) else getattr(config, "seed", 0)
    ctx = Context(data, settings, metrics, report, state, int(seed))
    if ctx.epochs().start >= ctx.max_epochs:
        return  # restored from its final checkpoint
    try:
        fn(config, ctx)
    except _Diverged:
        return
