"""The searchers end to end on Ray (tiny runs on the embedded MNIST sample): every Optuna
sampler and Nevergrad optimizer offered, several objectives with constraints, conditional
spaces, known points, warm starts and extending a finished run."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from hpo.experiment import load_experiment
from hpo.runner import extend, extension_overrides, run
from tests.conftest import write_spec

pytestmark = pytest.mark.slow

TINY = ["dataset.name=mnist_sample", "dataset.train_size=1000", "dataset.val_size=500",
        "params.batch_size=100", "budget.max_epochs=1"]


def spec(searcher: str, params: str, extra: str = "", samples: int = 4) -> str:
    return f"""\
name: s
trainable: mlp
dataset: mnist_sample
metric: val_acc
searcher: {searcher}
budget: {{num_samples: {samples}, max_concurrent_trials: 2}}
{extra}
params:
  hidden: [32]
  {params}
"""


FLAT = "lr: {loguniform: [1.0e-3, 0.5]}\n  momentum: {uniform: [0.0, 0.9]}"


def go(tmp_path, text, overrides=()):
    exp = load_experiment(write_spec(tmp_path, text), [*TINY, *overrides])
    return run(exp, storage=tmp_path / "runs", dashboard=False, verbose=0)


@pytest.mark.parametrize("searcher", [
    "{name: optuna, sampler: tpe}", "{name: optuna, sampler: gp, n_startup_trials: 2}",
    "{name: optuna, sampler: cmaes, n_startup_trials: 1}", "{name: optuna, sampler: qmc}",
    "{name: optuna, sampler: random}", "{name: optuna, sampler: nsgaii, population_size: 2}",
    "{name: nevergrad, optimizer: PSO}", "{name: nevergrad, optimizer: DE}",
])
def test_every_sampler_and_optimizer_runs(tmp_path, ray_session, searcher):
    res = go(tmp_path, spec(searcher, FLAT))
    t = res.trials
    assert res.state == "finished" and len(t) == 4, t[["status", "status_detail"]]
    assert (t["status"] == "completed").all(), t["error"].tolist()
    assert t["param.lr"].between(1e-3, 0.5).all() and t["param.momentum"].between(0, 0.9).all()
    assert t["param.lr"].nunique() >= 3  # it searched, not repeated one point


def test_several_objectives_pareto_set_and_constraints(tmp_path, ray_session, capsys):
    text = spec("{name: optuna, sampler: nsgaii, population_size: 3}",
                "hidden: {choice: [[8], [32], [128]]}\n  lr: {loguniform: [0.01, 0.5]}",
                extra="objectives: {val_acc: max, n_params: min}\n"
                      "constraints: {n_params: {max: 30000}}", samples=6)
    res = go(tmp_path, text.replace("  hidden: [32]\n", ""))
    t = res.trials
    info = json.loads((res.run_dir / "run.json").read_text())
    assert info["objectives"] == {"val_acc": "max", "n_params": "min"}
    assert t["feasible"].tolist() == (t["n_params"] <= 30000).tolist()
    assert not t["feasible"].all() or t["n_params"].max() <= 30000
    # the Pareto set: feasible, and no feasible trial at least as good in both and better in one
    ok = t[t["feasible"]]
    for _, r in t.iterrows():
        dominated = ((ok["best_val_acc"] >= r["best_val_acc"]) & (ok["n_params"] <= r["n_params"])
                     & ((ok["best_val_acc"] > r["best_val_acc"]) | (ok["n_params"] < r["n_params"]))).any()
        assert bool(r["pareto"]) == (bool(r["feasible"]) and not dominated), r
    assert res.best is not None and res.best["feasible"]  # an infeasible trial is never best
    from hpo.cli import main

    capsys.readouterr()
    assert main(["best", str(res.run_dir)]) == 0
    err = capsys.readouterr().err
    assert f"Pareto set: {int(t['pareto'].sum())} trial(s) (val_acc max, n_params min)" in err
    assert all(tid in err for tid in t.loc[t["pareto"], "trial_id"])


def test_random_search_gets_its_pareto_set_afterwards(tmp_path, ray_session):
    text = spec("random", "hidden: {choice: [[8], [64]]}\n  lr: {loguniform: [0.01, 0.5]}",
                extra="objectives: {val_acc: max, epoch_time_s: min}", samples=4)
    t = go(tmp_path, text.replace("  hidden: [32]\n", "")).trials
    assert t["pareto"].any() and "feasible" not in t


CONDITIONAL = """setup:
    choice:
      - {optimizer: sgd, lr: {loguniform: [0.01, 0.5]}, momentum: {uniform: [0.0, 0.95]}}
      - {optimizer: adam, lr: {loguniform: [1.0e-4, 1.0e-2]}}"""


@pytest.mark.parametrize("searcher", ["{name: optuna, sampler: tpe, n_startup_trials: 3}", "random"])
def test_conditional_space_a_parameter_exists_in_its_case_only(tmp_path, ray_session, searcher):
    t = go(tmp_path, spec(searcher, CONDITIONAL, samples=8)).trials
    assert (t["status"] == "completed").all(), t["error"].tolist()
    assert set(t["param.setup"]) <= {"optimizer=sgd", "optimizer=adam"}
    sgd, adam = t[t["param.optimizer"] == "sgd"], t[t["param.optimizer"] == "adam"]
    assert len(sgd) and len(adam)
    assert sgd["param.lr"].between(0.01, 0.5).all() and sgd["param.momentum"].notna().all()
    assert adam["param.lr"].between(1e-4, 1e-2).all() and adam["param.momentum"].isna().all()
    for _, r in t.iterrows():  # the configuration trained with: the case's values merged in
        cfg = json.loads(r["config"])
        assert ("momentum" in cfg) == (r["param.optimizer"] == "sgd") and cfg["lr"] == r["param.lr"]
    # the live view's mirror: the case by its label, its own parameters only where they exist
    import optuna

    from hpo.runner.mirror import open_journal

    study = optuna.load_study(study_name="s", storage=open_journal(tmp_path / "runs" / "optuna.journal"))
    assert len(study.trials) == 8
    for tr in study.trials:
        assert tr.params["setup"] in ("optimizer=sgd", "optimizer=adam") and "lr" in tr.params
        assert ("momentum" in tr.params) == (tr.params["setup"] == "optimizer=sgd")


@pytest.mark.parametrize("searcher", ["{name: optuna, sampler: tpe}", "random", "{name: nevergrad, optimizer: PSO}"])
def test_points_to_evaluate_run_first(tmp_path, ray_session, searcher):
    extra = "points_to_evaluate:\n  - {lr: 0.123, momentum: 0.5}\n  - {lr: 0.002, momentum: 0.0}"
    t = go(tmp_path, spec(searcher, FLAT, extra=extra)).trials
    assert len(t) == 4
    first = t.sort_values("trial_index").head(2)
    assert sorted(first["param.lr"].round(6)) == [0.002, 0.123]


def test_tpe_warm_started_from_a_random_search(tmp_path, ray_session):
    space = "lr: {loguniform: [1.0e-4, 1.0]}"
    cold = go(tmp_path, spec("random", space, samples=6))
    warm_text = spec("{name: optuna, sampler: tpe, n_startup_trials: 2}", space, samples=2)
    warm = go(tmp_path, warm_text, [f"warm_start={cold.run_dir}", "name=warm"])
    info = json.loads((warm.run_dir / "run.json").read_text())
    assert info["warm_start"] == {"from": str(cold.run_dir), "n_trials": 6}
    assert len(warm.trials) == 2 and (warm.trials["status"] == "completed").all()  # not rerun
    assert not set(warm.trials["param.lr"]) & set(cold.trials["param.lr"])
    # where its proposals land is tested without Ray in test_optuna_search.py


def test_warm_start_from_a_different_space_names_the_parameters(tmp_path, ray_session):
    from hpo.errors import SpecError

    cold = go(tmp_path, spec("random", FLAT, samples=2))
    with pytest.raises(SpecError, match=r"warm_start: run .* searched a different space: "
                                         r"lr \(different distribution\), momentum \(only in the earlier run\)"):
        load_experiment(write_spec(tmp_path, spec("optuna", "lr: {loguniform: [1.0e-4, 0.1]}")),
                        [*TINY, f"warm_start={cold.run_dir}"])


@pytest.mark.parametrize("searcher", ["random", "{name: optuna, sampler: tpe, n_startup_trials: 2}"])
def test_more_samples_extend_a_finished_run_in_place(tmp_path, ray_session, searcher):
    first = go(tmp_path, spec(searcher, FLAT, samples=3))
    before = first.trials.copy()
    exp = load_experiment(first.run_dir / "spec.yaml", extension_overrides(first.run_dir, 2))
    res = extend(exp, first.run_dir, dashboard=False, verbose=0)
    t = res.trials
    assert res.state == "finished" and len(t) == 5
    assert sorted(t["trial_index"]) == [0, 1, 2, 3, 4]
    old = t[t["trial_id"].isin(before["trial_id"])].reset_index(drop=True)
    cols = ["trial_id", "trial_index", "param.lr", "param.momentum", "best_val_acc", "status", "epochs"]
    pd.testing.assert_frame_equal(old[cols], before[cols])
    new = t[~t["trial_id"].isin(before["trial_id"])]
    assert len(new) == 2 and not set(new["param.lr"]) & set(before["param.lr"])
    info = json.loads((res.run_dir / "run.json").read_text())
    assert info["n_trials_planned"] == 5 and info["extended"][0]["more"] == 2


def test_a_single_metric_scheduler_follows_the_declared_primary_metric(tmp_path, ray_session):
    text = spec("{name: optuna, sampler: tpe, n_startup_trials: 2}", FLAT,
                extra="objectives: {val_acc: max, n_params: min}\n"
                      "scheduler: {name: asha, grace_period: 1, reduction_factor: 2}", samples=4)
    res = go(tmp_path, text, ["budget.max_epochs=2"])
    t = res.trials
    assert res.state == "finished" and len(t) == 4 and "pareto" in t
    assert set(t["status"]) <= {"completed", "stopped"}
    assert json.loads((res.run_dir / "run.json").read_text())["metric"] == "val_acc"
