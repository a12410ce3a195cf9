"""`hpo run` served by the warm head of `hpo up` (hpo.runner.served)."""

from __future__ import annotations

import json
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import psutil
import pytest

from hpo.cli import _parser
from hpo.runner import served
from tests.conftest import wait_for, write_spec
from tests.test_head import SPEC, cli

ROOT = Path(__file__).resolve().parents[1]
USER = """\
name: user
trainable: tests.custom_trainable:fit
dataset: mnist_sample
metric: val_loss
budget: {max_epochs: 1}
params:
  x: {grid: [0.0, 1.0]}
"""


def test_trial_runtime_env_is_the_jobs_with_tunes_variables_as_ray_writes_it(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "k")  # Tune passes these on to its trial actors
    job = json.dumps({"env_vars": {"B": "1"}, "worker_process_setup_hook": "hpo.trainables._ray.warm_up"},
                     indent=1)
    got = served.trial_runtime_env(job)
    assert got == ('{"env_vars":{"AWS_ACCESS_KEY_ID":"k","B":"1","PL_DISABLE_FORK":"1"},'
                   '"worker_process_setup_hook":"hpo.trainables._ray.warm_up"}')
    assert json.loads(served.trial_runtime_env("")) == {"env_vars": {"AWS_ACCESS_KEY_ID": "k",
                                                                    "PL_DISABLE_FORK": "1"}}


def test_the_head_declines_other_commands_and_specs_naming_user_code(tmp_path):
    ok = write_spec(tmp_path, SPEC)
    assert served.declined(["run", str(ok)], _parser) == (None, True)
    assert served.declined(["run", str(ok), "--set", "budget.max_epochs=0"], _parser) == (None, False)  # its error is printed
    for argv in (["plan", str(ok)], ["run", str(ok), "--own-driver"], ["run", str(ok), "--address", "auto"]):
        why, _ = served.declined(argv, _parser)
        assert why and "only `hpo run` on the local Ray" in why
    user = write_spec(tmp_path, USER, "user.yaml")
    why, valid = served.declined(["run", str(user)], _parser)
    assert valid and why == "it names your own code: tests.custom_trainable:fit"


def test_a_head_without_a_socket_or_not_listening_leaves_the_command_to_itself(tmp_path):
    assert served.try_served(["run", "spec.yaml"], {"pid": 1}) is None
    gone = {"pid": 1, "socket": str(tmp_path / "ray_head.sock")}  # a head that died, its socket left
    (tmp_path / "ray_head.sock").touch()
    assert served.try_served(["run", "spec.yaml"], gone) is None


def _running_trial_pid(run_dir: Path) -> int | None:
    for f in run_dir.glob("trial_*/result.json"):
        lines = f.read_text().splitlines()
        if lines:
            return json.loads(lines[-1])["pid"]
    return None


@pytest.mark.slow
def test_the_warm_head_runs_sweeps_on_workers_it_started_before(tmp_path, monkeypatch):
    monkeypatch.setenv("HPO_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("PYTHONPATH", str(ROOT))  # the user-code spec below: tests.custom_trainable
    spec = write_spec(tmp_path, SPEC)
    long = write_spec(tmp_path, SPEC.replace("max_epochs: 1", "max_epochs: 500"), "long.yaml")
    user = write_spec(tmp_path, USER, "user.yaml")
    runs = tmp_path / "runs"
    up = cli("up", "--no-dashboard", cwd=tmp_path)
    assert up.returncode == 0, up.stdout + up.stderr
    rec = json.loads((tmp_path / "home" / "ray_head.json").read_text())
    pid, sock = rec["pid"], Path(rec["socket"])
    try:
        assert stat.S_IMODE(sock.stat().st_mode) == 0o600  # this user's only
        # a long sweep, served: its trials run in workers the head started before the command
        t_cmd = time.time()
        client = subprocess.Popen([sys.executable, "-m", "hpo.cli", "run", str(long), "--storage", str(runs),
                                   "--name", "long"], cwd=tmp_path, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True)
        trial_pid = wait_for(lambda: _running_trial_pid(runs / "long"), 120, "a trial of the long run")
        assert psutil.Process(trial_pid).create_time() < t_cmd
        # another command meanwhile: the head is busy, so it joins the Ray from its own process
        # (its trials wait for the CPUs until the long run stops)
        other = subprocess.Popen([sys.executable, "-m", "hpo.cli", "run", str(spec), "--storage", str(runs),
                                  "--name", "busy", "--no-progress"], cwd=tmp_path, stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, text=True)
        wait_for(lambda: (runs / "busy").exists(), 120, "the second command to start its run")
        client.send_signal(signal.SIGINT)  # Ctrl-C at the client stops the served run, as in a terminal
        out, _ = client.communicate(timeout=120)
        assert client.returncode == 130, out[-3000:]
        assert f"run by the warm head of `hpo up` (process {pid})" in out
        assert json.loads((runs / "long" / "run.json").read_text())["state"] == "interrupted"
        out, _ = other.communicate(timeout=240)
        assert other.returncode == 0 and f"joined the warm Ray started by `hpo up` (process {pid}" in out, out[-3000:]
        # a client killed outright: the head stops its run as for Ctrl-C, and keeps what it made
        lost = subprocess.Popen([sys.executable, "-m", "hpo.cli", "run", str(long), "--storage", str(runs),
                                 "--name", "lost"], cwd=tmp_path, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
        wait_for(lambda: _running_trial_pid(runs / "lost"), 120, "a trial of the run whose client is killed")
        lost.kill()
        lost.communicate()
        # no client hears that the head is done: the report is the command's last step
        wait_for(lambda: (runs / "lost" / "report.html").exists(), 180, "the lost client's run to end")
        time.sleep(2)
        assert json.loads((runs / "lost" / "run.json").read_text())["state"] == "interrupted"
        assert len(pd.read_csv(runs / "lost" / "trials.csv")) == 2
        # what a client that is gone cannot hear is in the head's log (a traceback would be too)
        assert "--name lost`: exit 130" in (tmp_path / "home" / "ray_head.log").read_text()
        # after it, the head serves again; a bad spec's error reaches the client's stderr
        r = cli("run", str(spec), "--storage", str(runs), "--name", "again", "--no-progress", cwd=tmp_path)
        assert r.returncode == 0 and f"run by the warm head of `hpo up` (process {pid})" in r.stdout, \
            r.stdout[-3000:] + r.stderr[-3000:]
        t = pd.read_csv(runs / "again" / "trials.csv")
        assert len(t) == 2 and (t["status"] == "completed").all()
        bad = cli("run", str(spec), "--set", "budget.max_epochs=0", cwd=tmp_path)
        assert bad.returncode == 2 and "budget.max_epochs" in bad.stderr and "warm head" not in bad.stdout
        # user code is not imported into the head: the command runs it from its own process
        r = cli("run", str(user), "--storage", str(runs), "--name", "user", "--no-progress", cwd=tmp_path)
        assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
        assert "does not run this spec itself (it names your own code: tests.custom_trainable:fit)" in r.stderr
        assert "joined the warm Ray" in r.stdout
        # `hpo down` while a served run trains: the run stops as on Ctrl-C and keeps its trials,
        # then the head stops
        last = subprocess.Popen([sys.executable, "-m", "hpo.cli", "run", str(long), "--storage", str(runs),
                                 "--name", "last"], cwd=tmp_path, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
        wait_for(lambda: _running_trial_pid(runs / "last"), 120, "a trial of the run stopped by `hpo down`")
        down = cli("down", cwd=tmp_path)
        assert down.returncode == 0 and f"stopped the warm Ray (process {pid})" in down.stdout
        out, _ = last.communicate(timeout=60)
        assert last.returncode == 130, out[-3000:]
        assert json.loads((runs / "last" / "run.json").read_text())["state"] == "interrupted"
        assert len(pd.read_csv(runs / "last" / "trials.csv")) == 2
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    finally:
        down = cli("down", cwd=tmp_path)
    assert down.returncode == 0 and not sock.exists()
