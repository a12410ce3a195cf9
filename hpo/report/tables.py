"""Data steps for the report's tables: pure functions of the run's tables (no drawing)."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd

from hpo import results
from hpo.report.values import show
from hpo.results import RunFolder
from hpo.schedulers import SCHEDULERS
from hpo.space import thaw


def metric_family(metric: str) -> str:
    """'acc' for accuracy metrics, else the suffix after the split prefix (loss, mse, ...)."""
    return metric.split("_", 1)[1] if "_" in metric else metric


def at_best_epoch(data: RunFolder) -> pd.DataFrame:
    """Per trial: train/val/test values of the metric family at the best validation epoch."""
    fam = metric_family(data.metric)
    rows = []
    h = data.history
    by_trial = dict(tuple(h.groupby("trial_id", sort=False))) if len(h) else {}  # one pass, not one per trial
    for _, t in data.trials.iterrows():
        row: dict[str, Any] = {"trial_id": t["trial_id"]}
        ep = int(t.get("best_epoch") or 0)
        ht = by_trial.get(t["trial_id"])
        hh = ht[ht["epoch"] == ep] if ht is not None and ep else h.iloc[0:0]
        for split in ("train", "val"):
            col = f"{split}_{fam}"
            row[col] = hh[col].iloc[0] if len(hh) and col in hh else None
        row[f"test_{fam}"] = t.get(f"test_{fam}")
        rows.append(row)
    return pd.DataFrame(rows)


def grid_params(data: RunFolder) -> list[str]:
    """The searched params when the sweep is a pure grid, else []."""
    searched = data.searched
    if not searched or not all(p.enumerated for p in searched.values()):
        return []
    return list(searched)


def seed_table(data: RunFolder) -> pd.DataFrame | None:
    """The classic study table: one row per grid value (1-D) or value pair (2-D), columns
    train / val / test of the metric family at the best validation epoch, plus epochs/status.
    Repeats (num_samples > 1) are averaged."""
    params = grid_params(data)
    if not 1 <= len(params) <= 2 or data.trials.empty:
        return None
    fam = metric_family(data.metric)
    t = data.trials.merge(at_best_epoch(data), on="trial_id", suffixes=("", "_at_best"))
    cols = [f"param.{p}" for p in params]
    vals = [f"train_{fam}_at_best" if f"train_{fam}_at_best" in t else f"train_{fam}",
            f"val_{fam}_at_best" if f"val_{fam}_at_best" in t else f"val_{fam}",
            f"test_{fam}_at_best" if f"test_{fam}_at_best" in t else f"test_{fam}"]
    agg = t.groupby(cols, sort=False, dropna=False).agg(
        **{f"train {fam}": (vals[0], "mean"), f"val {fam}": (vals[1], "mean"),
           f"test {fam}": (vals[2], "mean"), "epochs": ("epochs", "max"),
           "status": ("status", lambda s: ", ".join(sorted(set(s)))), "n": ("trial_id", "count")})
    agg = agg.reset_index().rename(columns={c: c.removeprefix("param.") for c in cols})
    order = [_grid_order(data, p) for p in params]
    agg["_k"] = [tuple(o.get(_key(v), 0) for o, v in zip(order, row, strict=True))
                 for row in agg[params].itertuples(index=False)]
    agg = agg.sort_values("_k").drop(columns="_k").reset_index(drop=True)
    if (agg["n"] == 1).all():
        agg = agg.drop(columns="n")
    return agg


def _key(v: Any) -> str:
    """A grid value and the same value read back from a table compare equal (1 == 1.0)."""
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return repr(float(v))
    return str(v)


def _grid_order(data: RunFolder, p: str) -> dict[str, int]:
    values = [thaw(v) for v in data.searched[p].values]
    return {(_key(json.dumps(v)) if isinstance(v, list) else _key(v)): i for i, v in enumerate(values)}


def heatmap_data(data: RunFolder) -> dict[str, Any] | None:
    """2-D grid: z[i][j] = mean best metric for (row value i, column value j)."""
    params = grid_params(data)
    if len(params) != 2 or data.trials.empty:
        return None
    a, b = params
    t = data.trials.copy()
    # a trial that diverged at its first epoch has no measured value: the worst value it reported
    # (what the searcher is told) is not a result, and its cell says so instead of a number
    if "best_epoch" in t:
        t[data.best_col] = t[data.best_col].where(pd.to_numeric(t["best_epoch"], errors="coerce") != 0)
    pv = t.pivot_table(index=f"param.{a}", columns=f"param.{b}", values=data.best_col, aggfunc="mean",
                       dropna=False)
    oa, ob = _grid_order(data, a), _grid_order(data, b)
    pv = pv.loc[sorted(pv.index, key=lambda v: oa.get(_key(v), 0)),
                sorted(pv.columns, key=lambda v: ob.get(_key(v), 0))]
    z = pv.to_numpy(dtype=float)
    text = [[f"{v:.4g}" if np.isfinite(v) else "no result (diverged)" for v in row] for row in z]
    out = {"x": [str(c) for c in pv.columns], "y": [str(i) for i in pv.index],
           "z": [[v if np.isfinite(v) else None for v in row] for row in z], "text": text,
           "x_name": b, "y_name": a, "metric": data.best_col}
    finite = z[np.isfinite(z)]
    if finite.size:
        i, j = np.unravel_index(np.nanargmax(z) if data.mode == "max" else np.nanargmin(z), z.shape)
        out["best"] = (out["x"][j], out["y"][i])
        out.update(colour_range(finite, data.mode))
    return out


def colour_range(values: Any, mode: str) -> dict[str, Any]:
    """zmin / zmax for a colour scale that shows the range that matters: values far on the bad
    side of the rest (collapsed or diverged cells, beyond 10 median absolute deviations of the
    median) are left below it (drawn at its end, their values written), and `clipped` counts them."""
    v = np.asarray(values, dtype=float)
    med = float(np.median(v))
    mad = float(np.median(np.abs(v - med))) or float(np.std(v)) or 1.0
    bad = (v < med - 10 * mad) if mode == "max" else (v > med + 10 * mad)
    kept = v[~bad] if (~bad).any() else v
    return {"zmin": float(kept.min()), "zmax": float(kept.max()), "clipped": int(bad.sum())}


def results_table(data: RunFolder) -> pd.DataFrame:
    """One row per trial: params, best and final metric, train/test, epochs, time, status."""
    t = data.trials
    if t.empty:
        return t
    fam = metric_family(data.metric)
    cols = ["trial_index"] + [c for c in t.columns if c.startswith("param.")]
    cols += [data.best_col, data.metric, f"train_{fam}", f"test_{fam}", "epochs", "time_s",
             "status_detail", "pack", "weights"]
    out = t[[c for c in cols if c in t]].copy()
    return out.rename(columns={c: c.removeprefix("param.") for c in out.columns})


def packs(data: RunFolder) -> str | None:
    """"16 trials in 2 vectorized packs (8, 8)" when the run packed trials, else None."""
    t = data.trials
    if t.empty or "pack" not in t or t["pack"].isna().all():
        return None
    sizes = t.groupby("pack")["trial_id"].count().sort_values(ascending=False)
    return (f"{int(sizes.sum())} trials trained in {len(sizes)} vectorized pack(s) of "
            f"{', '.join(map(str, sizes.tolist()))} (see the `pack` column of All trials)")


def status_counts(data: RunFolder) -> dict[str, int]:
    if data.trials.empty:
        return {}
    return {str(k): int(v) for k, v in data.trials["status"].value_counts().items()}


def compute_used(data: RunFolder) -> dict[str, float]:
    t = data.trials
    res = data.spec.resources
    trial_s = float(t["time_s"].fillna(0).sum()) if len(t) else 0.0
    return {"trial_epochs": int(t["epochs"].sum()) if len(t) else 0,
            "trial_seconds": trial_s,
            "cpu_seconds": trial_s * float(res.cpu),
            "gpu_seconds": trial_s * float(res.gpu)}


def early_stopping_audit(data: RunFolder) -> pd.DataFrame | None:
    """Per epoch milestone (rung): trials that reached it, went on, or were stopped there."""
    t = data.trials
    sched = data.spec.scheduler.name
    if t.empty or (sched in SCHEDULERS and not SCHEDULERS.get(sched).stops_early):
        return None
    rows = []
    for e in range(1, data.max_epochs + 1):
        reached = int((t["epochs"] >= e).sum())
        stopped = int(((t["epochs"] == e) & (t["status"] == "stopped")).sum())
        ended = int(((t["epochs"] == e) & t["status"].isin(["diverged", "error"])).sum())
        if stopped or e == data.max_epochs or e == 1:
            rows.append({"epoch": e, "reached": reached, "stopped here": stopped,
                         "diverged/failed here": ended, "went on": reached - stopped - ended
                         if e < data.max_epochs else 0})
    return pd.DataFrame(rows)


def epochs_saved(data: RunFolder) -> dict[str, float]:
    used = int(data.trials["epochs"].sum()) if len(data.trials) else 0
    full = len(data.trials) * data.max_epochs
    return {"used": used, "full": full, "saved_fraction": 1 - used / full if full else 0.0}


def trials_per_node(data: RunFolder) -> pd.DataFrame | None:
    """Trials and trial-epochs per Ray node (host, short node id)."""
    t = data.trials
    if t.empty or "node_id" not in t or t["node_id"].isna().all():
        return None
    g = t.assign(node=t["node_id"].fillna("?").str[:8], host=t["hostname"].fillna("?"))
    return (g.groupby(["host", "node"], sort=True)
             .agg(trials=("trial_id", "count"), trial_epochs=("epochs", "sum"))
             .reset_index())


GAP = {"max": "train - test gap", "min": "test - train gap"}  # overfitting, positive


def model_size_data(data: RunFolder) -> pd.DataFrame | None:
    """Per trial with a finite metric: parameter count, best validation value and the
    train-test gap at the best validation epoch; None unless model size varies."""
    t = data.trials
    if t.empty or "n_params" not in t or t["n_params"].nunique(dropna=True) < 2:
        return None
    fam = metric_family(data.metric)
    at = at_best_epoch(data).set_index("trial_id")
    ok = results.eligible(t, data.metric)
    rows = []
    for _, r in ok.iterrows():
        train = at.loc[r["trial_id"], f"train_{fam}"] if r["trial_id"] in at.index else None
        test = r.get(f"test_{fam}")
        label = ", ".join(f"{c.removeprefix('param.')}={show(r[c])}" for c in t.columns
                          if c.startswith("param.") and pd.notna(r[c]))
        # overfitting as a positive gap: train above test for a score, test above train for an error
        gap = None
        if train is not None and pd.notna(test):
            gap = train - test if data.mode == "max" else test - train
        rows.append({"trial_id": r["trial_id"], "config": label, "n_params": int(r["n_params"]),
                     data.best_col: r[data.best_col], f"train {fam}": train, f"test {fam}": test,
                     GAP[data.mode]: gap})
    return pd.DataFrame(rows).sort_values("n_params").reset_index(drop=True)


def epoch_time_data(data: RunFolder) -> pd.DataFrame | None:
    """When batch size is searched: per batch size, seconds per epoch, epochs to the best
    validation value and the best value reached."""
    col = "param.batch_size"
    t, h = data.trials, data.history
    if col not in t or t[col].nunique() < 2 or h.empty or "epoch_time_s" not in h:
        return None
    per_trial = h.groupby("trial_id")["epoch_time_s"].median()
    g = t.assign(epoch_s=t["trial_id"].map(per_trial))
    out = g.groupby(col, sort=True).agg(**{"s per epoch": ("epoch_s", "median"),
                                           "best epoch": ("best_epoch", "median"),
                                           data.best_col: (data.best_col, "max"),
                                           "trials": ("trial_id", "count")})
    return out.reset_index().rename(columns={col: "batch_size"})
