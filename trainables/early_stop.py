"""Early stopping on the selection metric, shared by every built-in training loop.

Configured by the spec's ``early_stopping: {patience, min_delta}`` (handed to trainables as
``settings.early_stopping``); its state travels in checkpoints so a resumed or PBT-restored
trial keeps counting where it was.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from hpo.contract import Settings


@dataclass
class EarlyStopping:
    patience: int
    min_delta: float = 0.0
    sign: float = 1.0  # +1 when the metric is maximized, -1 when minimized
    best: float = -math.inf
    bad_epochs: int = 0

    @classmethod
    def from_settings(cls, settings: Settings, sign: float,
                      state: dict[str, Any] | None = None) -> EarlyStopping | None:
        opts = settings.early_stopping
        if opts is None:
            return None
        es = cls(int(opts.patience), float(opts.min_delta), sign)
        if state:
            es.best, es.bad_epochs = float(state["best"]), int(state["bad_epochs"])
        return es

    def update(self, value: float) -> bool:
        """Record one epoch's metric; True when the trial should stop now."""
        score = self.sign * value
        if math.isfinite(score) and score > self.best + self.min_delta:
            self.best, self.bad_epochs = score, 0
        else:
            self.bad_epochs += 1
        return self.bad_epochs >= self.patience

    def end_epoch(self, metrics: dict[str, Any], metric: str) -> bool:
        """update() with this epoch's value; on a stop, say why in metrics["early_stopped"]."""
        if metrics.get("diverged") or not self.update(metrics[metric]):
            return False
        metrics["early_stopped"] = self.reason(metric)
        return True

    def state(self) -> dict[str, Any]:
        return {"best": self.best, "bad_epochs": self.bad_epochs}

    def reason(self, metric: str) -> str:
        return (f"no {metric} gain above {self.min_delta:g} in {self.patience} epoch(s)")

    def asdict(self) -> dict[str, Any]:
        return asdict(self)
