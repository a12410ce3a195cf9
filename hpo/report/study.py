"""An Optuna study rebuilt from the trials table, so the report reuses Optuna's plotly
visualizations (parallel coordinates, parameter importance, slice, contour) instead of
re-implementing them."""

from __future__ import annotations

import json
import warnings
from typing import Any

from hpo.report.load import RunData, finite
from hpo.space import optuna_category


def distributions(data: RunData) -> dict[str, Any]:
    return {name: p.to_optuna() for name, p in data.searched.items()}


def _value(dist: Any, v: Any) -> Any:
    import optuna.distributions as od

    if isinstance(dist, od.CategoricalDistribution):
        for c in dist.choices:  # match 1.0 read back from a table with the category 1
            if c == v or str(c) == str(v) or (isinstance(c, str) and c == optuna_category(v)):
                return c
        return None
    if isinstance(dist, od.IntDistribution):
        return int(v)
    return min(max(float(v), dist.low), dist.high)


def build_study(data: RunData) -> Any | None:
    """A study of the finished trials with a finite metric; None when there are fewer than 2."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    dists = distributions(data)
    if not dists or data.trials.empty:
        return None
    study = optuna.create_study(direction="maximize" if data.mode == "max" else "minimize")
    n = 0
    for _, row in data.trials.iterrows():
        v = row.get(data.best_col)
        if not finite(v) or row["status"] in ("error", "diverged"):
            continue
        params = {}
        for k, d in dists.items():
            raw = row.get(f"param.{k}")
            if isinstance(raw, str) and raw.startswith("["):
                raw = json.loads(raw)
            params[k] = _value(d, raw)
        if any(p is None for p in params.values()):
            continue
        study.add_trial(optuna.trial.create_trial(params=params, distributions=dists, value=float(v)))
        n += 1
    return study if n >= 2 else None


def optuna_figures(data: RunData) -> dict[str, Any]:
    """Title -> plotly figure; a plot Optuna cannot draw for this study is left out."""
    import optuna.visualization as ov

    study = build_study(data)
    if study is None:
        return {}
    names = list(distributions(data))
    # Only params that actually vary can be plotted/assessed
    varying = [p for p in names if len({t.params[p] for t in study.trials}) > 1]
    plots: dict[str, Any] = {}
    makers = {
        "Parallel coordinates": lambda: ov.plot_parallel_coordinate(study, params=varying),
        "Parameter importance (fANOVA)": lambda: ov.plot_param_importances(study, params=varying),
        "Slice plot": lambda: ov.plot_slice(study, params=varying),
    }
    if len(varying) >= 2:
        makers["Contour plot"] = lambda: ov.plot_contour(study, params=varying[:3])
    for title, make in makers.items():
        if not varying:
            break
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                fig = make()
            fig.update_layout(title=None, margin=dict(t=30, l=50, r=20, b=40))
            plots[title] = fig
        except (ValueError, RuntimeError, ZeroDivisionError):
            continue  # e.g. importance needs at least two distinct values per param
    return plots
