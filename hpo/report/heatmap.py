"""Grid heatmap: the mean best metric of each value pair of a 2-D grid (data step:
hpo.report.tables.heatmap_data)."""

from __future__ import annotations

from typing import Any

from hpo.report.html import esc


def heatmap_figure(hm: dict[str, Any], mode: str) -> Any:
    import plotly.graph_objects as go

    clipped = hm.get("clipped", 0)
    fig = go.Figure(go.Heatmap(
        x=[esc(x) for x in hm["x"]], y=[esc(y) for y in hm["y"]], z=hm["z"],
        zmin=hm.get("zmin"), zmax=hm.get("zmax"),
        colorscale="Viridis", reversescale=mode == "min", text=hm.get("text"),
        texttemplate="%{text}" if hm.get("text") else "%{z:.4g}",
        hovertemplate=f"{esc(hm['y_name'])}=%{{y}}, {esc(hm['x_name'])}=%{{x}}: "
                      + ("%{text}" if hm.get("text") else "%{z:.4g}") + "<extra></extra>",
        colorbar=dict(title=esc(hm["metric"]) + ("<br>(clipped)" if clipped else ""))))
    if "best" in hm:  # the best cell, framed
        x, y = hm["best"]
        fig.add_trace(go.Scatter(x=[esc(x)], y=[esc(y)], mode="markers+text", text=["best"],
                                 textposition="top center", showlegend=False, hoverinfo="skip",
                                 marker=dict(symbol="square-open", size=46, color="red", line=dict(width=3))))
    title = (f"{clipped} cell(s) far worse than the rest (e.g. collapsed or diverged) lie outside the colour "
             f"scale, which covers {hm['zmin']:.4g} to {hm['zmax']:.4g}; their values are written in them"
             if clipped else None)
    fig.update_layout(height=420, xaxis=dict(title=esc(hm["x_name"]), type="category"),
                      # rows top to bottom in the grid table's order
                      yaxis=dict(title=esc(hm["y_name"]), type="category", autorange="reversed"),
                      title=dict(text=esc(title), font=dict(size=12)) if title else None,
                      margin=dict(t=40 if title else 30, l=60, r=20, b=50))
    return fig
