"""The trainable registry and user trainables referenced as module:function."""

from __future__ import annotations

import pytest

from hpo.contract import Settings
from hpo.errors import SpecError
from hpo.experiment import load_experiment
from hpo.trainables import TRAINABLES, get_trainable
from tests.conftest import write_spec

USER = """\
name: user
trainable: tests.custom_trainable:fit
dataset: mnist_sample
metric: val_loss
params:
  x: {grid: [0, 2, 4]}
"""


@pytest.mark.parametrize("name", list(TRAINABLES))
def test_every_registered_trainable_declares_its_contract(name):
    info = get_trainable(name, model="tests.model_fixture:build" if name == "model" else None)
    assert info.metrics and set(info.metrics.values()) <= {"min", "max"}
    assert info.tasks and callable(getattr(info.module, info.function))
    assert info.config_model.model_config.get("extra") == "forbid"


def test_user_trainable_by_reference(tmp_path):
    exp = load_experiment(write_spec(tmp_path, USER))
    assert exp.mode == "min" and exp.trainable.function == "fit"
    reports = []
    exp.trainable.train({"x": 4.0}, None, Settings(max_epochs=2, metric="val_loss", mode="min"), lambda m, s: reports.append(m))
    assert [r["val_loss"] for r in reports] == [4.0, 2.0]
    with pytest.raises(SpecError, match=r"params\.x\.grid: Input should be less than or equal to 10"):
        load_experiment(write_spec(tmp_path, USER.replace("4]", "40]")))


@pytest.mark.parametrize("ref,match", [
    ("no_such_module:train", r"cannot import `no_such_module`"),
    ("tests.custom_trainable:nope", r"`tests.custom_trainable` has no `nope`"),
    ("tests.conftest:write_spec", r"must take \(config, ctx\) \(see hpo.Context\), or the low-level"),
    ("tests.conftest:shared_mnist", r"must take \(config, ctx\)"),
    ("tests.model_fixture:ctx_without_metrics", r"lacks METRICS"),
    (":train", r"is not a `module:function` reference"),
])
def test_bad_user_trainable_references(tmp_path, ref, match):
    with pytest.raises(SpecError, match=match):
        load_experiment(write_spec(tmp_path, USER.replace("tests.custom_trainable:fit", ref)))


def test_yaml_tags_that_build_objects_are_refused(tmp_path):
    text = USER + "description: !!python/object/apply:os.system ['echo pwned']\n"
    with pytest.raises(SpecError, match="invalid YAML"):
        load_experiment(write_spec(tmp_path, text))
