"""Warm starts: how many trials a TPE search warm-started from yesterday's random search needs
to reach the best value of a cold TPE search with the same budget, over several seeds.

    HPO_DATA_DIR=../shared/datasets python benchmarks/warm_start.py [--seeds 3] [--fn-seeds 10]

Two settings, each: a random search of PRIOR trials ("yesterday"), then per seed a cold TPE
search of N trials and a TPE search of N trials warm-started from the random search
(`warm_start:` / `hpo run --from`). "Trials to reach" is the first trial index (1-based) whose
best-so-far is at least the cold search's final best; "> N" when it never gets there.
- a test function (the lr x L2 valley of benchmarks/samplers.py, through hpo's searcher code);
- a real MNIST sweep (lr x L2 x momentum, 12,000 training images, 2 epochs, `hpo run`).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

PRIOR, N = 12, 16


def _reach(values: list[float], target: float, better: Any) -> int | None:
    best = None
    for i, v in enumerate(values):
        best = v if best is None else better(best, v)
        if best == target or better(best, target) == best:
            return i + 1
    return None


def _fmt(xs: list[int | None], n: int) -> str:
    done = [x for x in xs if x is not None]
    med = statistics.median([x if x is not None else n + 1 for x in xs])
    return (f"{'> ' if med > n else ''}{min(med, n):g} (reached in {len(done)}/{len(xs)}; "
            + ", ".join(str(x) if x is not None else f">{n}" for x in xs) + ")")


def function_setting(seeds: int) -> str:
    import math

    import numpy as np
    import optuna

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from samplers import lr_wd

    from hpo.adapters.optuna_search import build
    from hpo.searchers import OptunaOptions, Search
    from hpo.space import parse_param

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    params = {"lr": parse_param("lr", {"loguniform": [1e-4, 1.0]}),
              "wd": parse_param("wd", {"loguniform": [1e-6, 1e-1]})}

    def search(seed: int, prior: tuple = ()) -> list[float]:
        alg, _ = build(Search(params, OptunaOptions(n_startup_trials=8), seed, None, "y", "min",
                              prior=prior, num_samples=N))
        optuna.logging.set_verbosity(optuna.logging.ERROR)
        ys = []
        for i in range(N):
            c = alg.suggest(f"t{i}")
            ys.append(lr_wd(c["lr"], c["wd"]))
            alg.on_trial_complete(f"t{i}", {"y": ys[-1], "training_iteration": 1})
        return ys

    cold, warm, finals = [], [], ([], [])
    for seed in range(seeds):
        rng = np.random.default_rng(1000 + seed)
        pts = [{"lr": float(10 ** rng.uniform(-4, 0)), "wd": float(10 ** rng.uniform(-6, -1))}
               for _ in range(PRIOR)]
        prior = tuple((p, {"y": lr_wd(p["lr"], p["wd"])}) for p in pts)
        c, w = search(seed), search(seed, prior)
        finals[0].append(min(c))
        finals[1].append(min(w))
        target = min(c)
        cold.append(_reach(c, target, min))
        warm.append(_reach(w, target, min))
    assert all(math.isfinite(x or 0) for x in cold)
    return (f"| lr x L2 valley (test function, minimized), {seeds} seeds | {_fmt(cold, N)} | {_fmt(warm, N)} "
            f"| {statistics.median(finals[0]):.3g} | {statistics.median(finals[1]):.3g} |")


def mnist_setting(seeds: int) -> str:
    from hpo.experiment import load_experiment
    from hpo.runner import run

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from samplers import MNIST_SPEC

    def go(tmp: Path, name: str, searcher: str, samples: int, overrides: list[str] = ()) -> Any:  # type: ignore[assignment]
        spec = tmp / f"{name}.yaml"
        spec.write_text(MNIST_SPEC.replace("NAME", name).replace("SEARCHER", searcher)
                        .replace("SAMPLES", str(samples)))
        with open(os.devnull, "w") as null, contextlib.redirect_stdout(null):
            return run(load_experiment(spec, list(overrides)), storage=tmp / "runs", out=null,
                       dashboard=False, verbose=0)

    cold, warm, finals = [], [], ([], [])
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        for seed in range(seeds):
            prior = go(tmp, f"prior{seed}", f"{{name: random, seed: {100 + seed}}}", PRIOR)
            tpe = f"{{name: optuna, sampler: tpe, seed: {seed}, n_startup_trials: 8}}"
            c = go(tmp, f"cold{seed}", tpe, N)
            w = go(tmp, f"warm{seed}", tpe, N, [f"warm_start={prior.run_dir}"])
            cv = c.trials.sort_values("trial_index")["best_val_acc"].tolist()
            wv = w.trials.sort_values("trial_index")["best_val_acc"].tolist()
            finals[0].append(max(cv))
            finals[1].append(max(wv))
            cold.append(_reach(cv, max(cv), max))
            warm.append(_reach(wv, max(cv), max))
    return (f"| MNIST lr x L2 x momentum (2 epochs, 12k images; val_acc), {seeds} seeds | {_fmt(cold, N)} "
            f"| {_fmt(warm, N)} | {statistics.median(finals[0]):.4f} | {statistics.median(finals[1]):.4f} |")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=3, help="MNIST seeds (0: skip)")
    ap.add_argument("--fn-seeds", type=int, default=20)
    args = ap.parse_args()
    print(f"### Trials to reach the cold TPE search's best ({N} trials each; warm: {PRIOR} random "
          f"trials of the same space given as a warm start; median, then per seed)\n")
    print("| setting | trials to reach: cold TPE | warm-started TPE | median final best: cold | warm |\n"
          "|---|---|---|---|---|")
    print(function_setting(args.fn_seeds), flush=True)
    if args.seeds:
        print(mnist_setting(args.seeds))


if __name__ == "__main__":
    main()
