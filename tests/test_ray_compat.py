"""hpo.ray_compat: every private Ray / Optuna name hpo relies on is there on the tested Ray, lives
in hpo/ray_compat/ only, and, faked missing one touch at a time, switches its feature off with
one line (or refuses what needs it before any trial) while the run stays correct."""

from __future__ import annotations

import ast
import io
import re
from pathlib import Path

import pytest

from hpo import ray_compat
from hpo.errors import SpecError
from tests.conftest import ROOT, write_spec

GONE = "ray.tune:NoSuchNameInRay"


@pytest.fixture
def missing(monkeypatch):
    """missing(key): that touch's names are gone, as on a Ray that renamed one."""
    def fake(*keys: str) -> None:
        for key in keys:
            t = ray_compat.TOUCHES[key]
            monkeypatch.setitem(ray_compat.TOUCHES, key, ray_compat.Touch(
                t.feature, (*t.names, GONE), t.lacks, t.without, t.issue, t.essential))
        ray_compat.check.cache_clear()
        monkeypatch.setattr(ray_compat, "_announced", set())

    yield fake
    monkeypatch.undo()
    ray_compat.check.cache_clear()


def test_every_private_name_is_there_on_the_tested_ray():
    assert ray_compat.check() == {}
    assert ray_compat.resolve("ray.tune.execution.tune_controller:TuneController.__init__@_live_trials")
    assert not ray_compat.resolve("ray.tune.execution.tune_controller:TuneController.__init__@_no_such")
    assert not ray_compat.resolve("ray.no_such_module:X") and not ray_compat.resolve(GONE)


PRIVATE = re.compile(r"(?<![\w])(" + "|".join([
    "_private", "_internal", "_CONSTRAINTS_KEY", "_count_callbacks", "_ot_study", "_ot_trials",
    "_process_bracket", "_fetch_trial_dataframes", "_deferred", "_trial_configs", "_trial_continue",
    "_stopped_trials", "_trial_to_actor", "_live_trials", "_trials_to_cache", "global_worker",
    "_suggest_from_define_by_run_func", "_enable_token_auth", "ENABLE_RAY_CLUSTER", "_trial_info",
    "_hyperbands", "_checkpoint_manager", "_sync_process"]) + r")(?![\w])")


def test_private_names_live_in_ray_compat_only():
    """The grep a reviewer would run: private Ray / Optuna names in hpo/ and trainables/, outside
    hpo/ray_compat/ (comments and strings included)."""
    found = []
    for f in [*(ROOT / "hpo").rglob("*.py"), *(ROOT / "trainables").rglob("*.py")]:
        if "ray_compat" in f.parts:
            continue
        for n, text in enumerate(f.read_text().splitlines(), 1):
            if PRIVATE.search(text):
                found.append(f"{f.relative_to(ROOT)}:{n}: {text.strip()}")
    assert found == []


def test_every_touch_is_documented():
    for key, t in ray_compat.TOUCHES.items():
        assert t.feature and t.names and t.lacks and t.without, key
        assert all(":" in n for n in t.names), key


@pytest.mark.parametrize("key", sorted(ray_compat.TOUCHES))
def test_a_missing_name_switches_its_feature_off_in_one_line(missing, key):
    missing(key)
    assert not ray_compat.usable(key) and ray_compat.check() == {key: (GONE,)}
    line = ray_compat.line(key)
    assert "\n" not in line and ray_compat.TOUCHES[key].feature in line and GONE in line
    assert "tested with ray 2.60" in line
    out = io.StringIO()
    if ray_compat.TOUCHES[key].essential:
        with pytest.raises(SpecError, match=re.escape(GONE)):
            ray_compat.require(key)
        assert ray_compat.announce(out) == [] and out.getvalue() == ""
    else:
        assert ray_compat.announce(out) == [key] and out.getvalue().count("\n") == 1
        assert ray_compat.announce(out) == [key] and out.getvalue().count("\n") == 1  # once per process


def test_without_the_analysis_name_nothing_of_ray_is_replaced(missing):
    from ray.tune import ExperimentAnalysis

    from hpo.ray_compat.lean import no_result_frames, release_frames

    fetch = ExperimentAnalysis._fetch_trial_dataframes
    with no_result_frames():
        assert ExperimentAnalysis._fetch_trial_dataframes is not fetch
    missing("no_result_frames", "optuna_frames")
    with no_result_frames():
        assert ExperimentAnalysis._fetch_trial_dataframes is fetch
    release_frames()


def test_without_the_census_name_ray_counts_callbacks_itself(missing):
    from ray.air._internal import usage

    from hpo.ray_compat.ray_init import callbacks_counted_by_name

    ray_count = usage._count_callbacks
    with callbacks_counted_by_name():
        assert usage._count_callbacks is not ray_count
    assert usage._count_callbacks is ray_count  # put back after the fit
    missing("callback_census")
    with callbacks_counted_by_name():
        assert usage._count_callbacks is ray_count


def test_without_the_loopback_switch_a_local_ray_is_refused(missing):
    from hpo.ray_compat.ray_init import loopback_only

    missing("loopback")
    with pytest.raises(SpecError, match="127.0.0.1"), loopback_only():
        pass


def test_without_rays_token_function_the_documented_variable_is_set(missing, monkeypatch):
    from hpo.ray_compat.ray_init import token_auth_like_the_head

    monkeypatch.setenv("RAY_AUTH_MODE", "")  # put back as it was after the test
    monkeypatch.delenv("RAY_AUTH_MODE")
    missing("token_auth")
    token_auth_like_the_head()
    import os

    assert os.environ["RAY_AUTH_MODE"] == "token"


def test_without_the_raylet_request_the_warm_head_keeps_no_workers(missing):
    from hpo.runner import served

    missing("prestart_workers")
    assert served.keep_workers(4) == 0 and served.wait_idle_workers(4, timeout_s=1) == 0


SPEC = """\
name: compat
trainable: mlp
dataset: {name: mnist_sample, train_size: 400, val_size: 200}
metric: val_acc
searcher: {name: grid}
budget: {max_epochs: 2, max_concurrent_trials: 2}
params: {lr: {grid: [0.1, 0.01, 0.001]}, hidden: [8], batch_size: 100}
"""


@pytest.mark.parametrize("override,key,field", [
    ("scheduler.name=hyperband", "hyperband", "scheduler.name"),
])
def test_what_needs_an_essential_name_is_refused_before_any_trial(tmp_path, missing, override, key, field):
    """At the spec's checks (`hpo validate`, `plan`, `run`), and again where it is built."""
    from hpo.experiment import load_experiment

    spec = write_spec(tmp_path, SPEC.replace("max_epochs: 2", "max_epochs: 9").replace(
        "lr: {grid: [0.1, 0.01, 0.001]}", "lr: {choice: [0.1, 0.01, 0.001]}" if "optuna" in override
        else "lr: {grid: [0.1, 0.01, 0.001]}"))
    load_experiment(spec, [override])
    missing(key)
    with pytest.raises(SpecError, match=re.escape(field)) as e:
        load_experiment(spec, [override])
    assert ray_compat.TOUCHES[key].feature in str(e.value)
    load_experiment(spec, ["searcher.name=random"] if "optuna" in override else [])  # needs neither: goes on


@pytest.mark.slow
def test_a_run_with_every_optional_touch_off_is_the_same_run(tmp_path, missing, ray_session):
    from hpo.experiment import load_experiment
    from hpo.runner import run

    path = write_spec(tmp_path, SPEC)
    want = run(load_experiment(path), storage=tmp_path / "a", dashboard=False, verbose=0, out=io.StringIO())
    missing(*[k for k, t in ray_compat.TOUCHES.items() if not t.essential])
    out = io.StringIO()
    got = run(load_experiment(path), storage=tmp_path / "b", dashboard=False, verbose=0, out=out)
    lines = [x for x in out.getvalue().splitlines() if ": off (" in x]
    assert len(lines) == sum(not t.essential for t in ray_compat.TOUCHES.values())
    cols = ["trial_index", "param.lr", "status", "epochs", "best_val_acc", "test_acc"]
    a = want.trials.sort_values("trial_index")[cols].reset_index(drop=True)
    b = got.trials.sort_values("trial_index")[cols].reset_index(drop=True)
    assert a.equals(b) and len(b) == 3 and (b["status"] == "completed").all()
    # two at a time, as budget.max_concurrent_trials says (Tune allows a plan searcher one
    # pending trial unless told: trials then ran one after another)
    for res in (want, got):
        t = res.trials.sort_values("started_at")
        assert (t["started_at"].shift(-1) < t["ended_at"]).any(), t[["started_at", "ended_at"]]


def test_ray_compat_imports_nothing_of_hpo_above_it():
    """The bottom layer: hpo.ray_compat imports Ray, Optuna and hpo.errors only."""
    for f in (ROOT / "hpo" / "ray_compat").glob("*.py"):
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("hpo"):
                assert node.module.startswith(("hpo.ray_compat", "hpo.errors")), (f.name, node.module)
    assert Path(ray_compat.__file__).parent.name == "ray_compat"
