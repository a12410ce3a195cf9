"""Small hand-made RunFolder for the report's data steps (no Ray, no drawing)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from hpo.results import RunFolder
from hpo.spec import Spec


def rundata(trials: list[dict], history: list[dict], params: dict, *, mode: str = "max",
            scheduler: str = "fifo", max_epochs: int = 3, metric: str = "val_acc") -> RunFolder:
    spec = Spec.model_validate({"name": "t", "trainable": "mlp", "dataset": "mnist_sample", "metric": metric,
                                "params": params, "budget": {"max_epochs": max_epochs},
                                "scheduler": {"name": scheduler}, "searcher": {"name": "grid"},
                                "resources": {"cpu": 2}})
    t = pd.DataFrame(trials)
    for c, v in (("status", "completed"), ("status_detail", "completed"), ("time_s", 1.0)):
        if c not in t:
            t[c] = v
    if "trial_index" not in t:
        t["trial_index"] = range(len(t))
    info = {"started": 0.0, "metrics": {"val_acc": "max", "train_acc": "max", "test_acc": "max"}}
    return RunFolder(Path("/nonexistent"), spec, info, t, pd.DataFrame(history), metric, mode)


def grid_run(mode: str = "max") -> RunFolder:
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


def write_random_run(run_dir: Path, n: int, epochs: int = 3, seed: int = 0) -> Path:
    """A finished random search's run folder (spec, run.json, both tables as the collector
    writes them) with `n` synthetic trials over lr x weight_decay x optimizer, for reports of
    many trials without running them. Accuracy peaks near lr = 0.03; lr near 1 collapses."""
    import json

    import numpy as np
    import yaml

    rng = np.random.default_rng(seed)
    run_dir.mkdir(parents=True)
    params = {"lr": {"loguniform": [1e-3, 1.0]}, "weight_decay": {"loguniform": [1e-6, 0.1]},
              "optimizer": {"choice": ["sgd", "adam"]}, "hidden": [16], "batch_size": 100}
    spec = {"name": run_dir.name, "trainable": "mlp", "dataset": {"name": "mnist_sample"},
            "metric": "val_acc", "searcher": {"name": "random"}, "scheduler": {"name": "fifo"},
            "budget": {"max_epochs": epochs, "num_samples": n}, "resources": {"cpu": 1},
            "seed": 0, "params": params}
    (run_dir / "spec.yaml").write_text(yaml.safe_dump(spec))
    info = {"name": run_dir.name, "started": 1.7e9, "state": "finished", "seed": 0,
            "metric": "val_acc", "mode": "max", "searched": ["lr", "weight_decay", "optimizer"],
            "metrics": {"train_loss": "min", "train_acc": "max", "val_loss": "min", "val_acc": "max",
                        "test_loss": "min", "test_acc": "max"}, "n_trials_planned": n}
    (run_dir / "run.json").write_text(json.dumps(info))
    lr = np.exp(rng.uniform(np.log(1e-3), np.log(1.0), n))
    wd = np.exp(rng.uniform(np.log(1e-6), np.log(0.1), n))
    opt = rng.choice(["sgd", "adam"], n)
    peak = np.clip(0.95 - 0.08 * (np.log10(lr) + 1.5) ** 2 - 0.3 * wd + rng.normal(0, 0.01, n), 0.1, 0.99)
    peak[lr > 0.6] = 0.1
    trials, hist = [], []
    for i in range(n):
        tid = f"r{i:05d}"
        accs = [peak[i] * (0.7 + 0.3 * e / epochs) for e in range(1, epochs + 1)]
        for e, a in enumerate(accs, 1):
            hist.append({"trial_id": tid, "epoch": e, "training_iteration": e, "val_acc": a,
                         "train_acc": a, "val_loss": 2.5 * (1 - a) + 0.05, "train_loss": 2.4 * (1 - a) + 0.05,
                         "test_acc": a, "test_loss": 2.5 * (1 - a) + 0.05, "diverged": False})
        cfg = {"lr": lr[i], "weight_decay": wd[i], "optimizer": str(opt[i]), "hidden": [16],
               "batch_size": 100, "seed": 0}
        trials.append({"trial_id": tid, "trial_index": i, "param.lr": lr[i], "param.weight_decay": wd[i],
                       "param.optimizer": str(opt[i]), "status": "completed",
                       "status_detail": "collapsed" if peak[i] <= 0.1 else "completed",
                       "epochs": epochs, "time_s": 1.0, "best_epoch": epochs, "error": None,
                       "n_params": 12730, "started_at": 1.7e9 + i / 2, "ended_at": 1.7e9 + i / 2 + 1.0,
                       "val_acc": accs[-1], "best_val_acc": accs[-1], "train_acc": accs[-1],
                       "best_train_acc": accs[-1], "val_loss": 2.5 * (1 - accs[-1]) + 0.05,
                       "best_val_loss": 2.5 * (1 - accs[-1]) + 0.05, "train_loss": 2.4 * (1 - accs[-1]),
                       "best_train_loss": 2.4 * (1 - accs[-1]), "test_acc": accs[-1],
                       "test_loss": 2.5 * (1 - accs[-1]), "config": json.dumps(cfg),
                       "collapsed": bool(peak[i] <= 0.1)})
    pd.DataFrame(trials).to_parquet(run_dir / "trials.parquet")
    pd.DataFrame(hist).to_parquet(run_dir / "history.parquet")
    return run_dir
