"""Every study in search_spaces/ runs end to end on tiny data (1-2 epochs, a few hundred
examples; CIFAR on generated files in its own format) and builds its report: the YAML a user
runs is the YAML tested."""

from __future__ import annotations

from pathlib import Path

import pytest

from hpo.experiment import load_experiment
from hpo.report import build_report
from hpo.runner import run
from tests.cifar_files import write_cifar10
from tests.conftest import ROOT

pytestmark = pytest.mark.slow

STUDIES = sorted((ROOT / "search_spaces").glob("**/*.yaml"))
MNIST_TINY = ["dataset.name=mnist_sample", "dataset.train_size=400", "dataset.val_size=200",
              "budget.max_epochs=2"]
TINY = {
    "mlp": MNIST_TINY, "cnn": MNIST_TINY,
    "regression": ["budget.max_epochs=5"],
    "cifar_cnn": ["dataset.val_size=20", "budget.max_epochs=2"],
    "resnet18": ["dataset.val_size=20", "budget.max_epochs=2"],
}
# full-batch training on the tiny set is a batch of all of its 400 examples
SPECIAL = {"batch_size": ["params.batch_size={grid: [128, 400]}"],
           # hyperband needs max_epochs >= reduction_factor^2 (checked): the smallest valid run
           "hyperband": ["budget.max_epochs=4", "scheduler.reduction_factor=2", "budget.num_samples=6"],
           "architecture_pareto": ["budget.num_samples=6", "searcher.population_size=3"],
           "batch_size_pareto": ["params.batch_size={choice: [32, 128, 400]}", "budget.num_samples=4"],
           "optimizers_tpe": ["budget.num_samples=6", "searcher.n_startup_trials=3"]}


@pytest.fixture(scope="module")
def cifar_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("cifar")
    write_cifar10(d, per_batch=40, n_test=40)
    return d


def _id(p: Path) -> str:
    return str(p.relative_to(ROOT / "search_spaces"))


@pytest.mark.parametrize("path", STUDIES, ids=[_id(p) for p in STUDIES])
def test_study_runs_end_to_end(path, tmp_path, ray_session, cifar_dir):
    exp = load_experiment(path)
    overrides = list(TINY[exp.spec.trainable]) + SPECIAL.get(exp.spec.name, [])
    if exp.spec.dataset.name == "cifar10":
        overrides.append(f"dataset.data_dir={cifar_dir}")
    exp = load_experiment(path, overrides)
    res = run(exp, storage=tmp_path / "runs", dashboard=False, verbose=0)
    t = res.trials
    assert res.state == "finished" and len(t) == exp.n_trials
    assert set(t["status"]) <= {"completed", "stopped", "diverged"}, t["status_detail"].tolist()
    assert res.best is not None
    html = build_report(res.run_dir, tmp_path / "report.html").read_text()
    assert "Best configuration" in html
    if exp.spec.trainable == "regression":
        assert 'id="surface"' in html
    if len(exp.objectives) > 1:
        assert t["pareto"].any() and 'id="pareto-table"' in html
    if exp.spec.trainable == "resnet18":
        assert set(t["weights"]) == {"random init"}  # no ImageNet weights on this machine
