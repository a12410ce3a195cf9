"""Results tables rebuilt from a run folder written by hand (no Ray)."""

from __future__ import annotations

import json
import math

import pytest
import yaml

from hpo.results import best_trial
from hpo.runner.collect import collect, trial_index, write_tables

SPEC = {"name": "t", "trainable": "mlp", "dataset": {"name": "mnist"}, "metric": "val_acc",
        "budget": {"max_epochs": 3}, "scheduler": {"name": "asha"},
        "params": {"lr": {"grid": [0.1, 0.01]}, "momentum": 0.9}}
MODES = {"val_acc": "max", "val_loss": "min", "test_acc": "max"}


def make_run(tmp_path, trials, events):
    run = tmp_path / "run"
    run.mkdir()
    (run / "spec.yaml").write_text(yaml.safe_dump(SPEC))
    (run / "run.json").write_text(json.dumps({"metric": "val_acc", "mode": "max", "metrics": MODES}))
    for tid, (lr, accs, extra) in trials.items():
        d = run / f"trial_{tid}"
        d.mkdir()
        (d / "params.json").write_text(json.dumps({"lr": lr, "momentum": 0.9}))
        lines = []
        for i, a in enumerate(accs):
            r = {"trial_id": tid, "epoch": i + 1, "training_iteration": i + 1, "val_acc": a,
                 "val_loss": 1 - a, "test_acc": a - 0.01, "time_total_s": 1.0 * (i + 1),
                 "config": {"lr": lr}, "diverged": False, "hostname": "h"}
            if i == len(accs) - 1:
                r.update(extra)
            lines.append(json.dumps(r))
        (d / "result.json").write_text("\n".join(lines) + "\n")
    (run / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    return run


@pytest.fixture
def run(tmp_path):
    trials = {
        "a_00000": (0.1, [0.5, 0.7, 0.8], {}),
        "a_00001": (0.01, [0.4], {}),
        "a_00002": (1.0, [0.1, 0.1], {"diverged": True, "val_loss": math.inf}),
        "a_00003": (0.5, [0.6], {}),
        "a_00004": (0.3, [0.6, 0.9], {}),
    }
    events = [{"trial_id": "a_00000", "event": "complete"}, {"trial_id": "a_00001", "event": "complete"},
              {"trial_id": "a_00002", "event": "complete"},
              {"trial_id": "a_00003", "event": "error", "error": "RuntimeError: out of memory"}]
    return make_run(tmp_path, trials, events)


def test_status_of_every_kind(run):
    trials, _, _ = collect(run)
    s = dict(zip(trials["trial_id"], trials["status_detail"], strict=True))
    assert s["a_00000"] == "completed"
    assert s["a_00001"] == "stopped by ASHA at epoch 1"
    assert s["a_00002"] == "diverged (NaN/inf loss) at epoch 2"
    assert s["a_00003"] == "error: RuntimeError: out of memory"
    assert s["a_00004"].startswith("incomplete at epoch 2")


def test_columns_best_and_final(run):
    trials, history, _ = collect(run)
    row = trials.set_index("trial_id").loc["a_00000"]
    assert row["param.lr"] == 0.1 and "param.momentum" not in trials  # only searched params
    assert row["best_val_acc"] == 0.8 and row["best_val_loss"] == pytest.approx(0.2)
    assert row["epochs"] == 3 and row["time_s"] == 3.0 and row["test_acc"] == pytest.approx(0.79)
    assert list(trials["trial_index"]) == [0, 1, 2, 3, 4]
    assert len(history) == 3 + 1 + 2 + 1 + 2 and "config" not in history
    # a diverged trial's inf loss is not its "best"
    assert trials.set_index("trial_id").loc["a_00002", "best_val_loss"] == pytest.approx(0.9)


def test_best_trial_ignores_failed_and_diverged(run):
    trials, _, _ = collect(run)
    assert best_trial(trials, "val_acc", "max")["trial_id"] == "a_00004"
    assert best_trial(trials, "val_loss", "min")["trial_id"] == "a_00004"


def test_a_line_cut_by_a_crash_is_skipped(run):
    p = run / "trial_a_00000" / "result.json"
    p.write_text(p.read_text() + '{"trial_id": "a_00000", "epo')
    trials, history, _ = collect(run)
    assert (history["trial_id"] == "a_00000").sum() == 3


def test_write_tables(run):
    trials, history = write_tables(run)
    import pandas as pd

    assert pd.read_parquet(run / "trials.parquet").shape == trials.shape
    assert pd.read_parquet(run / "history.parquet").shape == history.shape
    assert len(pd.read_csv(run / "trials.csv")) == 5


def test_trial_index_only_from_variant_generator_ids():

    assert trial_index("99a3c_00014") == 14
    assert trial_index("3ca312b9") == -1 and trial_index("12345678") == -1


def _goal_table():
    import pandas as pd

    # acc up, size up: a trade-off; "d" is dominated by "b"; "e" is outside the constraint
    return pd.DataFrame({
        "trial_id": list("abcdef"), "status": ["completed"] * 5 + ["error"],
        "best_val_acc": [0.90, 0.95, 0.97, 0.94, 0.99, 1.0],
        "n_params": [1000, 2000, 5000, 2500, 90000, 10],
        "param.hidden": ["[8]", "[16]", "[64]", "[16]", "[512]", "[1]"],
        "config": ['{"hidden": [8]}', '{"hidden": [16]}', '{"hidden": [64]}', '{"hidden": [16], "lr": 1}',
                   '{"hidden": [512]}', '{"hidden": [1]}']})


def test_pareto_and_feasible_columns():
    from hpo.results import pareto_set
    from hpo.runner.collect import mark_goals

    t = mark_goals(_goal_table(), {"val_acc": "max", "n_params": "min"}, {"n_params": [None, 50000]})
    assert t["feasible"].tolist() == [True, True, True, True, False, True]
    assert t["pareto"].tolist() == [True, True, True, False, False, False]  # errors never on it
    front = pareto_set(t, {"val_acc": "max", "n_params": "min"}, "val_acc", "max")
    assert front["trial_id"].tolist() == ["c", "b", "a"]
    assert list(front.columns) == ["trial_id", "val_acc", "n_params", "hidden"]
    # an infeasible trial is never the best, however good
    assert best_trial(t, "val_acc", "max")["trial_id"] == "c"
    # without constraints "e" is feasible and on the front
    assert mark_goals(_goal_table(), {"val_acc": "max", "n_params": "min"}, {})["pareto"].tolist()[4]


def test_confirm_picks_the_pareto_trials_or_the_primary_top_k():
    from hpo.confirm import pick
    from hpo.runner.collect import mark_goals

    t = mark_goals(_goal_table(), {"val_acc": "max", "n_params": "min"}, {"n_params": [None, 50000]})
    assert [p["trial_id"] for p in pick(t, "val_acc", "max", 2, pareto=True)] == ["c", "b"]
    assert [p["trial_id"] for p in pick(t, "val_acc", "max", 3, pareto=False)] == ["c", "b", "d"]


def test_extended_runs_number_their_trials_after_the_first(tmp_path):
    from hpo.runner.collect import _offset_extensions

    rows = [{"trial_id": f"aaaaa_0000{i}", "trial_index": i} for i in range(3)]
    rows += [{"trial_id": f"bbbbb_0000{i}", "trial_index": i} for i in range(2)]
    order = {r["trial_id"]: n for n, r in enumerate(rows)}
    _offset_extensions(rows, order)
    assert [r["trial_index"] for r in rows] == [0, 1, 2, 3, 4]


def test_collapsed_trials_are_flagged_not_silently_completed():
    import pandas as pd

    from hpo.runner.collect import mark_collapsed

    t = pd.DataFrame({"trial_id": list("abcd"), "status": ["completed", "completed", "stopped", "diverged"],
                      "status_detail": ["completed", "completed", "stopped by ASHA at epoch 1", "diverged"],
                      "best_val_acc": [0.97, 0.11, 0.6, float("nan")]})
    h = pd.DataFrame({"trial_id": list("aabbccdd"), "epoch": [1, 2] * 4,
                      "train_loss": [0.5, 0.2, 2.3, 2.3, 2.0, 1.7e22, 2.0, float("nan")]})
    m = mark_collapsed(t, h, n_classes=10)
    assert m["collapsed"].tolist() == [False, True, True, False]  # diverged is its own status
    assert m["status"].tolist() == t["status"].tolist()
    assert m.loc[1, "status_detail"] == "completed; collapsed: val_acc never above chance (best 0.11, chance 0.1)"
    assert m.loc[2, "status_detail"].endswith("collapsed: train loss exploded to 1.7e+22 (first epoch 2)")
    # a binary task at 0.7 learned something; at 0.51 it did not
    two = pd.DataFrame({"trial_id": ["x", "y"], "status": ["completed"] * 2, "status_detail": ["completed"] * 2,
                        "best_val_acc": [0.7, 0.51]})
    assert mark_collapsed(two, pd.DataFrame(), n_classes=2)["collapsed"].tolist() == [False, True]
