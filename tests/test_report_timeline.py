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
