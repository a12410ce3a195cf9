"""Parameter importance of a complete grid, computed exactly from the grid itself.

On a complete, balanced grid the variance of the selection metric over the cells splits
exactly into each parameter's main effect (the variance of its marginal means) and the
interactions (the rest): a functional ANOVA with no model and no sampling. It is what the
question "which parameter matters" means for a grid, and unlike a model fitted to 16 points it
cannot give two parameters 0.50 each when one of them decides everything. Repeats of a cell
(num_samples > 1) are averaged; a cell whose trials produced no finite value (diverged at the
first epoch) counts as the worst value seen, and the note says so.
"""

from __future__ import annotations

import itertools
import json
from typing import Any

import pandas as pd

from hpo.report.tables import grid_params
from hpo.results import RunFolder
from hpo.space import thaw


def grid_cells(data: RunFolder) -> tuple[pd.DataFrame, int] | None:
    """(one row per grid cell: each parameter's value label and the cell's mean value, the
    number of cells filled with the worst value) when the run is a complete grid whose
    parameters have >= 2 values each; None otherwise."""
    params = grid_params(data)
    t = data.trials
    if not params or t.empty or data.best_col not in t or any(f"param.{p}" not in t for p in params):
        return None  # (a table that does not hold every searched parameter is not this grid)
    levels = {p: data.searched[p].labels() if data.searched[p].is_group
              else [_label(v) for v in data.searched[p].values] for p in params}
    if any(len(v) < 2 for v in levels.values()):
        return None
    keyed = t.assign(**{f"_k{i}": t[f"param.{p}"].map(_label) for i, p in enumerate(params)})
    values = pd.to_numeric(keyed[data.best_col], errors="coerce")
    finite = values.replace([float("inf"), -float("inf")], float("nan"))
    if finite.notna().sum() == 0:
        return None
    worst = finite.min() if data.mode == "max" else finite.max()
    keys = [f"_k{i}" for i in range(len(params))]
    means = keyed.assign(_v=finite).groupby(keys)["_v"].mean()
    rows, filled = [], 0
    for combo in itertools.product(*levels.values()):
        key = combo if len(combo) > 1 else combo[0]
        if key not in means.index:
            return None  # a cell never ran: not a complete grid (e.g. still running)
        v = means.loc[key]
        if pd.isna(v):
            v, filled = worst, filled + 1
        rows.append({**dict(zip(params, combo, strict=True)), "value": float(v)})
    return pd.DataFrame(rows), filled


def _label(v: Any) -> str:
    """One text per grid value, the same from the spec and from the table (1 == 1.0, a list
    and its JSON text)."""
    v = thaw(v)
    if isinstance(v, bool) or isinstance(v, str):
        return str(v)
    if isinstance(v, (int, float)):
        return repr(float(v))
    return json.dumps(v, sort_keys=True)


def decomposition(cells: pd.DataFrame, params: list[str]) -> pd.DataFrame:
    """Share of the variance over the cells: each parameter's main effect, then everything
    the main effects do not explain (interactions), in percent; sums to 100."""
    y = cells["value"]
    total = float(((y - y.mean()) ** 2).mean())
    rows = []
    for p in params:
        marg = cells.groupby(p)["value"].transform("mean")
        share = 100 * float(((marg - y.mean()) ** 2).mean()) / total if total else 0.0
        rows.append({"source": p, "share_%": share})
    main = sum(r["share_%"] for r in rows)
    if len(params) > 1:
        rows.append({"source": "interactions", "share_%": 0.0 if total == 0 else max(0.0, 100 - main)})
    return pd.DataFrame(rows)


def grid_importance(data: RunFolder) -> dict[str, Any] | None:
    """The decomposition of a complete grid of >= 2 parameters, with what it rests on; None
    otherwise."""
    got = grid_cells(data)
    if got is None:
        return None
    cells, filled = got
    params = [c for c in cells.columns if c != "value"]
    if len(params) < 2:  # one parameter explains all of a 1-D grid's variance: nothing to say
        return None
    return {"table": decomposition(cells, params), "cells": len(cells), "filled": filled,
            "metric": data.best_col}


def importance_figure(imp: dict[str, Any]) -> Any:
    import plotly.graph_objects as go

    t = imp["table"].iloc[::-1]
    fig = go.Figure(go.Bar(x=t["share_%"], y=t["source"], orientation="h",
                           text=[f"{v:.1f}%" for v in t["share_%"]], textposition="outside",
                           hovertemplate="%{y}: %{x:.1f}% of the variance<extra></extra>"))
    fig.update_layout(height=120 + 40 * len(t), margin=dict(t=20, l=90, r=40, b=40),
                      xaxis=dict(title=f"share of the variance of {imp['metric']} (%)", range=[0, 110]))
    return fig
