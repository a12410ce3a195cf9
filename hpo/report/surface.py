"""3-D surface of a regression's predictions on its test grid, next to the true function.

Only for runs on `regression2d`: the trainable reports the best-val model's predictions on the
N x N test grid (`surface`), which the collector keeps in artifacts/surface.json; we draw the
truth and the best trial's prediction for each value of `m` (or the single best trial when `m`
is not searched).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from hpo import results
from hpo.data import synthetic
from hpo.report.html import esc
from hpo.report.values import finite
from hpo.results import RunFolder


def surface_data(data: RunFolder) -> dict[str, Any] | None:
    ds = data.info.get("dataset") or {}
    if ds.get("name") != "regression2d" or data.trials.empty:
        return None
    n = int(ds.get("grid_n") or synthetic.GRID_N)
    x1, x2 = synthetic.grid(n)
    col = data.best_col if data.best_col in data.trials else data.metric
    ok = data.trials[data.trials[col].map(finite)]
    if ok.empty:
        return None
    asc = data.mode == "min"
    if "param.m" in ok:
        picks = [(f"best for m={m}", g.sort_values(col, ascending=asc).iloc[0])
                 for m, g in ok.groupby("param.m", sort=True)]
    else:
        picks = [("best trial", ok.sort_values(col, ascending=asc).iloc[0])]
    panels = []
    for label, row in picks[:4]:
        z = results.artifact(data.run_dir, "surface", row["trial_id"])
        if not z or len(z) != n * n:
            continue
        test = row.get("test_mse", math.nan)
        panels.append({"label": label, "trial_id": row["trial_id"], "test_mse": test,
                       "z": np.asarray(z, dtype=float).reshape(n, n)})
    if not panels:
        return None
    return {"x1": x1, "x2": x2, "truth": synthetic.f(x1, x2), "panels": panels,
            "formula": ds.get("formula", synthetic.FORMULA)}


def surface_figure(sd: dict[str, Any]) -> Any:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    titles = ["truth: " + sd["formula"]] + [
        f"{p['label']} (test MSE {p['test_mse']:.2e})" for p in sd["panels"]]
    k = len(titles)
    fig = make_subplots(rows=1, cols=k, specs=[[{"type": "scene"}] * k],
                        subplot_titles=[esc(t) for t in titles], horizontal_spacing=0.02)
    zs = [sd["truth"]] + [p["z"] for p in sd["panels"]]
    lo, hi = float(min(z.min() for z in zs)), float(max(z.max() for z in zs))
    for i, z in enumerate(zs):
        fig.add_trace(go.Surface(x=sd["x1"], y=sd["x2"], z=z, colorscale="RdBu", cmin=lo, cmax=hi,
                                 showscale=i == 0), row=1, col=i + 1)
    scene = dict(xaxis_title="x1", yaxis_title="x2", zaxis_title="f", zaxis=dict(range=[lo, hi]))
    fig.update_layout(height=460, margin=dict(t=40, l=0, r=0, b=0),
                      **{f"scene{'' if i == 0 else i + 1}": scene for i in range(k)})
    return fig
