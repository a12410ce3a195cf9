"""Learning curves: per-epoch metric and losses of every trial, coloured by one parameter."""

from __future__ import annotations

import html
import math
from typing import Any

import pandas as pd

from hpo.report.axes import clip
from hpo.report.values import is_log_scale, is_numeric
from hpo.results import RunFolder


def color_param(data: RunFolder) -> str | None:
    """The parameter to colour by: the searched one with the most distinct values."""
    best, n = None, 0
    for p in data.searched:
        col = f"param.{p}"
        if col in data.trials and data.trials[col].nunique() > n:
            best, n = p, data.trials[col].nunique()
    return best


def curve_data(data: RunFolder, color_by: str | None) -> list[dict[str, Any]]:
    """One record per trial: epochs, metric and loss series, colour value, best flag, how it ended."""
    h, t = data.history, data.trials
    if h.empty or t.empty:
        return []
    best = data.best
    best_id = best["trial_id"] if best is not None else None
    values = t[f"param.{color_by}"] if color_by else None
    log = bool(color_by) and is_log_scale(data.searched[color_by], values)
    numeric = values is not None and is_numeric(values)
    lo = hi = 0.0
    if numeric:
        v = values.dropna().astype(float)
        v = v.map(math.log10) if log else v
        lo, hi = (float(v.min()), float(v.max())) if len(v) else (0.0, 1.0)
    cats = sorted(map(str, values.dropna().unique())) if values is not None and not numeric else []
    fam = data.metric.split("_", 1)[1] if "_" in data.metric else data.metric
    out = []
    by_trial = dict(tuple(h.groupby("trial_id", sort=False)))  # one pass, not one per trial
    for _, row in t.iterrows():
        hh = by_trial.get(row["trial_id"])
        if hh is None or hh.empty:
            continue
        hh = hh.sort_values("epoch")
        cv = row.get(f"param.{color_by}") if color_by else None
        if numeric and pd.notna(cv):
            x = math.log10(float(cv)) if log else float(cv)
            pos = 0.5 if hi == lo else (x - lo) / (hi - lo)
        elif cats:
            pos = cats.index(str(cv)) / max(len(cats) - 1, 1) if str(cv) in cats else 0.0
        else:
            pos = 0.5
        out.append({
            "trial_id": row["trial_id"],
            "label": _label(color_by, cv, pos, lo, hi, log, sampled=bool(color_by) and numeric
                            and not data.searched[color_by].is_categorical),
            "epoch": hh["epoch"].tolist(),
            "metric": _clean(hh.get(data.metric)),
            "train_loss": _clean(hh.get(f"train_{'loss' if fam == 'acc' else fam}")),
            "val_loss": _clean(hh.get(f"val_{'loss' if fam == 'acc' else fam}")),
            "pos": pos, "best": row["trial_id"] == best_id, "status": row["status_detail"],
            "stopped_early": row["status"] in ("stopped", "diverged", "error"),
        })
    return out


BUCKETS = 5  # legend entries for a sampled (continuous) parameter


def _label(name: str | None, v: Any, pos: float, lo: float, hi: float, log: bool, sampled: bool) -> str:
    """The legend entry a trial belongs to: its value, rounded (`lr=0.1477`); for a sampled
    parameter one of BUCKETS ranges (`lr 0.01-0.03`), so the legend has a few entries, not one
    per trial."""
    if not name:
        return ""
    if not sampled or pd.isna(v):
        return f"{name}={v:.4g}" if isinstance(v, float) else f"{name}={v}"
    k = min(int(pos * BUCKETS), BUCKETS - 1)
    edges = [lo + (hi - lo) * i / BUCKETS for i in (k, k + 1)]
    a, b = (10 ** e for e in edges) if log else edges
    return f"{name} {a:.3g}-{b:.3g}"


def loss_range(recs: list[dict[str, Any]]) -> list[float] | None:
    """log10 y-range for the loss panel: from the smallest loss to 20x the median first-epoch
    loss, so one exploding trial does not flatten every other curve."""
    vals = [v for r in recs for k in ("val_loss", "train_loss") for v in r[k] if v and v > 0]
    firsts = sorted(r[k][0] for r in recs for k in ("val_loss", "train_loss") if r[k] and r[k][0])
    if not vals or not firsts:
        return None
    hi = min(max(vals), 20 * firsts[len(firsts) // 2])
    return [math.log10(min(vals)) - 0.05, math.log10(max(hi, min(vals) * 1.5)) + 0.05]


def _clean(s: pd.Series | None) -> list[float | None]:
    if s is None:
        return []
    return [float(x) if isinstance(x, (int, float)) and math.isfinite(x) else None for x in s]


def _mode(x: list[Any], mode: str) -> str:
    """A one-epoch trace is a single point, which a line does not draw: give it a marker."""
    return mode if len(x) > 1 or "markers" in mode else mode + "+markers"


MANY = 40  # above this many trials, bands instead of one line per trial
TOP = 5  # trials still drawn as lines then (the best ones)


def _final(r: dict[str, Any], mode: str) -> float:
    vals = [v for v in r["metric"] if v is not None]
    if not vals:
        return -math.inf
    return max(vals) if mode == "max" else -min(vals)


def _bands(fig: Any, recs: list[dict[str, Any]], mode: str) -> None:
    """Median and interquartile band of the metric per epoch for each legend group."""
    import plotly.graph_objects as go
    from plotly.colors import sample_colorscale

    groups: dict[str, list[dict[str, Any]]] = {}
    for r in recs:
        groups.setdefault(r["label"] or "all trials", []).append(r)
    for label, rs in sorted(groups.items(), key=lambda kv: sum(r["pos"] for r in kv[1]) / len(kv[1])):
        frame = pd.DataFrame([{"epoch": e, "v": v} for r in rs
                              for e, v in zip(r["epoch"], r["metric"], strict=True) if v is not None])
        if frame.empty:
            continue
        q = frame.groupby("epoch")["v"].quantile([0.25, 0.5, 0.75]).unstack()
        pos = sum(r["pos"] for r in rs) / len(rs)
        color = sample_colorscale("Viridis", [pos])[0]
        name = html.escape(f"{label} ({len(rs)} trials)")
        x = q.index.tolist()
        fig.add_trace(go.Scatter(x=x + x[::-1], y=q[0.75].tolist() + q[0.25].tolist()[::-1],
                                 fill="toself", fillcolor=color, opacity=0.25, line=dict(width=0),
                                 hoverinfo="skip", legendgroup=name, showlegend=False), row=1, col=1)
        fig.add_trace(go.Scatter(x=x, y=q[0.5].tolist(), mode=_mode(x, "lines"), name=name, legendgroup=name,
                                 line=dict(color=color, width=2, dash="dot"),
                                 hovertemplate="epoch %{x}: median %{y:.4g}<extra></extra>"), row=1, col=1)


def curves_figure(data: RunFolder, color_by: str | None) -> Any:
    import plotly.graph_objects as go
    from plotly.colors import sample_colorscale
    from plotly.subplots import make_subplots

    recs = curve_data(data, color_by)
    fam = data.metric.split("_", 1)[1] if "_" in data.metric else data.metric
    loss = "loss" if fam == "acc" else fam
    fig = make_subplots(rows=1, cols=2, subplot_titles=(
        html.escape(data.metric), f"train (dashed) and val (solid) {loss}"))
    many = len(recs) > MANY
    if many:  # bands per value / range, and only the best few trials as lines
        _bands(fig, recs, data.mode)
        order = sorted(recs, key=lambda r: _final(r, data.mode), reverse=True)[:TOP]
        recs_drawn = sorted(order, key=lambda r: (r["best"], r["pos"]))
    else:
        recs_drawn = sorted(recs, key=lambda r: (r["best"], r["pos"]))
    shown: set[str] = set()
    # one legend entry per value (or range) of the colouring parameter, which toggles all its
    # trials; the best trial its own entry; sorted so the legend reads in value order
    for r in recs_drawn:  # best drawn last, on top
        color = "black" if r["best"] else sample_colorscale("Viridis", [r["pos"]])[0]
        width = 4 if r["best"] else 1.5
        group = ("BEST " + r["label"]) if r["best"] else (r["label"] or r["trial_id"])
        name = html.escape(group if r["label"] or r["best"] else r["trial_id"])
        hover = html.escape(f"{r['trial_id']} {r['label']} — {r['status']}")
        end = "x" if r["stopped_early"] else "circle"
        common = dict(legendgroup=group, line=dict(color=color, width=width),
                      hovertext=hover, hoverinfo="x+y+text")
        first = group not in shown
        shown.add(group)
        fig.add_trace(go.Scatter(x=r["epoch"], y=r["metric"], mode="lines+markers", name=name,
                                 showlegend=first,
                                 marker=dict(symbol=[("circle" if i < len(r["epoch"]) - 1 else end)
                                                     for i in range(len(r["epoch"]))], size=6),
                                 **common), row=1, col=1)
        fig.add_trace(go.Scatter(x=r["epoch"], y=r["val_loss"], mode=_mode(r["epoch"], "lines"),
                                 showlegend=False,
                                 **common), row=1, col=2)
        common["line"] = dict(color=color, width=width, dash="dash")
        fig.add_trace(go.Scatter(x=r["epoch"], y=r["train_loss"], mode=_mode(r["epoch"], "lines"),
                                 showlegend=False,
                                 **common), row=1, col=2)
    epochs = max((e for r in recs for e in r["epoch"]), default=1)
    fig.update_xaxes(title_text="epoch", tick0=1, dtick=max(1, math.ceil(epochs / 10)))  # whole epochs
    clip(fig, {r["trial_id"]: r["metric"] for r in recs}, data.mode, row=1, col=1)
    lr = loss_range(recs)
    if lr is not None:
        fig.update_yaxes(type="log", range=lr, row=1, col=2)
        losses = {r["trial_id"]: [v for k in ("train_loss", "val_loss") for v in r[k] if v] for r in recs}
        above = [max(vs) for vs in losses.values() if vs and max(vs) > 10 ** lr[1]]
        if above:  # say what leaves the panel, rather than let it vanish
            fig.add_annotation(text=f"{len(above)} trial(s) go above this range "
                                    f"(losses up to {max(above):.3g})",
                               xref="x2 domain", yref="y2 domain", x=0.98, y=0.98, showarrow=False,
                               font=dict(size=10, color="#b00"), xanchor="right")
    title = f"coloured by {html.escape(color_by)}" if color_by else ""
    if many:
        title = (f"{len(recs)} trials: median and 25-75% band per {html.escape(color_by or 'run')} "
                 f"{'value or range' if color_by else ''}; the {TOP} best trials drawn as lines")
    fig.update_layout(height=460, title=title, legend=dict(font=dict(size=10)),
                      margin=dict(t=60, l=50, r=20, b=40))
    return fig
