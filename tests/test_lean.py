"""A finished trial's running statistics are dropped from the driver (hpo.ray_compat.lean), on
Ray's own Trial: if Ray renames what holds them, these fail; and a long sweep runs as several
Tuners, so that the driver lets each part's trials go (hpo.runner.tuning.fit)."""

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
from hpo.ray_compat.lean import LeanTrials, drop_summary
from hpo.runner.events import trial_name
from hpo.runner.tuning import trials_per_fit
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
def test_a_long_sweep_runs_as_tuners_that_each_let_their_trials_go(tmp_path, ray_session, monkeypatch,
                                                                    verbose):
    """Without Ray's table (verbose 0) a sweep runs as one Tuner per HPO_TRIALS_PER_FIT trials:
    the driver holds only the trials of the part that runs, each experiment snapshot lists only
    those, finished trials' folders leave the driver's staging folder, and the tables and Ray's
    own files in the run folder still have every trial with every epoch; with Ray's table (it
    counts the trials of the whole sweep) one Tuner runs them all."""
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
    monkeypatch.setenv("HPO_TRIALS_PER_FIT", "4")
    exp = load_experiment(write_spec(tmp_path, SWEEP.replace("forget_lean", name)))
    assert trials_per_fit(exp, verbose) == (4 if verbose == 0 else 1 << 62)
    res = run(exp, storage=tmp_path / "runs", dashboard=False, verbose=verbose)
    t, h = res.trials, res.history
    assert res.state == "finished" and len(t) == 14 and (t["status"] == "completed").all()
    assert len(h) == 28 and not h.duplicated(["trial_id", "epoch"]).any()
    assert sorted(t["trial_index"]) == list(range(14))  # every configuration of the plan, once
    for tid in t["trial_id"]:  # Ray's own files of every trial are in the run folder, whole
        folder = res.run_dir / f"trial_{tid}"
        assert [json.loads(x)["epoch"] for x in (folder / "result.json").read_text().splitlines()] == [1, 2]
        assert json.loads((folder / "params.json").read_text())["lr"] > 0
        assert len((folder / "progress.csv").read_text().splitlines()) == 3
    states = sorted(res.run_dir.glob("experiment_state-*.json"))
    info = json.loads((res.run_dir / "run.json").read_text())
    assert 0 < info["driver_sweep_peak_rss_mb"] <= info["driver_peak_rss_mb"]  # before / after the tables
    session = Path(ray._private.worker._global_node.get_session_dir_path())
    staged = list(session.glob(f"artifacts/*/{name}/driver_artifacts/trial_*"))
    assert len(held) == 14
    if verbose:
        assert held[-1] == 14
        assert len(json.loads(states[-1].read_text())["trial_data"]) == 14
    else:  # the part's trials (4), and the Trial objects of a part just ended not yet collected
        assert max(held) <= 8, held
        assert held[-1] <= 4, held  # the last part: 14 = 4 + 4 + 4 + 2
        assert [len(json.loads(s.read_text())["trial_data"]) for s in states][-1] == 2
    assert staged == [], staged  # each Tuner's trials left the staging folder once it ended


def test_schedulers_that_read_ended_trials_back_run_in_one_tuner(tmp_path, monkeypatch):
    """PBT copies ended trials' checkpoints and HyperBand's brackets hold their trials: with
    them one Tuner runs the whole sweep; with ASHA (its rungs keep hpo's trial ids, and the one
    scheduler spans the Tuners) it is split."""
    monkeypatch.setenv("HPO_TRIALS_PER_FIT", "5")
    for name, split in (("pbt", False), ("hyperband", False), ("asha", True), ("median", True)):
        extra = ", reduction_factor: 2" if name == "hyperband" else ""
        spec = SWEEP.replace("budget:", f"scheduler: {{name: {name}{extra}}}\nbudget:").replace(
            "max_epochs: 2", "max_epochs: 4")
        exp = load_experiment(write_spec(tmp_path, spec, f"{name}.yaml"))
        assert (trials_per_fit(exp, 0) == 5) is split, name


def test_a_staged_trial_folder_goes_only_once_its_copy_is_in_a_local_run_folder(tmp_path):
    """After a fit: a local run folder's copy is checked (missing or short: the staged folder
    stays for Ray's next sync); a bucket's is the one Ray's awaited sync wrote."""
    def staged(name: str) -> tuple[Path, Path]:
        here, there = tmp_path / "stage" / name, tmp_path / "run" / name
        here.mkdir(parents=True)
        (here / "result.json").write_text('{"epoch": 1}\n')
        return here, there

    lean = LeanTrials()
    missing, short, copied, bucket = (staged(n) for n in ("missing", "short", "copied", "bucket"))
    short[1].mkdir(parents=True)
    (short[1] / "result.json").write_text("{")
    copied[1].mkdir(parents=True)
    (copied[1] / "result.json").write_text('{"epoch": 1}\n')
    lean.staged = [(str(h), str(t)) for h, t in (missing, short, copied)]
    lean.unstage(remote=False)
    assert missing[0].is_dir() and short[0].is_dir() and not copied[0].exists() and lean.staged == []
    lean.staged = [(str(bucket[0]), "bucket/run/bucket")]
    lean.unstage(remote=True)
    assert not bucket[0].exists()
