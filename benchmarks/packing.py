"""Trial packing: the lr_reg sweep (16 configs x 2 epochs, 784-128-10, full MNIST) packed vs
unpacked at batch 64, 128 and 1024, each a fresh `hpo run` process, one after another.

    HPO_DATA_DIR=../shared/datasets python benchmarks/packing.py [--epochs 2]

`wall` is the whole process (Ray start, data load, report); `sweep` is from the first trial's
start to the last trial's end (events.jsonl), the part packing changes.
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

ROOT = Path(__file__).resolve().parents[1]


def one(batch: int, variant: str, epochs: int, storage: str) -> dict[str, float]:
    pack, _, ckpt = variant.partition("/")
    name = f"b{batch}_{pack}_{ckpt or 'ckpt'}"
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "hpo.cli", "run", str(ROOT / "search_spaces/lr_reg.yaml"),
                    "--set", f"budget.max_epochs={epochs}", "--set", f"params.batch_size={batch}",
                    "--set", f"execution.pack={pack}", "--name", name, "--storage", storage,
                    *(["--set", "checkpoint.every=0"] if ckpt else []),
                    "--quiet", "--no-dashboard", "--reports", storage],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    events = [json.loads(x) for x in (Path(storage) / name / "events.jsonl").read_text().splitlines()]
    times = [e["time"] for e in events]
    info = json.loads((Path(storage) / name / "run.json").read_text())
    import pandas as pd

    t = pd.read_csv(Path(storage) / name / "trials.csv")
    return {"wall": wall, "sweep": max(times) - min(times), "n": len(t),
            "packs": int(t["pack"].nunique()) if "pack" in t else len(t),
            "best": float(t["best_val_acc"].max()), "state": info.get("state")}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=2)
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for batch, variants in ((64, ["off", "off/no-ckpt", "auto"]), (128, ["off", "off/no-ckpt", "auto"]),
                                (1024, ["off", "off/no-ckpt", "auto", "8"])):
            res = {v: one(batch, v, args.epochs, tmp) for v in variants}
            rows.append((batch, res))
    print(f"### lr_reg sweep, 16 configs x {args.epochs} epochs, {os.cpu_count()} CPUs, "
          f"2 trials (or packs) at a time. `off` runs every trial on its own (a checkpoint every "
          f"epoch); `auto` is the default; packs "
          f"do not checkpoint, so `off/no-ckpt` (checkpoint.every=0) is the like-for-like baseline.\n")
    print("| batch | execution.pack | trials (packs) | wall s | sweep s | configs/s (sweep) | "
          "sweep speedup vs off | vs off/no-ckpt | best val_acc |\n|---|---|---|---|---|---|---|---|---|")
    for batch, res in rows:
        base, bare = res["off"]["sweep"], res["off/no-ckpt"]["sweep"]
        for v, r in res.items():
            print(f"| {batch} | {v} | {r['n']} ({r['packs']}) | {r['wall']:.1f} | {r['sweep']:.1f} | "
                  f"{r['n'] / r['sweep']:.2f} | {base / r['sweep']:.2f}x | {bare / r['sweep']:.2f}x | "
                  f"{r['best']:.4f} |")


if __name__ == "__main__":
    main()
