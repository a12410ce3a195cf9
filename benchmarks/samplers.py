"""Which sampler should be the default? Every sampler hpo offers, on test functions with a known
optimum (through hpo's own define-by-run space and sampler factory, asked and told in turn)
and on a real MNIST sweep (hpo run, side by side in one process).

    HPO_DATA_DIR=../shared/datasets python benchmarks/samplers.py [--seeds 10] [--trials 40] [--mnist-seeds 5]

Test functions (minimized; regret = best found - known optimum, median over seeds):
- branin: 2 parameters, 3 global minima (0.397887), on [-5, 10] x [0, 15];
- hartmann6: 6 parameters on [0, 1]^6, minimum -3.32237;
- lr_wd: a learning-rate x L2 bowl on log scales with a narrow valley along their product
  (log10 lr + log10 wd = -4.5), the shape lr x L2 sweeps have, minimum 0 at lr = 10^-1.25;
- mixed: branin plus a categorical offset (0 / 0.5 / 2 for optimizer a / b / c).
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

SAMPLERS = {  # label -> searcher options (hpo's `searcher:` mapping)
    "random": {"name": "optuna", "sampler": "random"},
    "qmc": {"name": "optuna", "sampler": "qmc"},
    "tpe (univariate)": {"name": "optuna", "sampler": "tpe", "multivariate": False},
    "tpe (multivariate)": {"name": "optuna", "sampler": "tpe", "multivariate": True},
    "gp": {"name": "optuna", "sampler": "gp"},
    "cmaes": {"name": "optuna", "sampler": "cmaes"},
    "nsgaii": {"name": "optuna", "sampler": "nsgaii"},
    "nevergrad PSO": {"name": "nevergrad", "optimizer": "PSO"},
    "nevergrad DE": {"name": "nevergrad", "optimizer": "DE"},
}


def branin(x1: float, x2: float) -> float:
    a, b, c, r, s, t = 1, 5.1 / (4 * math.pi ** 2), 5 / math.pi, 6, 10, 1 / (8 * math.pi)
    return a * (x2 - b * x1 ** 2 + c * x1 - r) ** 2 + s * (1 - t) * math.cos(x1) + s


_HA = np.array([[10, 3, 17, 3.5, 1.7, 8], [0.05, 10, 17, 0.1, 8, 14], [3, 3.5, 1.7, 10, 17, 8],
                [17, 8, 0.05, 10, 0.1, 14]])
_HP = 1e-4 * np.array([[1312, 1696, 5569, 124, 8283, 5886], [2329, 4135, 8307, 3736, 1004, 9991],
                       [2348, 1451, 3522, 2883, 3047, 6650], [4047, 8828, 8732, 5743, 1091, 381]])
_HALPHA = np.array([1.0, 1.2, 3.0, 3.2])


def hartmann6(**x: float) -> float:
    v = np.array([x[f"x{i}"] for i in range(6)])
    return float(-np.sum(_HALPHA * np.exp(-np.sum(_HA * (v - _HP) ** 2, axis=1))))


def lr_wd(lr: float, wd: float) -> float:
    u, v = math.log10(lr), math.log10(wd)
    return (u + 1.25) ** 2 * 0.3 + 4 * (u + v + 4.5) ** 2


PROBLEMS: dict[str, tuple[dict[str, Any], Any, float]] = {  # name -> (params, f, optimum)
    "branin": ({"x1": {"uniform": [-5, 10]}, "x2": {"uniform": [0, 15]}},
               lambda c: branin(c["x1"], c["x2"]), 0.397887),
    "hartmann6": ({f"x{i}": {"uniform": [0, 1]} for i in range(6)}, lambda c: hartmann6(**c), -3.32237),
    "lr_wd": ({"lr": {"loguniform": [1e-4, 1.0]}, "wd": {"loguniform": [1e-6, 1e-1]}},
              lambda c: lr_wd(c["lr"], c["wd"]), 0.0),
    "mixed": ({"x1": {"uniform": [-5, 10]}, "x2": {"uniform": [0, 15]}, "opt": {"choice": ["a", "b", "c"]}},
              lambda c: branin(c["x1"], c["x2"]) + {"a": 0, "b": 0.5, "c": 2}[c["opt"]], 0.397887),
}


def optimize(problem: str, label: str, seed: int, trials: int) -> float:
    """Best value found in `trials` sequential ask/tell steps, through hpo's searcher code."""
    from hpo.searchers import SEARCHERS, Search
    from hpo.space import parse_param

    raw, f, _ = PROBLEMS[problem]
    params = {k: parse_param(k, v) for k, v in raw.items()}
    opts_raw = dict(SAMPLERS[label])
    entry = SEARCHERS.get(opts_raw.pop("name"))
    opts = entry.options.model_validate(opts_raw)
    try:
        entry.check(params, opts, {"y": "min"})
    except Exception:  # noqa: BLE001 - the sampler does not take this space (e.g. CMA-ES)
        return math.nan
    alg, _ = entry.build(Search(params, opts, seed, None, "y", "min", num_samples=trials))
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    best = math.inf
    for i in range(trials):
        cfg = alg.suggest(f"t{i}")
        y = f(cfg)
        alg.on_trial_complete(f"t{i}", {"y": y, "training_iteration": 1})
        best = min(best, y)
    return best


def test_functions(seeds: int, trials: int) -> str:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    rows = {}
    t_s: dict[str, float] = {}
    for label in SAMPLERS:
        t0 = time.time()
        rows[label] = {}
        for problem, (_, _, opt) in PROBLEMS.items():
            with contextlib.redirect_stderr(open(os.devnull, "w")):  # noqa: SIM115
                regrets = [optimize(problem, label, s, trials) - opt for s in range(seeds)]
            rows[label][problem] = (math.nan if any(math.isnan(r) for r in regrets)
                                    else statistics.median(regrets))
        t_s[label] = (time.time() - t0) / (seeds * len(PROBLEMS))
    ranks = {p: sorted((v[p], k) for k, v in rows.items() if not math.isnan(v[p])) for p in PROBLEMS}
    mean_rank = {k: statistics.mean([next(i for i, (_, kk) in enumerate(ranks[p]) if kk == k) + 1
                                     for p in PROBLEMS if not math.isnan(rows[k][p])]) for k in rows}
    head = "| sampler | " + " | ".join(PROBLEMS) + " | mean rank | s per search |"
    lines = [f"### Test functions: median regret after {trials} trials over {seeds} seeds "
             "(lower is better; blank: the sampler refuses the space)", "", head,
             "|" + "---|" * (len(PROBLEMS) + 3)]
    for k, v in sorted(rows.items(), key=lambda kv: mean_rank[kv[0]]):
        cells = ["" if math.isnan(v[p]) else f"{v[p]:.3g}" for p in PROBLEMS]
        lines.append(f"| {k} | " + " | ".join(cells) + f" | {mean_rank[k]:.1f} | {t_s[k]:.2f} |")
    return "\n".join(lines)


MNIST_SPEC = """\
name: NAME
trainable: mlp
dataset: {name: mnist, train_size: 12000}
metric: val_acc
searcher: SEARCHER
budget: {max_epochs: 2, num_samples: SAMPLES, max_concurrent_trials: 2}
params:
  lr: {loguniform: [1.0e-3, 1.0]}
  weight_decay: {loguniform: [1.0e-6, 1.0e-2]}
  momentum: {uniform: [0.0, 0.95]}
  hidden: [128]
  batch_size: 128
"""


def mnist(seeds: int, labels: list[str]) -> str:
    import yaml

    from hpo.experiment import load_experiment
    from hpo.runner import run

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for label in labels:
            bests, t_total = [], 0.0
            for seed in range(seeds):
                searcher = {**SAMPLERS[label], "seed": seed}
                spec = Path(tmp) / "s.yaml"
                flow = yaml.safe_dump(searcher, default_flow_style=True).strip()
                spec.write_text(MNIST_SPEC.replace("SEARCHER", flow).replace("NAME", f"sampler_{seed}")
                                .replace("SAMPLES", "16"))
                t0 = time.time()
                with open(os.devnull, "w") as null, contextlib.redirect_stdout(null):
                    res = run(load_experiment(spec), storage=Path(tmp) / "runs", name=f"r{len(rows)}_{seed}",
                              out=null, dashboard=False, verbose=0)
                t_total += time.time() - t0
                bests.append(float(res.trials["best_val_acc"].max()))
            rows.append((label, statistics.median(bests), min(bests), t_total / seeds))
    lines = [f"### Real MNIST sweep: lr x L2 x momentum, 16 trials x 2 epochs (12,000 training images), "
             f"{seeds} seeds", "", "| sampler | median best val_acc | worst seed's best | wall s per sweep |",
             "|---|---|---|---|"]
    for label, med, worst, t in sorted(rows, key=lambda r: -r[1]):
        lines.append(f"| {label} | {med:.4f} | {worst:.4f} | {t:.0f} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--trials", type=int, default=40)
    ap.add_argument("--mnist-seeds", type=int, default=5)
    ap.add_argument("--mnist", default="random,tpe (univariate),tpe (multivariate),gp",
                    help="comma list of samplers for the MNIST sweep ('' to skip it)")
    args = ap.parse_args()
    print(test_functions(args.seeds, args.trials), flush=True)
    labels = [x for x in args.mnist.split(",") if x]
    if labels:
        print()
        print(mnist(args.mnist_seeds, labels))


if __name__ == "__main__":
    main()
