"""Warnings a careful reader needs, computed from the tables."""

from __future__ import annotations

from typing import Any

import pandas as pd

from hpo.report.values import finite, show
from hpo.results import RunFolder


def warnings_for(data: RunFolder) -> list[str]:
    out: list[str] = []
    t = data.trials
    if t.empty:
        return ["No trial has reported yet."]
    for status, what in (("diverged", "diverged (NaN/inf loss)"), ("error", "failed with an error"),
                         ("incomplete", "did not finish (interrupted or still running)")):
        n = int((t["status"] == status).sum())
        if n:
            out.append(f"{n} of {len(t)} trial(s) {what}; see the status column.")
    if "collapsed" in t and t["collapsed"].fillna(False).astype(bool).any():
        bad = t[t["collapsed"].fillna(False).astype(bool)]
        params = [c for c in t.columns if c.startswith("param.")]
        where = "; ".join(", ".join(f"{c.removeprefix('param.')}={show(r[c])}" for c in params
                                    if pd.notna(r[c]))
                          for _, r in bad.head(4).iterrows())
        out.append(f"{len(bad)} of {len(t)} trial(s) collapsed: they trained without NaN but their "
                   f"accuracy stayed at chance or their loss exploded ({where}"
                   f"{', ...' if len(bad) > 4 else ''}); see status_detail.")
    best = data.best
    if best is None:
        out.append("No trial produced a finite metric.")
        return out
    out += _edge_warnings(data, best)
    out += _still_improving(data, best)
    if data.info.get("dataset", {}).get("is_sample"):
        out.append("This run used the embedded MNIST sample (10,000 images), not full MNIST.")
    return out


def edge_of_space(data: RunFolder, best) -> list[tuple[str, float, str, bool]]:
    """(name, best value, "smaller" | "larger", whether a grid) for each searched number whose
    best value is the grid's end (of >= 3 values) or, sampled, in the outer 10% of its range with
    the metric still improving towards that edge (`_improves_towards_edge`)."""
    out = []
    for name, p in data.searched.items():
        v = best.get(f"param.{name}")
        if not finite(v):
            continue
        v = float(v)
        if p.enumerated:
            nums = [float(a) for a in p.values if isinstance(a, (int, float)) and not isinstance(a, bool)]
            if len(nums) >= 3 and v in (min(nums), max(nums)):
                out.append((name, v, "smaller" if v == min(nums) else "larger", True))
        elif not p.is_categorical:
            pos = p.position(v)
            if (pos < 0.1 or pos > 0.9) and _improves_towards_edge(data, name, p, pos < 0.1, pos):
                out.append((name, v, "smaller" if pos < 0.1 else "larger", False))
    return out


WINDOW = 0.25  # the outer part of a sampled range whose trials say which way the metric goes
MIN_WINDOW_TRIALS = 4


def _improves_towards_edge(data: RunFolder, name: str, p: Any, low_side: bool, best_pos: float) -> bool:
    """Whether the metric still gets better towards that edge. Not when a trial lies between
    the best and the edge (it did worse, being not the best: the optimum is inside the range).
    Else by the trials in the outer WINDOW of the range on that side: Spearman's rank correlation
    between closeness to the edge and the metric over 0.3; too few trials there to tell (fewer
    than MIN_WINDOW_TRIALS): assumed so, and the warning stands."""
    t = data.trials
    col = f"param.{name}"
    rows = [(p.position(float(x)), float(y)) for x, y in zip(t[col], t[data.best_col], strict=True)
            if finite(x) and finite(y)]
    if any((pos < best_pos) if low_side else (pos > best_pos) for pos, _ in rows):
        return False
    near = [(pos if low_side else 1 - pos, y) for pos, y in rows
            if (pos <= WINDOW if low_side else pos >= 1 - WINDOW)]
    if len(near) < MIN_WINDOW_TRIALS:
        return True
    closeness = pd.Series([-d for d, _ in near]).rank()
    goodness = pd.Series([y if data.mode == "max" else -y for _, y in near]).rank()
    rho = closeness.corr(goodness)
    return bool(rho == rho and rho > 0.3)


def _edge_warnings(data: RunFolder, best) -> list[str]:
    out = []
    for name, v, side, grid in edge_of_space(data, best):
        if grid:
            out.append(f"The best {name} ({show(v)}) is the {'smallest' if side == 'smaller' else 'largest'} "
                       f"value of the grid: the optimum may lie beyond it; extend the grid.")
        else:
            p = data.searched[name]
            out.append(f"The best {name} ({show(v)}) lies in the outer 10% of its range "
                       f"[{p.low:g}, {p.high:g}]: widen the range on that side.")
    return out


def _still_improving(data: RunFolder, best) -> list[str]:
    h = data.history
    if h.empty:
        return []
    hh = h[h["trial_id"] == best["trial_id"]].sort_values("epoch")
    if len(hh) < 2 or int(best["epochs"]) < data.max_epochs or data.metric not in hh:
        return []
    last, prev = hh[data.metric].iloc[-1], hh[data.metric].iloc[:-1]
    if not finite(last):
        return []
    prev_best = prev.max() if data.mode == "max" else prev.min()
    gain = (last - prev_best) if data.mode == "max" else (prev_best - last)
    if gain > 1e-3 * max(abs(prev_best), 1e-8):
        return [f"The best trial's {data.metric} was still improving at the last epoch "
                f"({prev_best:.4g} → {last:.4g}): train longer (budget.max_epochs)."]
    return []
