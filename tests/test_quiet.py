"""Quiet means quiet: `hpo.run(...)` (progress=False, the default) and `hpo run --quiet` print
nothing but errors, not even Ray's configuration box or a packing line (captured at the file
descriptors, in a process of its own as a user's script would run it)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import write_spec

pytestmark = pytest.mark.slow

SPEC = """\
name: hush
trainable: mlp
dataset: {name: mnist_sample, train_size: 500, val_size: 200}
metric: val_acc
searcher: {name: grid}
budget: {max_epochs: 1, max_concurrent_trials: 2}
params: {lr: {grid: [0.1, 0.01]}, hidden: [8], batch_size: 100}
"""


def test_a_quiet_api_run_prints_nothing(tmp_path):
    spec = write_spec(tmp_path, SPEC)
    code = (f"import hpo; r = hpo.run({str(spec)!r}, storage={str(tmp_path / 'runs')!r}, report_dir=None); "
            f"assert r.state == 'finished' and len(r.trials) == 2")
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                       timeout=600, env={**os.environ, "HPO_OFFLINE": "1"})
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout == "" and r.stderr == "", (r.stdout[-2000:], r.stderr[-2000:])


def test_hpo_run_and_resume_quiet_print_nothing_but_still_write_the_report(tmp_path):
    spec = write_spec(tmp_path, SPEC)
    env = {**os.environ, "HPO_OFFLINE": "1"}
    cli = [sys.executable, "-m", "hpo.cli"]
    r = subprocess.run([*cli, "run", str(spec), "--storage", str(tmp_path / "runs"), "--quiet"],
                       cwd=tmp_path, capture_output=True, text=True, timeout=600, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout == "" and r.stderr == "", (r.stdout[-2000:], r.stderr[-2000:])
    assert (tmp_path / "reports" / "hush.html").exists() and (tmp_path / "runs" / "hush" / "report.html").exists()
    r = subprocess.run([*cli, "resume", str(tmp_path / "runs" / "hush"), "--quiet"], cwd=tmp_path,
                       capture_output=True, text=True, timeout=600, env=env)
    assert r.returncode == 0 and r.stdout == "" and r.stderr == "", (r.stdout, r.stderr)
    # not quiet: the same resume says what it found
    r = subprocess.run([*cli, "resume", str(tmp_path / "runs" / "hush"), "--no-progress"], cwd=tmp_path,
                       capture_output=True, text=True, timeout=600, env=env)
    assert r.returncode == 0 and "is finished (2 trial(s)); nothing to resume" in r.stdout


def test_a_bad_spec_under_quiet_is_still_an_error(tmp_path):
    spec = write_spec(tmp_path, SPEC.replace("metric: val_acc", "metric: val_accc"))
    r = subprocess.run([sys.executable, "-m", "hpo.cli", "run", str(spec), "--quiet"], cwd=tmp_path,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and r.stdout == "" and "metric" in r.stderr and "Traceback" not in r.stderr
