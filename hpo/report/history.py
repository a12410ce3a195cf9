"""Optimization history: best-so-far metric against trial index and wall time."""

from __future__ import annotations

from typing import Any

import pandas as pd

from hpo.report.axes import clip
from hpo.report.values import finite
from hpo.results import RunFolder


def history_data(data: RunFolder) -> pd.DataFrame:
    """Per trial in creation order: its best metric, when it ended, and the best so far."""
    t = data.trials
    if t.empty:
        return pd.DataFrame(columns=["trial_index", "value", "end_s", "best_so_far"])
    h = data.history
    started = data.info.get("started")
    start = float(started if started is not None else (h["timestamp"].min() if len(h) else 0))
    ends = h.groupby("trial_id")["timestamp"].max() if len(h) and "timestamp" in h else pd.Series()
    if "ended_at" in t:  # the event log's end, to the microsecond (Ray's timestamp: whole seconds)
        ends = pd.Series(t["ended_at"].values, index=t["trial_id"]).fillna(ends)
    df = pd.DataFrame({
        "trial_id": t["trial_id"], "trial_index": t["trial_index"],
        "value": [v if finite(v) else None for v in t[data.best_col]],
        "end_s": [float(ends.get(i, float("nan"))) - start for i in t["trial_id"]],
    }).sort_values("trial_index")
    df["best_so_far"] = _running_best(df["value"], data.mode)
    return df.reset_index(drop=True)


def _running_best(values: pd.Series, mode: str) -> list[float | None]:
    out, best = [], None
    for v in values:
        if v is not None and v == v and (best is None or (v > best if mode == "max" else v < best)):
            best = v
        out.append(best)
    return out


def history_figure(data: RunFolder) -> Any:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    df = history_data(data)
    by_t = df.dropna(subset=["end_s"]).sort_values("end_s")
    if by_t["end_s"].round(1).nunique() < 3:
        # no times in the history (a table written by other means), or trials that all ended
        # together (a pack trains its members at once): no empty panel, no vertical line
        by_t = by_t.iloc[0:0]
    if by_t.empty:
        fig = make_subplots(rows=1, cols=1, subplot_titles=("by trial index",))
    else:
        fig = make_subplots(rows=1, cols=2, subplot_titles=("by trial index", "by wall time"))
    fig.add_trace(go.Scatter(x=df["trial_index"], y=df["value"], mode="markers", name="trial",
                             marker=dict(color="#8888cc")), row=1, col=1)
    fig.add_trace(go.Scatter(x=df["trial_index"], y=df["best_so_far"], mode="lines",
                             line=dict(shape="hv", color="black"), name="best so far"), row=1, col=1)
    fig.update_xaxes(title_text="trial index", row=1, col=1)
    if not by_t.empty:
        fig.add_trace(go.Scatter(x=by_t["end_s"], y=by_t["value"], mode="markers", showlegend=False,
                                 marker=dict(color="#8888cc")), row=1, col=2)
        fig.add_trace(go.Scatter(x=by_t["end_s"], y=_running_best(by_t["value"], data.mode),
                                 mode="lines", line=dict(shape="hv", color="black"), showlegend=False),
                      row=1, col=2)
        fig.update_xaxes(title_text="seconds since start", row=1, col=2)
    fig.update_yaxes(title_text=data.best_col)
    values = {str(t): [v] for t, v in zip(df["trial_id"], df["value"], strict=True) if v is not None}
    clip(fig, values, data.mode, row=1, col=1)
    if not by_t.empty:
        clip(fig, values, data.mode, row=1, col=2, xref="x2 domain", yref="y2 domain")
    fig.update_layout(height=380, margin=dict(t=40, l=50, r=20, b=40))
    return fig
