"""The trainable registry and user trainables referenced as module:function."""

from __future__ import annotations

import pytest

from hpo.contract import HOOKS, Settings, Trainable, hook
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
    assert isinstance(info.module, Trainable)  # the Protocol: METRICS, train
    # no name a misspelt hook would have (it would silently take the hook's default)
    import difflib

    near = {k: difflib.get_close_matches(k, list(HOOKS), cutoff=0.85) for k in vars(info.module)}
    assert {k: v for k, v in near.items() if v and k not in HOOKS} == {}


def test_a_missing_hook_takes_its_documented_default():
    import types

    bare = types.SimpleNamespace(METRICS={"val_acc": "max"}, train=lambda *a: None)
    assert isinstance(bare, Trainable) and not isinstance(types.SimpleNamespace(METRICS={}), Trainable)
    assert {k: hook(bare, k) for k in ("TASKS", "CHECKPOINTS", "PACKING", "make_model", "Config")} == {
        "TASKS": ("classification", "regression"), "CHECKPOINTS": True, "PACKING": None, "make_model": None,
        "Config": None}
    with pytest.raises(KeyError):
        hook(bare, "CHECKPOINT")  # only documented hooks are read


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


def test_an_unreadable_checkpoint_is_passed_over_for_the_next_older_one(tmp_path):
    """A restore whose checkpoint is cut short or corrupt reads the trial's next older one,
    and with none readable starts the trial again; the note says which, never a traceback."""
    import torch
    from ray import tune

    from hpo.trainables._ray import STATE_FILE, restore

    trial = tmp_path / "trial_x"
    for i in (1, 2, 3, 4):
        (trial / f"checkpoint_00000{i}").mkdir(parents=True)
        torch.save({"epoch": i}, trial / f"checkpoint_00000{i}" / STATE_FILE)
    (trial / "checkpoint_000004" / STATE_FILE).write_bytes(b"PK\x03\x04 cut")  # a cut zip
    (trial / "checkpoint_000003" / STATE_FILE).unlink()  # gone

    def load(d):
        return torch.load(f"{d}/{STATE_FILE}", weights_only=False)

    def ckpt(i):
        return tune.Checkpoint(str(trial / f"checkpoint_00000{i}"))

    assert restore(None, load) == (None, None)
    assert restore(ckpt(2), load) == ({"epoch": 2}, None)
    state, note = restore(ckpt(4), load)
    assert state == {"epoch": 2}
    assert note.startswith("checkpoint checkpoint_000004 (") and "; checkpoint_000003 (FileNotFoundError" in note
    assert note.endswith("could not be read: resumed from checkpoint_000002 instead")
    for i in (1, 2):
        (trial / f"checkpoint_00000{i}" / STATE_FILE).write_bytes(b"")
    state, note = restore(ckpt(4), load)
    assert state is None and note.endswith("could not be read: the trial started again at epoch 1")
    assert "checkpoint_000001 (" in note
