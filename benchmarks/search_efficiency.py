"""Search efficiency on full MNIST: how much compute each strategy needs to get within 0.2
points of the grid's best validation accuracy, over the lr x L2 x width space.

Strategies (same space, same epoch budget per trial, same number of configurations):
grid, random, random+ASHA, Optuna TPE, Optuna TPE+ASHA; each non-grid one with several seeds.
Runs in one process on one local Ray, so the numbers are side by side.

    HPO_DATA_DIR=../shared/datasets python benchmarks/search_efficiency.py [--seeds 3]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import tempfile
import time
from pathlib import Path

from hpo.experiment import load_experiment
from hpo.report.compare import progress
from hpo.results import RunFolder
from hpo.runner import run

EPOCHS = 4
LRS, WDS, WIDTHS = [0.01, 0.03, 0.1, 0.3], [1e-5, 1e-4, 1e-3], [64, 128, 256]
N = len(LRS) * len(WDS) * len(WIDTHS)
BASE = f"""\
name: eff
trainable: mlp
dataset: mnist
metric: val_acc
budget: {{max_epochs: {EPOCHS}, num_samples: NUM, max_concurrent_trials: 2}}
"""
PARAMS = """params:
  momentum: 0.9
  batch_size: 128
"""
GRID = f"""  lr: {{grid: {LRS}}}
  weight_decay: {{grid: {WDS}}}
  hidden: {{grid: {[[w] for w in WIDTHS]}}}
"""
RANGES = """  lr: {loguniform: [0.01, 0.3]}
  weight_decay: {loguniform: [1.0e-5, 1.0e-3]}
  hidden: {choice: [[64], [128], [256]]}
"""
ASHA = "scheduler: {name: asha, grace_period: 1, reduction_factor: 2}\n"
STRATEGIES = {
    "random": "searcher: {name: random, seed: SEED}\n",
    "random+ASHA": "searcher: {name: random, seed: SEED}\n" + ASHA,
    "TPE": "searcher: {name: optuna, sampler: tpe, seed: SEED, n_startup_trials: 8}\n",
    "TPE+ASHA": "searcher: {name: optuna, sampler: tpe, seed: SEED, n_startup_trials: 8}\n" + ASHA,
}


def sweep(tmp: Path, name: str, text: str) -> Path:
    spec = tmp / f"{name}.yaml"
    spec.write_text(text)
    with open(os.devnull, "w") as null, contextlib.redirect_stdout(null):  # only the table
        return run(load_experiment(spec), storage=tmp / "runs", name=name, dashboard=False,
                   verbose=0, out=null).run_dir


def to_target(run_dir: Path, target: float) -> tuple[float | None, float | None, int, float]:
    data = RunFolder.read(run_dir)
    p = progress(data)
    hit = p[p["best_so_far"] >= target]
    te = float(hit["trial_epochs"].iloc[0]) if len(hit) else None
    wall = float(hit["wall_s"].iloc[0]) if len(hit) else None
    return te, wall, len(p), float(p["best_so_far"].iloc[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=3)
    args = ap.parse_args()
    import ray

    ray.init(include_dashboard=False, logging_level="WARNING",
             runtime_env={"worker_process_setup_hook": "hpo.trainables._ray.warm_up"})
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        t0 = time.time()
        grid_dir = sweep(tmp, "grid", BASE.replace("NUM", "1") + "searcher: {name: grid}\n" + PARAMS + GRID)
        grid_best = RunFolder.read(grid_dir).trials["best_val_acc"].max()
        target = grid_best - 0.002
        rows = [("grid", [to_target(grid_dir, target)])]
        for name, extra in STRATEGIES.items():
            res = []
            for seed in range(args.seeds):
                text = BASE.replace("NUM", str(N)) + extra.replace("SEED", str(seed)) + PARAMS + RANGES
                res.append(to_target(sweep(tmp, f"{name.replace('+', '_')}_{seed}", text), target))
            rows.append((name, res))
        total = time.time() - t0
    ray.shutdown()
    grid_te = rows[0][1][0][2]  # the grid must run all its trial-epochs to know its best
    print(f"### Search efficiency: lr x L2 x width ({N} configurations, {EPOCHS} epochs each, full "
          f"MNIST, batch 128), {args.seeds} seeds\n")
    print(f"Grid best validation accuracy {grid_best:.4f}; target = grid best - 0.2 points = "
          f"{target:.4f}. Trial-epochs and seconds until the best so far reached the target "
          f"(mean over seeds; n/m = seeds that reached it).\n")
    print("| strategy | reached | trial-epochs to target | vs grid's total | seconds to target | "
          "trial-epochs used | final best |")
    print("|---|---|---|---|---|---|---|")
    for name, res in rows:
        hits = [r for r in res if r[0] is not None]
        te = statistics.mean(r[0] for r in hits) if hits else None
        wall = statistics.mean(r[1] for r in hits) if hits else None
        used = statistics.mean(r[2] for r in res)
        best = statistics.mean(r[3] for r in res)
        print(f"| {name} | {len(hits)}/{len(res)} | {te if te is None else f'{te:.0f}'} | "
              f"{'' if te is None else f'{te / grid_te:.2f}x'} | "
              f"{'' if wall is None else f'{wall:.0f}'} | {used:.0f} | {best:.4f} |")
    print(f"\n(all sweeps together: {total / 60:.1f} min)")


if __name__ == "__main__":
    main()
