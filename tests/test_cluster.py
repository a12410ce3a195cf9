"""A real two-node Ray cluster on this machine: `hpo run --address` spreads trials over both
nodes and leaves a complete results folder."""

from __future__ import annotations

import os
import subprocess
import sys

import pandas as pd
import pytest

from tests.conftest import ROOT, write_spec

pytestmark = pytest.mark.slow

SPEC = """\
name: cluster
trainable: mlp
dataset: {name: mnist_sample, train_size: 2000, val_size: 500}
metric: val_acc
searcher: {name: grid}
budget: {max_epochs: 2, max_concurrent_trials: 2}
execution: {pack: off}  # four trials to spread over the nodes, not one pack
resources: {cpu: 1}
params:
  lr: {grid: [0.3, 0.1, 0.03, 0.01]}
  hidden: [32]
  batch_size: 50
"""


@pytest.fixture(scope="module")
def cluster():
    # the cluster's `python` is this venv's, as on a node where hpo is installed
    path = os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")
    env = {**os.environ, "HPO_OFFLINE": "1", "PATH": path}
    proc = subprocess.Popen([sys.executable, "-m", "tests.cluster_helper"], cwd=ROOT, env=env,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    found, lines = {}, []
    for line in proc.stdout:
        lines.append(line)
        if line.startswith(("ADDRESS ", "DASHBOARD ")):
            found[line.split()[0]] = line.split()[1]
        if "ADDRESS" in found:
            break
    assert "ADDRESS" in found and "DASHBOARD" in found, "".join(lines[-30:])
    yield found
    proc.stdin.close()  # the helper shuts down the nodes it started
    out = proc.stdout.read()
    assert proc.wait(timeout=120) == 0 and "SHUTDOWN" in out, out[-2000:]


def test_run_on_a_two_node_cluster(cluster, tmp_path):
    spec = write_spec(tmp_path, SPEC)
    r = subprocess.run([sys.executable, "-m", "hpo.cli", "run", str(spec), "--address", cluster["ADDRESS"],
                        "--storage", str(tmp_path / "runs"), "--no-progress"], cwd=tmp_path,
                       capture_output=True, text=True, timeout=600,
                       env={**os.environ, "HPO_OFFLINE": "1"})
    assert r.returncode == 0, (r.stdout + r.stderr)[-4000:]
    run_dir = tmp_path / "runs" / "cluster"
    trials = pd.read_csv(run_dir / "trials.csv")
    assert len(trials) == 4 and (trials["status"] == "completed").all()
    assert trials["node_id"].nunique() == 2, trials[["trial_id", "node_id"]]
    hist = pd.read_parquet(run_dir / "history.parquet")
    assert len(hist) == 8 and hist["node_id"].nunique() == 2
    for f in ("spec.yaml", "run.json", "events.jsonl", "trials.parquet"):
        assert (run_dir / f).exists()
    assert "Where trials ran" in (tmp_path / "reports" / "cluster.html").read_text()


def test_submit_as_a_ray_job(cluster, tmp_path):
    spec = write_spec(tmp_path, SPEC.replace("name: cluster", "name: submitted"))
    storage = tmp_path / "shared"
    r = subprocess.run([sys.executable, "-m", "hpo.cli", "submit", str(spec), "--address",
                        cluster["DASHBOARD"], "--storage", str(storage), "--wait",
                        "--set", "params.lr={grid: [0.1, 0.01]}"],
                       cwd=tmp_path, capture_output=True, text=True, timeout=600,
                       env={**os.environ, "HPO_OFFLINE": "1"})
    assert r.returncode == 0, (r.stdout + r.stderr)[-4000:]
    assert "ray job logs --follow" in r.stdout and "SUCCEEDED" in r.stdout
    trials = pd.read_csv(storage / "submitted" / "trials.csv")
    assert len(trials) == 2 and (trials["status"] == "completed").all()  # the --set travelled
    assert (storage / "reports" / "submitted.html").exists()


def test_submit_refuses_a_relative_storage(cluster, tmp_path):
    spec = write_spec(tmp_path, SPEC)
    r = subprocess.run([sys.executable, "-m", "hpo.cli", "submit", str(spec), "--address",
                        cluster["DASHBOARD"], "--storage", "runs"], cwd=tmp_path,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "--storage must be an absolute path" in r.stderr
