"""The timeline's data step on constructed tables: lanes for overlapping trials, times from the
event log's columns, or from the history table for runs without them."""

from __future__ import annotations

import pytest

from hpo.report.timeline import timeline_data, timeline_figure
from tests.report_fixtures import rundata


def test_lanes_follow_concurrency_and_status_colours_the_bars():
    trials = [
        {"trial_id": "a", "started_at": 100.0, "ended_at": 110.0, "status": "completed"},
        {"trial_id": "b", "started_at": 100.5, "ended_at": 102.0, "status": "stopped",
         "status_detail": "stopped by ASHA at epoch 1"},
        {"trial_id": "c", "started_at": 102.2, "ended_at": 108.0, "status": "completed"},
        {"trial_id": "d", "started_at": 110.1, "ended_at": 111.0, "status": "error"},
    ]
    hist = [{"trial_id": t["trial_id"], "epoch": 1, "timestamp": t["ended_at"], "time_total_s": 1.0,
             "val_acc": 0.5} for t in trials]
    tl = timeline_data(rundata(trials, hist, {"lr": {"grid": [1, 2, 3, 4]}}))
    assert tl["trial_id"].tolist() == ["a", "b", "c", "d"]
    assert tl["slot"].tolist() == [0, 1, 1, 0]  # c reuses b's lane; d a's once a ended
    assert tl["start_s"].tolist() == pytest.approx([0.0, 0.5, 2.2, 10.1])
    fig = timeline_figure(tl)
    assert {t.name for t in fig.data} == {"completed", "stopped", "error"}


def test_times_from_the_history_when_the_table_has_none():
    trials = [{"trial_id": "a"}, {"trial_id": "b"}]
    hist = [{"trial_id": "a", "epoch": 1, "timestamp": 11, "time_total_s": 1.0},
            {"trial_id": "a", "epoch": 2, "timestamp": 12, "time_total_s": 2.0},
            {"trial_id": "b", "epoch": 1, "timestamp": 15, "time_total_s": 3.0}]
    tl = timeline_data(rundata(trials, hist, {"lr": {"grid": [1, 2]}}))
    assert tl[["start_s", "end_s", "slot"]].values.tolist() == [[0.0, 2.0, 0], [2.0, 5.0, 0]]


def test_a_packs_members_share_its_lane_and_each_bar_ends_at_its_last_epoch():
    """16 members in 2 packs at max_concurrent_trials 2: 2 lanes, not 16; the member that
    diverged at epoch 2 ends there, not at the pack's end."""
    trials, hist = [], []
    for p, t0 in (("P1", 100.0), ("P2", 100.5)):
        for m in range(8):
            tid = f"{p}_m{m}"
            epochs = 2 if (p, m) == ("P1", 3) else 6
            trials.append({"trial_id": tid, "pack": p, "pack_size": 8, "started_at": t0,
                           "ended_at": t0 + 15.0, "time_s": 1.86,
                           "status": "diverged" if epochs == 2 else "completed"})
            hist += [{"trial_id": tid, "epoch": e, "timestamp": t0 + 2.5 * e, "time_total_s": 2.5 * e,
                      "val_acc": 0.5} for e in range(1, epochs + 1)]
    tl = timeline_data(rundata(trials, hist, {"lr": {"grid": [1, 2]}}))
    assert sorted(tl["slot"].unique()) == [0, 1] and tl.groupby("pack")["slot"].nunique().eq(1).all()
    row = tl.set_index("trial_id").loc["P1_m3"]
    assert row["start_s"] == 0 and row["end_s"] == pytest.approx(5.0)  # 2 epochs, not the pack's 15 s
    assert tl.set_index("trial_id").loc["P1_m0", "end_s"] == pytest.approx(15.0)
    fig = timeline_figure(tl)
    assert {y for t in fig.data for y in t.y} == {"lane 1", "lane 2"}
    assert "2 vectorized pack(s)" in fig.layout.title.text
    hover = " ".join(h for t in fig.data for h in t.hovertext)
    assert "one of the 8 members of pack P1" in hover and "1.86 s" in hover


def test_an_interrupted_run_whose_trial_never_reported_draws_the_others():
    """Two trials at once, cut by Ctrl-C: neither has an end time (the table holds None), and the
    second started but never reported an epoch."""
    trials = [{"trial_id": "a", "started_at": 100.0, "ended_at": None, "status": "incomplete"},
              {"trial_id": "b", "started_at": 100.2, "ended_at": None, "status": "incomplete"}]
    hist = [{"trial_id": "a", "epoch": e, "timestamp": 100.0 + e, "time_total_s": float(e)} for e in (1, 2)]
    tl = timeline_data(rundata(trials, hist, {"lr": {"grid": [1, 2]}}))
    assert tl["trial_id"].tolist() == ["a"] and tl["end_s"].tolist() == [2.0]
