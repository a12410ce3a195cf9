"""When trials ran: one bar per trial from its start to its end, coloured by how it ended, so
concurrency, early stops and idle workers show (data step: timeline_data). From the trials
table's `started_at` / `ended_at` (the runner's event log); a trial without them (a run from an
older hpo, or still running) from its reports' times in the history table."""

from __future__ import annotations

from typing import Any

import pandas as pd

from hpo.report.html import esc
from hpo.results import RunFolder

COLOURS = {"completed": "#2a9d8f", "stopped": "#e9c46a", "diverged": "#e76f51", "error": "#9b2226",
           "incomplete": "#8d99ae"}


def timeline_data(data: RunFolder) -> pd.DataFrame | None:
    """trial_index, trial_id, start_s, end_s (seconds since the first start), status, detail,
    `slot` (the lane it ran in: trials that overlap get different lanes) and `pack` (the
    vectorized pack it trained in, or None). A pack is one Ray trial: its members share one lane,
    each bar from the pack's start to the member's own last epoch (a member that diverged or was
    cut stops there, not at the pack's end)."""
    h, t = data.history, data.trials
    if h.empty or t.empty or "timestamp" not in h:
        return None
    first = h.sort_values("epoch").groupby("trial_id").first()
    last = h.groupby("trial_id")["timestamp"].max()
    # Ray's `timestamp` is in whole seconds: a member's own end is its pack's start plus the
    # pack's running time at the member's last epoch (`time_total_s`, to the microsecond)
    trained = h.sort_values("epoch").groupby("trial_id")["time_total_s"].last() \
        if "time_total_s" in h else pd.Series(dtype=float)
    rows = []
    for _, r in t.iterrows():
        tid = r["trial_id"]
        pack = r.get("pack") if isinstance(r.get("pack"), str) else None
        start, end = r.get("started_at"), r.get("ended_at")
        own_end = False  # a member ends at its own last epoch: set below, from its pack's start
        if tid in first.index:
            took = first.at[tid, "time_total_s"] if "time_total_s" in first else 0.0
            if pd.isna(start):
                start = float(first.at[tid, "timestamp"]) - (0.0 if pd.isna(took) else float(took))
            own_end = pack is not None and tid in trained.index and bool(pd.notna(trained[tid]))
            if not own_end and pd.isna(end):
                end = float(last[tid])
        if pd.isna(start) or (not own_end and pd.isna(end)):
            continue  # never reported and never ended (cut before its first epoch): nothing to draw
        rows.append({"trial_index": int(r["trial_index"]), "trial_id": tid, "start": float(start),
                     "end": None if own_end else float(end), "status": r["status"],
                     "detail": r["status_detail"], "pack": pack, "time_s": r.get("time_s"),
                     "trained": float(trained[tid]) if own_end else None})
    if not rows:
        return None
    out = pd.DataFrame(rows)
    unit = out["pack"].where(out["pack"].notna(), out["trial_id"])
    # a pack's members started together: the pack's start for all of them
    out["start"] = out.groupby(unit)["start"].transform("min")
    own = out["end"].isna()
    if own.any():
        out["end"] = out["end"].astype(float).where(~own, out["start"] + out["trained"].astype(float))
    out = out.assign(unit=unit).sort_values(["start", "trial_index"]).reset_index(drop=True)
    t0 = out["start"].min()
    out["start_s"], out["end_s"] = out["start"] - t0, (out["end"] - t0).clip(lower=out["start"] - t0)
    spans = out.groupby("unit", sort=False).agg(s=("start_s", "min"), e=("end_s", "max"))
    lanes: list[float] = []  # each lane's end time: a trial (or a pack) takes the first free lane
    slot_of = {}
    for u, (s, e) in spans.sort_values("s", kind="stable").iterrows():
        free = next((i for i, end in enumerate(lanes) if end <= s + 1e-9), None)
        if free is None:
            lanes.append(e)
            free = len(lanes) - 1
        lanes[free] = e
        slot_of[u] = free
    out["slot"] = out["unit"].map(slot_of)
    return out.drop(columns=["start", "end", "unit", "trained"])


def timeline_figure(tl: pd.DataFrame) -> Any:
    import plotly.graph_objects as go

    fig = go.Figure()
    packed = "pack" in tl and tl["pack"].notna().any()
    sizes = tl.groupby("pack")["trial_id"].count() if packed else pd.Series(dtype=int)
    # longest first: in a pack's lane a member that ended early is drawn on top, visible
    tl = tl.assign(_len=tl["end_s"] - tl["start_s"]).sort_values("_len", ascending=False)
    for status, g in tl.groupby("status", sort=False):
        hover = []
        for i, tid, d, pk, ts, ln in zip(g["trial_index"], g["trial_id"], g["detail"],
                                         g.get("pack", [None] * len(g)), g.get("time_s", [None] * len(g)),
                                         g["_len"], strict=True):
            what = f"trial {i} ({tid}): {d}; trained {ln:.3g} s"
            if isinstance(pk, str):
                share = f" (its share of the pack's compute: {ts:.3g} s)" if ts == ts and ts else ""
                what += f" as one of the {int(sizes[pk])} members of pack {pk}, trained at once{share}"
            hover.append(esc(what))
        fig.add_trace(go.Bar(
            base=g["start_s"], x=g["_len"].clip(lower=0.05),
            y=[f"lane {s + 1}" for s in g["slot"]], orientation="h", name=esc(status),
            marker_color=COLOURS.get(status, "#555"), marker_line=dict(color="white", width=0.5),
            text=[str(i) for i in g["trial_index"]], textposition="inside", insidetextanchor="end",
            hovertext=hover, hoverinfo="text"))
    lanes = int(tl["slot"].max()) + 1
    title = ""
    if packed:
        title = (f"{len(sizes)} vectorized pack(s): a pack's members train together in one lane, "
                 f"each bar ending at the member's last epoch")
    fig.update_layout(barmode="overlay", height=140 + 28 * lanes, margin=dict(t=40, l=60, r=20, b=40),
                      title=dict(text=esc(title), font=dict(size=12)),
                      xaxis=dict(title="seconds since the first trial started"),
                      yaxis=dict(title="", autorange="reversed", type="category", categoryorder="array",
                                 categoryarray=[f"lane {i + 1}" for i in range(lanes)]))
    return fig
