"""The warm local Ray: `hpo up`, runs that join it by themselves, `hpo down` by process id."""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import subprocess
import sys
import time

import pandas as pd
import psutil
import pytest

from hpo.runner import head
from tests.conftest import write_spec

SPEC = """\
name: warm
trainable: mlp
dataset: {name: mnist_sample, train_size: 600, val_size: 200}
metric: val_acc
budget: {max_epochs: 1, max_concurrent_trials: 2}
params:
  lr: {grid: [0.1, 0.01]}
  hidden: [16]
execution: {pack: off}
"""


def loopback(ip: str) -> bool:
    a = ipaddress.ip_address(ip)  # 127.0.0.1, ::1, or 127.0.0.1 as an IPv4-mapped IPv6 address
    return a.is_loopback or (a.version == 6 and a.ipv4_mapped is not None and a.ipv4_mapped.is_loopback)


def cli(*args: str, cwd, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hpo.cli", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout)


def test_a_stale_record_is_ignored_and_removed(tmp_path, monkeypatch):
    monkeypatch.setenv("HPO_HOME", str(tmp_path))
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    for pid in (gone.pid, os.getpid()):  # a dead process, and a live one that is not a head
        head.record_path().write_text(json.dumps({"pid": pid, "address": "127.0.0.1:1"}))
        assert head.running() is None and not head.record_path().exists()
    import hpo

    assert hpo.down() is None  # the Python API: nothing to stop


@pytest.mark.slow
def test_up_then_runs_join_it_and_down_stops_it(tmp_path, monkeypatch):
    monkeypatch.setenv("HPO_HOME", str(tmp_path / "home"))
    spec = write_spec(tmp_path, SPEC)
    up = cli("up", cwd=tmp_path)  # with its dashboard, as a user gets it
    assert up.returncode == 0, up.stdout + up.stderr
    rec = json.loads((tmp_path / "home" / "ray_head.json").read_text())
    pid = rec["pid"]
    try:
        assert f"started a warm local Ray (process {pid}" in up.stdout and "hpo down" in up.stdout
        assert "already running: a warm local Ray (process" in cli("up", cwd=tmp_path).stdout
        listening = set()
        for p in [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]:
            with contextlib.suppress(psutil.Error):
                listening |= {(p.name(), c.laddr.ip) for c in p.net_connections("inet")
                              if c.status == psutil.CONN_LISTEN}
        assert {"gcs_server", "raylet"} <= {n for n, _ in listening}, listening
        assert all(loopback(ip) for _, ip in listening), listening
        for name in ("first", "second"):  # each run joins the same Ray, which outlives it
            r = cli("run", str(spec), "--storage", str(tmp_path / "runs"), "--name", name, "--no-progress",
                    "--own-driver", cwd=tmp_path)  # (without: the head runs it, test_served)
            assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
            assert f"joined the warm Ray started by `hpo up` (process {pid}" in r.stdout
            t = pd.read_csv(tmp_path / "runs" / name / "trials.csv")
            assert len(t) == 2 and (t["status"] == "completed").all()
            assert head.running() and head.running()["pid"] == pid
    finally:
        down = cli("down", cwd=tmp_path)
    assert down.returncode == 0 and f"stopped the warm Ray (process {pid})" in down.stdout
    deadline = time.time() + 30
    while psutil.pid_exists(pid) and time.time() < deadline:
        time.sleep(0.2)
    assert not psutil.pid_exists(pid) and not (tmp_path / "home" / "ray_head.json").exists()
    assert "no warm Ray is running" in cli("down", cwd=tmp_path).stdout
