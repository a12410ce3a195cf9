"""Scheduler registry data that must agree with what Ray's schedulers do."""

from __future__ import annotations

import math

import pytest

from hpo.experiment import load_experiment
from hpo.runner.tuning import test_epochs as trial_test_epochs
from hpo.schedulers import SCHEDULERS, AshaOptions
from tests.conftest import write_spec


@pytest.mark.parametrize("grace,rf,brackets,max_t", [(1, 3, 1, 20), (2, 2, 3, 30), (1, 1.5, 1, 10), (4, 3, 2, 4)])
def test_asha_stop_epochs_are_the_rungs_of_rays_asha(grace, rf, brackets, max_t):
    from ray.tune.schedulers import ASHAScheduler

    ray_asha = ASHAScheduler(time_attr="training_iteration", max_t=max_t, grace_period=grace,
                             reduction_factor=rf, brackets=brackets)
    rungs = {math.ceil(m) for b in ray_asha._brackets for m, _ in b._rungs if m <= max_t}
    ours = SCHEDULERS.get("asha").stop_epochs(AshaOptions(grace_period=grace, reduction_factor=rf,
                                                          brackets=brackets), max_t)
    assert ours == rungs


SPEC = """\
name: t
trainable: mlp
dataset: {{name: mnist_sample}}
metric: val_acc
searcher: {{name: random}}
scheduler: {scheduler}
budget: {{max_epochs: 9{budget}}}
params:
  lr: {{loguniform: [0.001, 0.1]}}
"""


@pytest.mark.parametrize("scheduler,budget,expected", [
    ("{name: fifo}", "", {9}),
    ("{name: asha, grace_period: 1, reduction_factor: 3}", "", {1, 3, 9}),
    ("{name: median}", "", None),  # may stop a trial after any epoch
    ("{name: fifo}", ", time_budget_s: 60", None),  # the budget may cut a trial anywhere
])
def test_trials_test_where_they_may_end(tmp_path, scheduler, budget, expected):
    exp = load_experiment(write_spec(tmp_path, SPEC.format(scheduler=scheduler, budget=budget)))
    assert trial_test_epochs(exp) == (frozenset(expected) if expected is not None else None)


HYPERBAND_FAILING = """\
name: hb
trainable: tests.custom_trainable:fit
dataset: mnist_sample
metric: val_loss
scheduler: {name: hyperband, reduction_factor: 2}
budget: {max_epochs: 4}
params:
  case: {grid: [{x: 2}, {x: 2.5, fail_at: 2}, {x: 0}, {x: -1}]}
"""


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_hyperband_goes_on_when_a_trial_fails_while_others_wait_paused(tmp_path, ray_session):
    """Ray's first Hyperband bracket (no halving: its trials run to the last epoch) takes x=2,
    x=2.5 and x=0; x=2 and x=0 get to epoch 4 and wait paused for x=2.5, which fails at epoch 2
    instead. Ray then never stopped the two waiting ones (a bracket whose remaining trials are
    all at the last milestone counts as finished and is not processed again): the sweep
    waited forever. The last grid point runs in the next bracket."""
    from hpo.runner import run

    exp = load_experiment(write_spec(tmp_path, HYPERBAND_FAILING))
    res = run(exp, storage=tmp_path / "runs", dashboard=False, verbose=0)
    by = {r["param.x"]: r for _, r in res.trials.iterrows()}
    assert res.state == "finished"
    assert by[2.5]["status"] == "error" and "failing on purpose" in by[2.5]["error"]
    for x in (2.0, 0.0, -1.0):
        assert by[x]["epochs"] == 4 and by[x]["status"] in {"completed", "stopped"}, by[x]["status"]
