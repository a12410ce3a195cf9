"""Kill -9 a real experiment mid-run, resume it, and check nothing ran twice or was lost."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter

import pandas as pd
import pytest

from hpo.storage import TRIAL_LOG
from tests.conftest import write_spec

pytestmark = pytest.mark.slow

SPEC = """\
name: killme
trainable: mlp
dataset: {name: mnist_sample, train_size: 9000, val_size: 500}
metric: val_acc
searcher: {name: grid}
budget: {max_epochs: 6, max_concurrent_trials: 2}
execution: {pack: off}  # ordinary trials (a packed run: test_faults.py)
params:
  lr: {grid: [0.3, 0.1, 0.03, 0.01, 0.003, 0.001]}
  hidden: [32]
  batch_size: 20
"""


def hpo(*args: str, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "hpo.cli", *args], cwd=kw.pop("cwd"),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "HPO_OFFLINE": "1"}, **kw)


def completes(run_dir) -> list[str]:
    p = run_dir / "events.jsonl"
    if not p.exists():
        return []
    return [e["trial_id"] for e in map(json.loads, p.read_text().splitlines()) if e["event"] == "complete"]


def test_sigkill_then_resume_runs_every_trial_exactly_once(tmp_path):
    spec = write_spec(tmp_path, SPEC)
    run_dir = tmp_path / "runs" / "killme"
    # its own session: the kill takes the driver and the Ray it started, like a machine restart
    proc = hpo("run", str(spec), "--storage", str(tmp_path / "runs"), "--no-dashboard", "--no-progress",
               cwd=tmp_path, start_new_session=True)
    deadline = time.time() + 240
    while len(completes(run_dir)) < 2 and proc.poll() is None and time.time() < deadline:
        time.sleep(0.2)
    assert proc.poll() is None, "the run finished before it could be killed:\n" + proc.stdout.read()
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    before = set(completes(run_dir))
    assert 2 <= len(before) < 6
    # hpo's own trial logs (Ray's result.json in the run folder is a copy its syncer makes, which
    # a kill can leave a line short: hpo reads its own log)
    lines_before = {t: (run_dir / f"trial_{t}" / TRIAL_LOG).read_text().splitlines() for t in before}

    r = hpo("resume", str(run_dir), "--no-dashboard", "--no-progress", cwd=tmp_path)
    out, _ = r.communicate(timeout=600)
    assert r.returncode == 0, out[-3000:]
    assert "resuming" in out

    events = Counter(completes(run_dir))
    assert len(events) == 6 and set(events.values()) == {1}, events  # each completed exactly once
    trials = pd.read_csv(run_dir / "trials.csv")
    assert trials["trial_id"].is_unique and len(trials) == 6
    assert (trials["status"] == "completed").all() and (trials["epochs"] == 6).all()
    for t, lines in lines_before.items():
        # finished trials were not rerun: what they logged is kept as it was, every epoch once
        after = (run_dir / f"trial_{t}" / TRIAL_LOG).read_text().splitlines()
        assert after[:len(lines)] == lines
        assert [json.loads(x)["epoch"] for x in after[1:]] == [1, 2, 3, 4, 5, 6]  # (line 1: config)
    hist = pd.read_parquet(run_dir / "history.parquet")
    assert not hist.duplicated(["trial_id", "epoch"]).any() and len(hist) == 36
    info = json.loads((run_dir / "run.json").read_text())
    assert info["state"] == "finished" and len(info["resumed"]) == 1


def test_resume_refuses_a_changed_spec(tmp_path):
    spec = write_spec(tmp_path, SPEC)
    storage = tmp_path / "runs"
    (storage / "killme").mkdir(parents=True)
    from hpo.experiment import load_experiment
    from hpo.spec import spec_to_yaml

    (storage / "killme" / "spec.yaml").write_text(spec_to_yaml(load_experiment(spec).spec))
    r = hpo("run", str(spec), "--storage", str(storage), "--resume", "--set", "budget.max_epochs=7",
            cwd=tmp_path)
    out, _ = r.communicate(timeout=120)
    assert r.returncode == 2, out
    assert "the spec differs from the one this run started with" in out
    assert "-  max_epochs: 6" in out and "+  max_epochs: 7" in out and "Traceback" not in out


def test_a_run_stopped_before_its_first_trial_starts_in_place(tmp_path):
    """A folder that holds its spec and nothing else (a kill while the run started): `hpo
    resume` runs it there, and then says it is finished and changes nothing."""
    run_dir = tmp_path / "x"
    run_dir.mkdir()
    write_spec(run_dir, SPEC.replace("max_epochs: 6", "max_epochs: 1").replace(
        "[0.3, 0.1, 0.03, 0.01, 0.003, 0.001]", "[0.1, 0.01]"))
    r = hpo("resume", str(run_dir), "--no-dashboard", "--no-progress", cwd=tmp_path)
    out, _ = r.communicate(timeout=300)
    assert r.returncode == 0 and "nothing of it was recorded yet" in out, out[-3000:]
    assert len(pd.read_parquet(run_dir / "trials.parquet")) == 2
    stamp = {p: p.stat().st_mtime_ns for p in run_dir.rglob("*") if p.is_file()}
    r = hpo("resume", str(run_dir), "--no-dashboard", "--no-progress", cwd=tmp_path)
    out, _ = r.communicate(timeout=300)
    assert r.returncode == 0 and "is finished (2 trial(s)); nothing to resume" in out, out[-3000:]
    assert {p: p.stat().st_mtime_ns for p in run_dir.rglob("*") if p.is_file()} == stamp
