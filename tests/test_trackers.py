"""Trackers through Ray Tune's own logger callbacks: a real local MLflow tracking server
(SQLite backend) started on 127.0.0.1 by the test, W&B in offline mode, TensorBoard files."""

from __future__ import annotations

import os
import signal
import struct
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from hpo.errors import SpecError
from hpo.experiment import load_experiment
from tests.conftest import write_spec

SPEC = """\
name: tracked
trainable: mlp
dataset: {{name: mnist_sample, train_size: 600, val_size: 200}}
metric: val_acc
budget: {{max_epochs: 3, max_concurrent_trials: 2}}
tracking: {tracking}
params:
  lr: {{grid: [0.1, 0.01]}}
  hidden: [16]
  batch_size: 100
"""


@pytest.mark.parametrize("tracking,match", [
    ("{mlfow: {}}", r"tracking: unknown tracker `mlfow`\. Did you mean `mlflow`\?"),
    ("{wandb: {mode: offlin}}", r"tracking\.wandb\.mode: Input should be 'online', 'offline' or 'disabled'"),
    ("{mlflow: {experiment_name: x}}", r"tracking\.mlflow\.experiment_name: unknown option\. Did you mean `experiment`\?"),
])
def test_bad_tracking(tmp_path, tracking, match):
    with pytest.raises(SpecError, match=match):
        load_experiment(write_spec(tmp_path, SPEC.format(tracking=tracking)))


def test_missing_package_says_how_to_install(tmp_path, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == "wandb" else real(n, *a))
    with pytest.raises(SpecError, match=r"tracking\.wandb: logging to wandb needs the `wandb` package: pip install 'hpo\[wandb\]'"):
        load_experiment(write_spec(tmp_path, SPEC.format(tracking="{wandb: {mode: offline}}")))


def test_an_mlflow_server_that_does_not_answer_is_refused_before_ray(tmp_path):
    """Nothing listening at the tracking URI: one line naming it, at once (it used to stall
    every trial for minutes)."""
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    t0 = time.time()
    with pytest.raises(SpecError, match=rf"tracking\.mlflow: cannot reach the MLflow server at "
                                        rf"http://127\.0\.0\.1:{port} \(.*refused.*\)\. Start it"):
        load_experiment(write_spec(tmp_path, SPEC.format(
            tracking=f'{{mlflow: {{tracking_uri: "http://127.0.0.1:{port}"}}}}')))
    assert time.time() - t0 < 10


def tb_tags(path: Path) -> set[str]:
    """Scalar tags in a TensorBoard event file (TFRecord framing, tensorboardX's protobufs)."""
    from tensorboardX.proto import event_pb2

    tags, data = set(), path.read_bytes()
    i = 0
    while i + 12 <= len(data):
        (n,) = struct.unpack("<Q", data[i:i + 8])
        ev = event_pb2.Event.FromString(data[i + 12:i + 12 + n])
        tags |= {v.tag for v in ev.summary.value}
        i += 12 + n + 4
    return tags


@pytest.mark.slow
def test_mlflow_server_wandb_offline_and_tensorboard(tmp_path, ray_session):
    pytest.importorskip("mlflow")
    pytest.importorskip("wandb")
    from mlflow.tracking import MlflowClient

    from hpo.runner import run

    port = 15000 + os.getpid() % 2000
    server = subprocess.Popen([sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
                               "--backend-store-uri", f"sqlite:///{tmp_path}/mlflow.db",
                               "--default-artifact-root", str(tmp_path / "artifacts"), "--workers", "1"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    uri = f"http://127.0.0.1:{port}"
    try:
        t0 = time.time()
        while True:
            try:
                urllib.request.urlopen(f"{uri}/health", timeout=2)
                break
            except OSError:
                assert time.time() - t0 < 120, "the MLflow server did not start"
                time.sleep(1)
        tracking = f"{{mlflow: {{tracking_uri: '{uri}', experiment: hpo-test}}, wandb: {{mode: offline, project: t}}, tensorboard: {{}}}}"
        os.environ["WANDB_SILENT"] = "true"
        exp = load_experiment(write_spec(tmp_path, SPEC.format(tracking=tracking)))
        res = run(exp, storage=tmp_path / "runs", dashboard=False, verbose=0)
        assert (res.trials["status"] == "completed").all()

        client = MlflowClient(uri)
        e = client.get_experiment_by_name("hpo-test")
        runs = client.search_runs([e.experiment_id])
        assert len(runs) == 2
        assert {float(r.data.params["lr"]) for r in runs} == {0.1, 0.01}
        for r in runs:
            history = client.get_metric_history(r.info.run_id, "val_acc")
            assert [m.step for m in history] == [1, 2, 3] or len(history) == 3

        offline = list((res.run_dir / "wandb").glob("offline-run-*"))
        assert len(offline) == 2 and all(list(d.glob("*.wandb")) for d in offline)

        events = list(res.run_dir.glob("trial_*/events.out.tfevents.*"))
        assert len(events) == 2 and all("ray/tune/val_acc" in tb_tags(p) for p in events)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(30)
