from __future__ import annotations

from pathlib import Path

import pytest

from hpo.errors import SpecError
from hpo.experiment import load_experiment
from hpo.schedulers import SCHEDULERS
from hpo.searchers import SEARCHERS
from tests.conftest import MINIMAL, ROOT, write_spec

SPECS = sorted((ROOT / "search_spaces").glob("**/*.yaml"))


@pytest.mark.parametrize("path", SPECS, ids=[p.name for p in SPECS])
def test_every_shipped_spec_validates(path: Path):
    exp = load_experiment(path)
    assert exp.n_trials >= 1 and exp.searched_names


def test_lr_reg_is_the_4x4_study():
    exp = load_experiment(ROOT / "search_spaces/lr_reg.yaml")
    assert exp.n_trials == 16 and exp.mode == "max"
    assert exp.params["weight_decay"].values == (0.1, 0.01, 0.001, 0.0001)


@pytest.mark.parametrize("overrides,match", [
    (["trainable=mpl"], r"trainable: unknown trainable `mpl`\. Did you mean `mlp`\? Allowed: cifar_cnn, cnn, mlp, model, regression, resnet18"),
    (["dataset=mnsit"], r"dataset\.name: unknown dataset `mnsit`\. Did you mean `mnist`"),
    (["searcher.name=optuan"], r"searcher\.name: unknown searcher `optuan`\. Did you mean `optuna`"),
    (["scheduler.name=ahsa"], r"scheduler\.name: unknown scheduler `ahsa`\. Did you mean `asha`"),
    (["metric=val_accuracy"], r"metric: trainable `mlp` does not report metric `val_accuracy`\. Did you mean `val_acc`"),
    (["metric=test_acc"], r"test set never drives selection"),
    (["mode=min"], r"`val_acc` is to be maximized; mode `min`"),
    (["params.lrate=0.1"], r"params\.lrate: trainable `mlp` has no parameter `lrate`"),
    (["params.optimizer=adamw"], r"params\.optimizer: Input should be 'sgd', 'adam', 'adagrad' or 'rmsprop' \(got 'adamw'\)"),
    (["params.activation={grid: [relu, gelu]}"], r"params\.activation\.grid: Input should be 'relu', 'sigmoid' or 'tanh' \(got 'gelu'\)"),
    (["params.lr={grid: [0.1, -1]}"], r"params\.lr\.grid: Input should be greater than 0 \(got -1\)"),
    (["params.nesterov=true"], r"nesterov needs optimizer sgd and momentum > 0"),
    (["params.batch_size=20000"], r"batch size 20000 is larger than the training set \(10000 examples"),
    (["searcher.name=optuna"], r"params\.lr\.grid: Optuna .* use `choice: \[\.\.\.\]`"),
    (["searcher.name=grid", "params.lr={loguniform: [0.001, 0.1]}"], r"params\.lr: the grid searcher tries listed values only"),
    (["searcher.name=random", "searcher.sed=3"], r"searcher\.sed: unknown option\. Did you mean `seed`"),
    (["scheduler.name=asha", "scheduler.grace=2"], r"scheduler\.grace: unknown option\. Did you mean `grace_period`\? Allowed: grace_period"),
    (["scheduler.name=asha", "scheduler.reduction_factor=1"], r"scheduler\.reduction_factor: Input should be greater than 1"),
    (["scheduler.name=pbt", "checkpoint.every=0"], r"scheduler `pbt` moves weights between trials through checkpoints"),
    (["resources.cpu=512"], r"resources\.cpu: 512.0 CPUs per trial, but this machine has"),
    (["params.lr=0.1", "searcher.name=optuna"], r"params: no parameter is searched, so a searcher that learns"),
    (["dataset.val_size=10000"], r"val_size 10,000 leaves no training data: `mnist_sample` has 10,000 training examples; give at most 9,999"),
    # groups of cases (several parameters set together)
    (["params.setup={grid: [{optimizer: sgd}, {optimizer: adamw}]}"],
     r"params\.setup\.grid\[1\]: Input should be 'sgd', 'adam', 'adagrad' or 'rmsprop' \(got 'adamw'\)"),
    (["params.setup={grid: [{optimzer: adam}]}"], r"params\.setup\.grid: case 1: trainable `mlp` has no parameter `optimzer`\. Did you mean `optimizer`"),
    (["params.setup={grid: [{lr: 0.5}]}"], r"case 1 sets `lr`, which is also given as params\.lr"),
    (["params.optimizer={grid: [{lr: 0.5}]}"], r"`optimizer` is a parameter of trainable `mlp`, so it cannot name a group"),
    (["params.setup={grid: [{batch_size: 50000}]}"], r"batch size 50000 is larger than the training set"),
    (["params.setup={grid: [{momentum: {uniform: [0, 0.9]}}]}"],
     r"params\.setup\.grid: a case here samples parameters of its own .* grid searcher only enumerates"),
    (["objectives={val_acc: max, val_los: min}"], r"objectives\.val_los: trainable `mlp` does not report metric `val_los`\. Did you mean `val_loss`"),
    (["objectives={val_acc: max, n_params: max}"], r"objectives\.n_params: `n_params` is to be minimized; `max` would search for the worst"),
    (["objectives={val_acc: max, test_acc: max}"], r"objectives\.test_acc: the test set never drives selection"),
    (["objectives={val_acc: max}"], r"objectives: .*names one metric"),
    (["metric=val_loss", "objectives={val_acc: max, n_params: min}"], r"metric: .*must be one of the objectives"),
    (["metric=null", "objectives={val_acc: max, n_params: min}", "searcher=random", "params.lr={loguniform: [0.001, 1]}", "scheduler=asha"],
     r"scheduler\.name: scheduler `asha` compares trials by one metric, and 2 objectives are given; name the primary one with `metric:`"),
    (["constraints={n_parms: {max: 1000}}"], r"constraints\.n_parms: a constraint on a value no trial reports: .*Did you mean `n_params`"),
    (["constraints={n_params: {min: 10, max: 1}}"], r"constraints\.n_params: min 10 > max 1"),
    (["constraints={n_params: {}}"], r"constraints\.n_params: give min:, max: or both"),
    (["searcher=random", "params.lr={loguniform: [0.001, 1]}", "points_to_evaluate=[{lr: 5}]"],
     r"points_to_evaluate\[0\]\.lr: 5 is outside \[0\.001, 1\]"),
    (["searcher=random", "params.lr={loguniform: [0.001, 1]}", "points_to_evaluate=[{lerning_rate: 0.1}]"],
     r"points_to_evaluate\[0\]: `lerning_rate` is not a searched parameter"),
    (["points_to_evaluate=[{lr: 0.1}]"], r"points_to_evaluate: searcher `grid` tries every grid point already"),
    (["searcher={name: optuna, sampler: cmaes}", "params.lr={choice: [0.1, 0.01]}"],
     r"searcher\.sampler: sampler `cmaes` .* models numeric parameters only"),
    (["objectives={val_acc: max, n_params: min}", "searcher={name: optuna, sampler: cmaes}", "params.lr={loguniform: [0.001, 1]}"],
     r"searcher\.sampler: sampler `cmaes` .* optimizes one objective; with 2 objectives use sampler nsgaii or tpe"),
    (["searcher={name: nevergrad, optimizer: PSOO}", "params.lr={loguniform: [0.001, 1]}"], r"searcher\.optimizer: .*'PSO'"),
    (["searcher=random", "params.lr={loguniform: [0.001, 1]}", "warm_start=runs/nothing"], r"warm_start: searcher `random` does not learn from results"),
    (["searcher=optuna", "params.lr={loguniform: [0.001, 1]}", "warm_start=/nonexistent/run"], r"not a run folder"),
    (["scheduler.name=hyperband", "budget.max_epochs=2"], r"scheduler\.reduction_factor: hyperband with reduction_factor 3 needs budget\.max_epochs >= 9 \(got 2\)"),
    (["early_stopping.patience=0"], r"early_stopping\.patience: Input should be greater than or equal to 1"),
    (["confirm.seeds=1"], r"confirm\.seeds: Input should be greater than or equal to 2"),
])
def test_bad_experiments_fail_before_ray(tmp_path, overrides, match):
    with pytest.raises(SpecError, match=match) as e:
        load_experiment(write_spec(tmp_path, MINIMAL), overrides)
    assert str(tmp_path) in str(e.value)  # every message names the file


def test_a_single_configuration_is_a_baseline_run(tmp_path):
    """Nothing searched (every parameter a constant): one configuration, allowed for grid and
    random (a baseline), with its one trial in the plan."""
    from hpo.searchers import Search

    exp = load_experiment(write_spec(tmp_path, MINIMAL), ["params.lr=0.1"])
    assert exp.n_trials == 1 and exp.searched_names == []
    configs = exp.searcher.draw(Search(exp.params, exp.searcher_options, 0, None, "val_acc", "max"))
    assert len(configs) == 1 and configs[0]["lr"] == 0.1


def test_options_registries_cover_their_builders():
    # every registered searcher/scheduler validates its defaults and builds Ray's object
    from hpo.searchers import Search
    from hpo.space import parse_param

    params = {"lr": parse_param("lr", {"loguniform": [0.001, 0.1]}), "batch_size": parse_param("b", 64)}
    for name in SEARCHERS:
        entry = SEARCHERS.get(name)
        if name == "grid":
            continue
        entry.check(params, entry.options(), {"val_acc": "max"})
        search = Search(params, entry.options(), 0, 2, "val_acc", "max", num_samples=3)
        # a searcher whose draws do not depend on results draws them up front (the run's plan);
        # one that learns is built (exactly one of the two)
        assert (entry.draw is None) != (entry.build is None), name
        if entry.draw is not None:
            configs = entry.draw(search)
            assert len(configs) == 3 and all(c["batch_size"] == 64 for c in configs)
            assert configs == entry.draw(search)  # seeded: the same draws again
            continue
        alg, space = entry.build(search)
        assert space["batch_size"] == 64 and "lr" not in space  # it samples lr itself
    for name in SCHEDULERS:
        entry = SCHEDULERS.get(name)
        sched = entry.build(entry.options(), params, 5, 0, "val_acc", "max")
        assert (sched is None) == (name == "fifo")


def test_gpu_asked_for_without_cuda(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA GPU is visible here")
    with pytest.raises(SpecError, match=r"resources\.gpu: 1\.0 GPU per trial, but no CUDA GPU is visible"):
        load_experiment(write_spec(tmp_path, MINIMAL), ["resources.gpu=1"])


@pytest.mark.parametrize("searcher,package", [("{name: optuna, sampler: gp}", "scipy"),
                                              ("{name: optuna, sampler: cmaes}", "cmaes"),
                                              ("{name: nevergrad, optimizer: PSO}", "nevergrad")])
def test_a_missing_sampler_package_is_named_before_ray(tmp_path, monkeypatch, searcher, package):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == package else real(name, *a))
    with pytest.raises(SpecError, match=rf"needs the `{package}` package, which is not installed: pip install {package}"):
        load_experiment(write_spec(tmp_path, MINIMAL), [f"searcher={searcher}", "params.lr={loguniform: [0.001, 1]}"])


def test_every_error_of_a_spec_at_once(tmp_path):
    overrides = ["params.lerning_rate=0.1", "searcher={name: random, sed: 1}", "scheduler=asah",
                 "tracking={mlfow: {}}"]
    with pytest.raises(SpecError) as e:
        load_experiment(write_spec(tmp_path, MINIMAL), overrides)
    msg = str(e.value)
    assert msg.startswith(f"{tmp_path / 'spec.yaml'}: 4 problems:\n  ")
    lines = msg.split("\n  ")[1:]
    assert [ln.split(":")[0] for ln in lines] == ["searcher.sed", "scheduler.name", "tracking", "params.lerning_rate"]
    assert "params.lerning_rate: trainable `mlp` has no parameter `lerning_rate`. Did you mean `lr`?" in msg
    assert "Did you mean `asha`?" in msg and "Did you mean `seed`?" in msg and "Did you mean `mlflow`?" in msg


@pytest.mark.parametrize("name,suggested", [("learning_rate", "lr"), ("lerning_rate", "lr"), ("wd", "weight_decay"),
                                            ("bs", "batch_size"), ("dropout_rate", "dropout"), ("layers", "hidden")])
def test_other_names_of_a_parameter_suggest_hpo_s(tmp_path, name, suggested):
    with pytest.raises(SpecError, match=rf"params\.{name}: trainable `mlp` has no parameter `{name}`\. Did you mean `{suggested}`\?"):
        load_experiment(write_spec(tmp_path, MINIMAL), [f"params.{name}=1"])


def test_a_misspelt_parameter_and_a_split_too_large_are_said_together(tmp_path):
    spec = write_spec(tmp_path, "name: t\ntrainable: mlp\ndataset: {name: mnist_sample, val_size: 20000}\n"
                                "metric: val_acc\nparams: {lr: {grid: [0.1, 0.01]}, widht: 3}\n")
    with pytest.raises(SpecError) as e:
        load_experiment(spec)
    msg = str(e.value)
    assert msg.count("\n") == 2 and "2 problems" in msg
    assert "params.widht" in msg and "dataset.val_size: val_size 20,000 leaves no training data" in msg


def test_a_misspelt_field_is_said_with_the_mistakes_of_later_stages(tmp_path):
    text = ("name: t\ntrainable: mlp\ndataset: {name: mnist_sample, val_size: 20000}\nmetric: val_acc\n"
            "budgte: {max_epochs: 2}\nbudget: {max_epochs: 0}\nparams: {lr: {grid: [0.1, 0.01]}, depht: 3}\n")
    with pytest.raises(SpecError) as e:
        load_experiment(write_spec(tmp_path, text))
    lines = str(e.value).split("\n  ")
    assert lines[0].endswith("4 problems:")
    assert sorted(ln.split(":")[0] for ln in lines[1:]) == ["budget.max_epochs", "budgte", "dataset.val_size",
                                                          "params.depht"]
    # the same from a dict through the API
    import yaml

    from hpo import api

    with pytest.raises(SpecError, match="4 problems"):
        api.validate(yaml.safe_load(text))


def test_a_structure_the_later_checks_cannot_run_on_is_said_alone(tmp_path):
    # no dataset (required) and a misspelt metric (then neither metric nor objectives): nothing to go on
    text = "name: t\ntrainable: mlp\nmetrik: val_acc\nparams: {lr: {grid: [0.1, 0.01]}, depht: 3}\n"
    with pytest.raises(SpecError) as e:
        load_experiment(write_spec(tmp_path, text))
    msg = str(e.value)
    assert "2 problems" in msg and "dataset: required field is missing" in msg and "metrik: unknown field" in msg
    assert "depht" not in msg
