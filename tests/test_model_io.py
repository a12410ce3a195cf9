"""The best model kept, exported and loaded back: the loaded network reproduces the test
accuracy the trials table reports for the best trial, exactly, on the same test set."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import hpo
from hpo.data import load_dataset
from hpo.experiment import load_experiment
from hpo.runner import run
from tests.conftest import write_spec

pytestmark = pytest.mark.slow

SPEC = """\
name: keep
trainable: {trainable}
dataset: {{name: mnist_sample, train_size: 1000, val_size: 300}}
metric: val_acc
budget: {{max_epochs: 3, max_concurrent_trials: 2}}
checkpoint: {{every: 2}}
params:
  lr: {{grid: [0.3, 0.05]}}
  batch_size: 100
{extra}"""


def check_accuracy(model, trainable: str, test_acc: float) -> None:
    from hpo.trainables.loop import evaluate, to_tensors

    data = load_dataset("mnist_sample", val_size=300, train_size=1000)
    shape = (784,) if trainable == "mlp" else (1, 28, 28)
    t = to_tensors(data, shape)
    _, acc = evaluate(model, t.x_test, t.y_test)
    assert acc == test_acc


@pytest.mark.parametrize("trainable,extra", [("mlp", "  hidden: [32]\nexecution: {pack: off}\n"),
                                             ("cnn", "  filters: [4, 8]\n  dense: 16\n"),
                                             ("mlp", "  hidden: [32]\nexecution: {pack: auto}\n")])
def test_best_model_reproduces_its_test_accuracy(tmp_path, ray_session, trainable, extra):
    exp = load_experiment(write_spec(tmp_path, SPEC.format(trainable=trainable, extra=extra)))
    res = run(exp, storage=tmp_path / "runs", dashboard=False, verbose=0)
    best = res.best
    assert ("pack: auto" in extra) == (res.trials.get("pack") is not None and res.trials["pack"].notna().all())
    meta = json.loads((res.run_dir / "best_model" / "model.json").read_text())
    assert meta["trial_id"] == best["trial_id"] and meta["best_epoch"] == best["best_epoch"]
    model = hpo.load_model(res.run_dir)
    assert not model.training
    check_accuracy(model, trainable, float(best["test_acc"]))
    # exported by the CLI, loaded from the export alone
    out = tmp_path / "export"
    r = subprocess.run([sys.executable, "-m", "hpo.cli", "best", str(res.run_dir), "--export", str(out)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in out.iterdir()) == ["README.txt", "model.json", "model.pt"]
    check_accuracy(hpo.load_model(out), trainable, float(best["test_acc"]))


def test_runs_at_a_glance(tmp_path, ray_session):
    spec = write_spec(tmp_path, SPEC.format(trainable="mlp", extra="  hidden: [16]\n"))
    for name in ("first", "second"):
        run(load_experiment(spec, ["budget.max_epochs=1"]), storage=tmp_path / "runs", name=name,
            dashboard=False, verbose=0)
    r = subprocess.run([sys.executable, "-m", "hpo.cli", "runs", str(tmp_path / "runs")], capture_output=True,
                       text=True, timeout=120)
    lines = r.stdout.splitlines()
    assert r.returncode == 0 and lines[0].split()[:4] == ["run", "state", "trials", "metric"]
    assert lines[1].split()[:3] == ["second", "finished", "2/2"] and lines[2].split()[0] == "first"
