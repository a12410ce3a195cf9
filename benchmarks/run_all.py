"""`make bench`: every benchmark, side by side on this machine, written to BENCHMARKS.md.

    HPO_DATA_DIR=../shared/datasets python benchmarks/run_all.py [--quick]
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

from hpo import environment

HERE = Path(__file__).resolve().parent
BENCHES = [
    ("yardstick.py", [], "The yardstick: the lr_reg grid three ways"),
    ("throughput.py", [], "Trainable throughput"),
    ("overhead.py", [], "Orchestration overhead"),
    ("scaling.py", [], "Scaling and memory"),
    ("search_efficiency.py", ["--seeds", "3"], "Search efficiency"),
    ("samplers.py", [], "Samplers"),
    ("warm_start.py", [], "Warm starts"),
    ("packing.py", [], "Trial packing"),
    ("func_pack.py", [], "Packing any model (torch.func)"),
    ("mirror.py", [], "Live-view mirror"),
    ("gpu.py", [], "GPU"),  # `make bench-gpu` only: it refuses without CUDA
]
ON_REQUEST = {"gpu"}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", help="comma list of script names (without .py)")
    ap.add_argument("--out", default=str(HERE.parent / "BENCHMARKS.md"))
    args = ap.parse_args()
    only = set(args.only.split(",")) if args.only else None
    v = environment.versions()
    parts = [
        "# Benchmarks\n",
        f"Written by `make bench` (`python benchmarks/run_all.py`) on {time.strftime('%Y-%m-%d')}: "
        f"{os.cpu_count()} CPUs, {platform.platform()}, no GPU unless stated; Python {v.get('python')}, "
        f"torch {v.get('torch')}, ray {v.get('ray')}, optuna {v.get('optuna')}. Every table compares "
        f"side by side in one run; ratios matter more than absolute seconds on a shared machine.\n",
    ]
    t_all = time.time()
    for script, extra, title in BENCHES:
        if (only and script.removesuffix(".py") not in only) or (
                not only and script.removesuffix(".py") in ON_REQUEST):
            continue
        cmd = [sys.executable, str(HERE / script), *extra]
        t0 = time.time()
        r = subprocess.run(cmd, capture_output=True, text=True)
        body = r.stdout.strip()
        if r.returncode:
            print(r.stderr[-3000:], file=sys.stderr)
            if r.returncode == 2 and script in {f"{s}.py" for s in ON_REQUEST}:
                sys.exit(2)  # refused (no GPU): BENCHMARKS.md is left as it is
            body = f"FAILED ({r.returncode}):\n```\n{r.stderr[-3000:]}\n```"
        parts.append(f"## {title}\n\n`python benchmarks/{script} {' '.join(extra)}`".rstrip()
                     + f" ({time.time() - t0:.0f} s)\n\n{body}\n")
        print(f"{script}: {time.time() - t0:.0f} s", flush=True)
    out = Path(args.out)
    if only and out.exists():  # refresh only the chosen sections of an existing file
        old = out.read_text().split("\n## ")
        fresh = {p.split("\n", 1)[0].removeprefix("## "): p for p in parts[2:]}
        merged = [old[0]] + [fresh.pop(sec.split("\n", 1)[0], "## " + sec).removeprefix("## ")
                             for sec in old[1:]]
        out.write_text("\n## ".join(merged + [p.removeprefix("## ") for p in fresh.values()]))
    else:
        parts.append(f"_All benchmarks: {(time.time() - t_all) / 60:.1f} min._\n")
        if out.exists():  # the hand-written verdicts ("## Targets ...") survive a full rerun
            parts += ["## " + sec for sec in out.read_text().split("\n## ")[1:]
                      if sec.startswith("Targets")]
        out.write_text("\n".join(parts))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
