from __future__ import annotations

import pytest

from hpo.errors import SpecError
from hpo.spec import apply_override, load_spec, parse_yaml
from tests.conftest import MINIMAL, write_spec


def test_minimal_spec_defaults(tmp_path):
    spec = load_spec(write_spec(tmp_path, MINIMAL))
    assert spec.dataset.name == "mnist_sample"
    assert spec.searcher.name == "grid" and spec.scheduler.name == "fifo"
    assert spec.budget.max_epochs == 10 and spec.resources.cpu == 1


@pytest.mark.parametrize("text,value", [("1e-4", 1e-4), ("5E3", 5e3), ("-2e+1", -20.0),
                                        ("1.0e-4", 1e-4), ("10", 10), ("abc", "abc")])
def test_exponent_without_dot_is_a_number(text, value):
    got = parse_yaml(f"x: {text}")["x"]
    assert got == value and type(got) is type(value)


def test_duplicate_keys_are_refused(tmp_path):
    with pytest.raises(SpecError, match=r"duplicate key `metric` at line 5"):
        load_spec(write_spec(tmp_path, MINIMAL.replace("params:", "metric: val_loss\nparams:")))


def test_yaml_syntax_error_names_line_and_column(tmp_path):
    with pytest.raises(SpecError, match=r"invalid YAML: line 2, column \d+"):
        load_spec(write_spec(tmp_path, "name: t\nparams: {lr: [1, 2]]}\n"))


def test_root_must_be_a_mapping(tmp_path):
    with pytest.raises(SpecError, match="top level must be a mapping"):
        load_spec(write_spec(tmp_path, "- a\n- b\n"))


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(SpecError, match="does not exist"):
        load_spec(tmp_path / "nope.yaml")
    with pytest.raises(SpecError, match="is a directory"):
        load_spec(tmp_path)


def test_unknown_field_suggests_the_right_one(tmp_path):
    with pytest.raises(SpecError, match=r"budget\.max_epoch: unknown field\. Did you mean `max_epochs`"):
        load_spec(write_spec(tmp_path, MINIMAL + "budget: {max_epoch: 3}\n"))
    with pytest.raises(SpecError, match=r"metrik: unknown field\. Did you mean `metric`"):
        load_spec(write_spec(tmp_path, MINIMAL + "metrik: val_acc\n"))


@pytest.mark.parametrize("extra,match", [
    ("budget: {max_epochs: 0}", r"budget\.max_epochs: Input should be greater than or equal to 1"),
    ("budget: {max_epochs: ten}", r"budget\.max_epochs: Input should be a valid integer"),
    ("resources: {cpu: -1}", r"resources\.cpu: Input should be greater than 0"),
    ("mode: maximize", r"mode: Input should be 'min' or 'max'"),
])
def test_wrong_types_and_ranges(tmp_path, extra, match):
    with pytest.raises(SpecError, match=match):
        load_spec(write_spec(tmp_path, MINIMAL + extra + "\n"))


@pytest.mark.parametrize("name", ["../evil", "a/b", "..", "", "x" * 200])
def test_names_cannot_escape_the_storage_folder(tmp_path, name):
    with pytest.raises(SpecError, match="name"):
        load_spec(write_spec(tmp_path, MINIMAL.replace("name: t", f"name: '{name}'")))


def test_overrides(tmp_path):
    path = write_spec(tmp_path, MINIMAL)
    spec = load_spec(path, ["budget.max_epochs=1", "params.lr=0.5", "dataset.val_size=500",
                            "searcher.name=random"])
    assert spec.budget.max_epochs == 1 and spec.params["lr"] == 0.5
    assert spec.dataset.val_size == 500 and spec.dataset.name == "mnist_sample"
    assert spec.searcher.name == "random"


@pytest.mark.parametrize("override,match", [
    ("budgt.max_epochs=1", r"`budgt` is not a spec field\. Did you mean `budget`"),
    ("budget.max_epoch=1", r"budget\.max_epoch: unknown field"),
    ("budget.max_epochs", r"--set expects path=value"),
    ("name.x=1", r"`name` is not a mapping"),
])
def test_bad_overrides(tmp_path, override, match):
    with pytest.raises(SpecError, match=match):
        load_spec(write_spec(tmp_path, MINIMAL), [override])


def test_apply_override_parses_yaml_values():
    raw: dict = {}
    apply_override(raw, "params.hidden=[256, 192]")
    apply_override(raw, "params.lr={loguniform: [1e-4, 1e-1]}")
    assert raw == {"params": {"hidden": [256, 192], "lr": {"loguniform": [1e-4, 1e-1]}}}
