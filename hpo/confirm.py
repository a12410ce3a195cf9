"""Winner confirmation: rerun the best k configurations of a search with new seeds.

``confirm: {top_k: 3, seeds: 5}`` in a spec adds a second stage after the search: the k best
distinct configurations (ignoring their seed) are trained again with `seeds` fresh seeds each,
as an ordinary grid run in ``<run>/confirm/`` (a run folder of its own: spec.yaml, trial
folders, tables, its own report). :func:`confirm_table` summarizes it as mean ± std per
configuration, so "lr 0.1 beats 0.05" can be told apart from seed noise. Reads only the results
tables (hpo.results); no Ray here. The runner's confirm stage (hpo.runner.confirm_stage) runs it.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd

from hpo import results
from hpo.space import case_label
from hpo.spec import Spec, validate_raw

FOLDER = "confirm"
GROUP = "candidate"
SEED_OFFSET = 1000  # confirmation seeds are spec.seed + 1000 + i: never the search's own


def confirm_dir(run_dir: str | Path) -> Path:
    return Path(run_dir) / FOLDER


def pick(trials: pd.DataFrame, metric: str, mode: str, k: int, pareto: bool = False) -> list[dict[str, Any]]:
    """The k best distinct configurations (seed ignored), best first; `pareto`: only trials of
    the Pareto set (several objectives), ranked by `metric`."""
    col = results.selection_column(trials, metric)
    out, seen = [], set()
    ranked = results.ranked(trials, metric, mode)
    if pareto and "pareto" in ranked:
        ranked = ranked[ranked["pareto"].fillna(False).astype(bool)]
    for _, row in ranked.iterrows():
        cfg = {k2: v for k2, v in results.trial_config(row).items() if k2 != "seed"}
        key = json.dumps(cfg, sort_keys=True, default=str)
        if key not in seen:
            seen.add(key)
            out.append({"trial_id": row["trial_id"], "search_value": float(row[col]), "config": cfg})
        if len(out) == k:
            break
    return out


def confirm_spec(spec: Spec, picks: list[dict[str, Any]]) -> Spec:
    """The confirmation run: the picked configurations (as a group of cases) x new seeds."""
    cfgs = [p["config"] for p in picks]
    labels = _labels(picks)
    params: dict[str, Any] = {k: v for k, v in cfgs[0].items() if k not in labels[0]}
    if labels[0]:
        params[GROUP] = {"grid": labels}
    c = spec.confirm
    assert c is not None
    params["seed"] = {"grid": [spec.seed + SEED_OFFSET + i for i in range(c.seeds)]}
    raw = spec.model_dump(mode="json")
    raw.update(name=f"{spec.name}-{FOLDER}", searcher={"name": "grid"}, scheduler={"name": "fifo"},
               confirm=None, params=params, points_to_evaluate=[], warm_start=None,
               description=f"confirmation of {spec.name}: top {len(cfgs)} configuration(s) x "
                           f"{c.seeds} new seeds")
    raw["budget"] = {**raw["budget"], "num_samples": 1}
    return validate_raw(raw)


def write_picks(run_dir: Path, picks: list[dict[str, Any]]) -> None:
    d = confirm_dir(run_dir)
    d.mkdir(parents=True, exist_ok=True)
    (d / "picks.json").write_text(json.dumps(picks, indent=1, default=str))


def confirm_trials(run_dir: str | Path) -> pd.DataFrame | None:
    """The confirmation's trials table, or None when there is no confirmation (yet)."""
    d = confirm_dir(run_dir)
    if not (d / "picks.json").exists() or not results.has_tables(d):
        return None
    return results.load_tables(d)[0]


def confirm_table(run_dir: str | Path, trials: pd.DataFrame | None = None) -> pd.DataFrame | None:
    """One row per confirmed configuration: the search's trial and value, then mean ± std over
    the new seeds of the selection metric and the test metrics. None without a confirmation.
    `trials`: the confirmation's trials table (confirm_trials), when the caller has read it."""
    d = confirm_dir(run_dir)
    trials = confirm_trials(run_dir) if trials is None else trials
    if trials is None:
        return None
    picks = json.loads((d / "picks.json").read_text())
    info = results.read_run_info(d)
    metric, mode = info.get("metric"), info.get("mode", "max")
    if trials.empty or not metric:
        return None
    col = f"best_{metric}"
    label_col = f"param.{GROUP}"
    rows = []
    for i, (p, lab) in enumerate(zip(picks, _labels(picks), strict=True)):
        sub = trials[trials[label_col] == case_label(lab)] if lab and label_col in trials else trials
        done = sub[sub["status"].isin(results.DONE)]
        described = case_label(lab) if lab else "(the single best configuration)"
        row: dict[str, Any] = {"rank in search": i + 1, "search trial": p["trial_id"],
                               "configuration": described, f"search {metric}": p["search_value"],
                               "seeds done": len(done)}
        for m in [col] + [c for c in ("test_acc", "test_loss", "test_mse") if c in done]:
            vals = pd.to_numeric(done[m], errors="coerce").dropna()
            name = metric if m == col else m
            row[f"{name} mean"] = vals.mean() if len(vals) else math.nan
            row[f"{name} std"] = vals.std(ddof=1) if len(vals) > 1 else math.nan
        rows.append(row)
    out = pd.DataFrame(rows)
    return out.sort_values(f"{metric} mean", ascending=mode == "min", kind="stable").reset_index(drop=True)


def _labels(picks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per pick, the parameters in which the picks differ (empty when there is one pick)."""
    cfgs = [p["config"] for p in picks]
    keys = list(dict.fromkeys(k for c in cfgs for k in c))
    unset = object()
    varying = [k for k in keys if any(c.get(k, unset) != cfgs[0].get(k, unset) for c in cfgs)]
    return [{k: c[k] for k in varying if k in c} for c in cfgs]
