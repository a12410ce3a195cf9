"""What the sweep found, in a few sentences generated from the tables: which parameter matters
and how, where the best configuration lies (and whether on the edge of the space), what
collapsed or diverged and where, the Pareto set's span, and whether the winner's lead is
larger than the seed-to-seed spread. Each sentence is said only when the data supports it.
Shown at the top of the report and printed at the end of `hpo run`."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from hpo import results
from hpo.report.checks import edge_of_space
from hpo.report.confirm import confirm_data
from hpo.report.importance import grid_cells, grid_importance
from hpo.report.study import conditional
from hpo.report.tables import metric_family
from hpo.report.values import finite, show
from hpo.results import RunFolder


def findings(data: RunFolder) -> list[str]:
    t = data.trials
    best = data.best
    if t.empty or best is None:
        return []
    out = [_best_sentence(data, best)]
    out += _importance(data)
    out += _edges(data, best)
    out += _failures(data)
    out += _pareto(data)
    out += _confirmation(data)
    return [s for s in out if s]


def _v(x: Any) -> str:
    return show(x)


def noise(data: RunFolder, p: float) -> tuple[float, int] | None:
    """(the smallest difference of two accuracies on the validation set that is not noise, the
    set's size): twice the standard error of a difference of two binomial proportions near `p`,
    2 * sqrt(2 p (1 - p) / n). None for a metric that is not an accuracy on the validation set."""
    n = (data.info.get("dataset") or {}).get("val")
    if not data.metric.startswith("val_") or metric_family(data.metric) != "acc" or not n or not 0 < p < 1:
        return None
    return 2 * math.sqrt(2 * p * (1 - p) / n), int(n)


def _within_noise(data: RunFolder, spread: float, level: float) -> str:
    """The clause that says a spread is within the validation set's noise, or ''."""
    got = noise(data, level)
    if got is None or spread >= got[0]:
        return ""
    k = round(spread * got[1])
    return (f"; that is {k} of {got[1]:,} validation examples, within the noise (a difference "
            f"under {got[0]:.3g} is not one, at this accuracy and set size)")


def _params(row: pd.Series, names: list[str]) -> str:
    def known(v: Any) -> bool:
        return isinstance(v, str) or finite(v)

    return ", ".join(f"{n}={_v(row[f'param.{n}'])}" for n in names
                     if f"param.{n}" in row and known(row[f"param.{n}"]))


def _best_sentence(data: RunFolder, best: pd.Series) -> str:
    n = len(results.eligible(data.trials, data.metric))
    names = [*data.searched, *sorted(conditional(data))]  # a case's own parameters too
    return (f"The best of {n} trial(s) is {_params(best, names) or best['trial_id']} with "
            f"{data.best_col} {_v(float(best[data.best_col]))}.")


def _importance(data: RunFolder) -> list[str]:
    imp = grid_importance(data)
    if imp is None:
        got = grid_cells(data)
        if got is None or got[0].shape[1] != 2:
            return []
        cells = got[0]
        name = cells.columns[0]
        lo, hi = cells.loc[cells["value"].idxmin()], cells.loc[cells["value"].idxmax()]
        good, bad = (hi, lo) if data.mode == "max" else (lo, hi)
        spread = abs(hi["value"] - lo["value"])
        return [f"Across {name}, {data.best_col} runs from {bad['value']:.4g} ({name}={_v(bad[name])}) "
                f"to {good['value']:.4g} ({name}={_v(good[name])}): a spread of "
                f"{spread:.3g}{_within_noise(data, spread, float(good['value']))}."]
    tab = imp["table"]
    top = tab[tab["source"] != "interactions"].sort_values("share_%", ascending=False).iloc[0]
    if top["share_%"] < 50:
        inter = float(tab.loc[tab["source"] == "interactions", "share_%"].sum())
        return [f"No single parameter dominates the grid: the largest main effect is "
                f"{top['source']} ({top['share_%']:.0f}% of the variance), interactions "
                f"{inter:.0f}%."]
    cells, _ = grid_cells(data)
    means = cells.groupby(top["source"])["value"].mean()
    good = means.idxmax() if data.mode == "max" else means.idxmin()
    bad = means.idxmin() if data.mode == "max" else means.idxmax()
    spread = abs(means[good] - means[bad])
    quiet = _within_noise(data, spread, float(means[good]))
    lead = (f"{top['source']} decides most of the outcome" if not quiet else
            f"{top['source']} has the largest effect, though a small one")
    return [f"{lead}: {top['share_%']:.0f}% of the variance "
            f"of {data.best_col} over the grid; averaged over the other parameters it is best at "
            f"{top['source']}={_v(good)} ({means[good]:.4g}) and worst at {top['source']}={_v(bad)} "
            f"({means[bad]:.4g}), a spread of {spread:.3g}{quiet}."]


def _edges(data: RunFolder, best: pd.Series) -> list[str]:
    return [f"The best {name} ({_v(v)}) is at the {side} edge of what was searched: the optimum may "
            f"lie beyond it; extend the {'grid' if grid else 'range'} towards {side} values."
            for name, v, side, grid in edge_of_space(data, best)]


def _failures(data: RunFolder) -> list[str]:
    t = data.trials
    out = []
    names = list(data.searched)
    collapsed = t["collapsed"].fillna(False).astype(bool) if "collapsed" in t else t["status"] == ""
    for what, mask in (("diverged (NaN/inf loss)", t["status"] == "diverged"),
                       ("collapsed (accuracy at chance or an exploding loss)", collapsed)):
        bad = t[mask]
        if bad.empty:
            continue
        common = _shared_values(bad, t, names)
        where = f", all with {common}" if common else f", e.g. {_params(bad.iloc[0], names)}"
        out.append(f"{len(bad)} of {len(t)} trial(s) {what}{where}.")
    return out


def _shared_values(bad: pd.DataFrame, t: pd.DataFrame, names: list[str]) -> str:
    """The parameter values every failed trial has and not every trial has (`lr=1`)."""
    parts = []
    for n in names:
        col = f"param.{n}"
        if col in bad and bad[col].nunique(dropna=False) == 1 and t[col].nunique(dropna=False) > 1:
            parts.append(f"{n}={_v(bad[col].iloc[0])}")
    return ", ".join(parts)


def _pareto(data: RunFolder) -> list[str]:
    objs = data.info.get("objectives") or {}
    front = results.pareto_set(data.trials, objs, data.metric, data.mode)
    if len(objs) < 2 or front.empty:
        return []
    ends = front.iloc[[0, -1]]
    other = [m for m in objs if m != data.metric]
    span = " to ".join(f"{data.metric} {_v(float(r[data.metric]))} with "
                       + ", ".join(f"{m} {_v(r[m])}" for m in other) for _, r in ends.iterrows())
    return [f"The Pareto set has {len(front)} trial(s), trading {data.metric} against "
            f"{', '.join(other)}: from {span}."]


def _confirmation(data: RunFolder) -> list[str]:
    cd = confirm_data(data)
    v = cd and cd["verdict"]
    if not v:
        return []
    if v["beyond_noise"]:
        return [f"Retrained with new seeds, {v['winner']} leads the runner-up by {v['gap']:.3g}, "
                f"more than the seed-to-seed spread ({v['noise']:.3g}): the win is real."]
    return [f"Retrained with new seeds, {v['winner']} leads the runner-up by only {v['gap']:.3g}, "
            f"within the seed-to-seed spread ({v['noise']:.3g}): treat them as a tie."]
