"""A user's own data (.npz, CSV, a dataset function): loaded, checked, errors before Ray."""

from __future__ import annotations

import numpy as np
import pytest

import hpo
from hpo.errors import SpecError
from tests.conftest import write_spec

SPEC = """\
name: mine
model: user_models:build
dataset: {dataset}
metric: {metric}
params:
  width: {{grid: [8, 16]}}
"""
MODELS = '''
from pydantic import BaseModel, Field
from torch import nn


class P(BaseModel):
    width: int = Field(8, ge=1, le=64)


def build(p: P, input_shape, n_outputs):
    return nn.Sequential(nn.Flatten(), nn.Linear(input_shape[-1], p.width), nn.ReLU(), nn.Linear(p.width, n_outputs))


def wrong_outputs(p: P, input_shape, n_outputs):
    return nn.Sequential(nn.Flatten(), nn.Linear(input_shape[-1], 5))


def broken(p: P, input_shape, n_outputs):
    raise RuntimeError("my bug")


def two_args(p, input_shape):
    return None


def data_fn():
    rng = __import__("numpy").random.default_rng(0)
    x = rng.normal(size=(100, 3)).astype("float32")
    return {"x_train": x[:80], "y_train": (x[:80, 0] > 0).astype("int64"), "x_test": x[80:], "y_test": (x[80:, 0] > 0).astype("int64")}


def not_a_dict():
    return [1, 2]


class Residual(nn.Module):
    def __init__(self, d, width):
        super().__init__()
        self.inp, self.hid, self.out = nn.Linear(d, width), nn.Linear(width, width), None

    def forward(self, x):
        h = self.inp(x.flatten(1)).relu()
        return h + self.hid(h).relu()


def dict_build(config: dict, input_shape, n_classes):  # as Ray Tune, Optuna and W&B hand it
    width = config.get("width", 8)
    return nn.Sequential(Residual(input_shape[-1], width), nn.Linear(width, n_classes))


def plain_build(config, input_shape, n_outputs):  # unannotated: a plain dict too
    assert isinstance(config, dict) and "lr" not in config  # hpo's training parameters stay out
    return nn.Sequential(nn.Flatten(), nn.Linear(input_shape[-1], config["width"]), nn.ReLU(),
                         nn.Linear(config["width"], n_outputs))
'''


def arrays(n=120, d=4, k=3, seed=0):
    rng = np.random.default_rng(seed)
    return {"x_train": rng.normal(size=(n, d)).astype(np.float32), "y_train": rng.integers(0, k, n),
            "x_test": rng.normal(size=(n // 4, d)).astype(np.float32), "y_test": rng.integers(0, k, n // 4)}


@pytest.fixture
def project(tmp_path):
    (tmp_path / "user_models.py").write_text(MODELS)
    return tmp_path


def spec(project, dataset="{name: npz, path: d.npz}", metric="val_acc", **replace):
    text = SPEC.format(dataset=dataset, metric=metric)
    for a, b in replace.items():
        text = text.replace(a, b)
    return write_spec(project, text)


def test_npz_model_is_checked_and_sized(project):
    np.savez(project / "d.npz", **arrays())
    exp = hpo.validate(spec(project))
    assert exp.trainable.name == "model" and exp.dataset.input_shape == (4,) and exp.dataset.n_classes == 3
    assert exp.dataset.n_train == 120 and exp.mode == "max"
    assert set(exp.trainable.config_model.model_fields) >= {"width", "lr", "optimizer", "batch_size", "seed"}


def test_csv_regression_and_class_names(project):
    (project / "t.csv").write_text("a,b,y\n" + "".join(f"{i},{i % 7},{i * 0.5}\n" for i in range(60)))
    exp = hpo.validate(spec(project, "{name: csv, path: t.csv, label: y, task: regression}", "val_mse"))
    assert exp.dataset.task == "regression" and exp.dataset.input_shape == (2,) and exp.mode == "min"
    (project / "c.csv").write_text("a,b,kind\n" + "".join(f"{i},{i % 7},{'cat' if i % 2 else 'dog'}\n" for i in range(60)))
    exp = hpo.validate(spec(project, "{name: csv, path: c.csv, label: kind, task: classification}"))
    assert exp.dataset.n_classes == 2


IMAGES = '''
from pydantic import BaseModel
from torch import nn


class P(BaseModel):
    width: int = 8


def build(p: P, input_shape, n_outputs):
    assert len(input_shape) == 3, input_shape  # (C, H, W): grey images get their channel axis
    return nn.Sequential(nn.Conv2d(input_shape[0], 2, 3, padding=1), nn.Flatten(),
                         nn.Linear(2 * input_shape[1] * input_shape[2], n_outputs))
'''


def test_grey_images_reach_the_model_as_in_training(project):
    (project / "image_models.py").write_text(IMAGES)
    rng = np.random.default_rng(0)
    np.savez(project / "d.npz", x_train=rng.integers(0, 255, (60, 12, 12), dtype=np.uint8),
             y_train=rng.integers(0, 2, 60), x_test=rng.integers(0, 255, (20, 12, 12), dtype=np.uint8),
             y_test=rng.integers(0, 2, 20))
    path = spec(project, **{"user_models:build": "image_models:build"})
    assert hpo.validate(path).dataset.input_shape == (12, 12)  # the forward pass sees (2, 1, 12, 12)
    assert hpo.make_plan(path).epoch_s > 0  # and so does the plan's timing


def test_dataset_function(project):
    exp = hpo.validate(spec(project, "user_models:data_fn"))
    assert exp.dataset.input_shape == (3,) and exp.dataset.n_classes == 2


def bad_npz(project, **a):
    np.savez(project / "d.npz", **a)
    return spec(project)


@pytest.mark.parametrize("make,match", [
    (lambda a: {k: v for k, v in a.items() if k != "y_test"}, r"dataset: .*d\.npz: missing y_test"),
    (lambda a: {**a, "y_train": a["y_train"][:-3]}, r"x_train has 120 examples but y_train has 117"),
    (lambda a: {**a, "x_train": np.where(np.arange(120)[:, None] == 5, np.nan, a["x_train"])}, r"x_train holds 4 NaN/inf value\(s\)"),
    (lambda a: {**a, "x_val": a["x_test"]}, r"give both x_val and y_val"),
    (lambda a: {**a, "x_test": a["x_test"][:, :3]}, r"examples must have one shape in every split"),
    (lambda a: {**a, "y_train": a["y_train"] + 0.5}, r"metric: `val_acc` is a classification metric, but dataset `npz` is a regression dataset"),
])
def test_bad_arrays(project, make, match):
    path = bad_npz(project, **make(arrays()))
    with pytest.raises(SpecError, match=match):
        hpo.validate(path)


def test_float_labels_declared_as_classes(project):
    np.savez(project / "d.npz", **{**arrays(), "y_train": arrays()["y_train"] + 0.5})
    with pytest.raises(SpecError, match=r"y_train must hold integer class labels"):
        hpo.validate(spec(project, "{name: npz, path: d.npz, task: classification}"))


def test_labels_out_of_range_against_declared_classes():
    from hpo.data.arrays import to_dataset

    with pytest.raises(SpecError, match=r"labels must be in \[0, 2\) for 2 classes, got -1\.\.2"):
        to_dataset({**arrays(), "y_train": np.r_[-1, np.ones(119, int)]}, "x.npz", "x", None, n_classes=2)


@pytest.mark.parametrize("dataset,match", [
    ("{name: csv, path: t.csv, label: price}", r"dataset\.label: .*t\.csv: no column `price`\. Did you mean `prices`\?"),
    ("{name: csv, path: t.csv}", r"dataset\.label: dataset `csv` needs `label:`"),
    ("{name: npz, path: nothing.npz}", r"dataset\.path: .*nothing\.npz: no such file"),
    ("{name: npz}", r"dataset\.path: dataset `npz` needs `path:`"),
    ("{name: mnist, path: d.npz}", r"dataset\.path: `path` is for user data"),
    ("user_models:not_a_dict", r"dataset\.name: `user_models:not_a_dict` returned list"),
    ("user_models:nope", r"dataset\.name: `user_models` has no `nope`"),
    ("no_such_module:load", r"dataset\.name: cannot import `no_such_module`"),
])
def test_bad_dataset_references(project, dataset, match):
    (project / "t.csv").write_text("a,prices\n1,2\n3,4\n5,6\n7,8\n9,10\n")
    np.savez(project / "d.npz", **arrays())
    with pytest.raises(SpecError, match=match):
        hpo.validate(spec(project, dataset))


def test_data_larger_than_memory_is_refused(project, monkeypatch):
    np.savez(project / "d.npz", **arrays())
    monkeypatch.setattr("hpo.environment.total_memory_bytes", lambda: 1000)
    with pytest.raises(SpecError, match=r"more than half of this machine's"):
        hpo.validate(spec(project))


@pytest.mark.parametrize("ref", ["dict_build", "plain_build"])
def test_a_model_function_taking_a_plain_dict_gets_the_trial_parameters(project, ref):
    from hpo.trainables.model import _build

    np.savez(project / "d.npz", **arrays())
    exp = hpo.validate(spec(project, **{"user_models:build": f"user_models:{ref}",
                                        "width: {grid: [8, 16]}": "width: {grid: [8, 16]}\n  depth: 3\n  lr: 0.1"}))
    assert exp.searched_names == ["width"]
    _, model = _build(f"user_models:{ref}", {"width": 16, "depth": 3, "lr": 0.1}, (4,), 3)
    assert model[-1].in_features == 16


def test_a_dict_model_reading_a_parameter_the_spec_lacks_says_which(project):
    np.savez(project / "d.npz", **arrays())
    with pytest.raises(SpecError, match=r"model: `user_models:plain_build` reads parameter 'width', "
                                        r"which the spec does not give; add it under params: \(given: depth\)"):
        hpo.validate(spec(project, **{"user_models:build": "user_models:plain_build",
                                      "width: {grid: [8, 16]}": "depth: {grid: [1, 2]}"}))


def test_every_misspelt_parameter_at_once(project):
    np.savez(project / "d.npz", **arrays())
    with pytest.raises(SpecError, match=r"no parameter `widht`\. Did you mean `width`\?; `depht`"):
        hpo.validate(spec(project, **{"width: {grid: [8, 16]}": "widht: {grid: [8, 16]}\n  depht: 2"}))


@pytest.mark.parametrize("replace,match", [
    ({"user_models:build": "user_models:wrong_outputs"}, r"model: `user_models:wrong_outputs`'s model maps a batch of shape \(2, 4\) to \(2, 5\); the dataset has 3 classes, so it must be \(2, 3\)"),
    ({"user_models:build": "user_models:broken"}, r"model: `user_models:broken` failed on a batch of shape \(2, 4\): RuntimeError: my bug"),
    ({"user_models:build": "user_models:two_args"}, r"model: `user_models:two_args` must take \(params, input_shape, n_outputs\)"),
    ({"user_models:build": "user_models:missing"}, r"model: `user_models` has no `missing`"),
    ({"width: {grid: [8, 16]}": "width: {grid: [8, 100]}"}, r"params\.width\.grid: Input should be less than or equal to 64 \(got 100\)"),
    ({"width: {grid: [8, 16]}": "widht: {grid: [8, 16]}"}, r"params\.widht: trainable `model` has no parameter `widht`\. Did you mean `width`\?"),
    ({"model: user_models:build": "model: user_models:build\ntrainable: mlp"}, r"cannot be combined with trainable `mlp`"),
])
def test_bad_models(project, replace, match):
    np.savez(project / "d.npz", **arrays())
    with pytest.raises(SpecError, match=match):
        hpo.validate(spec(project, **replace))


def test_cli_error_is_one_line_exit_2(project):
    import subprocess
    import sys

    np.savez(project / "d.npz", **arrays())
    path = spec(project, **{"user_models:build": "user_models:wrong_outputs"})
    r = subprocess.run([sys.executable, "-m", "hpo.cli", "validate", str(path)], capture_output=True,
                       text=True, cwd=project, timeout=120)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "must be (2, 3)" in r.stderr


def test_a_stray_test_label_is_refused_and_classes_can_be_declared(project):
    """Three classes in training, one label 7 in the test split: refused (it used to train an
    8-class model silently); declared classes take it; a class training lacks is named."""
    a = arrays(k=3)
    a["y_test"] = a["y_test"].copy()
    a["y_test"][4] = 7
    np.savez(project / "d.npz", **a)
    with pytest.raises(SpecError, match=r"y_test has label\(s\) 7 in 1 row\(s\), outside the 3 classes "
                                        r"\(the training labels: 0\.\.2\)"):
        hpo.validate(spec(project))
    with pytest.warns(UserWarning, match=r"class\(es\) 3, 4, 5, 6, 7 of 8 never appear in the training labels"):
        exp = hpo.validate(spec(project, dataset="{name: npz, path: d.npz, n_classes: 8}"))
    assert exp.dataset.n_classes == 8


def test_a_csv_class_name_only_in_the_test_rows_is_refused_by_name(project):
    import pandas as pd

    rng = np.random.default_rng(0)
    df = pd.DataFrame({"a": rng.normal(size=200), "b": rng.normal(size=200),
                       "kind": rng.choice(["cat", "dog"], 200)})
    perm = np.random.default_rng(0).permutation(200)
    df.loc[perm[0], "kind"] = "emu"  # a test row (the first 20% of the seeded permutation)
    df.to_csv(project / "t.csv", index=False)
    with pytest.raises(SpecError, match=r"y_test has label\(s\) 'emu' in 1 row\(s\), outside the 2 classes "
                                        r"\(the training labels: 'cat', 'dog'\)"):
        hpo.validate(spec(project, dataset="{name: csv, path: t.csv, label: kind, task: classification}"))
