"""Kill -9 `hpo run` at many moments of one sweep, `hpo resume` it, and compare with the same
sweep run without a kill: every configuration exactly once, every trial that had finished before
the kill untouched (its log byte for byte), the same results per configuration where the sweep
is deterministic, no traceback.

Moments: seeded random points of the uninterrupted run's wall time (start-up, mid-trial, between
trials, the tables and the report all fall in it), plus two chosen ones: right after the last
trial ended, and while the tables / report are written. CI runs a sample (HPO_KILL_POINTS
random points per sweep, default 1, and one chosen moment each); `make test-kill` runs the long
version (HPO_KILL_POINTS=8, both chosen moments for every sweep).
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import time
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import write_spec
from tests.test_resume import completes, hpo

pytestmark = pytest.mark.slow

BASE = """\
name: sweep
trainable: mlp
dataset: {name: mnist_sample, train_size: 2000, val_size: 300}
metric: val_acc
checkpoint: {every: 1}
seed: 3
"""

SWEEPS = {
    # grid: lr x weight_decay, 8 configurations; packed (2 packs of 4) and not
    "packed": BASE + """\
searcher: {name: grid}
execution: {pack: 4}
budget: {max_epochs: 3, max_concurrent_trials: 2}
params: {lr: {grid: [0.3, 0.1, 0.03, 0.01]}, weight_decay: {grid: [0.001, 0.0001]}, hidden: [16], batch_size: 50}
""",
    "grid": BASE + """\
searcher: {name: grid}
execution: {pack: off}
budget: {max_epochs: 3, max_concurrent_trials: 2}
params: {lr: {grid: [0.3, 0.1, 0.03, 0.01]}, weight_decay: {grid: [0.001, 0.0001]}, hidden: [16], batch_size: 50}
""",
    # seeded random + ASHA, one trial at a time: its decisions are deterministic
    "asha": BASE + """\
searcher: {name: random}
scheduler: {name: asha, grace_period: 1, reduction_factor: 2}
execution: {pack: off}
budget: {num_samples: 8, max_epochs: 4, max_concurrent_trials: 1}
params: {lr: {loguniform: [0.0003, 0.5]}, hidden: [16], batch_size: 50}
""",
    "tpe": BASE + """\
searcher: {name: optuna, sampler: tpe, n_startup_trials: 3}
budget: {num_samples: 6, max_epochs: 2, max_concurrent_trials: 2}
params: {lr: {loguniform: [0.001, 0.5]}, hidden: [16], batch_size: 50}
""",
}
DETERMINISTIC = {"packed", "grid", "asha"}
CHOSEN = {"packed": ["after_last"], "grid": ["tables"], "asha": ["after_last"], "tpe": ["tables"]}
COLS = ["status", "epochs", "best_val_acc", "best_epoch"]


def _run(where: Path, text: str):
    where.mkdir(parents=True, exist_ok=True)
    spec = write_spec(where, text)
    return hpo("run", str(spec), "--storage", str(where / "runs"), "--no-dashboard", "--no-progress",
               cwd=where, start_new_session=True), where / "runs" / "sweep"


def _own(out: str) -> str:
    return "\n".join(ln for ln in out.splitlines() if not re.search(r"\(\w+ pid=\d+\)", ln))


def _by_config(run_dir: Path) -> pd.DataFrame:
    t = pd.read_parquet(run_dir / "trials.parquet")
    keys = [c for c in t.columns if c.startswith("param.")]
    return t.assign(key=t[keys].round(12).astype(str).agg("|".join, axis=1)).set_index("key")


def _kill_at(proc, run_dir: Path, moment: str | float, n: int, budget_s: float) -> bool:
    """Kill the run's whole process group at `moment` (seconds after its start, or a chosen
    moment); False if it had ended before."""
    t0, deadline = time.time(), time.time() + budget_s
    while proc.poll() is None and time.time() < deadline:
        if isinstance(moment, float) and time.time() - t0 >= moment:
            break
        if moment == "after_last" and len(set(completes(run_dir))) >= n:
            break
        if moment == "tables" and ((run_dir / "trials.parquet").exists() or (run_dir / "report.html").exists()):
            break
        time.sleep(0.02)
    if proc.poll() is not None:
        return False
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    return True


@pytest.mark.parametrize("sweep", list(SWEEPS))
def test_killed_anywhere_and_resumed_equals_the_uninterrupted_sweep(tmp_path, sweep):
    text = SWEEPS[sweep]
    t0 = time.time()
    proc, ref_dir = _run(tmp_path / "whole", text)
    out = proc.communicate(timeout=600)[0]
    wall = time.time() - t0
    assert proc.returncode == 0, out[-3000:]
    want = _by_config(ref_dir)
    n = len(want)
    rng = random.Random(f"{sweep}-{os.environ.get('HPO_KILL_SEED', '0')}")
    k = int(os.environ.get("HPO_KILL_POINTS", "1"))
    chosen = ["after_last", "tables"] if k > 1 else CHOSEN[sweep]
    moments: list[str | float] = [round(rng.uniform(0.05, 1.0) * wall, 2) for _ in range(k)] + chosen
    killed = 0
    for i, moment in enumerate(moments):
        proc, run_dir = _run(tmp_path / f"kill{i}", text)
        if not _kill_at(proc, run_dir, moment, n, 600):
            continue  # it finished first: nothing to resume from that moment
        if not (run_dir / "spec.yaml").exists():
            continue  # killed before the run folder held its spec: there is no run to resume
        killed += 1
        done = set(completes(run_dir))
        logs = {t: (run_dir / f"trial_{t}" / "trial.jsonl").read_bytes() for t in done}
        r = hpo("resume", str(run_dir), "--no-dashboard", "--no-progress", cwd=run_dir.parent.parent)
        said = r.communicate(timeout=600)[0]
        where = f"{sweep}, killed at {moment} (of {wall:.1f} s):\n{said[-3000:]}"
        assert r.returncode == 0, where
        assert "Traceback" not in _own(said), where
        got = _by_config(run_dir)
        assert len(got) == n and got.index.is_unique and got["trial_id"].is_unique, where
        assert set(got.index) == set(want.index) or sweep == "tpe", where
        assert (got["status"].isin(["completed", "stopped"])).all(), got[["status", "status_detail"]]
        ends = [t for t in completes(run_dir)]
        assert len(ends) == len(set(ends)), where  # each trial ended once
        for t, before in logs.items():  # a finished trial's record is never rewritten
            assert (run_dir / f"trial_{t}" / "trial.jsonl").read_bytes() == before, (t, where)
        if sweep in DETERMINISTIC:
            pd.testing.assert_frame_equal(got.sort_index()[COLS], want.sort_index()[COLS],
                                          atol=2e-5, rtol=0, obj=where)
        else:
            assert got["param.lr"].is_unique, where  # no configuration proposed twice
        assert json.loads((run_dir / "run.json").read_text())["state"] == "finished", where
    assert killed >= 1, f"{sweep}: every kill came after the run had ended ({wall:.1f} s)"
    print(f"{sweep}: {killed} of {len(moments)} kill points hit and passed")
