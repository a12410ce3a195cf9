"""Small hand-made RunData for the report's data steps (no Ray, no drawing)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from hpo.report.load import RunData


def rundata(trials: list[dict], history: list[dict], params: dict, *, mode: str = "max",
            scheduler: str = "fifo", max_epochs: int = 3, metric: str = "val_acc") -> RunData:
    spec = {"name": "t", "metric": metric, "params": params, "budget": {"max_epochs": max_epochs},
            "scheduler": {"name": scheduler}, "searcher": {"name": "grid"}, "resources": {"cpu": 2}}
    t = pd.DataFrame(trials)
    for c, v in (("status", "completed"), ("status_detail", "completed"), ("time_s", 1.0)):
        if c not in t:
            t[c] = v
    if "trial_index" not in t:
        t["trial_index"] = range(len(t))
    return RunData(Path("/nonexistent"), spec, {"started": 0.0}, t, pd.DataFrame(history),
                   metric, mode, {"val_acc": "max", "train_acc": "max", "test_acc": "max"})


def grid_run(mode: str = "max") -> RunData:
    """A 2x2 grid over lr x weight_decay, 2 epochs each; (0.1, 1e-4) is best."""
    lrs, wds = [1, 0.1], [0.01, 0.0001]
    trials, hist = [], []
    acc = {(1, 0.01): 0.2, (1, 0.0001): 0.3, (0.1, 0.01): 0.8, (0.1, 0.0001): 0.9}
    i = 0
    for lr in lrs:
        for wd in wds:
            tid = f"x_{i:05d}"
            a = acc[(lr, wd)]
            trials.append({"trial_id": tid, "trial_index": i, "param.lr": float(lr),
                           "param.weight_decay": wd, "best_val_acc": a, "val_acc": a,
                           "train_acc": a + 0.05, "test_acc": a - 0.01, "epochs": 2, "best_epoch": 2})
            for e in (1, 2):
                hist.append({"trial_id": tid, "epoch": e, "val_acc": a - 0.1 * (2 - e),
                             "train_acc": a + 0.05 - 0.1 * (2 - e), "val_loss": 1 - a,
                             "train_loss": 1 - a, "timestamp": 10.0 * i + e})
            i += 1
    return rundata(trials, hist, {"lr": {"grid": lrs}, "weight_decay": {"grid": wds},
                                  "momentum": 0.9}, mode=mode, max_epochs=2)
