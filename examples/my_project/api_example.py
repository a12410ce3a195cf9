"""The Python API, as in a notebook: a spec as a dict, run, and look at the results."""

from __future__ import annotations

import sys

import hpo

spec = {
    "name": "blobs_api",
    "model": "my_lab.nets:build",
    "dataset": {"name": "npz", "path": "data/blobs.npz"},
    "metric": "val_acc",
    "budget": {"max_epochs": 4, "max_concurrent_trials": 2},
    "params": {"width": {"grid": [16, 64]}, "lr": 0.05, "momentum": 0.9},
}

if __name__ == "__main__":
    print(hpo.make_plan(spec))
    run = hpo.run(spec, storage=sys.argv[1] if len(sys.argv) > 1 else "runs")
    print(run)
    cols = ["trial_id", "param.width", "best_val_acc", "test_acc", "status"]
    print(run.trials[cols].to_string(index=False))
    print("best configuration:", run.best_config)
    print("report:", run.report_path)
