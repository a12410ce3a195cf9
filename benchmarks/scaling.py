"""Scaling: wall time for 10, 50 and 100 one-epoch trials, 1 vs 2 concurrent trials, and memory
(peak RSS of the driver and of each worker process) — the dataset is held once per worker
process that is reused across trials, not once per trial.

    HPO_DATA_DIR=../shared/datasets python benchmarks/scaling.py
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))
from overhead import BS, SPEC, TRAIN_SIZE  # noqa: E402


def one(n: int, conc: int, train_size: int = TRAIN_SIZE) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        spec = Path(tmp) / "s.yaml"
        spec.write_text(SPEC.format(n=n, conc=conc, train_size=train_size, bs=BS))
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "hpo.cli", "run", str(spec), "--storage", tmp, "--quiet"],
                       check=True, cwd=tmp, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wall = time.perf_counter() - t0
        run = Path(tmp) / "overhead"
        t = pd.read_csv(run / "trials.csv")
        h = pd.read_parquet(run / "history.parquet")
        info = json.loads((run / "run.json").read_text())
        workers = h.groupby("pid")["worker_peak_rss_mb"].max()
    return {"trials": n, "concurrent": conc, "wall_s": wall, "train_sum_s": t["time_s"].sum(),
            "workers": len(workers), "worker_peak_rss_mb": workers.max(),
            "driver_peak_rss_mb": info.get("driver_peak_rss_mb", float("nan"))}


def main() -> None:
    rows = [one(10, 2), one(50, 2), one(100, 2), one(50, 1)]
    print(f"### Scaling: one-epoch trials ({TRAIN_SIZE} MNIST images, batch {BS}), full 10,000-image "
          f"test set and 5,000 validation images in memory\n")
    print("| trials | concurrent | wall s | s per trial | sum of trial time s | worker processes | "
          "peak worker RSS MB | peak driver RSS MB |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['trials']} | {r['concurrent']} | {r['wall_s']:.1f} | {r['wall_s'] / r['trials']:.2f} | "
              f"{r['train_sum_s']:.1f} | {r['workers']} | {r['worker_peak_rss_mb']:.0f} | "
              f"{r['driver_peak_rss_mb']:.0f} |")
    one_c, two_c = rows[3], rows[1]
    print(f"\n2 concurrent trials vs 1 at 50 trials: {one_c['wall_s'] / two_c['wall_s']:.2f}x faster. "
          f"Worker processes stay at the concurrency (actor reuse) and their peak RSS does not grow "
          f"with the number of trials: the data is converted once per worker, not once per trial.")


if __name__ == "__main__":
    main()
