"""An Optuna study rebuilt from the trials table, so the report reuses Optuna's plotly
visualizations (parallel coordinates, parameter importance, slice, contour) instead of
re-implementing them."""

from __future__ import annotations

import json
import re
import warnings
from typing import Any

from hpo.optuna_space import flat_distributions
from hpo.report.axes import clip
from hpo.report.importance import grid_importance
from hpo.report.values import finite, is_log_scale
from hpo.results import RunFolder
from hpo.space import Distribution, optuna_category


def distributions(data: RunFolder) -> dict[str, Any]:
    """Optuna distributions of the searched parameters and of the parameters sampled inside
    cases (hpo.optuna_space.flat_distributions), with a grid of numbers drawn as the numbers
    it is: a numeric axis, logarithmic when its values are spaced by ratios (lr 1, 0.1, 0.05,
    0.01), so Optuna's slice, contour and parallel-coordinate plots place them truly."""
    import optuna.distributions as od
    import pandas as pd

    out = flat_distributions(data.searched)
    for name, p in data.searched.items():
        nums = [v for v in p.values] if p.enumerated and not p.is_group else []
        if len(nums) < 2 or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in nums):
            continue
        log = is_log_scale(p, pd.Series(nums, dtype=float))
        if all(isinstance(v, int) for v in nums):
            out[name] = od.IntDistribution(min(nums), max(nums), log=log)
        else:
            out[name] = od.FloatDistribution(float(min(nums)), float(max(nums)), log=log)
    return out


def conditional(data: RunFolder) -> set[str]:
    """Parameters that exist in some trials only (sampled inside a case)."""
    return {k for p in data.searched.values() if p.is_conditional
            for case in p.values for k, v in case.items() if isinstance(v, Distribution)}


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


def build_study(data: RunFolder, name: str | None = None) -> Any | None:
    """A study of the finished trials with a finite metric (named `name`); None when there are
    fewer than 2."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    dists = distributions(data)
    if not dists or data.trials.empty:
        return None
    study = optuna.create_study(direction="maximize" if data.mode == "max" else "minimize",
                                study_name=name)
    n = 0
    for _, row in data.trials.iterrows():
        v = row.get(data.best_col)
        if not finite(v) or row["status"] in ("error", "diverged"):
            continue
        params = {}
        optional = conditional(data)
        for k, d in dists.items():
            raw = row.get(f"param.{k}")
            if not finite(raw) and not isinstance(raw, str):
                if k in optional:
                    continue  # not a parameter of this trial's case
                params[k] = None  # its configuration was lost (e.g. a full disk): left out
                continue
            if isinstance(raw, str) and raw.startswith("["):
                raw = json.loads(raw)
            params[k] = _value(d, raw)
        if any(p is None for p in params.values()):
            continue
        study.add_trial(optuna.trial.create_trial(
            params=params, distributions={k: dists[k] for k in params}, value=float(v)))
        n += 1
    if n < 2:
        return None
    # Optuna's plots read `study.trials`, a deep copy of every trial, once per figure (16 times
    # for 5,000 trials: most of the report's time); nothing here changes a trial, so skip copying
    get = type(study).get_trials
    study.get_trials = lambda deepcopy=True, states=None: get(study, deepcopy=False, states=states)
    return study


def _case_studies(data: RunFolder, study: Any) -> dict[str, Any]:
    """One study per case of a conditional group: the trials that ran that case."""
    import optuna

    out = {}
    for g, p in data.searched.items():
        if not p.is_conditional:
            continue
        for label in p.labels():
            trials = [t for t in study.trials if t.params.get(g) == label]
            sub = optuna.create_study(direction=study.direction)
            sub.add_trials(trials)
            out[label] = sub
    return out


DRAWN_MAX = 200  # trials drawn one by one in Optuna's plots; above, the best half and a sample


def _drawn(study: Any) -> tuple[Any, str]:
    """(the study whose trials the figures draw, a note for their titles): every trial, or
    above DRAWN_MAX the best DRAWN_MAX/2 and evenly spaced others (importance uses them all)."""
    import optuna

    trials = study.trials
    if len(trials) <= DRAWN_MAX:
        return study, ""
    ranked = sorted(trials, key=lambda t: t.value, reverse=study.direction.name == "MAXIMIZE")
    best, rest = ranked[:DRAWN_MAX // 2], ranked[DRAWN_MAX // 2:]
    step = len(rest) / (DRAWN_MAX - len(best))
    keep = best + [rest[int(i * step)] for i in range(DRAWN_MAX - len(best))]
    sub = optuna.create_study(direction=study.direction)
    sub.add_trials(sorted(keep, key=lambda t: t.number))
    return sub, (f" (the {len(best)} best and {len(keep) - len(best)} evenly spaced others of "
                 f"{len(trials)} trials)")


def _visible_colours(fig: Any) -> None:
    """Optuna draws parallel coordinates in Blues, the worst trials nearly white (invisible on
    the page): recolour the same order in Viridis, whose low end is dark."""
    from plotly.colors import sample_colorscale

    light, dark = 247.0, 8.0  # Blues' red channel at its two ends
    for trace in fig.data:
        color = getattr(getattr(trace, "line", None), "color", None)
        if trace.mode == "lines" and isinstance(color, str) and color.startswith("rgb"):
            red = float(re.findall(r"[\d.]+", color)[0])
            pos = min(max((light - red) / (light - dark), 0.0), 1.0)
            trace.line.color = sample_colorscale("Viridis", [pos])[0]
        elif trace.mode == "markers" and trace.marker.colorscale is not None:
            trace.marker.colorscale = "Viridis"


def optuna_figures(data: RunFolder) -> dict[str, Any]:
    """Title -> plotly figure; a plot Optuna cannot draw for this study is left out."""
    import optuna.visualization as ov

    study = build_study(data)
    if study is None:
        return {}
    drawn, sampled = _drawn(study)
    import optuna.distributions as od

    def PedAnovaImportanceEvaluator() -> Any:  # noqa: N802 - imported only where drawn
        # optuna.importance imports its fANOVA's scikit-learn (1.6 s here) however little is used
        from optuna.importance import PedAnovaImportanceEvaluator as evaluator

        return evaluator()

    target = data.best_col  # the metric's name on every axis and colour bar, not "Objective Value"
    names = list(distributions(data))
    optional = conditional(data)
    # Only params that actually vary can be plotted/assessed; parameters of one case only are
    # assessed within their case (below), and drawn in the slices where they exist
    varying = [p for p in names if len({t.params[p] for t in study.trials if p in t.params}) > 1]
    shared = [p for p in varying if p not in optional]
    n = len(study.trials)
    trust = "" if n >= 20 else ", too few trials to trust"
    plots: dict[str, Any] = {}
    makers = {
        f"Parallel coordinates{sampled}": lambda: ov.plot_parallel_coordinate(
            drawn, params=shared, target_name=target),
        f"Parameter importance (PED-ANOVA on {n} trials{trust})": lambda: ov.plot_param_importances(
            study, params=shared, evaluator=PedAnovaImportanceEvaluator(), target_name=target),
        f"Slice plot{sampled}": lambda: _readable_slice(ov.plot_slice(drawn, params=varying,
                                                                      target_name=target), study, data.mode),
    }
    # a complete grid: the exact decomposition says it; one parameter: it explains everything
    # by definition (100%, whatever the method), and the findings give its spread instead
    if grid_importance(data) is not None or len(shared) < 2:
        makers = {k: v for k, v in makers.items() if not k.startswith("Parameter importance")}
    for label, sub in _case_studies(data, study).items():
        k = len(sub.trials)
        params = [p for p in varying if all(p in t.params for t in sub.trials)
                  and len({t.params[p] for t in sub.trials}) > 1]
        if k >= 4 and len(params) >= 2:
            makers[f"Parameter importance within {label} (PED-ANOVA on {k} trials"
                   f"{'' if k >= 20 else ', too few trials to trust'})"] = (
                lambda sub=sub, params=params: ov.plot_param_importances(
                    sub, params=params, evaluator=PedAnovaImportanceEvaluator(), target_name=target))
    # a contour interpolates between points: only for numeric parameters with enough distinct
    # values, and not over a complete grid (its heatmap shows every cell as measured)
    dists = distributions(data)
    numeric = [p for p in shared if not isinstance(dists[p], od.CategoricalDistribution)
               and len({t.params[p] for t in study.trials}) >= 4]
    if len(numeric) >= 2 and grid_importance(data) is None:
        makers[f"Contour plot{sampled}"] = lambda: ov.plot_contour(drawn, params=numeric[:3],
                                                                   target_name=target)
    for title, make in makers.items():
        if not varying:
            break
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                fig = make()
            fig.update_layout(title=None, margin=dict(t=30, l=50, r=20, b=40))
            if title.startswith("Parallel coordinates"):
                _visible_colours(fig)
            plots[title] = fig
        except (ValueError, RuntimeError, ZeroDivisionError):
            continue  # e.g. importance needs at least two distinct values per param
    return plots


def _readable_slice(fig: Any, study: Any, mode: str) -> Any:
    """The slice plot's value axes (one per parameter, the same values on each) kept readable
    when values span decades or some trials collapsed (hpo.report.axes.clip on every axis), with
    the note once on the figure."""
    clip(fig, {str(t.number): [t.value] for t in study.trials if t.value is not None}, mode,
         xref="paper", yref="paper")
    return fig
