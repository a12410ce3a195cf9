"""`hpo compare`: several runs on one page — best-so-far against trial-epochs and wall time,
and what each reached at equal compute. This is how grid vs random vs ASHA vs Optuna is judged."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd

from hpo import results
from hpo.errors import SpecError
from hpo.report.html import esc, figure, page, table
from hpo.report.study import build_study
from hpo.results import RunFolder


def progress(data: RunFolder) -> pd.DataFrame:
    """Every epoch report in time order with cumulative trial-epochs and the best so far."""
    h = data.history
    if h.empty or data.metric not in h:
        return pd.DataFrame(columns=["trial_epochs", "wall_s", "best_so_far"])
    started = data.info.get("started")
    start = float(started if started is not None else h["timestamp"].min())
    idx = {t: i for t, i in zip(data.trials["trial_id"], data.trials["trial_index"], strict=True)}
    h = h.assign(_i=h["trial_id"].map(idx)).sort_values(["timestamp", "_i", "epoch"])
    best, out = None, []
    for n, (v, ts) in enumerate(zip(h[data.metric], h["timestamp"], strict=True), start=1):
        if isinstance(v, (int, float)) and math.isfinite(v) and (
                best is None or (v > best if data.mode == "max" else v < best)):
            best = float(v)
        out.append({"trial_epochs": n, "wall_s": float(ts) - start, "best_so_far": best})
    return pd.DataFrame(out)


def at_equal_compute(runs: list[RunFolder]) -> pd.DataFrame:
    progs = [progress(r) for r in runs]
    totals = [len(p) for p in progs]
    common = min((n for n in totals if n), default=0)
    budgets = sorted({max(1, round(common * f)) for f in (0.25, 0.5, 1.0)}) if common else []
    rows = []
    for r, p in zip(runs, progs, strict=True):
        row: dict[str, Any] = {"run": r.name, "searcher": r.spec.searcher.name,
                               "scheduler": r.spec.scheduler.name,
                               "trials": len(r.trials)}
        for b in budgets:
            row[f"best @ {b} trial-epochs"] = p["best_so_far"].iloc[b - 1] if len(p) >= b else None
        row["trial-epochs used"] = len(p)
        row["final best"] = p["best_so_far"].iloc[-1] if len(p) else None
        row["wall s"] = (r.info.get("wall_time_s") or (p["wall_s"].iloc[-1] if len(p) else None))
        rows.append(row)
    return pd.DataFrame(rows)


def compare_figure(runs: list[RunFolder]) -> Any:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=2, subplot_titles=("against trial-epochs", "against wall time"))
    for i, r in enumerate(runs):
        p = progress(r)
        color = f"hsl({int(360 * i / max(len(runs), 1))},65%,45%)"
        name = esc(r.name)
        fig.add_trace(go.Scatter(x=p["trial_epochs"], y=p["best_so_far"], mode="lines", name=name,
                                 legendgroup=name, line=dict(shape="hv", color=color)), row=1, col=1)
        fig.add_trace(go.Scatter(x=p["wall_s"], y=p["best_so_far"], mode="lines", name=name,
                                 legendgroup=name, showlegend=False,
                                 line=dict(shape="hv", color=color)), row=1, col=2)
    fig.update_xaxes(title_text="trial-epochs", row=1, col=1)
    fig.update_xaxes(title_text="seconds since start", row=1, col=2)
    fig.update_yaxes(title_text=esc(f"best {runs[0].metric} so far") if runs else "")
    fig.update_layout(height=420, margin=dict(t=40, l=60, r=20, b=40))
    return fig


def edf_figure(runs: list[RunFolder]) -> Any | None:
    """Optuna's empirical distribution function of each run's trial values (the share of
    trials at or below each value): a whole search's quality, not only its best."""
    import optuna.visualization as ov

    studies = [s for r in runs if (s := build_study(r, name=r.name)) is not None]
    if len(studies) < 2:
        return None
    fig = ov.plot_edf(studies, target_name=runs[0].best_col)
    fig.update_layout(title=None, height=420, margin=dict(t=30, l=50, r=20, b=40))
    return fig


def build_compare(run_dirs: list[str | Path], out: str | Path) -> Path:
    if len(run_dirs) < 2:
        raise SpecError("give at least two run folders to compare.", field="compare")
    infos = [results.read_run_info(results.require_run_dir(d)) for d in run_dirs]
    metrics = {(i.get("metric"), i.get("mode")) for i in infos}
    if len(metrics) > 1:
        raise SpecError(f"the runs select on different metrics {sorted(metrics, key=str)}; compare "
                        f"runs that optimize the same metric.", field="compare")
    runs = [RunFolder.read(d) for d in run_dirs]
    body = (f"<h1>Comparison: {esc(', '.join(r.name for r in runs))}</h1>"
            f"<p class='desc'>Best {esc(runs[0].metric)} found so far ({esc(runs[0].mode)}).</p>"
            + figure(compare_figure(runs), "compare")
            + "<h2>At equal compute</h2>" + table(at_equal_compute(runs), table_id="compare-table"))
    edf = edf_figure(runs)
    if edf is not None:
        body += ("<h2>Distribution of trial values (EDF)</h2><p class='note'>For each run, the share "
                 f"of its trials whose {esc(runs[0].best_col)} is at most each value: a curve further "
                 f"{'right' if runs[0].mode == 'max' else 'left'} means a search that spent more of its "
                 "trials on good configurations.</p>" + figure(edf, "edf"))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page("hpo compare", body), encoding="utf-8")
    return out
