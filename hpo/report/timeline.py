"""When trials ran: one bar per trial from its start to its end, coloured by how it ended, so
concurrency, early stops and idle workers show (data step: timeline_data). From the trials
table's `started_at` / `ended_at` (the runner's event log); a trial without them (a run from an
older hpo, or still running) from its reports' times in the history table."""

from __future__ import annotations

from typing import Any

import pandas as pd

from hpo.report.load import RunData

COLOURS = {"completed": "#2a9d8f", "stopped": "#e9c46a", "diverged": "#e76f51", "error": "#9b2226",
           "incomplete": "#8d99ae"}


def timeline_data(data: RunData) -> pd.DataFrame | None:
    """trial_index, trial_id, start_s, end_s (seconds since the first start), status, detail,
    and `slot` (the lane it ran in: trials that overlap get different lanes)."""
    h, t = data.history, data.trials
    if h.empty or t.empty or "timestamp" not in h:
        return None
    first = h.sort_values("epoch").groupby("trial_id").first()
    last = h.groupby("trial_id")["timestamp"].max()
    rows = []
    for _, r in t.iterrows():
        tid = r["trial_id"]
        start, end = r.get("started_at"), r.get("ended_at")
        if tid in first.index:
            took = first.at[tid, "time_total_s"] if "time_total_s" in first else 0.0
            if pd.isna(start):
                start = float(first.at[tid, "timestamp"]) - (0.0 if pd.isna(took) else float(took))
            if pd.isna(end):
                end = float(last[tid])
        if pd.isna(start) or pd.isna(end):
            continue
        rows.append({"trial_index": int(r["trial_index"]), "trial_id": tid, "start": float(start),
                     "end": float(end), "status": r["status"], "detail": r["status_detail"]})
    if not rows:
        return None
    out = pd.DataFrame(rows).sort_values(["start", "trial_index"]).reset_index(drop=True)
    t0 = out["start"].min()
    out["start_s"], out["end_s"] = out["start"] - t0, (out["end"] - t0).clip(lower=out["start"] - t0)
    lanes: list[float] = []  # each lane's end time: a trial takes the first free lane
    slots = []
    for s, e in zip(out["start_s"], out["end_s"], strict=True):
        free = next((i for i, end in enumerate(lanes) if end <= s + 1e-9), None)
        if free is None:
            lanes.append(e)
            free = len(lanes) - 1
        lanes[free] = e
        slots.append(free)
    out["slot"] = slots
    return out.drop(columns=["start", "end"])


def timeline_figure(tl: pd.DataFrame) -> Any:
    import plotly.graph_objects as go

    from hpo.report.html import esc

    fig = go.Figure()
    for status, g in tl.groupby("status", sort=False):
        hover = [esc(f"trial {i} ({tid}): {d}")
                 for i, tid, d in zip(g["trial_index"], g["trial_id"], g["detail"], strict=True)]
        fig.add_trace(go.Bar(
            base=g["start_s"], x=(g["end_s"] - g["start_s"]).clip(lower=0.05),
            y=[f"lane {s + 1}" for s in g["slot"]], orientation="h", name=esc(status),
            marker_color=COLOURS.get(status, "#555"), text=[str(i) for i in g["trial_index"]],
            textposition="inside", insidetextanchor="middle", hovertext=hover, hoverinfo="text+x"))
    lanes = int(tl["slot"].max()) + 1
    fig.update_layout(barmode="overlay", height=140 + 28 * lanes, margin=dict(t=30, l=60, r=20, b=40),
                      xaxis=dict(title="seconds since the first trial started"),
                      yaxis=dict(title="", autorange="reversed", type="category"))
    return fig
