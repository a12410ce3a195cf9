"""Scaling: many short trials (a tiny MLP on a few hundred images), random search and ASHA, at
100, 1,000 and 5,000 trials: wall time, per-trial overhead, peak memory of the driver and of the
workers, the time to build the results tables and the HTML report, and the report's size.
Every run joins one warm Ray (`hpo up`) from its own driver process (`--own-driver`, not the warm
head: its memory would carry the earlier runs'), so the sizes compare the sweep, not Ray's start.

    HPO_DATA_DIR=../shared/datasets python benchmarks/scaling.py [--trials 100,1000,5000] [--asha 100,1000]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

SPEC = """\
name: scale
trainable: mlp
dataset: {{name: mnist_sample, train_size: 300, val_size: 200}}
metric: val_acc
searcher: {{name: random, seed: 0}}
scheduler: {scheduler}
budget: {{max_epochs: {epochs}, num_samples: {n}, max_concurrent_trials: 2}}
params:
  lr: {{loguniform: [1e-3, 0.5]}}
  weight_decay: {{loguniform: [1e-6, 1e-2]}}
  hidden: [16]
  batch_size: 50
"""
SCHEDULERS = {"random": ("{name: fifo}", 1), "random + ASHA": ("{name: asha, grace_period: 1}", 4)}


def hpo(*args: str, cwd: str, env: dict[str, str]) -> tuple[float, float]:
    """(wall seconds, the command's peak RSS in MB, its report included: sampled every 0.1 s)."""
    import psutil

    t0 = time.perf_counter()
    p = subprocess.Popen([sys.executable, "-m", "hpo.cli", *args], cwd=cwd, env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    proc, peak = psutil.Process(p.pid), 0
    while p.poll() is None:
        with contextlib.suppress(psutil.Error):
            peak = max(peak, proc.memory_info().rss)
        time.sleep(0.1)
    if p.returncode:
        raise subprocess.CalledProcessError(p.returncode, args)
    return time.perf_counter() - t0, peak / 2**20


def one(kind: str, n: int, tmp: str, env: dict[str, str]) -> dict[str, float]:
    sched, epochs = SCHEDULERS[kind]
    name = f"s{n}_{'asha' if 'ASHA' in kind else 'rand'}"
    spec = Path(tmp) / f"{name}.yaml"
    spec.write_text(SPEC.format(n=n, scheduler=sched, epochs=epochs))
    wall, whole_peak = hpo("run", str(spec), "--name", name, "--storage", tmp, "--quiet", "--own-driver",
                           "--reports", tmp, cwd=tmp, env=env)
    run = Path(tmp) / name
    info = json.loads((run / "run.json").read_text())
    t = pd.read_csv(run / "trials.csv")
    h = pd.read_parquet(run / "history.parquet")
    # the tables and the report, built again in a process of their own and timed inside it
    timing = json.loads(subprocess.run(
        [sys.executable, __file__, "--time-outputs", str(run)], check=True, capture_output=True,
        text=True, env=env).stdout.strip().splitlines()[-1])
    busy = t["time_s"].sum() / 2
    return {"kind": kind, "trials": len(t), "trial_epochs": len(h), "wall_s": wall,
            "overhead_per_trial_s": (wall - busy) / len(t),
            "driver_peak_rss_mb": info.get("driver_peak_rss_mb", float("nan")),
            "driver_sweep_peak_rss_mb": info.get("driver_sweep_peak_rss_mb", float("nan")),
            "command_peak_rss_mb": whole_peak,
            "worker_peak_rss_mb": h["worker_peak_rss_mb"].max(), **timing}


def time_outputs(run_dir: Path) -> None:
    from hpo.api import build_report
    from hpo.runner.collect import write_tables

    t0 = time.perf_counter()
    write_tables(run_dir)
    tables = time.perf_counter() - t0
    t0 = time.perf_counter()
    out = build_report(run_dir, run_dir / "timed_report.html")
    report = time.perf_counter() - t0
    print(json.dumps({"tables_s": tables, "report_s": report, "report_mb": out.stat().st_size / 1e6}))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", default="100,1000,5000")
    ap.add_argument("--asha", default="100,1000,5000")
    ap.add_argument("--time-outputs", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.time_outputs:
        return time_outputs(args.time_outputs)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "HPO_HOME": tmp}  # a warm Ray of its own, stopped at the end
        subprocess.run([sys.executable, "-m", "hpo.cli", "up", "--no-dashboard"], check=True, env=env,
                       stdout=subprocess.DEVNULL)
        try:
            for kind, sizes in (("random", args.trials), ("random + ASHA", args.asha)):
                for n in filter(None, sizes.split(",")):
                    rows.append(one(kind, int(n), tmp, env))
                    print(rows[-1], file=sys.stderr, flush=True)
        finally:
            subprocess.run([sys.executable, "-m", "hpo.cli", "down"], env=env, stdout=subprocess.DEVNULL)
    print("### Scaling: short trials (MLP 784-16-10, 300 training / 200 validation images, batch 50), "
          "2 at a time, one warm Ray; ASHA: up to 4 epochs, grace 1, reduction 3\n")
    print("| search | trials | trial-epochs | wall s | overhead per trial s | peak driver RSS in the "
          "sweep MB | peak driver RSS MB | peak `hpo run` RSS MB | peak worker RSS MB | tables s | "
          "report s | report MB |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['kind']} | {r['trials']} | {r['trial_epochs']} | {r['wall_s']:.0f} | "
              f"{r['overhead_per_trial_s']:.3f} | {r['driver_sweep_peak_rss_mb']:.0f} | "
              f"{r['driver_peak_rss_mb']:.0f} | "
              f"{r['command_peak_rss_mb']:.0f} | "
              f"{r['worker_peak_rss_mb']:.0f} | "
              f"{r['tables_s']:.1f} | {r['report_s']:.1f} | {r['report_mb']:.1f} |")
    print("\nOverhead per trial = (wall - summed trial time / 2) / trials: everything that is not "
          "training, amortized. Peak driver RSS in the sweep: the driver's own peak until the sweep "
          "ended (run.json's driver_sweep_peak_rss_mb); peak driver RSS: until its tables (which hold "
          "every trial) were written (driver_peak_rss_mb); peak `hpo run` RSS: the whole command's, "
          "the report it builds included, sampled every 0.1 s. Tables and report are rebuilt by "
          "`hpo report`'s code in a fresh process and timed inside it (imports excluded).")


if __name__ == "__main__":
    main()
