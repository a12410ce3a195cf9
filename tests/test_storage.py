"""Run folders on object storage: a real S3 API (moto's server on 127.0.0.1) reached through
pyarrow, as a user's `--storage s3://bucket/prefix` would be."""

from __future__ import annotations

import os
import subprocess
import sys

import pandas as pd
import pytest

from hpo.errors import SpecError
from hpo.experiment import load_experiment
from hpo.report import build_report
from hpo.runner import run
from hpo.storage import open_storage, public
from tests.conftest import write_spec


@pytest.fixture(scope="module")
def s3():
    try:
        from moto.server import ThreadedMotoServer
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail("moto[server] missing in CI (it is in the test extras)")
        pytest.skip("pip install 'moto[server]'")
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    # credentials in the URI: Ray's workers get them with the filesystem, not from our env
    yield (f"s3://key:secret@hpo-bucket/runs?endpoint_override={host}:{port}&scheme=http"
           f"&region=us-east-1&allow_bucket_creation=true")
    server.stop()


def remote_files(uri: str, path: str) -> list[str]:
    import pyarrow.fs as pafs

    fs, _ = pafs.FileSystem.from_uri(uri)
    return sorted(i.path.removeprefix(path + "/")
                  for i in fs.get_file_info(pafs.FileSelector(path, recursive=True))
                  if i.type == pafs.FileType.File)


def test_uri_is_checked_for_write_access_before_anything(s3, tmp_path, monkeypatch):
    monkeypatch.setenv("HPO_STAGING_DIR", str(tmp_path / "staging"))
    st = open_storage(s3)
    assert st.is_remote and st.root.is_dir() and "secret" not in str(st.root)
    no_bucket = s3.replace("hpo-bucket", "missing-bucket").replace("&allow_bucket_creation=true", "")
    with pytest.raises(SpecError, match=r"storage: cannot write to s3://missing-bucket/runs: .*credentials") as e:
        open_storage(no_bucket)
    assert "secret" not in str(e.value)  # credentials never printed
    with pytest.raises(SpecError, match=r"scheme `ftp://` is not supported"):
        open_storage("ftp://host/runs")
    assert public(s3) == "s3://hpo-bucket/runs"


def test_run_writes_everything_to_the_bucket(s3, tmp_path, ray_session, monkeypatch):
    monkeypatch.setenv("HPO_STAGING_DIR", str(tmp_path / "staging"))
    path = write_spec(tmp_path, """\
name: on_s3
trainable: mlp
dataset: {name: mnist_sample, train_size: 500, val_size: 200}
metric: val_acc
budget: {max_epochs: 2, max_concurrent_trials: 2}
execution: {pack: off}  # a folder and checkpoints per trial on the bucket
params:
  lr: {grid: [0.1, 0.01]}
  hidden: [16]
  batch_size: 100
""")
    res = run(load_experiment(path), storage=s3, dashboard=False, verbose=0)
    assert res.state == "finished" and (res.trials["status"] == "completed").all()
    files = remote_files(s3, "hpo-bucket/runs/on_s3")
    # Ray wrote the trial folders and checkpoints there; hpo its spec, state, events and tables
    for f in ("spec.yaml", "run.json", "events.jsonl", "trials.csv", "trials.parquet", "history.parquet"):
        assert f in files, files
    trial_results = [f for f in files if f.endswith("/result.json")]
    assert len(trial_results) == 2 and any("/checkpoint_" in f for f in files)
    # a second run with the same name does not reuse the folder in the bucket
    res2 = run(load_experiment(path, ["params.lr={grid: [0.1]}"]), storage=s3, dashboard=False, verbose=0)
    assert res2.run_dir.name == "on_s3-2"
    # anyone can rebuild the tables and the report from a download of the bucket's folder
    import pyarrow.fs as pafs

    fs, _ = pafs.FileSystem.from_uri(s3)
    copy = tmp_path / "downloaded"
    pafs.copy_files("hpo-bucket/runs/on_s3", str(copy), source_filesystem=fs,
                    destination_filesystem=pafs.LocalFileSystem())
    out = build_report(copy, tmp_path / "r.html")
    assert "on_s3" in out.read_text()
    assert len(pd.read_csv(copy / "trials.csv")) == 2
    # the runs of the bucket at a glance, from the URI alone (a fresh staging folder)
    monkeypatch.setenv("HPO_STAGING_DIR", str(tmp_path / "staging2"))
    r = subprocess.run([sys.executable, "-m", "hpo.cli", "runs", s3], capture_output=True, text=True,
                       env={**os.environ}, timeout=120)
    assert r.returncode == 0, r.stderr
    rows = {line.split()[0]: line.split()[1:3] for line in r.stdout.splitlines()[1:]}
    assert rows == {"on_s3-2": ["finished", "1/1"], "on_s3": ["finished", "2/2"]}


def test_interrupted_run_on_s3_resumes_and_reports_from_the_uri(s3, tmp_path, ray_session, monkeypatch):
    """Resume and report take the run's URI; the driver's local staging copy may be gone."""
    import shutil
    import subprocess
    import sys

    from hpo.runner import resume
    from hpo.storage import locate

    monkeypatch.setenv("HPO_STAGING_DIR", str(tmp_path / "staging"))
    path = write_spec(tmp_path, """\
name: resumable
trainable: mlp
dataset: {name: mnist_sample, train_size: 500, val_size: 200}
metric: val_acc
budget: {max_epochs: 2}
execution: {pack: off}  # trials interrupted one by one
params:
  lr: {grid: [0.1, 0.01, 0.001]}
  hidden: [16]
  batch_size: 100
""")
    res = run(load_experiment(path), storage=s3, dashboard=False, verbose=0)
    # simulate a run cut short: its last trial's results and completion event are lost
    import pyarrow.fs as pafs

    fs, _ = pafs.FileSystem.from_uri(s3)
    last = res.trials["trial_id"].iloc[-1]
    fs.delete_dir(f"hpo-bucket/runs/resumable/trial_{last}")
    shutil.rmtree(res.run_dir)  # and the staging copy with it
    base = s3.split("?")[0]
    uri = f"{base}/resumable?{s3.split('?')[1]}"
    storage, run_dir = locate(uri)
    assert (run_dir / "spec.yaml").exists() and not (run_dir / f"trial_{last}").exists()
    res2 = resume(load_experiment(run_dir / "spec.yaml"), run_dir, storage=storage, dashboard=False,
                  verbose=0)
    assert res2.state == "finished" and len(res2.trials) == 3
    assert (res2.trials["status"] == "completed").all() and (res2.trials["epochs"] == 2).all()
    r = subprocess.run([sys.executable, "-m", "hpo.cli", "report", uri, "-o", str(tmp_path / "r.html")],
                       capture_output=True, text=True, env={**os.environ}, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "resumable" in (tmp_path / "r.html").read_text() and "secret" not in r.stdout + r.stderr


def test_a_bucket_run_killed_resumes_from_another_machine(s3, tmp_path):
    """The record goes to the bucket as the run goes: a driver killed with SIGKILL mid-run, its
    staging copy gone (another machine), and `hpo resume URI` finishes the run from the bucket
    alone: every trial once, the finished ones kept."""
    import json
    import signal
    import time

    spec = write_spec(tmp_path, """\
name: cut_on_s3
trainable: mlp
dataset: {name: mnist_sample, train_size: 500, val_size: 200}
metric: val_acc
budget: {max_epochs: 3, max_concurrent_trials: 1}
execution: {pack: off}
checkpoint: {every: 1}
params:
  lr: {grid: [0.1, 0.03, 0.01, 0.003]}
  hidden: [16]
  batch_size: 100
""")
    env = {**os.environ, "HPO_OFFLINE": "1", "HPO_STAGING_DIR": str(tmp_path / "machine_a")}
    proc = subprocess.Popen([sys.executable, "-m", "hpo.cli", "run", str(spec), "--storage", s3,
                             "--no-dashboard", "--no-progress"], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    import pyarrow.fs as pafs

    fs, _ = pafs.FileSystem.from_uri(s3)

    def bucket_completes() -> list[str]:
        try:
            with fs.open_input_stream("hpo-bucket/runs/cut_on_s3/events.jsonl") as f:
                lines = f.read().decode().splitlines()
        except OSError:
            return []
        return [e["trial_id"] for e in map(json.loads, lines) if e.get("event") == "complete"]

    deadline = time.time() + 300
    while len(bucket_completes()) < 2 and proc.poll() is None and time.time() < deadline:
        time.sleep(0.2)
    assert proc.poll() is None, proc.stdout.read()[-3000:]
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    before = set(bucket_completes())
    assert 2 <= len(before) < 4
    base, query = s3.split("?")
    uri = f"{base}/cut_on_s3?{query}"
    r = subprocess.run([sys.executable, "-m", "hpo.cli", "resume", uri, "--no-dashboard", "--no-progress"],
                       cwd=tmp_path, capture_output=True, text=True, timeout=600,
                       env={**env, "HPO_STAGING_DIR": str(tmp_path / "machine_b")})
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    assert f"{len(before)} finished trial(s) kept" in r.stdout and "secret" not in r.stdout + r.stderr
    staged = next((tmp_path / "machine_b").rglob("cut_on_s3/trials.parquet"))
    t = pd.read_parquet(staged)
    assert len(t) == 4 and t["trial_id"].is_unique and (t["status"] == "completed").all()
    assert (t["epochs"] == 3).all() and before <= set(t["trial_id"])
    assert sorted(bucket_completes()) == sorted(set(bucket_completes()))  # each trial ended once


def test_a_trials_epochs_reach_the_bucket_before_the_event_that_ends_it(s3, tmp_path, monkeypatch):
    """A kill between two uploads must never leave the bucket an end event without the epochs
    it ends: a resume elsewhere would keep that trial as finished, with nothing (CI saw a
    trial kept with 0 epochs). The trial's log goes first, as the trial ends and at the end."""
    from types import SimpleNamespace

    import pyarrow.fs as pafs

    from hpo.runner.events import Events

    monkeypatch.setenv("HPO_STAGING_DIR", str(tmp_path / "staging"))
    st = open_storage(s3)
    d = st.root / "order"
    (d / "trial_t1").mkdir(parents=True)
    for f in ("spec.yaml", "run.json", "plan.json", "events.jsonl", "trials.csv", "trial_t1/trial.jsonl"):
        (d / f).write_text("{}\n")
    order: list[str] = []

    class Recorder:
        is_remote = True

        def upload_files(self, run_dir, rels):
            order.extend(rels)

    ev = Events(d, None, storage=Recorder())
    ev.on_trial_complete(0, [], SimpleNamespace(trial_id="t1", config={}))
    assert order.index("trial_t1/trial.jsonl") < order.index("events.jsonl"), order
    copied: list[str] = []
    real = pafs.copy_files
    monkeypatch.setattr(pafs, "copy_files", lambda src, dst, **kw: (copied.append(src), real(src, dst, **kw)))
    st.upload(d)
    names = [os.path.relpath(c, d) for c in copied]
    assert names.index("trial_t1/trial.jsonl") < names.index("events.jsonl"), names
