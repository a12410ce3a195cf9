"""Model size figure: the best metric and the train-test gap against the parameter count
(data step: hpo.report.tables.model_size_data)."""

from __future__ import annotations

from typing import Any

import pandas as pd

from hpo.report.html import esc

LABELLED = 8  # up to this many points carry their configuration as text; more: on hover only


def model_size_figure(ms: pd.DataFrame, best_col: str, gap: str) -> Any:
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
    fig.update_layout(height=420, margin=dict(t=40, l=50, r=20, b=40))
    return fig
