"""The live-view mirror's cost: the same sweep with the Optuna-journal mirror on and off, in
fresh `hpo run` processes alternated (on, off, off, on), and the mirror's own time per trial
as it measured it (<run>/mirror.json).

    HPO_DATA_DIR=../shared/datasets python benchmarks/mirror.py
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SETS = ["budget.max_epochs=2", "dataset=mnist_sample", "params.batch_size=128"]


def one(storage: Path, name: str, mirror: bool) -> tuple[float, dict]:
    env = {**os.environ, "HPO_MIRROR": "1" if mirror else "0"}
    cmd = [sys.executable, "-m", "hpo.cli", "run", "lr_reg", "--quiet", "--no-dashboard",
           "--storage", str(storage), "--name", name, "--reports", str(storage / "reports")]
    for s in SETS:
        cmd += ["--set", s]
    t0 = time.perf_counter()
    r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if r.returncode:
        raise SystemExit(r.stdout[-2000:] + r.stderr[-2000:])
    m = storage / name / "mirror.json"
    return wall, json.loads(m.read_text()) if m.exists() else {}


def main() -> None:
    with tempfile.TemporaryDirectory() as d:
        storage = Path(d)
        walls: dict[bool, list[float]] = {True: [], False: []}
        costs = []
        for i, mirror in enumerate((True, False, False, True)):
            wall, m = one(storage, f"r{i}", mirror)
            walls[mirror].append(wall)
            if m:
                costs.append(m)
        on, off = statistics.median(walls[True]), statistics.median(walls[False])
        per_trial = statistics.median(c["seconds_per_trial"] for c in costs)
        total = statistics.median(c["seconds"] for c in costs)
    print(f"`hpo run lr_reg` ({', '.join(SETS)}: 16 trials), fresh processes, order on/off/off/on.\n")
    print("| | mirror on | mirror off | on / off |\n|---|---|---|---|")
    print(f"| wall time (median of 2) | {on:.1f} s | {off:.1f} s | {on / off:.2f}x |")
    print(f"\nThe mirror's own time in the driver (its callbacks, measured by itself): {total:.3f} s per "
          f"run, **{per_trial * 1000:.1f} ms per trial** (median of 2 runs); it runs in the driver, "
          f"never inside a trial.")


if __name__ == "__main__":
    main()
