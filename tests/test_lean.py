"""A finished trial's running statistics are dropped from the driver, and the driver forgets the
trial itself (hpo.ray_compat.lean), on Ray's own Trial and controller: if Ray renames what holds
them, these fail."""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
from pathlib import Path

import cloudpickle
import pytest
from ray.tune.experiment import Trial

from hpo.experiment import load_experiment
from hpo.ray_compat import lean
from hpo.ray_compat.lean import LeanTrials, drop_summary
from hpo.runner.events import trial_name
from hpo.runner.tuning import forgets_ended
from tests.conftest import MINIMAL, write_spec


def _trial(epochs: int) -> Trial:
    t = Trial("__fake", stub=True, config={"lr": 0.1})
    for i in range(1, epochs + 1):
        t.update_last_result({"val_acc": 0.1 * i, "val_loss": 1.0 / i, "training_iteration": i})
    return t


def test_a_finished_trials_summary_is_dropped_and_its_snapshot_shrinks():
    t = _trial(12)
    assert set(t.metric_analysis) >= {"val_acc", "val_loss"} and t.metric_n_steps
    before = len(t.get_json_state()[1])  # cached: dropping must clear the cache
    LeanTrials().on_trial_complete(12, [t], t)
    assert t.metric_analysis == {} and t.metric_n_steps == {}
    assert len(t.get_json_state()[1]) < before / 2
    assert t.last_result["val_acc"] == 0.1 * 12  # what searchers, schedulers and the tables read


def test_an_errored_trial_is_dropped_too_and_a_rerun_starts_a_new_summary():
    t = _trial(3)
    LeanTrials().on_trial_error(3, [t], t)
    assert t.metric_analysis == {}
    t.update_last_result({"val_acc": 0.9, "training_iteration": 4})  # a resume continues it
    assert t.metric_analysis["val_acc"]["max"] == 0.9
    drop_summary(Trial("__fake", stub=True))  # nothing reported yet: nothing to drop


def test_trial_names_are_pickled_by_name_not_whole():
    t = _trial(1)
    assert trial_name(t) == f"trial_{t.trial_id}"
    assert len(cloudpickle.dumps(trial_name)) < 100 < len(cloudpickle.dumps(lambda x: trial_name(x)))


FRESH_RUN = """
import gc, sys
from hpo import api
from ray.tune.experiment import Trial
from ray.tune import ExperimentAnalysis
api.run(sys.argv[1], ["dataset.train_size=300", "dataset.val_size=200", "budget.max_epochs=1"],
        storage=sys.argv[2], report_dir=None)
gc.collect()
print("alive", sum(isinstance(o, (Trial, ExperimentAnalysis)) for o in gc.get_objects()))
"""


@pytest.mark.slow
def test_a_finished_fit_leaves_no_trial_alive_in_a_fresh_driver(tmp_path):
    """In a fresh process (Optuna first imported inside the fit, as in `hpo run`), nothing of the
    fit outlives it: the tables and the report are built without Ray's trials in memory."""
    spec = write_spec(tmp_path, MINIMAL)
    env = {**os.environ, "HPO_OFFLINE": "1", "HPO_HOME": str(tmp_path / "home")}
    out = subprocess.run([sys.executable, "-c", FRESH_RUN, str(spec), str(tmp_path / "runs")],
                         capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().splitlines()[-1] == "alive 0", out.stdout[-2000:]


def test_rays_end_of_run_dataframes_are_skipped_inside_the_fit_only(tmp_path):
    """Inside `no_result_frames()` Ray's ExperimentAnalysis reads no trial's results into a
    DataFrame (the trials and their last results stay); outside, Ray's own reading is back."""
    import pandas as pd
    from ray.tune import ExperimentAnalysis

    from hpo.ray_compat.lean import no_result_frames

    t = _trial(3)
    state = tmp_path / "experiment_state-2026-01-01_00-00-00.json"
    state.write_text('{"trial_data": []}')
    with no_result_frames():
        lean = ExperimentAnalysis(str(state), trials=[t])
    assert lean.trial_dataframes == {} and lean.trials == [t]
    assert lean.trials[0].last_result["val_acc"] == 0.1 * 3
    full = ExperimentAnalysis(str(state), trials=[t])
    assert isinstance(full.trial_dataframes[t.trial_id], pd.DataFrame)


SWEEP = """\
name: forget_lean
trainable: mlp
dataset: {name: mnist_sample, train_size: 300, val_size: 200}
metric: val_acc
searcher: {name: random, seed: 0}
budget: {max_epochs: 2, num_samples: 14, max_concurrent_trials: 2}
execution: {pack: off}
params:
  lr: {loguniform: [1e-3, 0.5]}
  hidden: [16]
  batch_size: 50
"""


@pytest.mark.slow
@pytest.mark.parametrize("verbose", [0, 1])
def test_the_driver_forgets_finished_trials_but_none_of_their_results(tmp_path, ray_session, monkeypatch,
                                                                      verbose):
    """Without Ray's table (verbose 0) Ray's controller holds only the trials that have not
    finished, the experiment snapshot lists only those, finished trials' folders leave the
    driver's staging folder, and the tables and Ray's own files in the run folder still have
    every trial with every epoch; with Ray's table (which counts the trials held) every trial
    stays."""
    import ray
    from ray.tune.experiment import Trial

    from hpo.runner import run

    held: list[int] = []
    ended = LeanTrials._ended
    name = f"forget_lean_{verbose}"

    def counting(self: LeanTrials, trial: Trial) -> None:
        ended(self, trial)
        gc.collect()
        held.append(sum(isinstance(o, Trial) and getattr(o, "storage", None) is not None
                        and o.storage.experiment_dir_name == name for o in gc.get_objects()))

    monkeypatch.setattr(LeanTrials, "_ended", counting)
    # Ray's snapshot and sync after every step (else every ~10 s): a finished trial's staging
    # folder goes once a sync has copied it, so a short sweep can show it on a slow machine
    monkeypatch.setenv("TUNE_GLOBAL_CHECKPOINT_S", "0")
    exp = load_experiment(write_spec(tmp_path, SWEEP.replace("forget_lean", name)))
    assert forgets_ended(exp, verbose) == (verbose == 0)
    res = run(exp, storage=tmp_path / "runs", dashboard=False, verbose=verbose)
    t, h = res.trials, res.history
    assert res.state == "finished" and len(t) == 14 and (t["status"] == "completed").all()
    assert len(h) == 28 and not h.duplicated(["trial_id", "epoch"]).any()
    for tid in t["trial_id"]:  # Ray's own files of every trial are in the run folder, whole
        folder = res.run_dir / f"trial_{tid}"
        assert [json.loads(x)["epoch"] for x in (folder / "result.json").read_text().splitlines()] == [1, 2]
        assert json.loads((folder / "params.json").read_text())["lr"] > 0
        assert len((folder / "progress.csv").read_text().splitlines()) == 3
    state = json.loads(sorted(res.run_dir.glob("experiment_state-*.json"))[-1].read_text())
    info = json.loads((res.run_dir / "run.json").read_text())
    assert 0 < info["driver_sweep_peak_rss_mb"] <= info["driver_peak_rss_mb"]  # before / after the tables
    session = Path(ray._private.worker._global_node.get_session_dir_path())
    staged = list(session.glob(f"artifacts/*/{name}/driver_artifacts/trial_*"))
    assert len(held) == 14
    if verbose:
        assert held[-1] == 14 and len(state["trial_data"]) == 14 and len(staged) == 14
    else:  # the two running, the one just ended, and the few the searcher has proposed ahead
        assert max(held) <= 6, held
        assert len(state["trial_data"]) <= 2
        # finished trials' folders left the driver's staging folder once copied: Ray's syncs no
        # longer copy them again
        assert len(staged) <= 4, staged


def test_schedulers_that_read_ended_trials_back_keep_them(tmp_path):
    """PBT copies ended trials' checkpoints and HyperBand's brackets hold their trials: with
    them the driver forgets nothing; with ASHA (its rungs keep trial ids) it does."""
    for name, forgets in (("pbt", False), ("hyperband", False), ("asha", True), ("median", True)):
        extra = ", reduction_factor: 2" if name == "hyperband" else ""
        spec = SWEEP.replace("budget:", f"scheduler: {{name: {name}{extra}}}\nbudget:").replace(
            "max_epochs: 2", "max_epochs: 4")
        exp = load_experiment(write_spec(tmp_path, spec, f"{name}.yaml"))
        assert forgets_ended(exp, 0) is forgets, name


class _Controller:
    """The parts of Ray's TuneController that `forget_ended` touches."""


def test_forget_ended_keeps_running_errored_and_unreleased_trials():
    from ray.tune.execution.tune_controller import TuneController

    assert "step" in TuneController.__dict__  # what forgetting_ended wraps
    trials = {s: Trial("__fake", stub=True) for s in ("done", "busy", "running", "error")}
    trials["done"].status = trials["busy"].status = "TERMINATED"
    trials["running"].status, trials["error"].status = "RUNNING", "ERROR"
    c = _Controller()
    c._trials = list(trials.values())
    c._stopped_trials = {trials["done"], trials["busy"]}
    c._live_trials = {trials["running"]}
    c._trial_to_actor = {trials["busy"]: object()}  # its actor not yet released
    c._trials_to_cache = {trials["done"], trials["running"]}
    c._trial_metadata = {t.trial_id: "{}" for t in trials.values()}
    c._cached_trial_decisions, c._queued_trial_decisions = {trials["done"].trial_id: "STOP"}, {}
    c._checkpoint_manager = type("M", (), {})()
    c._checkpoint_manager._trial_num_checkpoints_since_last_sync = {trials["done"]: 1}
    same = c._trials
    assert lean.forget_ended(c) == [trials["done"]]
    assert c._trials is same and [t.trial_id for t in c._trials] == [
        trials[s].trial_id for s in ("busy", "running", "error")]
    assert c._stopped_trials == {trials["busy"]} and c._trials_to_cache == {trials["running"]}
    assert trials["done"].trial_id not in c._trial_metadata and len(c._trial_metadata) == 3
    assert c._cached_trial_decisions == {} and c._checkpoint_manager._trial_num_checkpoints_since_last_sync == {}
    assert lean.forget_ended(c) == []

