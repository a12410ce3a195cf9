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


class FakeTrial:
    def __init__(self, name: str):
        self.name, self.status, self.is_saving = name, "PENDING", False

    def __repr__(self) -> str:
        return self.name


class FakeController:
    """What Ray's TuneController does when a scheduler stops a trial."""

    def __init__(self, scheduler):
        self.scheduler = scheduler

    def stop_trial(self, trial):
        if trial.status in ("PAUSED", "PENDING"):
            self.scheduler.on_trial_remove(self, trial)
        trial.status = "TERMINATED"


def test_hyperband_stops_a_trial_whose_pause_was_saving_when_its_bracket_finished():
    """Ray's first bracket runs its 3 trials to the last epoch. t2 is told to pause there and is
    still saving (RUNNING) when t3 gets there and the bracket finishes; Ray stops only the trials
    already PAUSED, so t2, PAUSED once saved, waited forever. The next choice of a trial to run
    processes the bracket and stops it."""
    from hpo.ray_compat.hyperband import HyperBand

    hb = HyperBand(time_attr="epoch", max_t=4, reduction_factor=2, metric="val_loss", mode="min")
    ctrl, (t1, t2, t3) = FakeController(hb), (FakeTrial("t1"), FakeTrial("t2"), FakeTrial("t3"))
    for t in (t1, t2, t3):
        hb.on_trial_add(ctrl, t)
        t.status = "RUNNING"
    assert hb.on_trial_result(ctrl, t1, {"epoch": 4, "val_loss": 1.0}) == "PAUSE"
    t1.status = "PAUSED"
    assert hb.on_trial_result(ctrl, t2, {"epoch": 4, "val_loss": 2.0}) == "PAUSE"
    t2.is_saving = True  # its save is in flight: still RUNNING
    assert hb.on_trial_result(ctrl, t3, {"epoch": 4, "val_loss": 3.0}) == "STOP"
    assert t1.status == "TERMINATED" and t2.status == "RUNNING"
    hb.on_trial_complete(ctrl, t3, {"epoch": 4, "val_loss": 3.0})
    t3.status = "TERMINATED"
    t2.status, t2.is_saving = "PAUSED", False  # the save is done
    assert hb.choose_trial_to_run(ctrl) is None
    assert t2.status == "TERMINATED"
