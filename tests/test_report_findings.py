"""Findings in words (hpo.report.findings), each sentence tested on constructed tables: it is
said when the data supports it, and not otherwise."""

from __future__ import annotations

import pandas as pd

from hpo.report.findings import findings
from tests.report_fixtures import rundata
from tests.test_report_importance import _grid


def lr_reg(collapse=True):
    acc = lambda lr, wd: (0.1 if (lr == 1.0 and collapse) else 0.97 - 0.02 * (wd == 0.1)  # noqa: E731
                          - 0.01 * (lr == 0.01) + 0.004 * (lr == 0.05))
    d = _grid(acc)
    d.trials["collapsed"] = d.trials["best_val_acc"] < 0.2
    return d


def test_a_grid_where_one_parameter_decides():
    fs = findings(lr_reg())
    assert fs[0] == "The best of 16 trial(s) is lr=0.05, weight_decay=0.01 with best_val_acc 0.974."
    assert fs[1].startswith("lr decides most of the outcome: ") and "worst at lr=1 (0.1)" in fs[1]
    assert "4 of 16 trial(s) collapsed (accuracy at chance or an exploding loss), all with lr=1" in fs[-1]


def test_no_dominant_parameter_and_no_failures_said_as_such():
    d = _grid(lambda lr, wd: 0.9 + 0.01 * (lr == 0.1) + 0.01 * (wd == 0.01))
    fs = findings(d)
    assert any(f.startswith("No single parameter dominates the grid") for f in fs)
    assert not any("collapsed" in f or "diverged" in f for f in fs)


def test_best_on_the_edge_of_a_range_says_which_way_to_extend():
    trials = [{"trial_id": f"t{i}", "param.lr": lr, "best_val_acc": acc, "epochs": 2, "best_epoch": 2}
              for i, (lr, acc) in enumerate([(1e-4, 0.5), (1e-3, 0.7), (0.009, 0.8), (0.0099, 0.95)])]
    fs = findings(rundata(trials, [], {"lr": {"loguniform": [1e-4, 0.01]}}))
    assert ("The best lr (0.0099) is at the larger edge of what was searched: the optimum may lie "
            "beyond it; extend the range towards larger values.") in fs


def test_pareto_span():
    d = _grid(lambda lr, wd: 0.9)
    d.trials = pd.DataFrame({"trial_id": list("abc"), "status": "completed", "status_detail": "completed",
                             "best_val_acc": [0.98, 0.96, 0.9], "n_params": [700000, 25000, 30000],
                             "pareto": [True, True, False], "param.lr": [0.1, 0.1, 0.1],
                             "param.weight_decay": [0.01] * 3})
    d.info["objectives"] = {"val_acc": "max", "n_params": "min"}
    fs = findings(d)
    assert ("The Pareto set has 2 trial(s), trading val_acc against n_params: from val_acc 0.98 with "
            "n_params 700000 to val_acc 0.96 with n_params 25000.") in fs


def test_a_one_parameter_grid_states_its_spread_not_a_share():
    from tests.report_fixtures import rundata

    trials = [{"trial_id": f"t{i}", "param.lr": lr, "best_val_acc": acc, "epochs": 2, "best_epoch": 2}
              for i, (lr, acc) in enumerate([(0.1, 0.95), (0.01, 0.97), (0.001, 0.96)])]
    fs = findings(rundata(trials, [], {"lr": {"grid": [0.1, 0.01, 0.001]}}))
    assert "Across lr, best_val_acc runs from 0.95 (lr=0.1) to 0.97 (lr=0.01): a spread of 0.02." in fs
    assert not any("decides" in f or "dominates" in f for f in fs)


def _confirmed(tmp_path, seeds_a, seeds_b):
    """A run folder whose confirmation retrained two picked configurations with new seeds."""
    import json

    from hpo import confirm

    d = confirm.confirm_dir(tmp_path)
    d.mkdir(parents=True)
    picks = [{"trial_id": "a", "search_value": 0.97, "config": {"lr": 0.05, "weight_decay": 0.01}},
             {"trial_id": "b", "search_value": 0.96, "config": {"lr": 0.1, "weight_decay": 0.01}}]
    (d / "picks.json").write_text(json.dumps(picks))
    (d / "run.json").write_text(json.dumps({"metric": "val_acc", "mode": "max"}))
    rows = [{"trial_id": f"{lab}{i}", "status": "completed", f"param.{confirm.GROUP}": lab,
             "best_val_acc": v}
            for lab, vals in (("lr=0.05", seeds_a), ("lr=0.1", seeds_b)) for i, v in enumerate(vals)]
    pd.DataFrame(rows).to_parquet(d / "trials.parquet")
    pd.DataFrame({"trial_id": ["a0"], "epoch": [1]}).to_parquet(d / "history.parquet")
    data = lr_reg(collapse=False)
    data.run_dir = tmp_path
    return findings(data)


def test_a_confirmed_lead_beyond_the_seed_spread_is_called_real(tmp_path):
    fs = _confirmed(tmp_path, [0.975, 0.976, 0.974], [0.960, 0.961, 0.959])
    assert fs[-1] == ("Retrained with new seeds, lr=0.05 leads the runner-up by 0.015, more than "
                      "the seed-to-seed spread (0.001): the win is real.")


def test_a_confirmed_lead_within_the_seed_spread_is_called_a_tie(tmp_path):
    fs = _confirmed(tmp_path, [0.97, 0.98, 0.96], [0.968, 0.972, 0.964])
    assert fs[-1].startswith("Retrained with new seeds, lr=0.05 leads the runner-up by only 0.002, "
                             "within the seed-to-seed spread (0.01")
    assert fs[-1].endswith("): treat them as a tie.")


def test_no_confirmation_no_sentence_about_it(tmp_path):
    data = lr_reg(collapse=False)
    data.run_dir = tmp_path
    assert not any("Retrained" in f for f in findings(data))


def test_a_spread_within_the_validation_noise_is_said_to_be_and_integers_read_as_integers():
    """depth over a grid, 0.0146 apart on 240 validation images: 3.5 images, under twice the
    standard error of a difference at 0.915 (0.051), so not "decides most of the outcome"."""
    t, h = [], []
    for i, (depth, width) in enumerate([(d, w) for d in (1.0, 2.0, 3.0) for w in (16.0, 32.0)]):
        acc = 0.9 + 0.0146 * (depth == 3.0) + 0.001 * (width == 32.0)
        t.append({"trial_id": f"x_{i:05d}", "param.depth": depth, "param.width": width,
                  "best_val_acc": acc, "val_acc": acc, "epochs": 1, "best_epoch": 1})
    d = rundata(t, h, {"depth": {"grid": [1, 2, 3]}, "width": {"grid": [16, 32]}}, max_epochs=1)
    d.info["dataset"] = {"val": 240}
    fs = findings(d)
    assert "depth=3, width=32" in fs[0]
    assert fs[1].startswith("depth has the largest effect, though a small one:"), fs[1]
    assert "best at depth=3" in fs[1] and "3.0" not in fs[1]
    assert "that is 4 of 240 validation examples, within the noise (a difference under 0.0509" in fs[1]
    d.info["dataset"] = {"val": 100_000}  # the same spread on many images: real
    assert findings(d)[1].startswith("depth decides most of the outcome")
