"""The live view: every run mirrored into an Optuna journal as it goes, shown by
optuna-dashboard (`hpo dashboard`) in headless Chromium while the run trains; the dashboard
listens on loopback only. And the mirror never fails a run."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from types import SimpleNamespace as NS

import pytest

from tests.conftest import wait_for, write_spec
from tests.test_report_browser import browser  # noqa: F401  (the headless Chromium fixture)

SPEC = """\
name: live
trainable: mlp
dataset: {name: mnist_sample, train_size: 3000, val_size: 500}
metric: val_acc
budget: {max_epochs: 40, max_concurrent_trials: 1}  # long enough to still run when the page shows it
execution: {pack: off}  # trials one after another, so the view has something running to show
params:
  lr: {grid: [0.1, 0.03, 0.01]}
  hidden: [64]
  batch_size: 32
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop(p: subprocess.Popen) -> None:
    if p.poll() is None:
        os.killpg(p.pid, signal.SIGTERM)
        try:
            p.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)


@pytest.mark.slow
def test_dashboard_shows_a_running_sweep(tmp_path, browser):  # noqa: F811
    import psutil

    spec = write_spec(tmp_path, SPEC)
    env = {**os.environ, "HPO_OFFLINE": "1"}
    run = subprocess.Popen([sys.executable, "-m", "hpo.cli", "run", str(spec), "--storage", str(tmp_path / "runs"),
                            "--no-dashboard"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           env=env, start_new_session=True)
    port = free_port()
    dash = None
    try:
        journal = tmp_path / "runs" / "optuna.journal"
        wait_for(journal.exists, 120, "the run's mirror to create its journal")
        dash = subprocess.Popen([sys.executable, "-m", "hpo.cli", "dashboard", str(tmp_path / "runs"),
                                 "--port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, start_new_session=True)
        wait_for(lambda: any(c.status == "LISTEN" for c in psutil.Process(dash.pid).net_connections("tcp")),
                 60, "the dashboard to listen")
        listening = {c.laddr.ip for c in psutil.Process(dash.pid).net_connections("tcp") if c.status == "LISTEN"}
        assert listening == {"127.0.0.1"}, listening

        def shows_intermediate_values() -> bool:
            browser.get(f"http://127.0.0.1:{port}/dashboard/studies/0")
            time.sleep(2)
            text = browser.find_element("tag name", "body").text
            return "live" in text and "Intermediate values" in text and "trial #0" in text

        wait_for(shows_intermediate_values, 120, "trials with intermediate values on the dashboard")
        assert run.poll() is None, "the run had already ended: the view was not live"
        browser.save_screenshot(str(tmp_path / "live.png"))
        out, _ = run.communicate(timeout=600)
        assert run.returncode == 0, out[-3000:]
        assert "hpo dashboard" in out and "done" in out  # printed: how to open it; progress lines
        browser.get(f"http://127.0.0.1:{port}/dashboard/studies/0")
        wait_for(lambda: "Best Trial" in browser.find_element("tag name", "body").text, 60, "the finished run")

        import optuna

        from hpo.runner.mirror import open_journal

        study = optuna.load_study(study_name="live", storage=open_journal(journal))
        assert len(study.trials) == 3 and all(t.state.name == "COMPLETE" for t in study.trials)
        assert all(len(t.intermediate_values) == 40 for t in study.trials)
        assert {t.params["lr"] for t in study.trials} == {0.1, 0.03, 0.01}
    finally:
        stop(run)
        if dash is not None:
            stop(dash)


def test_a_broken_mirror_never_fails_the_run(tmp_path, capsys):
    from hpo.runner.mirror import OptunaMirror

    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "optuna.journal").mkdir()  # a folder where the journal file should be
    m = OptunaMirror(tmp_path / "runs" / "optuna.journal", tmp_path / "runs" / "r", "val_acc", "max", 2, {})
    t = NS(trial_id="a", config={"lr": 0.1}, last_result={"epoch": 1, "val_acc": 0.5})
    m.on_trial_start(0, [], t)
    m.on_trial_result(0, [], t, t.last_result)
    m.on_trial_complete(0, [], t)
    assert m.broken and capsys.readouterr().out.count("the live dashboard mirror") == 1


def test_the_mirror_names_its_metric(tmp_path):
    """Optuna's dashboard and figures say val_acc, not "Objective 0"."""
    import optuna

    from hpo.runner.mirror import OptunaMirror, open_journal

    (tmp_path / "runs").mkdir()
    m = OptunaMirror(tmp_path / "runs" / "optuna.journal", tmp_path / "runs" / "r", "val_acc", "max", 2, {})
    t = NS(trial_id="a", config={"lr": 0.1}, last_result={"epoch": 1, "val_acc": 0.5})
    m.on_trial_start(0, [], t)
    m.on_trial_result(0, [], t, t.last_result)
    m.on_trial_complete(0, [], t)
    assert not m.broken
    study = optuna.load_study(study_name="r", storage=open_journal(tmp_path / "runs" / "optuna.journal"))
    assert study.metric_names == ["val_acc"]
