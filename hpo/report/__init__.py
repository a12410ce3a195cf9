"""Static, self-contained HTML report of one run, built only from its results files
(hpo.results: spec.yaml, run.json, trials.parquet, history.parquet, artifacts/).

    build_report(run_dir, out=None) -> Path

Written to ``<run>/report.html`` (so a run on object storage has its report beside its tables)
and to `out` (default ``reports/<run name>.html``, the convenient local copy).

Sections, in order: header, findings (in words), warnings, best configuration, Pareto set
(several objectives), confirmation, grid table and heatmap (1-D/2-D grids), predicted surface
(regression), learning curves, optimization history, timeline, the exact importance of a complete grid,
Optuna's parallel coordinates / importance / slice / contour, model size, time per epoch by
batch size, early-stopping audit, trials per node, and the sortable table of all trials. One figure per
module, each with a data step testable without drawing.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import yaml

from hpo import results
from hpo.contract import REPORT_FILE
from hpo.report import checks, curves, history, pareto, study, surface, tables
from hpo.report.confirm import confirm_data, confirm_figure
from hpo.report.findings import findings
from hpo.report.heatmap import heatmap_figure
from hpo.report.html import esc, figure, fmt, kv, page, table
from hpo.report.importance import grid_importance, importance_figure
from hpo.report.model_size import model_size_figure
from hpo.report.timeline import timeline_data, timeline_figure
from hpo.results import RunFolder
from hpo.spec import ComponentSpec

__all__ = ["REPORT_FILE", "build_report", "render"]


def build_report(run_dir: str | Path, out: str | Path | None = None) -> Path:
    """Render the report of a run folder into <run>/report.html and `out`; returns `out`."""
    data = RunFolder.read(run_dir)
    html = render(data)
    out = Path(out) if out else Path("reports") / f"{Path(run_dir).name}.html"
    targets = {p.resolve(): p for p in (data.run_dir / REPORT_FILE, out)}  # once when out is that file
    for path in targets.values():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(html, encoding="utf-8")
        tmp.replace(path)
    return out


def render(data: RunFolder) -> str:
    sections = [header, findings_section, warnings_section, best_section, pareto_section, confirm_section,
                grid_section, surface_section, curves_section, history_section, importance_section,
                optuna_section, model_size_section, epoch_time_section, audit_section, nodes_section,
                results_section]
    return page(f"hpo report: {data.name}", "".join(_drawn(s, data) for s in sections))


# In hpo's own tests a section that fails fails the test; for a user it fails only itself
STRICT_ENV = "HPO_REPORT_STRICT"


def _drawn(section: Any, data: RunFolder) -> str:
    """A section's HTML; one that fails says so in its place, and the rest of the report is still
    written (the run's tables are untouched either way)."""
    try:
        return section(data) or ""
    except Exception as e:
        if os.environ.get(STRICT_ENV):
            raise
        what = section.__name__.removesuffix("_section")
        warnings.warn(f"the report's {what} section could not be drawn ({type(e).__name__}: {e}); the "
                      f"rest of the report is written and the run's tables are untouched", stacklevel=2)
        return (f'<section><p class="warn">The {esc(what)} section could not be drawn: '
                f"{esc(type(e).__name__)}: {esc(str(e))}. The run's tables (trials.parquet, history.parquet) "
                f"are untouched; please report this with `hpo report {esc(str(data.run_dir))}`'s output."
                f"</p></section>")


def _component(c: ComponentSpec) -> str:
    opts = ", ".join(f"{k}={v}" for k, v in c.options.items())
    return c.name + (f" ({opts})" if opts else "")


def header(data: RunFolder) -> str:
    s, info = data.spec, data.info
    ds = info.get("dataset", {})
    ds_text = (f"{ds.get('name', s.dataset.name)}: {ds.get('train', '?')} train / "
               f"{ds.get('val', '?')} val / {ds.get('test', '?')} test"
               + (" — EMBEDDED SAMPLE, not full MNIST" if ds.get("is_sample") else "")
               + (f" ({ds['source']})" if ds.get("source") else ""))
    counts = tables.status_counts(data)
    comp = tables.compute_used(data)
    wall = info.get("wall_time_s")
    versions = ", ".join(f"{k} {v}" for k, v in (info.get("versions") or {}).items())
    hw = info.get("hardware") or {}
    hw_text = f"{hw.get('cpus', '?')} CPUs, {hw.get('platform', '')}" + (
        f", GPUs: {', '.join(hw['gpus'])}" if hw.get("gpus") else "")
    budget = s.budget.model_dump()
    pairs = [
        ("trainable", s.trainable), ("dataset", ds_text),
        ("metric", f"{data.metric} ({data.mode})"),
        *([("objectives", ", ".join(f"{k} ({v})" for k, v in pareto.objectives(data).items())
            + f"; primary: {data.metric}")] if pareto.objectives(data) else []),
        *([("constraints", ", ".join(results.bound_text(k, *b) for k, b in info["constraints"].items()))]
          if info.get("constraints") else []),
        *([("warm start", f"{info['warm_start']['n_trials']} finished trials of "
                          f"{info['warm_start']['from']} guided the searcher (they are not in the tables)")]
          if info.get("warm_start") else []),
        *([("extended", "; ".join(f"+{e['more']} samples" for e in info["extended"])
            + " (hpo resume --more)")] if info.get("extended") else []),
        ("searcher", _component(s.searcher)), ("scheduler", _component(s.scheduler)),
        ("budget", ", ".join(f"{k}={v}" for k, v in budget.items() if v is not None)),
        ("resources per trial", ", ".join(f"{k}={v}" for k, v in s.resources.model_dump().items())),
        ("trials", ", ".join(f"{n} {k}" for k, n in counts.items()) or "none yet"),
        *([("execution", tables.packs(data))] if tables.packs(data) else []),
        ("state", info.get("state", "unknown")),
        ("wall time", f"{wall:.1f} s" if isinstance(wall, (int, float)) else "unknown (unfinished)"),
        ("compute used", f"{comp['trial_epochs']} trial-epochs, {comp['cpu_seconds']:.0f} CPU-s, "
                         f"{comp['gpu_seconds']:.0f} GPU-s"),
        ("seed", s.seed), ("versions", versions), ("hardware", hw_text),
        ("code", info.get("git_commit") or "unknown"), ("run folder", str(data.run_dir)),
    ]
    desc = f'<p class="desc">{esc(s.description)}</p>' if s.description else ""
    return f"<h1>{esc(data.name)}</h1>{desc}{kv(pairs)}"


def pareto_section(data: RunFolder) -> str:
    front = pareto.pareto_table(data)
    if front is None:
        return ""
    objs = pareto.objectives(data)
    fig = pareto.pareto_figure(data)
    cons = " Infeasible trials (outside the constraints) are grey and never on the front." \
        if "feasible" in data.trials else ""
    return (f"<h2>Pareto set: {len(front)} trial(s)</h2>"
            f"<p class='note'>No other finished trial is at least as good in every objective "
            f"({', '.join(f'{k} {v}' for k, v in objs.items())}) and better in one; values are each "
            f"trial's best over its epochs.{cons}</p>"
            + table(front, table_id="pareto-table", sortable=False)
            + (figure(fig, "pareto") if fig is not None else ""))


def findings_section(data: RunFolder) -> str:
    fs = findings(data)
    if not fs:
        return ""
    return ("<h2>Findings</h2><ul id='findings'>" + "".join(f"<li>{esc(f)}</li>" for f in fs) + "</ul>")


def warnings_section(data: RunFolder) -> str:
    ws = checks.warnings_for(data)
    if not ws:
        return ""
    return "<h2>Warnings</h2>" + "".join(f'<div class="warn">{esc(w)}</div>' for w in ws)


def best_section(data: RunFolder) -> str:
    best = data.best
    if best is None:
        return "<h2>Best configuration</h2><p>No trial with a finite metric yet.</p>"
    cfg = results.trial_config(best)
    at = tables.at_best_epoch(data)
    row = at[at["trial_id"] == best["trial_id"]].drop(columns="trial_id")
    metrics = row.assign(epoch=int(best["best_epoch"]), status=best["status_detail"])
    return ("<h2>Best configuration</h2>"
            f"<p>Trial {esc(best['trial_id'])}: {esc(data.best_col)} = {esc(fmt(best[data.best_col]))}"
            f" at epoch {esc(int(best['best_epoch']))}; test metrics are from that epoch.</p>"
            f"<pre>{esc(yaml.safe_dump(cfg, sort_keys=False))}</pre>"
            + table(metrics, sortable=False))


def confirm_section(data: RunFolder) -> str:
    cd = confirm_data(data)
    if cd is None:
        return ""
    v, verdict = cd["verdict"], ""
    if v is not None:
        verdict = (f"<p>The best by mean, <b>{esc(v['winner'])}</b>, leads the second "
                   f"by {v['gap']:.4g}; the larger seed-to-seed std of the two is {v['noise']:.4g}: "
                   + ("the lead is larger than the seed noise.</p>" if v["beyond_noise"] else
                      "<b>the lead is within the seed noise</b>; treat them as a tie.</p>"))
    return (f"<h2>Confirmation: top {len(cd['table'])} configurations x {cd['seeds']} new seeds</h2>"
            "<p class='note'>Each configuration the search found best, trained again with new "
            "seeds (folder confirm/); mean ± std of the best-epoch values.</p>" + verdict
            + table(cd["table"], table_id="confirm-table", sortable=False)
            + figure(confirm_figure(cd, data.metric), "confirm"))


def grid_section(data: RunFolder) -> str:
    st = tables.seed_table(data)
    if st is None:
        return ""
    best_i = None
    val_col = [c for c in st.columns if c.startswith("val ")]
    if val_col and st[val_col[0]].notna().any():
        best_i = int(st[val_col[0]].idxmax() if data.mode == "max" else st[val_col[0]].idxmin())
    out = ["<h2>Grid results</h2><p class='note'>Train / validation / test at each trial's best "
           "validation epoch.</p>", table(st, highlight=best_i, table_id="grid-table")]
    hm = tables.heatmap_data(data)
    if hm is not None:
        out.append(figure(heatmap_figure(hm, data.mode), "heatmap"))
    return "".join(out)


def surface_section(data: RunFolder) -> str:
    sd = surface.surface_data(data)
    if sd is None:
        return ""
    return ("<h2>Predicted surface</h2><p class='note'>Predictions of the best-validation model on "
            "the test grid, next to the true function (drag to rotate).</p>"
            + figure(surface.surface_figure(sd), "surface"))


def curves_section(data: RunFolder) -> str:
    if data.history.empty:
        return ""
    by = curves.color_param(data)
    return ("<h2>Learning curves</h2><p class='note'>Every trial; the best in black. A trial that "
            "ended early (stopped, diverged, failed) ends with an ×.</p>"
            + figure(curves.curves_figure(data, by), "curves"))


def history_section(data: RunFolder) -> str:
    if data.trials.empty:
        return ""
    out = "<h2>Optimization history</h2>" + figure(history.history_figure(data), "history")
    tl = timeline_data(data)
    if tl is not None:
        out += ("<h2>Timeline</h2><p class='note'>When each trial ran (its number on the bar), one "
                f"lane per concurrent slot ({int(tl['slot'].max()) + 1} used), coloured by how it "
                "ended: gaps are idle workers, short bars early stops.</p>"
                + figure(timeline_figure(tl), "timeline"))
    return out


def importance_section(data: RunFolder) -> str:
    imp = grid_importance(data)
    if imp is None:
        return ""
    filled = (f" {imp['filled']} cell(s) whose trials produced no finite value count as the worst "
              f"value seen." if imp["filled"] else "")
    return ("<h2>Parameter importance: exact variance decomposition of the grid</h2>"
            f"<p class='note'>The variance of {esc(imp['metric'])} over the {imp['cells']} cells of "
            "the complete grid, split into each parameter's main effect (the variance of its "
            "marginal means) and the interactions (the rest). Computed from the grid itself, no "
            f"model; repeats of a cell are averaged.{esc(filled)}</p>"
            + table(imp["table"].round(1), table_id="importance-table", sortable=False)
            + figure(importance_figure(imp), "grid-importance"))


def optuna_section(data: RunFolder) -> str:
    figs = study.optuna_figures(data)
    if not figs:
        return ""
    out = ["<h2>Parameters</h2><p class='note'>Optuna's visualizations on a study rebuilt from "
           f"the trials table (value: {esc(data.best_col)}).</p>"]
    for i, (title, fig) in enumerate(figs.items()):
        out.append(f"<h3>{esc(title)}</h3>" + figure(fig, f"optuna-{i}"))
    return "".join(out)


def audit_section(data: RunFolder) -> str:
    audit = tables.early_stopping_audit(data)
    if audit is None:
        return ""
    saved = tables.epochs_saved(data)
    sched = _component(data.spec.scheduler)
    return ("<h2>Early-stopping audit</h2>"
            f"<p>{esc(sched)} used {saved['used']} trial-epochs of the {saved['full']} that running "
            f"every trial to {data.max_epochs} epochs would take: {saved['saved_fraction']:.0%} saved.</p>"
            + table(audit, sortable=False, table_id="audit-table"))


def model_size_section(data: RunFolder) -> str:
    ms = tables.model_size_data(data)
    if ms is None:
        return ""
    fam = tables.metric_family(data.metric)
    what = "Accuracy" if fam == "acc" else f"{fam.upper() if len(fam) <= 4 else fam.capitalize()}"
    gap = tables.GAP[data.mode]
    return (f"<h2>Model size</h2><p class='note'>{esc(what)} and overfitting ({esc(gap)} at the best "
            f"validation epoch: positive means the model does better on what it trained on) against "
            f"the number of parameters.</p>"
            + figure(model_size_figure(ms, data.best_col, gap, data.mode), "model-size")
            + table(ms.drop(columns="trial_id"), table_id="model-size-table"))


def epoch_time_section(data: RunFolder) -> str:
    et = tables.epoch_time_data(data)
    if et is None:
        return ""
    return ("<h2>Time per epoch by batch size</h2><p class='note'>Median seconds per epoch "
            "(training and evaluation) and the median epoch of the best validation value.</p>"
            + table(et, table_id="epoch-time-table"))


def nodes_section(data: RunFolder) -> str:
    nodes = tables.trials_per_node(data)
    if nodes is None:
        return ""
    return "<h2>Where trials ran</h2>" + table(nodes, table_id="nodes-table")


def results_section(data: RunFolder) -> str:
    t = tables.results_table(data)
    if t.empty:
        return ""
    best = data.best
    hi = int(t.index[data.trials["trial_id"] == best["trial_id"]][0]) if best is not None else None
    return ("<h2>All trials</h2><p class='note'>Click a column to sort.</p>"
            + table(t, highlight=hi, table_id="results-table"))
