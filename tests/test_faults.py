"""Fault injection: what hpo does when a run is disturbed, and that nothing a finished trial
produced is lost. Each test injects one fault into a real run (Ray, real processes):
concurrent runs into one storage, SIGINT / SIGTERM (once, and twice), a trial that fails once
(failure.retries), a trial's worker process killed, a time budget that runs out."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import write_spec
from tests.test_resume import completes, hpo

pytestmark = pytest.mark.slow

SPEC = """\
name: faulty
trainable: mlp
dataset: {{name: mnist_sample, train_size: 6000, val_size: 500}}
metric: val_acc
searcher: {{name: grid}}
budget: {{max_epochs: {epochs}, max_concurrent_trials: 2}}
execution: {{pack: off}}  # faults of ordinary trials (a packed run's kill and resume: below)
checkpoint: {{every: 1}}
params:
  lr: {{grid: [{lrs}]}}
  hidden: [32]
  batch_size: 20
"""


def spec_text(lrs: str = "0.1, 0.03, 0.01, 0.003", epochs: int = 4) -> str:
    return SPEC.format(lrs=lrs, epochs=epochs)


def run_json(run_dir: Path) -> dict:
    return json.loads((run_dir / "run.json").read_text())


def test_two_runs_started_at_once_get_their_own_folders(tmp_path):
    spec = write_spec(tmp_path, spec_text("0.1, 0.01", epochs=2))
    procs = [hpo("run", str(spec), "--storage", str(tmp_path / "runs"), "--no-dashboard", "--no-progress",
                 cwd=tmp_path) for _ in range(2)]
    outs = [p.communicate(timeout=600)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    dirs = sorted(d.name for d in (tmp_path / "runs").iterdir() if d.is_dir())
    assert dirs == ["faulty", "faulty-2"]
    ids = []
    for d in dirs:
        run_dir = tmp_path / "runs" / d
        assert run_json(run_dir)["state"] == "finished"
        t = pd.read_parquet(run_dir / "trials.parquet")
        assert len(t) == 2 and (t["status"] == "completed").all()
        # each folder holds its own run's trials only, and the events of those trials only
        assert {p.name.removeprefix("trial_") for p in run_dir.glob("trial_*")} == set(t["trial_id"])
        assert set(completes(run_dir)) == set(t["trial_id"])
        ids.append(set(t["trial_id"]))
    assert not ids[0] & ids[1]


def _start(tmp_path: Path, text: str) -> tuple[subprocess.Popen, Path]:
    spec = write_spec(tmp_path, text)
    proc = hpo("run", str(spec), "--storage", str(tmp_path / "runs"), "--no-dashboard", "--no-progress",
               cwd=tmp_path, start_new_session=True)
    return proc, tmp_path / "runs" / "faulty"


def _wait_for(cond, proc, timeout=240):
    deadline = time.time() + timeout
    while not cond() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.2)
    assert proc.poll() is None, "the run ended before the fault:\n" + proc.stdout.read()


SIGNAL_BOUND_S = 60  # a signalled run has written its tables and exited within this


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_ends_the_run_interrupted_and_it_resumes(tmp_path, sig):
    proc, run_dir = _start(tmp_path, spec_text("0.1, 0.03, 0.01, 0.003, 0.001, 0.3"))
    _wait_for(lambda: len(completes(run_dir)) >= 2, proc)
    done_before = set(completes(run_dir))
    t0 = time.time()
    os.kill(proc.pid, sig)  # the driver, as `kill` or Ctrl-C in its terminal would
    out, _ = proc.communicate(timeout=SIGNAL_BOUND_S)
    assert time.time() - t0 < SIGNAL_BOUND_S
    assert run_json(run_dir)["state"] == "interrupted", out[-2000:]
    assert "hpo resume" in out
    t = pd.read_parquet(run_dir / "trials.parquet")
    assert done_before <= set(t.loc[t["status"] == "completed", "trial_id"])  # kept
    r = hpo("resume", str(run_dir), "--no-dashboard", "--no-progress", cwd=tmp_path)
    out, _ = r.communicate(timeout=600)
    assert r.returncode == 0, out[-3000:]
    t = pd.read_parquet(run_dir / "trials.parquet")
    assert len(t) == 6 and (t["status"] == "completed").all() and (t["epochs"] == 4).all()
    assert sorted(completes(run_dir)) == sorted(set(completes(run_dir)))  # each exactly once
    assert run_json(run_dir)["state"] == "finished"


def test_a_second_signal_forces_exit_and_corrupts_nothing(tmp_path):
    proc, run_dir = _start(tmp_path, spec_text("0.1, 0.03, 0.01, 0.003, 0.001, 0.3"))
    _wait_for(lambda: len(completes(run_dir)) >= 2, proc)
    os.kill(proc.pid, signal.SIGINT)
    time.sleep(0.5)
    os.kill(proc.pid, signal.SIGINT)
    proc.communicate(timeout=SIGNAL_BOUND_S)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)  # what a forced exit left behind (its own Ray)
    info = run_json(run_dir)  # parses: written atomically, or not at all
    assert info["state"] in ("running", "interrupted")
    r = hpo("resume", str(run_dir), "--no-dashboard", "--no-progress", cwd=tmp_path)
    out, _ = r.communicate(timeout=600)
    assert r.returncode == 0, out[-3000:]
    t = pd.read_parquet(run_dir / "trials.parquet")
    assert len(t) == 6 and (t["status"] == "completed").all()


FLAKY = '''\
from pathlib import Path

from pydantic import BaseModel

METRICS = {"val_loss": "min"}


class Params(BaseModel):
    x: float = 0.0
    marker: str = ""
    seed: int = 0


def train(p: Params, ctx):
    for i in ctx.epochs():
        if i == 2 and not Path(p.marker).exists():  # the first attempt fails at epoch 3
            Path(p.marker).touch()
            raise RuntimeError("flaky: failed once at epoch 3")
        ctx.report({"val_loss": (p.x - 2) ** 2 + 1 / (i + 1)}, checkpoint={"i": i})
'''


@pytest.mark.parametrize("retries", [0, 1])
def test_failure_retries_restart_a_failed_trial_from_its_checkpoint(tmp_path, ray_session, retries):
    import hpo as api

    (tmp_path / "flaky_train.py").write_text(FLAKY)
    spec = write_spec(tmp_path, f"""\
name: flaky
trainable: flaky_train:train
dataset: mnist_sample
metric: val_loss
budget: {{max_epochs: 5}}
failure: {{retries: {retries}}}
checkpoint: {{every: 1}}
params:
  x: {{grid: [1.0, 3.0]}}
  marker: {tmp_path / 'failed_once'}
""")
    res = api.run(spec, storage=tmp_path / "runs")
    t, h = res.trials.set_index("trial_id"), res.history
    if retries:
        assert (t["status"] == "completed").all() and (t["epochs"] == 5).all()
        assert not h.duplicated(["trial_id", "epoch"]).any() and len(h) == 10  # resumed, not rerun
    else:
        failed = t[t["status"] == "error"]
        assert len(failed) == 1 and "flaky: failed once at epoch 3" in failed["error"].iloc[0]
        assert failed["epochs"].iloc[0] == 2  # what it reported before failing is kept
        assert (t["status"] == "completed").sum() == 1  # the sweep went on


@pytest.mark.parametrize("retries", [0, 1])
def test_a_killed_worker_is_retried_or_recorded_as_died(tmp_path, ray_session, retries):
    import hpo as api

    spec = write_spec(tmp_path, spec_text("0.1, 0.01", epochs=6).replace(
        "checkpoint:", f"failure: {{retries: {retries}}}\ncheckpoint:"))
    run_dir = tmp_path / "runs" / "faulty"
    killed: list[int] = []

    def kill_first_worker() -> None:
        deadline = time.time() + 300
        while time.time() < deadline and not killed:
            for rj in sorted(run_dir.glob("trial_*/result.json")):
                rows = [json.loads(x) for x in rj.read_text().splitlines() if x.strip()]
                if rows and rows[-1].get("epoch", 0) >= 2:
                    os.kill(rows[-1]["pid"], signal.SIGKILL)
                    killed.append(rows[-1]["pid"])
                    return
            time.sleep(0.1)

    threading.Thread(target=kill_first_worker, daemon=True).start()
    res = api.run(spec, storage=tmp_path / "runs")
    assert killed
    t = res.trials
    if retries:
        assert (t["status"] == "completed").all() and (t["epochs"] == 6).all()
        assert not res.history.duplicated(["trial_id", "epoch"]).any()
    else:
        dead = t[t["status"] == "error"]
        assert len(dead) == 1 and "worker process died" in dead["error"].iloc[0], t["error"].tolist()
        assert (t["status"] == "completed").sum() == 1


def test_a_time_budget_ends_the_run_and_says_so(tmp_path, ray_session):
    import hpo as api

    # 20 s: on a loaded 2-core machine a first trial may take 10 s to start; 200 epochs: no
    # trial can end by itself before the budget does
    spec = write_spec(tmp_path, spec_text("0.1, 0.03, 0.01, 0.003, 0.001, 0.3", epochs=200).replace(
        "budget: {", "budget: {time_budget_s: 20, "))
    t0 = time.time()
    res = api.run(spec, storage=tmp_path / "runs")
    assert time.time() - t0 < 90
    info = run_json(res.run_dir)
    assert info["state"] == "finished" and info.get("ended_by") == "time budget (20 s)"
    t = res.trials  # the trials that started; those the budget never reached are not rows
    assert 1 <= len(t) < 6 and not (t["epochs"] == 200).any()
    assert (t["status"] == "stopped").all(), t["status_detail"].tolist()
    assert t["status_detail"].str.endswith("the time budget (20 s) ran out").all()


def test_a_local_run_listens_on_loopback_only(tmp_path):
    """Every listening socket of a local run's processes (the driver, Ray's GCS, raylet, agents,
    dashboard and trial workers) is on a loopback address, none on all interfaces."""
    import ipaddress

    import psutil

    spec = write_spec(tmp_path, spec_text("0.1, 0.01", epochs=30))
    proc = hpo("run", str(spec), "--storage", str(tmp_path / "runs"), "--no-progress",  # dashboard on
               cwd=tmp_path, start_new_session=True)
    run_dir = tmp_path / "runs" / "faulty"
    try:
        _wait_for(lambda: any(run_dir.glob("trial_*/result.json")), proc)
        tree = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
        listening = set()
        for p in tree:
            with contextlib.suppress(psutil.Error):
                listening |= {(p.name(), c.laddr.ip, c.laddr.port) for c in p.net_connections("inet")
                              if c.status == psutil.CONN_LISTEN}
        names = {n for n, _, _ in listening}
        assert {"gcs_server", "raylet"} <= names, listening  # Ray's servers were seen
        assert any(n.startswith("ray::") for n in names), listening  # and workers / agents

        def loopback(ip: str) -> bool:
            a = ipaddress.ip_address(ip)
            return a.is_loopback or (a.version == 6 and a.ipv4_mapped is not None and a.ipv4_mapped.is_loopback)

        assert all(loopback(ip) for _, ip, _ in listening), sorted(x for x in listening if not loopback(x[1]))
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def test_an_optuna_run_killed_and_resumed_ends_with_exactly_its_samples(tmp_path):
    """TPE, kill -9 mid-way, resume: num_samples trials in all, each completed once, none
    proposed twice, and the live-view mirror holds each trial once."""
    text = spec_text().replace("searcher: {name: grid}", "searcher: {name: optuna}").replace(
        "lr: {grid: [0.1, 0.03, 0.01, 0.003]}", "lr: {loguniform: [0.001, 0.3]}").replace(
        "budget: {", "budget: {num_samples: 8, ")
    proc, run_dir = _start(tmp_path, text)
    _wait_for(lambda: len(completes(run_dir)) >= 3, proc)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    before = set(completes(run_dir))
    assert 3 <= len(before) < 8
    r = hpo("resume", str(run_dir), "--no-dashboard", "--no-progress", cwd=tmp_path)
    out, _ = r.communicate(timeout=600)
    assert r.returncode == 0, out[-3000:]
    t = pd.read_parquet(run_dir / "trials.parquet")
    assert len(t) == 8 and t["trial_id"].is_unique and (t["status"] == "completed").all(), t[["trial_id", "status_detail"]].to_string()
    assert before <= set(t["trial_id"])
    assert sorted(completes(run_dir)) == sorted(set(completes(run_dir)))
    assert t["param.lr"].is_unique  # no configuration proposed twice
    import optuna

    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(
        str(tmp_path / "runs" / "optuna.journal")))
    study = optuna.load_study(study_name="faulty", storage=storage)
    done = [s for s in study.trials if s.state == optuna.trial.TrialState.COMPLETE]
    assert len(done) == 8, [(s.number, s.state) for s in study.trials]


ASHA = """\
name: faulty
trainable: mlp
dataset: {name: mnist_sample, train_size: 3000, val_size: 500}
metric: val_acc
searcher: {name: random}
scheduler: {name: asha, grace_period: 1, reduction_factor: 2}
budget: {num_samples: 10, max_epochs: 6, max_concurrent_trials: 1}
checkpoint: {every: 1}
seed: 3
params:
  lr: {loguniform: [0.0003, 0.5]}
  hidden: [16]
  batch_size: 50
"""


def _decisions(run_dir: Path) -> dict[float, tuple[str, int]]:
    t = pd.read_parquet(run_dir / "trials.parquet")
    return {round(float(r["param.lr"]), 10): (r["status"], int(r["epochs"])) for _, r in t.iterrows()}


@pytest.mark.parametrize("scheduler", ["asha", "median"])
def test_a_scheduler_after_a_kill_and_resume_stops_the_same_trials(tmp_path, scheduler):
    """Concurrency 1, seeded random search: an uninterrupted run and one killed with SIGKILL
    after its 6th trial and resumed make the same ASHA / median-rule decisions for every trial."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    text = ASHA if scheduler == "asha" else ASHA.replace(
        "scheduler: {name: asha, grace_period: 1, reduction_factor: 2}",
        "scheduler: {name: median, grace_period: 1, min_samples_required: 2}")
    whole = hpo("run", str(write_spec(tmp_path / "a", text)), "--storage", str(tmp_path / "a" / "runs"),
                "--no-dashboard", "--no-progress", cwd=tmp_path / "a")
    assert whole.wait(600) == 0, whole.stdout.read()[-3000:]
    proc, run_dir = _start(tmp_path / "b", text)
    _wait_for(lambda: len(completes(run_dir)) >= 6, proc)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    r = hpo("resume", str(run_dir), "--no-dashboard", "--no-progress", cwd=tmp_path / "b")
    out, _ = r.communicate(timeout=600)
    assert r.returncode == 0, out[-3000:]
    assert "starts empty" not in out
    want, got = _decisions(tmp_path / "a" / "runs" / "faulty"), _decisions(run_dir)
    assert len(want) == 10 and any(s == "stopped" for s, _ in want.values())  # it did stop some
    assert got == want


PACKED = """\
name: faulty
trainable: mlp
dataset: {name: mnist_sample, train_size: 6000, val_size: 500}
metric: val_acc
searcher: {name: grid}
execution: {pack: auto}
budget: {max_epochs: 8, max_concurrent_trials: 1}
checkpoint: {every: 1}
params:
  lr: {grid: [0.3, 0.1, 0.03, 0.01]}
  dropout: 0.2
  momentum: 0.9
  hidden: [32]
  batch_size: 20
"""


def test_a_packed_run_killed_resumes_each_pack_from_its_checkpoint(tmp_path):
    """A pack killed with SIGKILL mid-way resumes from its last checkpoint (epoch 1 is not
    trained again) and ends with the tables of an uninterrupted run."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    whole = hpo("run", str(write_spec(tmp_path / "a", PACKED)), "--storage", str(tmp_path / "a" / "runs"),
                "--no-dashboard", "--no-progress", cwd=tmp_path / "a")
    out = whole.communicate(timeout=600)[0]
    assert whole.returncode == 0 and "packed" in out, out[-3000:]
    proc, run_dir = _start(tmp_path / "b", PACKED)

    def epochs_done() -> int:
        rows = [json.loads(x) for p in run_dir.glob("trial_*/result.json")
                for x in p.read_text().splitlines() if x.strip()]
        return max((r.get("epoch", 0) for r in rows), default=0)

    _wait_for(lambda: epochs_done() >= 3, proc)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert epochs_done() < 8
    r = hpo("resume", str(run_dir), "--no-dashboard", "--no-progress", cwd=tmp_path / "b")
    out, _ = r.communicate(timeout=600)
    assert r.returncode == 0, out[-3000:]
    (pack,) = list(run_dir.glob("trial_*/trial.jsonl"))
    epochs = [json.loads(x)["epoch"] for x in pack.read_text().splitlines()[1:]]
    assert epochs.count(1) == 1, epochs  # resumed mid-way, not restarted
    cols = ["status", "epochs", "best_val_acc", "test_acc", "best_epoch"]
    want = pd.read_parquet(tmp_path / "a" / "runs" / "faulty" / "trials.parquet").set_index("param.lr")[cols]
    got = pd.read_parquet(run_dir / "trials.parquet").set_index("param.lr")[cols]
    assert len(got) == 4
    pd.testing.assert_frame_equal(got.sort_index(), want.sort_index(), atol=2e-5, rtol=0)


def test_cut_short_files_are_detected_and_rebuilt(tmp_path, ray_session):
    """A half-written trials table is rebuilt from the trials' own files when the run is read
    (never a traceback), also when Ray's copies of them were left empty; a trial log cut
    mid-line keeps the epochs before the cut; without
    the trials' files, a cut table is a clear error naming the file."""
    import shutil

    import hpo as api
    from hpo.errors import SpecError

    res = api.run(write_spec(tmp_path, spec_text("0.1, 0.01", epochs=3)), storage=tmp_path / "runs")
    d = res.run_dir
    want = pd.read_parquet(d / "trials.parquet")
    table = d / "trials.parquet"
    table.write_bytes(table.read_bytes()[: table.stat().st_size // 2])
    got = api.load_run(d).trials
    pd.testing.assert_frame_equal(got, want)
    # Ray's copy of its trial files to the run folder rewrites them in place: a driver killed
    # during it leaves them empty. hpo's own trial log keeps the trial whole (CI lost two
    # finished trials and a third's epochs that way)
    for f in d.glob("trial_*/*.json"):
        f.write_text("")
    (d / "trials.parquet").write_bytes(b"PAR1 cut")
    got = api.load_run(d)
    pd.testing.assert_frame_equal(got.trials, want)
    # `hpo resume` of the finished run whose table was cut: rebuilt, nothing rerun, nothing lost
    (d / "trials.parquet").write_bytes(b"PAR1 cut")
    again = api.resume(d, report_dir=None)
    assert again.outcome.unchanged and again.state == "finished"
    pd.testing.assert_frame_equal(again.trials, want)
    pd.testing.assert_frame_equal(pd.read_parquet(d / "trials.parquet"), want)
    log = sorted(d.glob("trial_*/trial.jsonl"))[0]
    text = log.read_text()
    log.write_text(text[: len(text) - len(text.splitlines()[-1]) // 2 - 1])  # the last line cut
    (d / "trials.parquet").write_bytes(b"PAR1 cut")
    got = api.load_run(d)
    tid = log.parent.name.removeprefix("trial_")
    assert sorted(got.history.loc[got.history["trial_id"] == tid, "epoch"]) == [1, 2]
    copy = tmp_path / "copy"
    shutil.copytree(d, copy, ignore=shutil.ignore_patterns("trial_*"))
    (copy / "trials.parquet").write_bytes(b"PAR1 cut")
    with pytest.raises(SpecError, match=r"trials.parquet cannot be read \(cut short\?\)"):
        api.load_run(copy)


def test_a_corrupt_checkpoint_is_passed_over_on_resume(tmp_path):
    """kill -9 mid-run, then every checkpoint of the unfinished trials cut short: `hpo resume`
    starts those trials again (their status_detail says which checkpoints could not be read),
    keeps the finished ones, and ends with every trial completed; never a traceback."""
    from hpo.runner.record import read_trials

    proc, run_dir = _start(tmp_path, spec_text(epochs=6))

    def unfinished_with_checkpoints(n: int) -> list[Path]:
        done = set(completes(run_dir))
        return [d for d in run_dir.glob("trial_*") if d.name.removeprefix("trial_") not in done
                and len(list(d.glob("checkpoint_*/state.pt"))) >= n]

    def named_unfinished() -> set[str]:
        """The unfinished trials whose log names a checkpoint on disk (the resume starts them
        from it)."""
        return {t.trial_id for t in read_trials(run_dir).values()
                if not t.done and (c := t.checkpoint(run_dir)) and (run_dir / c[0] / "state.pt").exists()}

    _wait_for(named_unfinished, proc)
    assert proc.poll() is None, "the run ended before the fault:\n" + proc.stdout.read()
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done, named = set(completes(run_dir)), named_unfinished()
    hit = unfinished_with_checkpoints(1)
    for d in hit:
        for p in d.glob("checkpoint_*/state.pt"):
            p.write_bytes(p.read_bytes()[:100])  # cut short
    r = hpo("resume", str(run_dir), "--no-dashboard", "--no-progress", cwd=tmp_path)
    out, _ = r.communicate(timeout=600)
    assert r.returncode == 0, out[-3000:]
    assert "Traceback" not in _own_lines(out), out[-3000:]
    t = pd.read_parquet(run_dir / "trials.parquet").set_index("trial_id")
    assert len(t) == 4 and (t["status"] == "completed").all() and (t["epochs"] == 6).all(), t
    noted = {i for i, d in t["status_detail"].items() if "could not be read" in d}
    assert named and named <= noted <= {d.name.removeprefix("trial_") for d in hit}, (named, noted)
    assert noted.isdisjoint(done)
    for tid in noted:
        assert t.loc[tid, "status_detail"].endswith("the trial started again at epoch 1")
        epochs = [json.loads(x)["epoch"] for x in (run_dir / f"trial_{tid}" / "trial.jsonl").read_text().splitlines()[1:]]
        assert epochs[-6:] == [1, 2, 3, 4, 5, 6]  # trained again from the start
    hist = pd.read_parquet(run_dir / "history.parquet")
    assert not hist.duplicated(["trial_id", "epoch"]).any() and len(hist) == 24


def _own_lines(out: str) -> str:
    """The output without the lines Ray forwards from its worker processes ("(mlp pid=N) ...").
    A worker that Ray's shutdown SIGTERMs in the middle of a weakref callback prints Ray's own
    exit traceback there (seen once in CI, after a run that had finished correctly)."""
    return "\n".join(ln for ln in out.splitlines() if not re.search(r"\(\w+ pid=\d+\)", ln))


@pytest.fixture
def small_fs(tmp_path):
    """A 64 MB tmpfs of its own, to fill up or turn read-only mid-run (needs mount rights)."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(mnt)],
                      capture_output=True).returncode != 0:
        pytest.skip("needs the right to mount a tmpfs (root with CAP_SYS_ADMIN)")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


@pytest.mark.parametrize("fault", ["full", "read-only"])
def test_a_storage_that_fills_up_or_turns_read_only_stops_the_run_and_it_resumes(tmp_path, small_fs, fault):
    """Mid-run the storage fills up (a file takes all of it) or is remounted read-only: the run
    stops at once with the path and the reason (exit 4), keeps what was written, and `hpo
    resume` finishes every trial once the storage is fixed."""
    spec = write_spec(tmp_path, spec_text(epochs=6))
    run_dir = small_fs / "runs" / "faulty"
    proc = hpo("run", str(spec), "--storage", str(small_fs / "runs"), "--no-dashboard", "--no-progress",
               cwd=tmp_path, start_new_session=True)
    _wait_for(lambda: len(list(run_dir.glob("trial_*/checkpoint_*"))) >= 4, proc)
    if fault == "full":
        with open(small_fs / "filler", "wb") as f, contextlib.suppress(OSError):
            while True:
                f.write(b"\0" * (1 << 20))
    else:
        subprocess.run(["mount", "-o", "remount,ro", str(small_fs)], check=True)
    out = proc.communicate(timeout=300)[0]
    assert proc.returncode == 4, out[-3000:]
    said = out.split("hpo: STOPPED: ", 1)[-1]
    want = "is full (no space left on device)" if fault == "full" else "became read-only"
    assert said.startswith(f"the storage {run_dir} {want}"), out[-3000:]
    assert f"hpo resume {run_dir}" in said and "Traceback" not in said
    done = set(completes(run_dir))
    if fault == "full":
        (small_fs / "filler").unlink()
    else:
        subprocess.run(["mount", "-o", "remount,rw", str(small_fs)], check=True)
    r = hpo("resume", str(run_dir), "--no-dashboard", "--no-progress", cwd=tmp_path)
    out, _ = r.communicate(timeout=600)
    assert r.returncode == 0, out[-3000:]
    t = pd.read_parquet(run_dir / "trials.parquet")
    assert len(t) == 4 and (t["status"] == "completed").all() and (t["epochs"] == 6).all(), t
    assert done <= set(completes(run_dir)) and len(completes(run_dir)) == 4  # each once
    hist = pd.read_parquet(run_dir / "history.parquet")
    assert not hist.duplicated(["trial_id", "epoch"]).any()
    # read-only: every epoch's row; full: a row the fault cut mid-line is the one thing lost
    assert len(hist) == 24 if fault == "read-only" else len(hist) >= 23


def test_storage_errors_are_told_apart_and_a_cut_line_loses_only_itself(tmp_path):
    """What says "the storage stopped taking writes" (and what does not), and a result.json
    whose line was cut by a full disk, with the resumed trial's next line written after it."""
    from hpo.runner.collect import collect, read_jsonl
    from hpo.runner.events import storage_errno

    assert storage_errno("OSError: [Errno 28] Error writing bytes to file. Detail: [errno 28] No "
                         "space left on device") == 28
    assert storage_errno("OSError: [Errno 30] Read-only file system: '/x'") == 30
    assert storage_errno("OSError: [Errno 2] No such file or directory") is None
    assert storage_errno(None) is None
    rows = [{"epoch": i, "config": {"lr": 0.1}, "val_acc": 0.5 + i / 10} for i in (1, 2, 3)]
    lines = [json.dumps(r) for r in rows]
    p = tmp_path / "result.json"
    p.write_text(lines[0] + "\n" + lines[1][:30] + lines[2] + "\n" + "garbage\n" + lines[2] + "\n")
    assert [r["epoch"] for r in read_jsonl(p)] == [1, 3, 3]
    # a trial folder whose params.json the fault left empty never started: skipped, not a crash
    run = tmp_path / "run"
    (run / "trial_a_00000").mkdir(parents=True)
    (run / "trial_a_00000" / "params.json").write_text("")
    (run / "spec.yaml").write_text("name: x\ntrainable: mlp\ndataset: mnist_sample\nmetric: val_acc\n")
    trials, history, _ = collect(run)
    assert trials.empty and history.empty


def test_the_registry_says_resume_exact_for_exactly_the_schedulers_rebuilt_from_the_record():
    """`hpo resume` tells the user a scheduler starts empty from the registry's resume_exact;
    the schedulers rebuilt from the record are those that see trials by hpo's id (replay).
    They must agree."""
    from hpo.adapters.replay import Aliased
    from hpo.schedulers import SCHEDULERS
    from hpo.space import parse_param

    params = {"lr": parse_param("lr", {"loguniform": [1e-3, 1.0]})}
    for name in SCHEDULERS.names():
        entry = SCHEDULERS.get(name)
        built = entry.build(entry.options(), params, 9, 0, "val_acc", "max")
        assert (built is None or isinstance(built, Aliased)) == entry.resume_exact, name


def test_a_trial_log_starts_again_with_its_trial_and_goes_on_after_a_checkpoint(tmp_path):
    """hpo's own trial log: the configuration then every result; a trial that starts again at its
    first epoch (no checkpoint) starts the log again, one restored from a checkpoint appends, and
    a trial of a run from before the log is seeded from Ray's result.json."""
    from types import SimpleNamespace

    from hpo.runner.collect import trial_files
    from hpo.runner.events import Events

    ev = Events(tmp_path, None)
    trial = SimpleNamespace(trial_id="t1", config={"lr": 0.1}, checkpoint=None)
    ev.on_trial_start(0, [], trial)
    for epoch in (1, 2):
        ev.on_trial_result(0, [], trial, {"epoch": epoch, "val_acc": 0.5, "config": {"lr": 0.1}})
    d = tmp_path / "trial_t1"
    config, rows = trial_files(d)
    assert all(r.pop("logged") > 0 for r in rows)  # when the driver logged it (the record's order)
    assert (config, rows) == ({"lr": 0.1}, [{"epoch": 1, "val_acc": 0.5}, {"epoch": 2, "val_acc": 0.5}])
    trial.checkpoint = "checkpoint_000001"  # restored from epoch 1's checkpoint: the log goes on
    ev.on_trial_start(0, [], trial)
    ev.on_trial_result(0, [], trial, {"epoch": 2, "val_acc": 0.6})
    assert [r["epoch"] for r in trial_files(d)[1]] == [1, 2, 2]
    trial.checkpoint = None  # a retry without a checkpoint: epoch 1 again, the log again
    ev.on_trial_start(0, [], trial)
    assert trial_files(d) == ({"lr": 0.1}, [])
    old = tmp_path / "trial_t2"  # a run from before hpo's log, resumed from a checkpoint
    old.mkdir()
    (old / "result.json").write_text(json.dumps({"epoch": 1, "config": {"lr": 0.2}}) + "\n")
    ev.on_trial_start(0, [], SimpleNamespace(trial_id="t2", config={"lr": 0.2}, checkpoint="c"))
    assert trial_files(old) == ({"lr": 0.2}, [{"epoch": 1}])
