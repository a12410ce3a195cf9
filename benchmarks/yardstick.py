"""The yardstick: the lr_reg grid (16 configs x 10 epochs as shipped, 784-128-10 MLP, batch 64,
in-memory MNIST) four ways in one run, so machine noise cancels in the ratios:

  1. a plain Optuna loop in one process using all cores (GridSampler, the training code a user
     would write, validation every epoch);
  2. plain Ray Tune with reuse_actors=True (same code, data through with_parameters);
  3. `hpo run search_spaces/lr_reg.yaml` as shipped (packing on by default: `execution.pack: auto`);
  4. the same with `--set execution.pack=off` (one trial per configuration).

Each is a fresh Python process timed from the outside, as a user would experience it: start-up,
imports and reading MNIST included.

    HPO_DATA_DIR=../shared/datasets python benchmarks/yardstick.py [--epochs 10] [--skip optuna,tune,hpo,off]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
LRS, WDS, BS = [1, 0.1, 0.05, 0.01], [1e-1, 1e-2, 1e-3, 1e-4], 64
EPOCHS = int(os.environ.get("YARDSTICK_EPOCHS", "10"))  # set by --epochs for the child processes


def load() -> dict[str, np.ndarray]:
    from hpo.data import load_dataset

    ds = load_dataset("mnist", strict=True)
    return {"xt": ds.x_train, "yt": ds.y_train, "xv": ds.x_val, "yv": ds.y_val}


def train(config: dict, data: dict, report) -> None:
    """What a user writes: the two-layer net, in-memory tensors, index-slice batches."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    torch.manual_seed(0)
    xt = torch.tensor(data["xt"].reshape(-1, 784), dtype=torch.float32) / 255
    yt = torch.tensor(data["yt"], dtype=torch.long)
    xv = torch.tensor(data["xv"].reshape(-1, 784), dtype=torch.float32) / 255
    yv = torch.tensor(data["yv"], dtype=torch.long)
    model = nn.Sequential(nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 10))
    opt = torch.optim.SGD(model.parameters(), lr=config["lr"], momentum=0.9,
                          weight_decay=config["wd"])
    for epoch in range(EPOCHS):
        perm = torch.randperm(len(yt))
        for i in range(0, len(yt), BS):
            idx = perm[i:i + BS]
            loss = F.cross_entropy(model(xt[idx]), yt[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            acc = (model(xv).argmax(1) == yv).float().mean().item()
        report(epoch, acc if acc == acc else 0.0)


def optuna_loop(data: dict) -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)

    def objective(trial: optuna.Trial) -> float:
        cfg = {"lr": trial.suggest_categorical("lr", LRS), "wd": trial.suggest_categorical("wd", WDS)}
        accs: list[float] = []
        train(cfg, data, lambda e, a: accs.append(a))
        return max(accs)

    study = optuna.create_study(direction="maximize",
                                sampler=optuna.samplers.GridSampler({"lr": LRS, "wd": WDS}))
    study.optimize(objective, n_trials=len(LRS) * len(WDS))


def ray_tune(data: dict, storage: str) -> None:
    import ray
    from ray import tune

    ray.init(logging_level="WARNING")

    def trainable(config: dict, data: dict) -> None:
        train(config, data, lambda e, a: tune.report({"val_acc": a, "epoch": e}))

    tuner = tune.Tuner(
        tune.with_resources(tune.with_parameters(trainable, data=data), {"cpu": 1}),
        param_space={"lr": tune.grid_search(LRS), "wd": tune.grid_search(WDS)},
        tune_config=tune.TuneConfig(metric="val_acc", mode="max", reuse_actors=True,
                                    max_concurrent_trials=2),
        run_config=tune.RunConfig(storage_path=storage, verbose=0),
    )
    tuner.fit()
    ray.shutdown()


def timed(cmd: list[str], env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=EPOCHS)
    ap.add_argument("--skip", default="", help="comma list of optuna,tune,hpo,off")
    ap.add_argument("--only", help=argparse.SUPPRESS)  # run one baseline in this process
    ap.add_argument("--storage", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.only == "optuna":
        return optuna_loop(load())
    if args.only == "tune":
        return ray_tune(load(), args.storage)
    os.environ["YARDSTICK_EPOCHS"] = str(args.epochs)
    skip = set(filter(None, args.skip.split(",")))
    me = [sys.executable, __file__]
    hpo = [sys.executable, "-m", "hpo.cli", "run", str(ROOT / "search_spaces/lr_reg.yaml"),
           "--set", f"budget.max_epochs={args.epochs}", "--quiet"]
    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "HPO_HOME": tmp}  # no warm Ray: every command starts its own
        if "optuna" not in skip:
            out[OPTUNA] = timed(me + ["--only", "optuna"], env)
        if "tune" not in skip:
            out["Ray Tune, reuse_actors=True"] = timed(me + ["--only", "tune", "--storage", tmp], env)
        if "hpo" not in skip:
            out["hpo run (as shipped: packed)"] = timed(hpo + ["--storage", tmp, "--name", "a"], env)
        if "off" not in skip:
            out["hpo run --set execution.pack=off"] = timed(
                hpo + ["--storage", tmp, "--name", "b", "--set", "execution.pack=off"], env)
    ref = out.get(OPTUNA)
    print(f"### lr_reg grid, 16 configs x {args.epochs} epochs, batch {BS}, {os.cpu_count()} CPUs\n")
    print("| | wall s (fresh process, start-up included) | vs the Optuna loop |\n|---|---|---|")
    for k, v in out.items():
        print(f"| {k} | {v:.1f} | {f'{v / ref:.2f}x' if ref else ''} |")


OPTUNA = "plain Optuna loop (1 process, all cores)"


if __name__ == "__main__":
    main()
