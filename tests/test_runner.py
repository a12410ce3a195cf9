"""End-to-end runs on Ray, in process, on tiny real data (the embedded MNIST sample)."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from hpo.errors import SpecError
from hpo.experiment import load_experiment
from hpo.runner import run
from tests.conftest import MINIMAL, write_spec

pytestmark = pytest.mark.slow

TINY = ["dataset.name=mnist_sample", "dataset.train_size=1000", "dataset.val_size=500",
        "params.batch_size=100", "params.hidden=[32]"]

SPACES = {
    "grid": "lr: {grid: [0.3, 0.1, 0.01, 0.001]}",
    "random": "lr: {loguniform: [1e-3, 0.5]}\n  momentum: {uniform: [0.0, 0.9]}",
    "optuna": "lr: {loguniform: [1e-3, 0.5]}\n  optimizer: {choice: [sgd, adam]}",
}


def spec_text(searcher: str, scheduler: str) -> str:
    extra = {"pbt": ", perturbation_interval: 1", "asha": ", grace_period: 1, reduction_factor: 2",
             "median": ", grace_period: 1, min_samples_required: 1",
             "hyperband": ", reduction_factor: 2"}.get(scheduler, "")
    return f"""\
name: smoke_{searcher}_{scheduler}
trainable: mlp
dataset: mnist_sample
metric: val_acc
searcher: {{name: {searcher}}}
scheduler: {{name: {scheduler}{extra}}}
budget: {{max_epochs: {4 if scheduler == "hyperband" else 3}, num_samples: {1 if searcher == "grid" else 4}, max_concurrent_trials: 2}}
params:
  {SPACES[searcher]}
"""


@pytest.mark.parametrize("searcher", ["grid", "random", "optuna"])
@pytest.mark.parametrize("scheduler", ["fifo", "asha", "hyperband", "median", "pbt"])
def test_every_searcher_with_every_scheduler(tmp_path, ray_session, searcher, scheduler):
    path = write_spec(tmp_path, spec_text(searcher, scheduler))
    if (searcher, scheduler) == ("optuna", "pbt"):
        with pytest.raises(SpecError, match="scheduler `pbt` cannot be combined with searcher `optuna`"):
            load_experiment(path, TINY)
        return
    exp = load_experiment(path, TINY)
    res = run(exp, storage=tmp_path / "runs", dashboard=False, verbose=0)
    t, h = res.trials, res.history
    assert res.state == "finished" and len(t) == 4
    assert set(t["status"]) <= {"completed", "stopped"}, t["status_detail"].tolist()
    if scheduler == "fifo":
        assert (t["epochs"] == 3).all()
    # one history row per trial per epoch, matching the trials table
    assert h.groupby("trial_id")["epoch"].max().to_dict() == dict(zip(t["trial_id"], t["epochs"], strict=True))
    assert t["best_val_acc"].between(0, 1).all() and t["test_acc"].notna().all()
    assert res.best is not None and res.best["best_val_acc"] == t["best_val_acc"].max()
    for f in ("spec.yaml", "run.json", "trials.csv", "trials.parquet", "history.parquet", "events.jsonl"):
        assert (res.run_dir / f).exists(), f
    assert pd.read_parquet(res.run_dir / "trials.parquet").shape == t.shape


@pytest.mark.parametrize("pack,size", [("off", "79,500,000,010"), ("auto", "159,000,000,020")])
def test_failing_and_diverging_trials_are_recorded_and_the_sweep_goes_on(tmp_path, ray_session, pack, size):
    text = spec_text("grid", "fifo").replace(
        "lr: {grid: [0.3, 0.1, 0.01, 0.001]}",
        "lr: {grid: [0.1, 1000.0]}\n  hidden: {grid: [[32], [100000000]]}")
    exp = load_experiment(write_spec(tmp_path, text), [*TINY[:3], f"execution.pack={pack}"])
    res = run(exp, storage=tmp_path / "runs", dashboard=False, verbose=0)
    by = {(r["param.lr"], r["param.hidden"]): r for _, r in res.trials.iterrows()}
    assert by[(0.1, "[32]")]["status"] == "completed"
    assert by[(1000.0, "[32]")]["status"] == "diverged"
    big = by[(0.1, "[100000000]")]  # packed: the pack of the two huge members (its size is said)
    assert big["status"] == "error", big["error"]
    assert f"out of memory: batch_size=64, model {size} parameters" in big["error"]
    assert res.state == "finished"


def test_max_failed_trials_aborts_with_a_clear_reason(tmp_path, ray_session):
    text = spec_text("grid", "fifo").replace(
        "lr: {grid: [0.3, 0.1, 0.01, 0.001]}",
        "lr: {grid: [0.1, 0.01, 0.001]}\n  hidden: {grid: [[100000000], [32]]}")
    text = text.replace("max_concurrent_trials: 2", "max_concurrent_trials: 1")
    exp = load_experiment(write_spec(tmp_path, text),
                          TINY[:3] + ["failure.max_failed_trials=2", "budget.max_epochs=2"])
    res = run(exp, storage=tmp_path / "runs", dashboard=False, verbose=0)
    assert res.state == "aborted"
    assert (res.trials["status"] == "error").sum() == 2
    assert len(res.trials) < 6  # the rest never ran
    info = json.loads((res.run_dir / "run.json").read_text())
    assert info["state"] == "aborted"


def test_same_name_never_overwrites(tmp_path, ray_session):
    path = write_spec(tmp_path, spec_text("grid", "fifo"))
    exp = load_experiment(path, TINY + ["budget.max_epochs=1", "params.lr={grid: [0.1]}"])
    a = run(exp, storage=tmp_path / "runs", dashboard=False, verbose=0)
    b = run(exp, storage=tmp_path / "runs", dashboard=False, verbose=0)
    assert a.run_dir.name == "smoke_grid_fifo" and b.run_dir.name == "smoke_grid_fifo-2"
    assert len(a.trials) == len(b.trials) == 1


def test_same_seed_same_metrics(tmp_path, ray_session):
    path = write_spec(tmp_path, spec_text("random", "fifo"))
    exp = load_experiment(path, TINY + ["budget.max_epochs=2", "budget.num_samples=2"])
    a = run(exp, storage=tmp_path / "runs", dashboard=False, verbose=0)
    b = run(exp, storage=tmp_path / "runs", dashboard=False, verbose=0)
    cols = ["param.lr", "param.momentum", "val_acc", "val_loss", "train_loss"]
    pd.testing.assert_frame_equal(a.trials[cols], b.trials[cols])
    info = json.loads((a.run_dir / "run.json").read_text())
    assert info["seed"] == 0 and "torch" in info["versions"] and info["hardware"]["cpus"]


def test_optuna_suggestions_are_reproducible(tmp_path, ray_session):
    text = spec_text("optuna", "fifo").replace("max_concurrent_trials: 2", "max_concurrent_trials: 1")
    exp = load_experiment(write_spec(tmp_path, text), TINY + ["budget.max_epochs=1"])
    a = run(exp, storage=tmp_path / "runs", dashboard=False, verbose=0)
    b = run(exp, storage=tmp_path / "runs", dashboard=False, verbose=0)
    cols = ["param.lr", "param.optimizer", "val_acc"]
    assert a.trials["param.lr"].nunique() == 4
    pd.testing.assert_frame_equal(a.trials[cols], b.trials[cols])


@pytest.mark.parametrize("searcher", ["grid", "optuna"])
def test_max_concurrent_trials_is_respected(tmp_path, ray_session, searcher):
    text = spec_text(searcher, "fifo").replace("max_concurrent_trials: 2", "max_concurrent_trials: 1")
    exp = load_experiment(write_spec(tmp_path, text), TINY + ["budget.max_epochs=2"])
    res = run(exp, storage=tmp_path / "runs", dashboard=False, verbose=0)
    events = [json.loads(line) for line in (res.run_dir / "events.jsonl").read_text().splitlines()]
    running, most = 0, 0
    for e in events:  # in time order: +1 at a start, -1 at an end
        running += 1 if e["event"] == "start" else -1
        most = max(most, running)
    assert most == 1 and len(res.trials) == 4


def test_groups_of_cases_and_early_stopping(tmp_path, ray_session):
    """Cases set several parameters together; early stopping ends a trial that stops improving
    (lr 1e-6 cannot improve by 0.05) and the trial is recorded as completed, early-stopped."""
    from hpo.results import trial_config

    path = write_spec(tmp_path, """\
name: cases
trainable: mlp
dataset: mnist_sample
metric: val_acc
early_stopping: {patience: 2, min_delta: 0.05}
budget: {max_epochs: 6, max_concurrent_trials: 2}
params:
  setup:
    grid:
      - {optimizer: adam, lr: 0.003}
      - {optimizer: sgd, momentum: 0.9, lr: 1.0e-6}
""")
    res = run(load_experiment(path, TINY), storage=tmp_path / "runs", dashboard=False, verbose=0)
    t = res.trials.set_index("param.setup")
    assert list(t.index) == ["optimizer=adam, lr=0.003", "optimizer=sgd, momentum=0.9, lr=1e-06"]
    assert t["param.optimizer"].tolist() == ["adam", "sgd"] and t["param.momentum"].iloc[1] == 0.9
    slow = t.loc["optimizer=sgd, momentum=0.9, lr=1e-06"]
    assert slow["status"] == "completed" and slow["epochs"] < 6
    assert slow["status_detail"].startswith(f"early-stopped at epoch {slow['epochs']}: no val_acc gain")
    # the adam case improves by less than 0.05 at some point too, but never before epoch 3
    assert t.loc["optimizer=adam, lr=0.003", "epochs"] >= 3
    assert trial_config(slow) == {
        "optimizer": "sgd", "momentum": 0.9, "lr": 1e-6, "batch_size": 100, "hidden": [32], "seed": 0}


def test_confirm_reruns_the_top_configurations_with_new_seeds(tmp_path, ray_session):
    from hpo import confirm
    from hpo.report import build_report

    path = write_spec(tmp_path, """\
name: confirmed
trainable: mlp
dataset: mnist_sample
metric: val_acc
confirm: {top_k: 2, seeds: 3}
budget: {max_epochs: 2, max_concurrent_trials: 2}
params:
  lr: {grid: [0.3, 0.1, 1.0e-5]}
""")
    res = run(load_experiment(path, TINY), storage=tmp_path / "runs", dashboard=False, verbose=0)
    d = confirm.confirm_dir(res.run_dir)
    picks = json.loads((d / "picks.json").read_text())
    best_two = res.trials.sort_values("best_val_acc", ascending=False)["trial_id"].tolist()[:2]
    assert [p["trial_id"] for p in picks] == best_two
    ct = confirm.confirm_table(res.run_dir)
    assert len(ct) == 2 and (ct["seeds done"] == 3).all()
    assert set(ct["configuration"]) == {f"lr={p['config']['lr']}" for p in picks}
    assert ct["val_acc std"].notna().all() and (ct["val_acc mean"] > 0.5).all()
    # the confirmation is a run folder of its own: 6 trials, seeds 1000-1002 (never the search's)
    ctrials = pd.read_csv(d / "trials.csv")
    assert len(ctrials) == 6 and sorted(set(ctrials["param.seed"])) == [1000, 1001, 1002]
    assert len(res.trials) == 3  # the search's table does not mix in confirmation trials
    html = build_report(res.run_dir, tmp_path / "r.html").read_text()
    assert 'id="confirm-table"' in html and "new seeds" in html


def test_at_least_two_checkpoints_are_kept_and_all_of_a_short_trial(tmp_path):
    """A resume restores the checkpoint Ray's last snapshot names, which may be the one before
    the newest: with one kept it could already be deleted. In a sweep of 500 trials or more, a
    trial of at most 4 checkpoints keeps them all: a limit makes Ray snapshot the whole
    experiment each time a trial reaches it, which made such sweeps quadratic."""
    from hpo.runner.tuning import keep_checkpoints

    for n, epochs, every, keep, kept in ((1, 10, 1, 1, 2), (1, 10, 1, 2, 2), (1, 10, 1, 5, 5), (1, 4, 1, 1, 2),
                                         (500, 4, 1, 1, None), (500, 10, 3, 1, None), (500, 13, 3, 1, 2)):
        exp = load_experiment(write_spec(tmp_path, MINIMAL), [
            f"checkpoint={{every: {every}, keep: {keep}}}", f"budget.max_epochs={epochs}",
            f"budget.num_samples={n}"])
        assert keep_checkpoints(exp) == kept, (n, epochs, every, keep)


def test_tunes_callback_census_gives_rays_tag_without_importing_wandb_or_mlflow():
    import subprocess
    import sys
    import textwrap

    code = textwrap.dedent("""
        import sys
        from ray.air._internal import usage
        from ray.tune import Callback
        from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback, LoggerCallback

        class Mine(Callback): pass
        class MyLogger(LoggerCallback): pass

        cbs = [JsonLoggerCallback(), CSVLoggerCallback(), Mine(), Mine(), MyLogger(), object()]
        from hpo.ray_compat.ray_init import callbacks_counted_by_name
        with callbacks_counted_by_name():  # (around each fit)
            ours = dict(usage._count_callbacks(cbs))
        assert "wandb" not in sys.modules and "mlflow" not in sys.modules, "imported"
        import importlib
        rays = dict(importlib.reload(usage)._count_callbacks(cbs))  # Ray's own, importing them
        assert ours == rays, (ours, rays)
        print(ours)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "'CustomCallback': 2" in out.stdout and "'CustomLoggerCallback': 1" in out.stdout
