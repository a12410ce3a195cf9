"""Grid heatmap: the mean best metric of each value pair of a 2-D grid (data step:
hpo.report.tables.heatmap_data)."""

from __future__ import annotations

from typing import Any


def heatmap_figure(hm: dict[str, Any], mode: str) -> Any:
    import plotly.graph_objects as go

    from hpo.report.html import esc

    fig = go.Figure(go.Heatmap(
        x=[esc(x) for x in hm["x"]], y=[esc(y) for y in hm["y"]], z=hm["z"],
        colorscale="Viridis", reversescale=mode == "min", texttemplate="%{z:.4f}",
        colorbar=dict(title=esc(hm["metric"]))))
    fig.update_layout(height=420, xaxis=dict(title=esc(hm["x_name"]), type="category"),
                      yaxis=dict(title=esc(hm["y_name"]), type="category"),
                      margin=dict(t=30, l=60, r=20, b=50))
    return fig
