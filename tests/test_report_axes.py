"""hpo.report.axes: value axes that keep the good trials readable when some collapse, and say so
on the figure (curves, history, Optuna's slice plot)."""

from __future__ import annotations

import pytest

from hpo.report import curves, history
from hpo.report.axes import readable_range
from tests.report_fixtures import rundata


def test_one_exploding_regression_trial_does_not_flatten_the_others():
    vals = {f"t{i}": [2.0 - 0.1 * i, 1.0 - 0.05 * i] for i in range(6)}
    vals["bad"] = [50_000.0, 117_000.0]
    rng, note = readable_range(vals, "min")
    assert rng is not None and rng[1] < 3 and rng[0] < 0.75
    assert note == "axis clipped to the 6 trials that did not collapse: 1 trial(s) above it (to 1.17e+05)"


def test_accuracy_trials_at_chance_leave_the_axis_to_the_good_ones():
    vals = {f"g{i}": [0.90 + 0.01 * i, 0.95 + 0.005 * i] for i in range(5)}
    vals.update({"c1": [0.098, 0.101], "c2": [0.1, 0.099]})
    rng, note = readable_range(vals, "max")
    assert rng[0] > 0.85 and rng[1] < 1.0
    assert "2 trial(s) below it (to 0.098)" in note


@pytest.mark.parametrize("vals", [
    {f"t{i}": [0.5 + 0.1 * i] for i in range(6)},  # spread out, nobody far out
    {"a": [0.1], "b": [0.9], "c": [0.92]},  # too few trials to call any an outlier
])
def test_no_clipping_without_a_far_out_trial(vals):
    assert readable_range(vals, "max") == (None, None)


def _run(n_good: int, bad: float, metric: str = "val_mse", mode: str = "min"):
    trials, hist = [], []
    for i in range(n_good + 1):
        tid = f"x_{i:05d}"
        last = bad if i == n_good else 1.0 + 0.1 * i
        trials.append({"trial_id": tid, "param.lr": 0.01 * (i + 1), f"best_{metric}": last,
                       metric: last, "epochs": 2, "best_epoch": 2})
        for e in (1, 2):
            hist.append({"trial_id": tid, "epoch": e, metric: last * (1.5 if e == 1 else 1.0),
                         "timestamp": 10.0 * i + e})
    return rundata(trials, hist, {"lr": {"grid": [0.01 * (i + 1) for i in range(n_good + 1)]}},
                   mode=mode, metric=metric)


def test_curves_and_history_say_they_clipped():
    trials, hist = [], []  # six trials near 0.9 accuracy, one at chance
    for i in range(7):
        tid = f"x_{i:05d}"
        acc = [0.1, 0.1] if i == 6 else [0.9 + 0.004 * i, 0.92 + 0.004 * i]
        trials.append({"trial_id": tid, "param.lr": 0.01 * (i + 1), "best_val_acc": max(acc),
                       "val_acc": acc[-1], "epochs": 2, "best_epoch": 2})
        hist += [{"trial_id": tid, "epoch": e, "val_acc": a, "timestamp": 10.0 * i + e}
                 for e, a in zip((1, 2), acc, strict=True)]
    data = rundata(trials, hist, {"lr": {"grid": [0.01 * (i + 1) for i in range(7)]}})
    fig = curves.curves_figure(data, "lr")
    assert fig.layout.yaxis.range is not None and fig.layout.yaxis.range[0] > 0.85
    assert any("1 trial(s) below it (to 0.1)" in a.text for a in fig.layout.annotations)
    assert fig.layout.xaxis.dtick == 1  # whole epochs
    h = history.history_figure(data)
    assert h.layout.yaxis.range[0] > 0.8 and h.layout.yaxis2.range[0] > 0.8
    assert sum("1 trial(s) below it" in a.text for a in h.layout.annotations) == 2
    calm = curves.curves_figure(_run(6, 1.8), "lr")
    assert calm.layout.yaxis.range is None and not any("clipped" in a.text for a in calm.layout.annotations)


def test_errors_that_span_decades_get_a_log_axis_said_on_the_figure():
    fig = curves.curves_figure(_run(6, 117_000.0), "lr")
    assert fig.layout.yaxis.type == "log"
    assert any(a.text == "log scale: the values span 1 to 1.76e+05" for a in fig.layout.annotations)


def test_trials_that_all_ended_together_get_no_wall_time_panel():
    data = _run(6, 1.8)
    data.history["timestamp"] = 5.0  # a pack: every member's epochs at the pack's times
    h = history.history_figure(data)
    assert [a.text for a in h.layout.annotations if a.text.startswith("by")] == ["by trial index"]


def test_the_slice_plot_gets_the_same_axes_on_every_panel():
    import optuna
    import optuna.distributions as od
    from optuna.visualization import plot_slice

    from hpo.report.study import _readable_slice

    def study(values):
        s = optuna.create_study(direction="minimize")
        dists = {"lr": od.FloatDistribution(1e-4, 1, log=True), "wd": od.FloatDistribution(0, 1)}
        for i, v in enumerate(values):
            s.add_trial(optuna.trial.create_trial(params={"lr": 10 ** -(i % 4), "wd": i / 10}, distributions=dists,
                                                  value=v))
        return s

    decades = study([1e-4, 3e-3, 0.02, 0.2, 0.05])  # a regression's errors: log, said once
    fig = _readable_slice(plot_slice(decades), decades, "min")
    assert {ax.type for ax in (fig.layout.yaxis, fig.layout.yaxis2)} == {"log"}
    assert [a.text for a in fig.layout.annotations if "log scale" in a.text] != []
    collapsed = study([0.97, 0.96, 0.975, 0.965, 0.97, 0.1])  # one at chance accuracy: clipped, said
    fig = _readable_slice(plot_slice(collapsed), collapsed, "max")
    assert fig.layout.yaxis.range[0] > 0.5 and fig.layout.yaxis2.range[0] > 0.5
    assert any("1 trial(s) below it" in a.text for a in fig.layout.annotations)
