"""The `hpo` command as a user runs it, in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import MINIMAL, ROOT, write_spec


def hpo(*args: str, env: dict | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hpo.cli", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT, env={**os.environ, "HPO_OFFLINE": "1", **(env or {})})


def test_validate_ok():
    r = hpo("validate", "search_spaces/lr_reg.yaml")
    assert r.returncode == 0 and "16 trial(s)" in r.stdout


@pytest.mark.parametrize("text,args,match", [
    (MINIMAL.replace("mlp", "mpl"), [], "unknown trainable `mpl`. Did you mean `mlp`?"),
    ("name: [unclosed\n", [], "invalid YAML: line 2"),
    (MINIMAL, ["--set", "budget.max_epoch=2"], "budget.max_epoch: unknown field. Did you mean `max_epochs`?"),
    (MINIMAL, ["--set", "params.lr={grid: []}"], "params.lr.grid: `grid` needs at least one value"),
])
def test_bad_input_is_one_message_exit_2_no_traceback(tmp_path, text, args, match):
    path = write_spec(tmp_path, text)
    for cmd in ("validate", "run"):
        r = hpo(cmd, str(path), *args)
        assert r.returncode == 2, r.stderr
        assert match in r.stderr and "Traceback" not in r.stderr
        assert r.stderr.startswith("hpo: error: ")


def test_missing_spec_file(tmp_path):
    r = hpo("run", str(tmp_path / "nope.yaml"))
    assert r.returncode == 2 and "spec file does not exist" in r.stderr


@pytest.mark.slow
def test_run_on_real_mnist_then_best(tmp_path, mnist_dir):
    r = hpo("run", "search_spaces/lr_reg.yaml", "--set", "budget.max_epochs=1",
            "--set", "params.lr={grid: [0.1, 0.01]}", "--set", "params.weight_decay=1e-4",
            "--storage", str(tmp_path), "--no-dashboard", "--no-progress",
            env={"HPO_DATA_DIR": str(mnist_dir)})
    assert r.returncode == 0, r.stderr[-3000:]
    assert "55000 train / 5000 val / 10000 test" in r.stdout
    assert "Best configuration:" in r.stdout and "2 completed" in r.stdout
    run_dir = tmp_path / "lr_reg"
    assert (run_dir / "trials.csv").exists() and (run_dir / "history.parquet").exists()
    b = hpo("best", str(run_dir), "--format", "json")
    best = json.loads(b.stdout)
    assert best["config"]["lr"] in (0.1, 0.01) and best["metrics"]["best_val_acc"] > 0.9
    assert best["metrics"]["test_acc"] > 0.9


def test_best_on_a_folder_that_is_not_a_run(tmp_path):
    r = hpo("best", str(tmp_path))
    assert r.returncode == 2 and "not a run folder" in r.stderr


@pytest.mark.parametrize("storage,match", [
    ("ftp://host/runs", "storage URI scheme `ftp://` is not supported"),
    ("/proc/hpo-runs", "cannot write to the storage folder /proc/hpo-runs"),
])
def test_unusable_storage_fails_before_any_trial(tmp_path, storage, match):
    r = hpo("run", "search_spaces/lr_reg.yaml", "--storage", storage, "--no-dashboard")
    assert r.returncode == 2 and match in r.stderr and "Traceback" not in r.stderr, r.stderr[-2000:]


def test_compare_needs_two_runs_of_the_same_metric(tmp_path):
    import yaml

    def fake_run(name: str, metric: str):
        d = tmp_path / name
        d.mkdir()
        (d / "spec.yaml").write_text(yaml.safe_dump({"name": name, "metric": metric}))
        (d / "run.json").write_text(json.dumps({"metric": metric, "mode": "max" if metric.endswith("acc") else "min"}))
        return str(d)

    a, b = fake_run("a", "val_acc"), fake_run("b", "val_loss")
    r = hpo("compare", a, "-o", str(tmp_path / "c.html"))
    assert r.returncode == 2 and "at least two run folders" in r.stderr
    r = hpo("compare", a, b, "-o", str(tmp_path / "c.html"))
    assert r.returncode == 2 and "different metrics" in r.stderr and "Traceback" not in r.stderr
    r = hpo("report", str(tmp_path), "-o", str(tmp_path / "r.html"))
    assert r.returncode == 2 and "not a run folder" in r.stderr


@pytest.mark.slow
def test_from_and_more_on_the_command_line(tmp_path):
    import pandas as pd

    tiny = ["--set", "dataset.name=mnist_sample", "--set", "dataset.train_size=600", "--set",
            "budget.max_epochs=1", "--storage", str(tmp_path), "--no-dashboard", "--no-progress"]
    spec = write_spec(tmp_path, MINIMAL.replace("lr: {grid: [0.1, 0.01]}", "lr: {loguniform: [0.001, 0.5]}")
                      + "searcher: {name: random}\nbudget: {num_samples: 2}\n")
    r = hpo("run", str(spec), *tiny)
    assert r.returncode == 0, r.stderr[-3000:]
    first = tmp_path / "t"
    r = hpo("resume", str(first), "--more", "2", "--no-dashboard", "--no-progress")
    assert r.returncode == 0, r.stderr[-3000:]
    assert "extending" in r.stdout and len(pd.read_csv(first / "trials.csv")) == 4
    r = hpo("run", str(spec), *tiny, "--set", "searcher=optuna", "--name", "warm", "--from", str(first))
    assert r.returncode == 0, r.stderr[-3000:]
    assert json.loads((tmp_path / "warm" / "run.json").read_text())["warm_start"]["n_trials"] == 4
    grid = write_spec(tmp_path, MINIMAL, "grid.yaml")
    assert hpo("run", str(grid), *tiny, "--name", "g").returncode == 0
    r = hpo("resume", str(tmp_path / "g"), "--more", "1")
    assert r.returncode == 2 and "--more: a grid search is complete when it has run" in r.stderr


@pytest.mark.slow
def test_the_end_summary_says_loudly_when_the_sample_was_used(tmp_path):
    spec = write_spec(tmp_path, MINIMAL.replace("mnist_sample", "mnist"))
    r = hpo("run", str(spec), "--set", "budget.max_epochs=1", "--set", "dataset.train_size=500",
            "--storage", str(tmp_path), "--no-dashboard", "--no-progress", env={"HPO_DATA_DIR": str(tmp_path / "none")})
    assert r.returncode == 0, r.stderr[-3000:]
    assert "hpo: data: the EMBEDDED SAMPLE `mnist_sample`" in r.stdout and "NOT `mnist`" in r.stdout
