"""The Python API's checks (no Ray): specs as paths, study names and dicts; errors as exceptions
carrying the CLI's message. Running is tested end to end in test_examples.py."""

from __future__ import annotations

import pytest

import hpo
from hpo.errors import SpecError

SPEC = {"name": "d", "trainable": "mlp", "dataset": "mnist_sample", "metric": "val_acc",
        "params": {"lr": {"grid": [0.1, 0.01]}, "hidden": [16]}}


def test_validate_a_dict_a_path_and_a_study():
    exp = hpo.validate(SPEC, ["budget.max_epochs=2", "params.batch_size=32"])
    assert exp.n_trials == 2 and exp.spec.budget.max_epochs == 2 and exp.params["batch_size"].value == 32
    assert SPEC["params"] == {"lr": {"grid": [0.1, 0.01]}, "hidden": [16]}  # the caller's dict untouched
    assert hpo.validate("lr_reg").n_trials == 16
    assert hpo.validate(exp.spec).n_trials == 2


def test_errors_are_exceptions_with_the_cli_message():
    with pytest.raises(SpecError, match=r"params\.lrate: trainable `mlp` has no parameter `lrate`\. Did you mean `lr`\?"):
        hpo.validate({**SPEC, "params": {"lrate": {"grid": [0.1]}}})
    with pytest.raises(hpo.SpecError, match=r"give `trainable:` \(a built-in one, e\.g\. mlp\) or `model:`"):
        hpo.validate({k: v for k, v in SPEC.items() if k != "trainable"})


def test_plan_and_public_names():
    plan = hpo.make_plan(SPEC, ["budget.max_epochs=1"])
    assert plan.n_trials == 2 and plan.max_trial_epochs == 2 and plan.epoch_s > 0
    assert set(hpo.__all__) >= {"run", "load_run", "build_report", "validate", "make_plan", "Context"}
    assert hpo.Context.__name__ == "Context"
