"""Quiet means quiet: `hpo.run(...)` (progress=False, the default) prints nothing, not even
Ray's configuration box or a packing line (captured at the file descriptors, in a process of
its own as a user's script would run it)."""

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
