"""Confirmation section data and figure: the confirmed configurations' seeds as box plots, and
whether the winner's lead exceeds the seed-to-seed spread. Reads the confirmation's own
tables (<run>/confirm/trials.parquet) through hpo.confirm."""

from __future__ import annotations

from typing import Any

import pandas as pd

from hpo import confirm
from hpo.report.html import esc
from hpo.results import RunFolder


def confirm_data(data: RunFolder) -> dict[str, Any] | None:
    """{table, trials, verdict, seeds} or None when the run has no (readable) confirmation."""
    trials = confirm.confirm_trials(data.run_dir)
    if trials is None:
        return None
    ct = confirm.confirm_table(data.run_dir, trials)
    if ct is None:
        return None
    verdict = None
    m, sd = f"{data.metric} mean", f"{data.metric} std"
    if len(ct) >= 2 and ct[sd].notna().all():
        gap = abs(ct[m].iloc[0] - ct[m].iloc[1])
        noise = max(ct[sd].iloc[0], ct[sd].iloc[1])
        verdict = {"winner": ct["configuration"].iloc[0], "gap": gap, "noise": noise,
                   "beyond_noise": bool(gap > noise)}
    seeds = int(ct["seeds done"].max()) if len(ct) else 0
    return {"table": ct, "trials": trials, "verdict": verdict, "seeds": seeds}


def confirm_figure(cd: dict[str, Any], metric: str) -> Any:
    import plotly.graph_objects as go

    trials: pd.DataFrame = cd["trials"]
    col = f"param.{confirm.GROUP}"
    fig = go.Figure()
    for _, row in cd["table"].iterrows():
        sub = trials[trials[col] == row["configuration"]] if col in trials else trials
        fig.add_trace(go.Box(y=sub[f"best_{metric}"], name=esc(row["configuration"]), boxpoints="all",
                             jitter=0.3, pointpos=0, showlegend=False))
    fig.update_layout(height=380, yaxis_title=esc(metric), margin=dict(t=20, l=60, r=20, b=80))
    return fig
