"""A sweep split into several Tuners (hpo.runner.tuning.fit, HPO_TRIALS_PER_FIT) is the same
sweep: one searcher, one scheduler and one event log span the Tuners."""

from __future__ import annotations

import io

import pytest

from hpo.experiment import load_experiment
from hpo.runner import run
from tests.conftest import write_spec

ASHA = """\
name: split_asha
trainable: mlp
dataset: {name: mnist_sample, train_size: 300, val_size: 200}
metric: val_acc
searcher: {name: random, seed: 0}
scheduler: {name: asha, grace_period: 1, reduction_factor: 2}
budget: {max_epochs: 4, num_samples: 8, max_concurrent_trials: 1}
execution: {pack: off}
params:
  lr: {loguniform: [1e-3, 0.5]}
  hidden: [16]
  batch_size: 50
"""

TPE = ASHA.replace("split_asha", "split_tpe").replace(
    "searcher: {name: random, seed: 0}\nscheduler: {name: asha, grace_period: 1, reduction_factor: 2}",
    "searcher: {name: optuna, seed: 0, n_startup_trials: 3}").replace(
    "max_epochs: 4, num_samples: 8", "max_epochs: 1, num_samples: 7")
assert "optuna" in TPE and "asha" not in TPE and "num_samples: 7" in TPE


def _run(tmp_path, spec, name, monkeypatch, per_fit, capsys=None):
    if per_fit:
        monkeypatch.setenv("HPO_TRIALS_PER_FIT", str(per_fit))
    else:
        monkeypatch.delenv("HPO_TRIALS_PER_FIT", raising=False)
    out = io.StringIO()
    res = run(load_experiment(write_spec(tmp_path, spec, f"{name}.yaml")), storage=tmp_path / name,
              dashboard=False, verbose=0, out=out, progress=True)
    assert res.state == "finished", out.getvalue()
    return res, capsys.readouterr().out if capsys is not None else ""


@pytest.mark.slow
def test_asha_split_into_tuners_decides_as_one(tmp_path, ray_session, monkeypatch, capsys):
    """One trial at a time: ASHA's decisions (who stops at which rung) do not depend on where
    the sweep is cut into Tuners, since the one scheduler sees every trial's results."""
    whole, _ = _run(tmp_path, ASHA, "whole", monkeypatch, None)
    capsys.readouterr()
    split, text = _run(tmp_path, ASHA, "split", monkeypatch, 3, capsys)
    cols = ["trial_index", "param.lr", "status", "epochs", "best_val_acc"]
    a = whole.trials.sort_values("trial_index")[cols].reset_index(drop=True)
    b = split.trials.sort_values("trial_index")[cols].reset_index(drop=True)
    assert a.equals(b), (a, b)
    assert (b["status"] == "stopped").any() and (b["status"] == "completed").any()
    assert len(sorted(split.run_dir.glob("experiment_state-*.json"))) >= 3  # 8 = 3 + 3 + 2: three Tuners
    done = [x for x in text.splitlines() if "/8 done" in x]  # one progress line spans the Tuners
    assert len(done) >= 8 and "8/8 done · 0 running · 0 pending" in done[-1], text


@pytest.mark.slow
def test_a_searcher_that_learns_spans_the_tuners(tmp_path, ray_session, monkeypatch):
    """TPE split 3 + 3 + 1: seven trials, none proposed twice, each told to the one study (its
    start-up draws are not drawn again in a later Tuner)."""
    split, _ = _run(tmp_path, TPE, "tpe", monkeypatch, 3)
    t = split.trials
    assert len(t) == 7 and (t["status"] == "completed").all()
    assert t["param.lr"].nunique() == 7


def test_a_part_is_long_against_the_trials_that_run_at_once(tmp_path, monkeypatch):
    """A Tuner's last trials leave slots idle: a part holds at least 50 per slot, 500 at least,
    and PBT / HyperBand or Ray's own table keep one Tuner."""
    from hpo.runner.tuning import trials_per_fit

    monkeypatch.delenv("HPO_TRIALS_PER_FIT", raising=False)
    exp = load_experiment(write_spec(tmp_path, ASHA))  # max_concurrent_trials: 1
    assert trials_per_fit(exp, 0) == 500 and trials_per_fit(exp, 1) == 1 << 62
    wide = load_experiment(write_spec(tmp_path, ASHA.replace("max_concurrent_trials: 1", "max_concurrent_trials: 64")))
    assert trials_per_fit(wide, 0) == 64 * 50
    pbt = load_experiment(write_spec(tmp_path, ASHA.replace("name: asha", "name: pbt").replace(
        ", grace_period: 1, reduction_factor: 2", "")))
    assert trials_per_fit(pbt, 0) == 1 << 62
    monkeypatch.setenv("HPO_TRIALS_PER_FIT", "7")
    assert trials_per_fit(wide, 0) == 7
