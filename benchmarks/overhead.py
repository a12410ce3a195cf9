"""Orchestration overhead: N trials of one short epoch each (default 50), hpo against plain Ray
Tune defaults, each a fresh process timed from outside, in one run.

Per-trial overhead = (wall time of the whole command - summed trial training time / concurrency)
/ N: everything that is not training (Python and Ray start-up, scheduling, reporting,
checkpointing, result files), amortized over the sweep.

The third and fourth rows run the same command with a warm local Ray started by `hpo up` just
before (stopped with `hpo down` after), as a user running many short commands would: by
default the warm head runs the sweep itself with its idle workers (hpo.runner.served); with
`--own-driver` the command joins that Ray from its own process, as a new Ray job.

    HPO_DATA_DIR=../shared/datasets python benchmarks/overhead.py [--trials 50]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
TRAIN_SIZE, BS, CONC = 2000, 100, 2
WARM = "hpo run with `hpo up` running (the warm head runs it)"
OWN = "hpo run --own-driver with `hpo up` running (joins its Ray)"

SPEC = """\
name: overhead
trainable: mlp
dataset: {{name: mnist, train_size: {train_size}}}
metric: val_acc
searcher: {{name: random, seed: 0}}
budget: {{max_epochs: 1, num_samples: {n}, max_concurrent_trials: {conc}}}
params:
  lr: {{loguniform: [1e-3, 0.5]}}
  hidden: [128]
  batch_size: {bs}
"""


def plain_tune(n: int, storage: str) -> None:
    """The Ray Tune tutorial shape with Tune's defaults (no actor reuse), same training work."""
    import ray
    from ray import tune

    from hpo.data import load_dataset

    ds = load_dataset("mnist", strict=True, train_size=TRAIN_SIZE)

    def trainable(config: dict, data) -> None:
        import torch
        import torch.nn.functional as F
        from torch import nn

        torch.set_num_threads(1)
        t0 = time.perf_counter()
        x = torch.tensor(data.x_train.reshape(-1, 784), dtype=torch.float32) / 255
        y = torch.tensor(data.y_train, dtype=torch.long)
        xv = torch.tensor(data.x_val.reshape(-1, 784), dtype=torch.float32) / 255
        yv = torch.tensor(data.y_val, dtype=torch.long)
        model = nn.Sequential(nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 10))
        opt = torch.optim.SGD(model.parameters(), lr=config["lr"])
        perm = torch.randperm(len(y))
        for i in range(0, len(y), BS):
            idx = perm[i:i + BS]
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            acc = (model(xv).argmax(1) == yv).float().mean().item()
        tune.report({"val_acc": acc, "train_s": time.perf_counter() - t0})

    ray.init(logging_level="WARNING")
    tuner = tune.Tuner(
        tune.with_parameters(trainable, data=ds),
        param_space={"lr": tune.loguniform(1e-3, 0.5)},
        tune_config=tune.TuneConfig(metric="val_acc", mode="max", num_samples=n,
                                    max_concurrent_trials=CONC),
        run_config=tune.RunConfig(storage_path=storage, name="plain", verbose=0))
    grid = tuner.fit()
    with open(os.path.join(storage, "train_s.json"), "w") as f:
        json.dump([r.metrics["train_s"] for r in grid], f)
    ray.shutdown()


def timed(cmd: list[str], cwd: str, env: dict[str, str] | None = None) -> float:
    t0 = time.perf_counter()
    r = subprocess.run(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if r.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed ({r.returncode}):\n{r.stderr[-3000:]}")
    return time.perf_counter() - t0


def phases(run_dir: Path, t_cmd: float, wall: float) -> dict[str, float]:
    """Where the wall time of one `hpo run` went, from run.json and events.jsonl timestamps."""
    info = json.loads((run_dir / "run.json").read_text())
    ev = [json.loads(x) for x in (run_dir / "events.jsonl").read_text().splitlines()]
    first = min(e["time"] for e in ev if e["event"] == "start")
    last = max(e["time"] for e in ev if e["event"] in ("complete", "error"))
    return {"start-up (imports, Ray, data)": info["started"] - t_cmd,
            "until the first trial starts": first - info["started"],
            "trials": last - first, "tables after the last trial": info["finished"] - last,
            "report, summary, exit": t_cmd + wall - info["finished"]}


def measure(n: int, conc: int = CONC) -> dict[str, dict[str, float]]:
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        spec = Path(tmp) / "overhead.yaml"
        spec.write_text(SPEC.format(n=n, conc=conc, train_size=TRAIN_SIZE, bs=BS))
        env = {**os.environ, "HPO_HOME": tmp}  # the warm Ray of this benchmark only
        for label, extra in (("hpo run", []), ("hpo run --no-dashboard", ["--no-dashboard"]),
                             (WARM, []), (OWN, ["--own-driver"])):
            if label == WARM:
                subprocess.run([sys.executable, "-m", "hpo.cli", "up"], check=True, env=env,
                               stdout=subprocess.DEVNULL)
            t_cmd = time.time()
            try:
                wall = timed([sys.executable, "-m", "hpo.cli", "run", str(spec), "--storage", tmp,
                              "--name", "overhead", "--quiet", *extra], tmp, env)
            except BaseException:
                subprocess.run([sys.executable, "-m", "hpo.cli", "down"], env=env, stdout=subprocess.DEVNULL)
                raise
            if label == OWN:
                subprocess.run([sys.executable, "-m", "hpo.cli", "down"], env=env,
                               stdout=subprocess.DEVNULL)
            run_dir = sorted(Path(tmp).glob("overhead*"), key=lambda p: p.stat().st_mtime)[-1]
            t = pd.read_csv(run_dir / "trials.csv")
            out[label] = summarize(wall, t["time_s"].tolist(), n, conc, None)
            out[label]["phases"] = phases(run_dir, t_cmd, wall)
        if conc == CONC:
            wall = timed([sys.executable, __file__, "--plain", str(n), "--storage", tmp], tmp)
            train_s = json.loads((Path(tmp) / "train_s.json").read_text())
            out["plain Ray Tune (defaults)"] = summarize(wall, train_s, n, conc, None)
    return out


def summarize(wall: float, train_s: list[float], n: int, conc: int, sweep: float | None) -> dict[str, float]:
    busy = sum(train_s) / conc
    return {"trials": len(train_s), "wall_s": wall, "sweep_s": sweep or float("nan"),
            "train_sum_s": sum(train_s), "overhead_per_trial_s": (wall - busy) / n}


def table(results: dict[str, dict[str, float]]) -> str:
    lines = ["| | trials | command wall s | sum of trial time s | overhead per trial s |",
             "|---|---|---|---|---|"]
    for k, r in results.items():
        lines.append(f"| {k} | {r['trials']:.0f} | {r['wall_s']:.1f} | {r['train_sum_s']:.1f} | "
                     f"{r['overhead_per_trial_s']:.3f} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=50)
    ap.add_argument("--plain", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--storage", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.plain:
        return plain_tune(args.plain, args.storage)
    res = measure(args.trials)
    print(f"### Orchestration overhead: {args.trials} trials x 1 epoch ({TRAIN_SIZE} images, "
          f"batch {BS}), {CONC} concurrent\n")
    print(table(res))
    for label in ("hpo run", "hpo run --no-dashboard", WARM, OWN):
        ph = res[label]["phases"]
        print(f"\n{label}, where the {res[label]['wall_s']:.1f} s went: "
              + "; ".join(f"{k} {v:.1f} s" for k, v in ph.items()))
    ph = res[WARM]["phases"]
    print(f"\nWith the warm Ray, from the command to the first trial starting: "
          f"{ph['start-up (imports, Ray, data)'] + ph['until the first trial starts']:.1f} s "
          f"(target 3 s); overhead per trial {res[WARM]['overhead_per_trial_s']:.3f} s (target 0.15 s).")
    a, b = res["hpo run"], res["plain Ray Tune (defaults)"]
    print(f"\nhpo's per-trial overhead is {a['overhead_per_trial_s'] / b['overhead_per_trial_s']:.2f}x "
          f"plain Ray Tune's; hpo's whole command takes {a['wall_s'] / b['wall_s']:.2f}x its time.")


if __name__ == "__main__":
    main()
