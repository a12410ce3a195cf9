"""Trackers: a real local MLflow tracking server (SQLite backend) started on 127.0.0.1 by the
test (hpo's callback: a parent run per sweep, a nested run per trial, no Ray bookkeeping), W&B
in offline mode, TensorBoard files (Ray's callbacks)."""

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
        parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
        assert len(parents) == 1 and parents[0].info.run_name == "tracked"
        parent = parents[0]
        assert parent.info.status == "FINISHED" and parent.data.params["metric"] == "val_acc"
        assert parent.data.params["trials"] == "2" and parent.data.params["searched"] == "lr"
        trials = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
        assert len(trials) == 2 and len(runs) == 3
        assert sorted(r.info.run_name for r in trials) == sorted(res.trials["trial_id"])
        assert {float(r.data.params["lr"]) for r in trials} == {0.1, 0.01}
        for r in trials:
            assert r.info.status == "FINISHED"
            assert set(r.data.params) == {"lr", "hidden", "batch_size", "seed"}  # the trial's parameters only
            # the trainable's metrics, none of Ray's fields (pid, done, config/lr, ...)
            assert set(r.data.metrics) <= {"train_loss", "train_acc", "val_loss", "val_acc", "test_loss",
                                           "test_acc", "epoch_time_s"}, set(r.data.metrics)
            assert [m.step for m in client.get_metric_history(r.info.run_id, "val_acc")] == [1, 2, 3]
            test = client.get_metric_history(r.info.run_id, "test_acc")
            assert len(test) == 1 and 0 < test[0].value <= 1  # once, at the end, never NaN
            row = res.trials.set_index("trial_id").loc[r.info.run_name]
            assert test[0].value == pytest.approx(row["test_acc"])

        offline = list((res.run_dir / "wandb").glob("offline-run-*"))
        assert len(offline) == 2 and all(list(d.glob("*.wandb")) for d in offline)

        events = list(res.run_dir.glob("trial_*/events.out.tfevents.*"))
        assert len(events) == 2 and all("ray/tune/val_acc" in tb_tags(p) for p in events)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(30)


def test_an_mlflow_server_that_fails_mid_run_never_stalls_trials(recwarn):
    """The first failing request switches the callback off with one warning; nothing else is
    sent (a dead server would otherwise cost each request MLflow's minutes of retries)."""
    from types import SimpleNamespace

    from hpo.adapters.mlflow_sweep import MlflowSweep

    calls = []

    class Dying:
        def create_run(self, exp_id, run_name, tags):
            calls.append("create_run")
            return SimpleNamespace(info=SimpleNamespace(run_id=run_name))

        def log_batch(self, run_id, metrics, params):
            calls.append("log_batch")
            raise ConnectionError("server went away")

        def set_terminated(self, run_id, status):
            calls.append("set_terminated")

    cb = MlflowSweep(None, "e", {}, "sweep", {"val_acc": "max", "test_acc": "max"}, {"metric": "val_acc"})
    cb._client, cb._exp_id, cb._parent = Dying(), "1", "parent"
    trial = SimpleNamespace(trial_id="t1", config={"lr": 0.1, "_hpo": {"plan": 0}})
    cb.on_trial_start(0, [], trial)
    for epoch in (1, 2, 3):
        cb.on_trial_result(0, [], trial, {"epoch": epoch, "val_acc": 0.5, "test_acc": float("nan")})
    cb.on_trial_complete(0, [], trial)
    cb.on_experiment_end([])
    assert calls == ["create_run", "log_batch"]
    assert len([w for w in recwarn if "tracking.mlflow" in str(w.message)]) == 1
