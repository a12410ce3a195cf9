"""Model size figure: the best metric and the train-test gap against the parameter count
(data step: hpo.report.tables.model_size_data)."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from hpo.report.axes import clip
from hpo.report.html import esc

LABELLED = 8  # up to this many points carry their configuration as text; more: on hover only


def model_size_figure(ms: pd.DataFrame, best_col: str, gap: str, mode: str = "max") -> Any:
    """The best metric (a log axis where it spans decades, or clipped to the trials that did not
    collapse, said on the panel: hpo.report.axes.clip) and the test - train gap against the
    number of parameters."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=2, subplot_titles=(esc(best_col), esc(gap)))
    text = [esc(c) for c in ms["config"]]
    labelled = len(ms) <= LABELLED
    fig.add_trace(go.Scatter(x=ms["n_params"], y=ms[best_col], mode="markers+text" if labelled else "markers",
                             text=text if labelled else None, hovertext=text,
                             textposition="top center", textfont=dict(size=9), showlegend=False),
                  row=1, col=1)
    fig.add_trace(go.Scatter(x=ms["n_params"], y=ms[gap], mode="markers", hovertext=text,
                             showlegend=False), row=1, col=2)
    fig.update_xaxes(type="log", title_text="parameters")
    sizes = [float(v) for v in ms["n_params"] if pd.notna(v) and v > 0]
    if sizes:  # room for the labels of the smallest and largest models (log10 units)
        fig.update_xaxes(range=[math.log10(min(sizes)) - 0.35, math.log10(max(sizes)) + 0.35])
    clip(fig, {"": [float(v) for v in ms[best_col] if pd.notna(v)]}, mode, row=1, col=1)
    fig.update_layout(height=420, margin=dict(t=40, l=50, r=20, b=40))
    return fig
