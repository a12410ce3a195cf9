from __future__ import annotations

import pytest

from hpo.report import checks, curves, history, tables
from hpo.report.compare import at_equal_compute, progress
from hpo.report.study import build_study
from tests.report_fixtures import grid_run, rundata


def test_seed_table_is_in_grid_order_with_train_val_test():
    st = tables.seed_table(grid_run())
    assert list(st.columns[:5]) == ["lr", "weight_decay", "train acc", "val acc", "test acc"]
    assert list(zip(st["lr"], st["weight_decay"], strict=True)) == [(1, 0.01), (1, 0.0001), (0.1, 0.01), (0.1, 0.0001)]
    row = st.iloc[3]
    assert (row["train acc"], row["val acc"], row["test acc"]) == pytest.approx((0.95, 0.9, 0.89))


def test_heatmap_is_rows_by_columns():
    hm = tables.heatmap_data(grid_run())
    assert hm["y"] == ["1.0", "0.1"] and hm["x"] == ["0.01", "0.0001"]
    assert hm["z"] == [[0.2, 0.3], [0.8, 0.9]] and hm["metric"] == "best_val_acc"


def test_no_seed_table_for_random_search():
    d = grid_run()
    d.spec.params["lr"] = {"loguniform": [1e-3, 1]}
    assert tables.seed_table(d) is None and tables.heatmap_data(d) is None


def test_repeats_are_averaged():
    t = [{"trial_id": f"x_{i}", "param.lr": 0.1, "best_val_acc": a, "val_acc": a, "test_acc": a,
          "epochs": 1, "best_epoch": 1} for i, a in enumerate([0.8, 0.9])]
    h = [{"trial_id": f"x_{i}", "epoch": 1, "val_acc": a, "train_acc": a} for i, a in enumerate([0.8, 0.9])]
    st = tables.seed_table(rundata(t, h, {"lr": {"grid": [0.1]}}))
    assert len(st) == 1 and st["val acc"][0] == pytest.approx(0.85) and st["n"][0] == 2


def test_audit_counts_rungs_and_savings():
    t = [{"trial_id": "a", "epochs": 3, "status": "completed", "best_val_acc": 0.9},
         {"trial_id": "b", "epochs": 1, "status": "stopped", "best_val_acc": 0.5},
         {"trial_id": "c", "epochs": 1, "status": "stopped", "best_val_acc": 0.4},
         {"trial_id": "d", "epochs": 2, "status": "diverged", "best_val_acc": 0.1}]
    d = rundata(t, [], {"lr": {"uniform": [0, 1]}}, scheduler="asha", max_epochs=3)
    audit = tables.early_stopping_audit(d).set_index("epoch")
    assert audit.loc[1, "reached"] == 4 and audit.loc[1, "stopped here"] == 2
    assert audit.loc[1, "went on"] == 2 and audit.loc[3, "reached"] == 1
    assert tables.epochs_saved(d) == {"used": 7, "full": 12, "saved_fraction": pytest.approx(5 / 12)}
    assert tables.early_stopping_audit(rundata(t, [], {}, scheduler="fifo")) is None


def test_compute_used():
    d = grid_run()
    assert tables.compute_used(d) == {"trial_epochs": 8, "trial_seconds": 4.0, "cpu_seconds": 8.0,
                                      "gpu_seconds": 0.0}


def test_warnings_edge_of_grid_and_still_improving():
    d = grid_run()
    d.spec.params["weight_decay"] = {"grid": [0.1, 0.01, 0.001, 0.0001]}
    ws = " | ".join(checks.warnings_for(d))
    assert "best weight_decay (0.0001) is the smallest value of the grid" in ws
    assert "still improving at the last epoch" in ws


def test_warnings_outer_range_and_failures():
    t = [{"trial_id": "a", "param.lr": 0.95, "best_val_acc": 0.9, "epochs": 1, "best_epoch": 1,
          "status": "completed"},
         {"trial_id": "b", "param.lr": 0.5, "best_val_acc": 0.5, "epochs": 1, "status": "diverged"},
         {"trial_id": "c", "param.lr": 0.4, "best_val_acc": None, "epochs": 0, "status": "error"}]
    ws = " | ".join(checks.warnings_for(rundata(t, [], {"lr": {"uniform": [0.0, 1.0]}}, max_epochs=1)))
    assert "best lr (0.95) lies in the outer 10% of its range [0, 1]" in ws
    assert "1 of 3 trial(s) diverged" in ws and "1 of 3 trial(s) failed with an error" in ws


def test_curve_data_colours_by_the_most_varied_param_and_marks_the_best():
    d = grid_run()
    assert curves.color_param(d) in ("lr", "weight_decay")
    recs = curves.curve_data(d, "lr")
    assert len(recs) == 4 and sum(r["best"] for r in recs) == 1
    best = next(r for r in recs if r["best"])
    assert best["metric"] == pytest.approx([0.8, 0.9]) and best["epoch"] == [1, 2]
    assert {r["pos"] for r in recs} == {0.0, 1.0}  # log-scale colour from lr 0.1 to 1


def test_loss_range_ignores_exploding_trials():
    recs = [{"val_loss": [1.0, 0.5], "train_loss": [1.2, 0.6]},
            {"val_loss": [1.0, 1e20], "train_loss": [1.1, 1e22]}]
    lo, hi = curves.loss_range(recs)
    assert lo < 0 and hi < 2  # capped near 20 x the first-epoch loss, not 1e22


def test_history_best_so_far():
    df = history.history_data(grid_run())
    assert df["best_so_far"].tolist() == [0.2, 0.3, 0.8, 0.9]
    assert df["end_s"].tolist() == [2.0, 12.0, 22.0, 32.0]
    df = history.history_data(grid_run(mode="min"))
    assert df["best_so_far"].tolist() == [0.2, 0.2, 0.2, 0.2]


def test_study_rebuilt_from_the_trials_table():
    study = build_study(grid_run())
    assert len(study.trials) == 4 and study.best_value == 0.9
    assert study.best_params == {"lr": 0.1, "weight_decay": 0.0001}


def test_a_trial_whose_configuration_was_lost_is_left_out_of_the_study():
    """A trial whose parameters the collector could not read (its config line cut by a full
    disk: NaN in the table) is not a point of Optuna's study; the others still are."""
    import math

    data = grid_run()
    data.trials.loc[0, "param.lr"] = math.nan
    study = build_study(data)
    assert len(study.trials) == 3 and study.best_params == {"lr": 0.1, "weight_decay": 0.0001}


def test_compare_progress_and_equal_compute():
    a, b = grid_run(), grid_run()
    b.spec = b.spec.model_copy(update={"name": "other"})
    p = progress(a)
    assert p["trial_epochs"].tolist() == list(range(1, 9))
    assert p["best_so_far"].iloc[-1] == 0.9 and p["best_so_far"].iloc[0] == pytest.approx(0.1)
    eq = at_equal_compute([a, b])
    assert "best @ 8 trial-epochs" in eq and "best @ 2 trial-epochs" in eq
    assert eq["final best"].tolist() == [0.9, 0.9]


def test_model_size_data_needs_varying_sizes_and_computes_the_gap():
    d = grid_run()
    assert tables.model_size_data(d) is None  # no n_params column
    d.trials["n_params"] = [1000, 1000, 5000, 5000]
    ms = tables.model_size_data(d)
    assert ms["n_params"].tolist() == [1000, 1000, 5000, 5000]
    best = ms[ms["best_val_acc"] == 0.9].iloc[0]
    assert best["train - test gap"] == pytest.approx(0.95 - 0.89)
    assert "lr=0.1" in best["config"] and "weight_decay=0.0001" in best["config"]
    d.trials["n_params"] = 1000
    assert tables.model_size_data(d) is None


def test_epoch_time_by_batch_size():
    d = grid_run()
    assert tables.epoch_time_data(d) is None
    d.trials["param.batch_size"] = [64, 64, 1024, 1024]
    d.history["epoch_time_s"] = [1.0 if t in ("x_00000", "x_00001") else 0.2 for t in d.history["trial_id"]]
    et = tables.epoch_time_data(d).set_index("batch_size")
    assert et.loc[64, "s per epoch"] == 1.0 and et.loc[1024, "s per epoch"] == 0.2
    assert et.loc[1024, "best_val_acc"] == 0.9 and et.loc[64, "trials"] == 2


def test_warning_names_the_collapsed_trials():
    from hpo.report.checks import warnings_for
    from tests.report_fixtures import grid_run

    d = grid_run()
    d.trials["collapsed"] = [True, False, False, False]
    ws = [w for w in warnings_for(d) if "collapsed" in w]
    assert ws == ["1 of 4 trial(s) collapsed: they trained without NaN but their accuracy stayed at "
                  "chance or their loss exploded (lr=1, weight_decay=0.01); see status_detail."]


def test_heatmap_colour_scale_shows_the_range_that_matters_and_marks_the_best():
    from tests.test_report_importance import _grid

    acc = lambda lr, wd: 0.1 if lr == 1.0 else 0.97 - 0.02 * (wd == 0.1) - 0.01 * (lr == 0.01)  # noqa: E731
    hm = tables.heatmap_data(_grid(acc))
    assert hm["clipped"] == 4 and hm["zmin"] == pytest.approx(0.94) and hm["zmax"] == pytest.approx(0.97)
    assert hm["best"] == ("0.01", "0.1")  # (weight_decay, lr) of the first best cell in grid order
    assert hm["y"] == ["1.0", "0.1", "0.05", "0.01"]  # the spec's (and the table's) order
    from hpo.report.heatmap import heatmap_figure

    fig = heatmap_figure(hm, "max")
    assert fig.layout.yaxis.autorange == "reversed" and "4 cell(s) far worse" in fig.layout.title.text
    assert fig.data[1].marker.symbol == "square-open"
    # nothing to clip: the scale is the data's own range
    plain = tables.heatmap_data(grid_run())
    assert plain["clipped"] == 0 and (plain["zmin"], plain["zmax"]) == (0.2, 0.9)


def test_learning_curve_legend_has_one_entry_per_value_or_range():
    import numpy as np

    lrs = list(np.geomspace(1e-3, 0.5, 12))
    trials = [{"trial_id": f"t{i}", "param.lr": lr, "best_val_acc": 0.5 + i / 100, "epochs": 2,
               "best_epoch": 2} for i, lr in enumerate(lrs)]
    hist = [{"trial_id": f"t{i}", "epoch": e, "val_acc": 0.5, "val_loss": 1.0, "train_loss": 1.0}
            for i in range(12) for e in (1, 2)]
    d = rundata(trials, hist, {"lr": {"loguniform": [1e-3, 0.5]}})
    recs = curves.curve_data(d, "lr")
    labels = {r["label"] for r in recs}
    assert len(labels) == 5 and all(lb.startswith("lr ") for lb in labels)  # ranges, rounded
    fig = curves.curves_figure(d, "lr")
    entries = [t.name for t in fig.data if t.showlegend is not False]
    assert len(entries) == 6 and entries[-1].startswith("BEST ")  # 5 ranges + the best trial
    # a grid: one entry per value, rounded
    g = curves.curves_figure(grid_run(), "lr")
    assert sorted(t.name for t in g.data if t.showlegend is not False) == ["BEST lr=0.1", "lr=0.1", "lr=1"]


def test_many_trials_become_bands_with_the_best_on_top():
    import numpy as np

    lrs = list(np.geomspace(1e-3, 0.5, 60))
    trials = [{"trial_id": f"t{i}", "param.lr": lr, "best_val_acc": 0.5 + i / 200, "epochs": 3,
               "best_epoch": 3} for i, lr in enumerate(lrs)]
    hist = [{"trial_id": f"t{i}", "epoch": e, "val_acc": 0.4 + e / 10 + i / 200, "val_loss": 1.0,
             "train_loss": 1.0} for i in range(60) for e in (1, 2, 3)]
    fig = curves.curves_figure(rundata(trials, hist, {"lr": {"loguniform": [1e-3, 0.5]}}), "lr")
    bands = [t for t in fig.data if t.fill == "toself"]
    lines = [t for t in fig.data if t.mode == "lines+markers"]
    assert len(bands) == 5 and len(lines) == curves.TOP
    assert "60 trials: median and 25-75% band per lr" in fig.layout.title.text
    assert lines[-1].name.startswith("BEST ")  # the best trial drawn last, on top


def test_one_epoch_trials_are_drawn_as_points_in_every_panel():
    import numpy as np

    for n in (3, 60):  # lines per trial, and bands above curves.MANY
        lrs = list(np.geomspace(1e-3, 0.5, n))
        trials = [{"trial_id": f"t{i}", "param.lr": lr, "best_val_acc": 0.5 + i / 200, "epochs": 1,
                   "best_epoch": 1} for i, lr in enumerate(lrs)]
        hist = [{"trial_id": f"t{i}", "epoch": 1, "val_acc": 0.5 + i / 200, "val_loss": 1.0,
                 "train_loss": 1.1} for i in range(n)]
        fig = curves.curves_figure(rundata(trials, hist, {"lr": {"loguniform": [1e-3, 0.5]}}), "lr")
        drawn = [t for t in fig.data if t.fill != "toself"]
        assert drawn and all("markers" in t.mode for t in drawn)


def test_the_loss_panel_says_which_trials_go_above_it():
    trials = [{"trial_id": "a", "param.lr": 0.1, "best_val_acc": 0.9, "epochs": 2, "best_epoch": 2},
              {"trial_id": "b", "param.lr": 1.0, "best_val_acc": 0.1, "epochs": 2, "best_epoch": 1}]
    hist = [{"trial_id": "a", "epoch": e, "val_acc": 0.9, "val_loss": 1.0 / e, "train_loss": 1.2 / e} for e in (1, 2)]
    hist += [{"trial_id": "b", "epoch": 1, "val_acc": 0.1, "val_loss": 2.3, "train_loss": 2.3},
             {"trial_id": "b", "epoch": 2, "val_acc": 0.1, "val_loss": 1e20, "train_loss": 1.7e22}]
    fig = curves.curves_figure(rundata(trials, hist, {"lr": {"grid": [0.1, 1.0]}}), "lr")
    assert [a.text for a in fig.layout.annotations if "above" in a.text] == [
        "1 trial(s) go above this range (losses up to 1.7e+22)"]


def test_parallel_coordinates_draw_the_worst_trials_visibly():
    from hpo.report.study import optuna_figures

    figs = optuna_figures(grid_run())
    lines = [t.line.color for t in figs["Parallel coordinates"].data if t.mode == "lines"]
    assert lines[0] == "rgb(68, 1, 84)"  # the worst trial at Viridis' dark end, not Blues' white


def test_optuna_plots_draw_a_sample_of_many_trials_and_say_so():
    import optuna

    from hpo.report.study import DRAWN_MAX, _drawn

    study = optuna.create_study(direction="maximize")
    dist = optuna.distributions.FloatDistribution(0, 1)
    for i in range(500):
        study.add_trial(optuna.trial.create_trial(params={"x": i / 500}, distributions={"x": dist}, value=i / 500))
    drawn, note = _drawn(study)
    values = sorted(t.value for t in drawn.trials)
    assert len(values) == DRAWN_MAX and values[-DRAWN_MAX // 2:] == [i / 500 for i in range(400, 500)]
    assert note == " (the 100 best and 100 evenly spaced others of 500 trials)"
    small, none = _drawn(build_study(grid_run()))
    assert none == "" and len(small.trials) == 4


def test_no_importance_plot_for_one_searched_parameter():
    """One searched parameter explains everything by definition (100% whatever the method; the
    architecture grid of `hidden` lists showed PED-ANOVA's trivial 1.00): no importance plot,
    the findings state its spread. Two parameters get it."""
    from hpo.report.study import optuna_figures

    lrs = [0.001, 0.003, 0.01, 0.03, 0.1, 0.3]
    trials = [{"trial_id": f"t{i}", "param.lr": lr, "best_val_acc": 0.9 - abs(i - 3) / 20,
               "val_acc": 0.9, "epochs": 1, "best_epoch": 1} for i, lr in enumerate(lrs)]
    hist = [{"trial_id": f"t{i}", "epoch": 1, "val_acc": 0.9} for i in range(len(lrs))]
    one = optuna_figures(rundata(trials, hist, {"lr": {"loguniform": [0.001, 1.0]}}))
    assert one and not [k for k in one if k.startswith("Parameter importance")], list(one)
    for i, t in enumerate(trials):
        t["param.weight_decay"] = [1e-4, 1e-3][i % 2]
    two = optuna_figures(rundata(trials, hist, {"lr": {"loguniform": [0.001, 1.0]},
                                                "weight_decay": {"loguniform": [1e-5, 1e-2]}}))
    assert [k for k in two if k.startswith("Parameter importance (PED-ANOVA on 6 trials")], list(two)


def test_optimization_history_without_times_has_no_empty_wall_time_panel():
    """A history without timestamps (here the synthetic 1,000-trial table) drew an empty
    'by wall time' panel with meaningless axes; it is left out. With times, both panels."""
    from hpo.report.history import history_figure

    with_times = history_figure(grid_run())
    assert [a.text for a in with_times.layout.annotations] == ["by trial index", "by wall time"]
    data = grid_run()
    data.history.drop(columns=["timestamp"], inplace=True)
    without = history_figure(data)
    assert [a.text for a in without.layout.annotations] == ["by trial index"]
    assert len(without.data) == 2 and "xaxis2" not in without.layout


def test_the_boundary_warning_needs_the_metric_to_improve_towards_the_edge():
    """x in [-5, 10], the optimum at 9.42: the best sampled x (9.54) is in the outer 10%, but
    trials closer to the edge do worse, so the optimum lies inside the range: no warning. With
    the metric still rising to the edge, the warning stands."""
    def run(f):
        xs = [9.54, 9.0, 9.8, 9.95, 8.0, 7.0, 2.0, -3.0]
        t = [{"trial_id": f"t{i}", "param.x": x, "best_val_acc": f(x), "epochs": 1, "best_epoch": 1}
             for i, x in enumerate(xs)]
        return " | ".join(checks.warnings_for(rundata(t, [], {"x": {"uniform": [-5.0, 10.0]}}, max_epochs=1)))

    assert "outer 10%" not in run(lambda x: 1 - (x - 9.42) ** 2 / 300)
    assert "best x (9.95) lies in the outer 10% of its range [-5, 10]" in run(lambda x: x / 10)


def test_a_section_that_fails_says_so_in_its_place_and_the_rest_is_written(monkeypatch):
    import hpo.report as report

    def history_section(data):
        raise KeyError("87b2fc37")

    with pytest.raises(KeyError):  # hpo's own tests: strict
        report._drawn(history_section, grid_run())
    monkeypatch.delenv(report.STRICT_ENV)
    with pytest.warns(UserWarning, match="the report's history section could not be drawn"):
        html = report._drawn(history_section, grid_run())
    assert "The history section could not be drawn: KeyError: &#x27;87b2fc37&#x27;" in html
    assert report._drawn(report.curves_section, grid_run()) == report.curves_section(grid_run())


def test_a_cell_whose_trial_diverged_at_its_first_epoch_says_so_instead_of_a_number():
    """Its reported value (the worst, what the searcher was told) is no measurement: the cell
    reads "no result (diverged)", is left out of the colour scale, and the other cells keep
    their numbers."""
    from hpo.report.heatmap import heatmap_figure

    d = grid_run()
    d.trials["best_epoch"] = [0, 2, 2, 2]
    d.trials.loc[0, "best_val_acc"] = 0.0
    d.trials.loc[0, "status"] = "diverged"
    hm = tables.heatmap_data(d)
    row = next(i for i, y in enumerate(hm["y"]) if y == str(d.trials.loc[0, "param.lr"]))
    col = hm["x"].index(str(d.trials.loc[0, "param.weight_decay"]))
    assert hm["z"][row][col] is None and hm["text"][row][col] == "no result (diverged)"
    assert sum(v is not None for r in hm["z"] for v in r) == 3 and hm["zmin"] > 0
    assert list(heatmap_figure(hm, "max").data[0].text[row]).count("no result (diverged)") == 1


def test_model_size_draws_errors_spanning_decades_on_a_log_axis_and_says_so():
    import pandas as pd

    from hpo.report.model_size import model_size_figure

    ms = pd.DataFrame({"config": ["a", "b", "c"], "n_params": [65, 257, 8577],
                       "best_val_mse": [2.9e-3, 1.6e-4, 2.0e-5], "gap": [6e-4, 1e-5, 2e-6]})
    fig = model_size_figure(ms, "best_val_mse", "gap", "min")
    assert fig.layout.yaxis.type == "log" and fig.layout.yaxis2.type != "log"
    assert any("log scale" in a.text for a in fig.layout.annotations)
    close = model_size_figure(ms.assign(best_val_mse=[0.95, 0.96, 0.97]), "best_val_mse", "gap", "max")
    assert close.layout.yaxis.type != "log"
