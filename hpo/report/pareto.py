"""Several objectives: the Pareto set as a table and Optuna's Pareto-front plot, on a
multi-objective study rebuilt from the trials table (the `pareto` and `feasible` columns the
collector wrote are the truth; the plot draws them)."""

from __future__ import annotations

from typing import Any

import pandas as pd

from hpo import results
from hpo.report.values import finite
from hpo.results import RunFolder


def objectives(data: RunFolder) -> dict[str, str]:
    return dict(data.info.get("objectives") or {})


def pareto_table(data: RunFolder) -> pd.DataFrame | None:
    """The Pareto-optimal trials, best primary metric first: trial, each objective, config."""
    objs = objectives(data)
    if len(objs) < 2 or "pareto" not in data.trials:
        return None
    return results.pareto_set(data.trials, objs, data.metric, data.mode)


def pareto_figure(data: RunFolder) -> Any | None:
    """Optuna's plot_pareto_front (2 or 3 objectives): every finished trial, the front
    highlighted, infeasible trials greyed (when the run has constraints)."""
    import optuna
    import optuna.visualization as ov

    objs = objectives(data)
    t = data.trials
    if not 2 <= len(objs) <= 3 or t.empty:
        return None
    cols = [results.objective_column(t, m) for m in objs]
    study = optuna.create_study(directions=["maximize" if d == "max" else "minimize" for d in objs.values()])
    has_cons = "feasible" in t
    n = 0
    for _, row in t.iterrows():
        vals = [row.get(c) for c in cols]
        if row["status"] not in results.ELIGIBLE or not all(finite(v) for v in vals):
            continue
        # infeasible trials carry a violated constraint (plot_pareto_front's constraints_func reads it)
        cons = {"violation": 0.0 if bool(row["feasible"]) else 1.0} if has_cons else {}
        study.add_trial(optuna.trial.create_trial(values=[float(v) for v in vals],
                                                  user_attrs={"trial": str(row["trial_id"]), **cons}))
        n += 1
    if n < 2:
        return None
    violated = (lambda ft: [ft.user_attrs["violation"]]) if has_cons else None
    fig = ov.plot_pareto_front(study, target_names=list(objs), constraints_func=violated)
    fig.update_layout(title=None, margin=dict(t=30, l=50, r=20, b=40), height=460)
    return fig
