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
    assert sorted(p.name for p in out.iterdir()) == ["README.txt", "model.json", "model.pt", "model.pt2",
                                                     "model.pt2.shape"]
    check_accuracy(hpo.load_model(out), trainable, float(best["test_acc"]))
    import torch  # and with torch alone, from the exported program

    from hpo.trainables.loop import to_tensors

    program = torch.export.load(out / "model.pt2").module()
    layout = json.loads((out / "model.pt2.shape").read_text())  # said in its README.txt too
    t = to_tensors(load_dataset("mnist_sample", val_size=300, train_size=1000), tuple(layout))
    with torch.no_grad():
        acc = (program(t.x_test).argmax(1) == t.y_test).double().mean().item()
    assert acc == pytest.approx(float(best["test_acc"]), abs=1e-9)


USER_NET = """
from torch import nn


def build(config, input_shape, n_outputs):
    w = config["width"]
    return nn.Sequential(nn.Flatten(), nn.Linear(784, w), nn.ReLU(), nn.Linear(w, n_outputs))
"""


def test_an_export_of_a_users_model_loads_where_its_code_is_not(tmp_path, ray_session):
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "user_net_io.py").write_text(USER_NET)
    spec = write_spec(proj, SPEC.format(trainable="mlp", extra="  width: 16\n").replace(
        "trainable: mlp", "model: user_net_io:build"))
    res = run(load_experiment(spec), storage=tmp_path / "runs", dashboard=False, verbose=0)
    out = tmp_path / "export"
    r = subprocess.run([sys.executable, "-m", "hpo.cli", "best", str(res.run_dir), "--export", str(out)],
                       capture_output=True, text=True, timeout=300, cwd=proj)
    assert r.returncode == 0, r.stderr
    assert "torch.export.load('model.pt2')" in (out / "README.txt").read_text()
    elsewhere = tmp_path / "empty"
    elsewhere.mkdir()
    code = (f"import hpo, torch; m = hpo.load_model({str(out)!r}).eval(); "
            f"print(tuple(m(torch.zeros(3, 1, 28, 28)).shape))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=elsewhere)
    assert r.returncode == 0 and r.stdout.strip() == "(3, 10)", r.stderr[-2000:]


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
