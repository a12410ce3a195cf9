"""A finished trial's running statistics are dropped from the driver (hpo.runner.lean), on Ray's
own Trial: if Ray renames what holds them, these fail."""

from __future__ import annotations

import os
import subprocess
import sys

import cloudpickle
import pytest
from ray.tune.experiment import Trial

from hpo.runner.lean import LeanTrials, drop_summary
from hpo.runner.tuning import trial_name
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

    from hpo.runner.lean import no_result_frames

    t = _trial(3)
    state = tmp_path / "experiment_state-2026-01-01_00-00-00.json"
    state.write_text('{"trial_data": []}')
    with no_result_frames():
        lean = ExperimentAnalysis(str(state), trials=[t])
    assert lean.trial_dataframes == {} and lean.trials == [t]
    assert lean.trials[0].last_result["val_acc"] == 0.1 * 3
    full = ExperimentAnalysis(str(state), trials=[t])
    assert isinstance(full.trial_dataframes[t.trial_id], pd.DataFrame)
