"""GPU figures (`make bench-gpu`): the same sweeps as the CPU benchmarks, on CUDA, side by side in
one run: the lr_reg grid packed vs unpacked, the `cnn` sweep with a whole GPU per trial against
fractional GPUs (`resources.gpu: 0.25`: four trials share one device), the `cnn` packed through
torch.func (pack: 4, and `auto`, whose probe decides on this device) against unpacked, and the
packed-step table of benchmarks/func_pack.py measured on CUDA.

Refuses (exit 2) without a CUDA GPU: the CPU figures are `make bench`.

    HPO_DATA_DIR=../shared/datasets python benchmarks/gpu.py [--epochs 3]
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

CNN = """\
name: gpu_cnn
trainable: cnn
dataset: mnist
metric: val_acc
searcher: {{name: grid}}
budget: {{max_epochs: {epochs}, max_concurrent_trials: {conc}}}
resources: {{cpu: 1, gpu: {gpu}}}
params:
  lr: {{grid: [0.1, 0.05, 0.01, 0.005]}}
  dropout: {{grid: [0.0, 0.25]}}
  momentum: 0.9
  batch_size: 128
"""

CNN_PACK = """\
name: gpu_cnn_pack
trainable: cnn
dataset: mnist
metric: val_acc
searcher: {{name: grid}}
budget: {{max_epochs: {epochs}, max_concurrent_trials: 4}}
resources: {{cpu: 1, gpu: 0.25}}
params:
  lr: {{grid: [0.1, 0.05, 0.01, 0.005]}}
  seed: {{grid: [0, 1]}}
  momentum: 0.9
  batch_size: 128
"""


def sweep_s(run_dir: Path) -> float:
    """First trial start to last trial end, from the run's event log."""
    ev = [json.loads(x) for x in (run_dir / "events.jsonl").read_text().splitlines()]
    return (max(e["time"] for e in ev if e["event"] in ("complete", "error"))
            - min(e["time"] for e in ev if e["event"] == "start"))


def run(spec: Path | str, name: str, tmp: str, *sets: str) -> dict[str, float]:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "hpo.cli", "run", str(spec), "--name", name, "--storage", tmp,
                    "--quiet", "--no-dashboard", "--reports", tmp, *[a for s in sets for a in ("--set", s)]],
                   check=True, cwd=tmp, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    d = Path(tmp) / name
    t = pd.read_csv(d / "trials.csv")
    return {"wall_s": wall, "sweep_s": sweep_s(d), "trials": len(t),
            "packs": t["pack"].nunique() if "pack" in t and t["pack"].notna().any() else len(t),
            "best": t["best_val_acc"].max()}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=3)
    args = ap.parse_args()
    import torch

    if not torch.cuda.is_available():
        print("benchmarks/gpu.py needs a CUDA GPU (torch.cuda.is_available() is False here); "
              "the CPU figures are `make bench`.", file=sys.stderr)
        sys.exit(2)
    name = torch.cuda.get_device_name(0)
    rows: list[tuple[str, dict[str, float]]] = []
    with tempfile.TemporaryDirectory() as tmp:
        lr_reg = ROOT / "search_spaces" / "lr_reg.yaml"
        base = [f"budget.max_epochs={args.epochs}", "resources.gpu=0.25", "budget.max_concurrent_trials=4"]
        rows.append(("lr_reg (mlp), gpu 0.25, 4 at a time, unpacked",
                     run(lr_reg, "mlp_off", tmp, *base, "execution.pack=off")))
        rows.append(("lr_reg (mlp), gpu 0.25, 4 at a time, packed (auto)",
                     run(lr_reg, "mlp_auto", tmp, *base, "execution.pack=auto")))
        for gpu, conc in ((1, 1), (0.5, 2), (0.25, 4)):
            spec = Path(tmp) / f"cnn_{conc}.yaml"
            spec.write_text(CNN.format(epochs=args.epochs, gpu=gpu, conc=conc))
            rows.append((f"cnn, gpu {gpu}, {conc} at a time", run(spec, f"cnn_{conc}", tmp)))
        pack_spec = Path(tmp) / "cnn_pack.yaml"
        pack_spec.write_text(CNN_PACK.format(epochs=args.epochs))
        for pack in ("off", "4", "auto"):  # 8 cnn configs: unpacked, 2 torch.func packs, the probe's call
            rows.append((f"cnn pack, gpu 0.25, 4 at a time, execution.pack={pack}",
                         run(pack_spec, f"cnn_pack_{pack}", tmp, f"execution.pack={pack}")))
    print(f"### GPU: {name}, {os.cpu_count()} CPUs, {args.epochs} epochs per trial, full MNIST\n")
    print("| sweep | trials (packs) | wall s | sweep s | speed-up of the sweep | best val_acc |")
    print("|---|---|---|---|---|---|")
    refs = {"lr_reg": rows[0][1]["sweep_s"], "cnn,": rows[2][1]["sweep_s"], "cnn pack": rows[5][1]["sweep_s"]}
    for label, r in rows:
        ref = next(v for k, v in refs.items() if label.startswith(k))
        print(f"| {label} | {r['trials']} ({r['packs']}) | {r['wall_s']:.1f} | {r['sweep_s']:.1f} | "
              f"{ref / r['sweep_s']:.2f}x | {r['best']:.4f} |")
    print()
    sys.stdout.flush()
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "func_pack.py")], check=True)  # on CUDA


if __name__ == "__main__":
    main()
