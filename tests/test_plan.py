from __future__ import annotations

import os

from hpo.experiment import load_experiment
from hpo.plan import describe, make_plan, sample_configs
from tests.conftest import ROOT

LR_REG = ROOT / "search_spaces" / "lr_reg.yaml"


def test_plan_counts_and_estimates():
    exp = load_experiment(LR_REG)
    plan = make_plan(exp)
    assert (plan.n_trials, plan.max_epochs, plan.max_trial_epochs) == (16, 10, 160)
    assert plan.concurrency == min(2, os.cpu_count() or 1)
    assert 0 < plan.epoch_s < 60 and plan.wall_s > plan.epoch_s * 10
    text = describe(exp, plan)
    assert "16 trial(s)" in text and "trial-epochs at most 160" in text and "s per epoch" in text


def test_plan_warns_on_huge_grids():
    exp = load_experiment(LR_REG, ["params.momentum={grid: [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]}",
                                   "params.batch_size={grid: [16, 32, 64]}"])
    plan = make_plan(exp, time_it=False)
    assert plan.n_trials == 432 and plan.epoch_s is None
    assert any("432 grid points" in w for w in plan.warnings)


def test_sample_configs_cover_the_space():
    exp = load_experiment(LR_REG, ["params.hidden={grid: [[64], [512, 384]]}"])
    cfgs = sample_configs(exp, k=4)
    assert {tuple(c["hidden"]) for c in cfgs} == {(64,), (512, 384)}
    assert {c["lr"] for c in cfgs} <= {1, 0.1, 0.05, 0.01} and all(c["momentum"] == 0.9 for c in cfgs)


def test_plan_says_which_data_the_run_will_train_on(tmp_path, monkeypatch):
    from hpo.experiment import load_experiment
    from hpo.plan import describe, make_plan
    from tests.conftest import MINIMAL, shared_mnist, write_spec

    spec = write_spec(tmp_path, MINIMAL.replace("mnist_sample", "mnist"))
    monkeypatch.setenv("HPO_DATA_DIR", str(tmp_path / "empty"))
    exp = load_experiment(spec)
    plan = make_plan(exp, time_it=False)
    assert "the run will train on the EMBEDDED SAMPLE (`mnist_sample`), not full `mnist`" in plan.data
    assert plan.data in describe(exp, plan)
    strict = make_plan(load_experiment(spec, ["dataset.strict=true"]), time_it=False)
    assert "it will FAIL" in strict.data
    if shared_mnist() is not None:
        monkeypatch.setenv("HPO_DATA_DIR", str(shared_mnist()))
        assert make_plan(load_experiment(spec), time_it=False).data == f"data: `mnist` from {shared_mnist()}"
