"""Per-epoch bookkeeping, one copy for every built-in training loop (classifier, regression and
each member of a pack): where a restored trial resumes, the best validation epoch and the test
metrics that belong to it, divergence, early stopping, the metrics row reported each epoch and
the bookkeeping part of a checkpoint. The loops only train and evaluate.

No torch here: the book is plain Python, so it is the same for a model and a pack member.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from hpo.contract import Settings
from hpo.trainables.early_stop import EarlyStopping


class EpochBook:
    def __init__(self, settings: Settings, metrics: dict[str, str],
                 state: dict[str, Any] | None = None) -> None:
        """`metrics`: the task's declared metrics (their test metrics and worst values);
        `state`: the book's part of a restored checkpoint."""
        self.settings = settings
        self.select = settings.metric
        self.sign = settings.sign
        self.test_keys = tuple(k for k in metrics if k.startswith("test_"))
        self.worst = {k: math.inf if m == "min" else 0.0 for k, m in metrics.items()
                      if k.startswith(("train_", "val_"))}
        self.best: dict[str, Any] = {"score": -math.inf, "best_epoch": 0,
                                     **{k: math.nan for k in self.test_keys}}
        self.epoch = 0  # epochs done
        if state is not None:
            self.best, self.epoch = dict(state["best"]), int(state["epoch"])
        self.stopper = EarlyStopping.from_settings(settings, self.sign, (state or {}).get("early_stopping"))
        # list-valued results of the best model (e.g. a regression's test-grid predictions) are
        # reported every tenth of the run, when the trial ends and at the last epoch
        self.artifact_every = max(1, settings.max_epochs // 10)

    @property
    def finished(self) -> bool:
        """Restored from the checkpoint of its early stop: nothing is left to train."""
        return self.stopper is not None and self.stopper.bad_epochs >= self.stopper.patience

    def epochs(self) -> range:
        return range(self.epoch, self.settings.max_epochs)

    def end_epoch(self, epoch: int, metrics: dict[str, float], test: Callable[[], dict[str, Any]],
                  extra: dict[str, Any] | None = None,
                  keep: Callable[[], None] | None = None) -> tuple[dict[str, Any], bool]:
        """Book epoch `epoch` (0-based) from its train/val `metrics`. Returns the row to report
        and whether the trial ends now (diverged or early-stopped).

        Without `keep`, `test()` evaluates the current model on the test set and is called when
        the selection metric improved. With `keep` and `settings.test_epochs`, `keep()` records
        the current weights as the best when the metric improved, and `test()` evaluates those
        best weights only where the row must carry them: at a test epoch or when the trial ends
        here; the rows in between carry NaN test metrics."""
        diverged = not all(math.isfinite(v) for k, v in metrics.items() if k in self.worst)
        score = self.sign * metrics[self.select]
        lazy = keep is not None and self.settings.test_epochs is not None
        if not diverged and score > self.best["score"]:
            if lazy:
                keep()
                self.best.update(score=score, best_epoch=epoch + 1, test_epoch=0,
                                 **{k: math.nan for k in self.test_keys})
            else:
                self.best.update(score=score, best_epoch=epoch + 1, **test())
        m: dict[str, Any] = dict(metrics)
        if diverged:  # the searcher must see the worst value, never NaN
            m.update(self.worst)
        m.update(epoch=epoch + 1, best_epoch=self.best["best_epoch"], diverged=diverged, **(extra or {}))
        stop = self.stopper is not None and self.stopper.end_epoch(m, self.select)
        self.epoch = epoch + 1
        ends = diverged or stop
        if lazy and self.best["best_epoch"] and self.best.get("test_epoch") != self.best["best_epoch"] and (
                ends or self.epoch in self.settings.test_epochs or self.epoch == self.settings.max_epochs):
            self.best.update(test(), test_epoch=self.best["best_epoch"])
        m.update({k: self.best[k] for k in self.test_keys})
        if ends or self.epoch % self.artifact_every == 0 or self.epoch == self.settings.max_epochs:
            m.update({k: v for k, v in self.best.items() if isinstance(v, list)})
        return m, ends

    def state(self) -> dict[str, Any]:
        """The book's part of a checkpoint (the loop adds the model and optimizer state)."""
        return {"epoch": self.epoch, "best": dict(self.best),
                "early_stopping": self.stopper.state() if self.stopper else None}
