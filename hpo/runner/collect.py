"""The collector: turns what Ray and the driver left in a run folder (``trial_<id>/`` folders with
hpo's ``trial.jsonl`` and Ray's ``params.json`` / ``result.json`` / ``error.txt``, and
``events.jsonl``) into the results tables
and artifacts of :mod:`hpo.results`. It is the only reader of those raw files.

It runs when a run ends (finished, interrupted or aborted) and when `hpo report` is asked for a
run that is still going (or was killed before it could write its tables). No Ray import.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import sys
from pathlib import Path
from typing import Any

import pandas as pd

from hpo.contract import CHECKPOINT_NOTE, PACK_KEY, RAY_DROPPED, RAY_KEPT, RECORD_KEY
from hpo.results import (
    ELIGIBLE,
    best_trial,
    broken_tables,
    has_tables,
    objective_column,
    read_run_info,
    read_spec,
)
from hpo.schedulers import display_name
from hpo.space import Distribution, case_label, parse_param
from hpo.storage import EVENTS_FILE, TRIAL_LOG

_PACK_KEEP = ("node_id", "worker_peak_rss_mb", CHECKPOINT_NOTE)  # a pack's own, shared by its members


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    if not path.exists():
        return rows
    for line in path.read_text().splitlines():
        line = line.strip()
        if line:
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                # a line cut by a crash or a full disk, and after a resume the next line
                # written straight after it: keep that next line, drop the cut one
                whole = _tail_object(line)
                if whole is not None:
                    rows.append(whole)
    return rows


def _tail_object(line: str) -> dict[str, Any] | None:
    """The JSON object that ends `line` after a cut-off start, if there is one."""
    dec = json.JSONDecoder()
    for i in (m.start() for m in re.finditer(r"\{\"", line) if m.start() > 0):
        try:
            obj, end = dec.raw_decode(line, i)
        except json.JSONDecodeError:
            continue
        if end == len(line) and isinstance(obj, dict):
            return obj
    return None


def _event_log(run_dir: str | Path) -> list[dict[str, Any]]:
    return read_jsonl(Path(run_dir) / EVENTS_FILE)


def trial_events(run_dir: str | Path, log: list[dict[str, Any]] | None = None) -> dict[str, dict[str, Any]]:
    """The last end event (complete / error) of each trial in events.jsonl (or in `log`, the
    lines already read)."""
    return {e["trial_id"]: e for e in (_event_log(run_dir) if log is None else log)
            if e.get("trial_id") and e.get("event") in ("complete", "error")}


def start_order(run_dir: str | Path, log: list[dict[str, Any]] | None = None) -> dict[str, int]:
    """trial_id -> index in the order trials first started."""
    order: dict[str, int] = {}
    for e in _event_log(run_dir) if log is None else log:
        if e.get("event") == "start" and e.get("trial_id") not in order:
            order[e["trial_id"]] = len(order)
    return order


def abort_reason(run_dir: str | Path, log: list[dict[str, Any]] | None = None,
                 event: str = "abort") -> str | None:
    """Why the experiment was aborted (failure.max_failed_trials), or None; with
    event="time_budget": the time budget that ended it, or None."""
    for e in _event_log(run_dir) if log is None else log:
        if e.get("event") == event:
            return str(e.get("reason"))
    return None


def trial_dir_name(trial_id: str) -> str:
    return f"trial_{trial_id}"


def _trial_dirs(run_dir: Path) -> list[Path]:
    return sorted(p for p in run_dir.iterdir() if p.is_dir() and p.name.startswith("trial_")
                  and ((p / TRIAL_LOG).exists() or (p / "params.json").exists()))


def trial_files(d: Path) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
    """(configuration, results) of the trial folder `d`, or None when it holds neither (it never
    started: a full disk). hpo's own log where there is one (Ray's background copy can leave its
    files cut short or empty after a kill), else Ray's files (runs from before hpo's log)."""
    lines = read_jsonl(d / TRIAL_LOG)
    if lines and isinstance(lines[0].get("config"), dict):
        return lines[0]["config"], lines[1:]
    try:
        config = json.loads((d / "params.json").read_text())
    except (OSError, ValueError):
        return None
    return (config, read_jsonl(d / "result.json")) if isinstance(config, dict) else None


def trial_index(trial_id: str) -> int:
    """The creation index in a variant generator's id ("99a3c_00014" -> 14); -1 for searchers'
    random ids (e.g. "3ca312b9", which can be all digits)."""
    head, sep, tail = trial_id.rpartition("_")
    return int(tail) if sep and head and tail.isdigit() else -1


class _Run:
    """What every trial row needs from the run: spec, metric modes, events."""

    def __init__(self, run_dir: Path, log: list[dict[str, Any]]) -> None:
        spec = read_spec(run_dir)
        self.params: dict[str, Any] = spec.params
        self.modes: dict[str, str] = read_run_info(run_dir).get("metrics", {})
        self.searched = [k for k, v in self.params.items() if isinstance(v, dict)]
        self.max_epochs = spec.budget.max_epochs
        self.aborted = abort_reason(run_dir, log) is not None
        self.budget = abort_reason(run_dir, log, "time_budget")
        self.stopper = display_name(spec.scheduler.name)
        self.events = trial_events(run_dir, log)
        self.starts: dict[str, float] = {}  # trial id -> when it first started (events.jsonl)
        for e in log:
            if e.get("event") == "start" and e.get("trial_id") and "time" in e:
                self.starts.setdefault(e["trial_id"], float(e["time"]))
        self.groups = {k: p for k, p in _parsed(self.params).items() if p.is_group}

    def case(self, group: str, value: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """(label, the case's values in the spec's key order) of a trial's chosen case."""
        p = self.groups[group]
        i = p.case_of(value)
        if i is None:
            return case_label(value), value
        return p.labels()[i], {k: value[k] for k in p.values[i]}

    def config(self, config: dict[str, Any]) -> dict[str, Any]:
        """The trial's configuration: each group's case merged in, in the spec's order."""
        out: dict[str, Any] = {}
        for k in [*self.params, *(k for k in config if k not in self.params)]:
            if k not in config:
                continue
            v = config[k]
            if isinstance(v, dict) and k in self.groups:
                out.update(self.case(k, v)[1])
            else:
                out[k] = v
        return out


def collect(run_dir: str | Path) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, dict[str, Any]]]:
    """(trials, history, artifacts) rebuilt from the raw files in a run folder."""
    run_dir = Path(run_dir)
    log = _event_log(run_dir)  # read once: end events, aborts and the start order
    run = _Run(run_dir, log)
    order = start_order(run_dir, log)
    trials, history = [], []
    artifacts: dict[str, dict[str, Any]] = {}
    for d in _trial_dirs(run_dir):
        files = trial_files(d)
        if files is None:
            continue
        config, rows = files
        # hpo's id (a trial continued after a stop reports under a new Ray id, into this log)
        trial_id = d.name.removeprefix("trial_")
        planned = (config.pop(RECORD_KEY, None) or {}).get("plan")
        if PACK_KEY in config:  # a vectorized pack: one trial per member
            members = config[PACK_KEY]
            for i, member in enumerate(members):
                mid = f"{trial_id}_m{i}"
                mrows = [{**{k: r[k] for k in (*RAY_KEPT, *_PACK_KEEP) if k in r}, **r["members"][i]}
                         for r in rows if isinstance(r.get("members"), list) and r["members"][i]]
                hist = _history_rows(mid, mrows)
                history.extend(hist)
                cfg = {k: v for k, v in member.items() if k != "_index"}
                row = _trial_row(mid, d, cfg, hist, run.events.get(trial_id), run, ray_id=trial_id)
                # the pack's time is shared by its members (it trained them all at once)
                row.update(trial_index=int(member["_index"]), pack=trial_id, pack_size=len(members),
                           time_s=row["time_s"] / len(members))
                trials.append(row)
            continue
        hist = _history_rows(trial_id, rows)
        history.extend(hist)
        trials.append(_trial_row(trial_id, d, config, hist, run.events.get(trial_id), run))
        if planned is not None:  # its place in the run's plan (hpo.runner.record)
            trials[-1]["trial_index"] = int(planned)
        for r in reversed(rows):  # list values (e.g. `surface` predictions) are artifacts
            for k, v in r.items():
                if isinstance(v, list):
                    artifacts.setdefault(k, {}).setdefault(trial_id, v)
    _offset_extensions(trials, order)
    for row in trials:  # searchers' random trial ids carry no index: use the start order
        if row["trial_index"] < 0:
            row["trial_index"] = order.get(row["trial_id"], len(order) + len(trials))
    trials_df = pd.DataFrame(trials)
    if not trials_df.empty:
        trials_df = trials_df.sort_values("trial_index", kind="stable").reset_index(drop=True)
    return trials_df, pd.DataFrame(history), artifacts


def _offset_extensions(trials: list[dict[str, Any]], order: dict[str, int]) -> None:
    """A run extended in place (hpo resume --more) holds trials of several Tuners, each
    numbering its own from 0: number each Tuner's after the ones that started before it."""
    def ray_id(row: dict[str, Any]) -> str:
        return str(row.get("pack") or row["trial_id"])

    heads: dict[str, list[dict[str, Any]]] = {}
    for row in trials:
        if row["trial_index"] >= 0:
            heads.setdefault(ray_id(row).rpartition("_")[0], []).append(row)
    if len(heads) < 2:
        return
    offset = 0
    for rows in sorted(heads.values(), key=lambda rs: min(order.get(ray_id(r), 1 << 30) for r in rs)):
        for r in rows:
            r["trial_index"] += offset
        offset += len(rows)


def _history_rows(trial_id: str, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out: dict[int, dict[str, Any]] = {}
    for r in rows:
        h = {"trial_id": trial_id}
        # list values (e.g. a regression's `surface` predictions) are artifacts, not history
        h.update({k: v for k, v in r.items() if k not in RAY_DROPPED and not isinstance(v, list)})
        # a restored trial (PBT, resume) may report an epoch again: the last report wins
        out[int(r.get("epoch", r.get("training_iteration", 0)))] = h
    return [out[k] for k in sorted(out)]


def _parsed(params: dict[str, Any]) -> dict[str, Any]:
    """The spec's searched parameters, parsed (a spec the run started from is valid)."""
    out = {}
    for k, v in params.items():
        try:
            p = parse_param(k, v)
        except Exception:  # noqa: BLE001 - an old run's spec: read what can be read
            continue
        if isinstance(p, Distribution):
            out[k] = p
    return out


def _trial_row(trial_id: str, d: Path, config: dict[str, Any], hist: list[dict[str, Any]],
               event: dict[str, Any] | None, run: _Run, ray_id: str | None = None) -> dict[str, Any]:
    """One trials-table row; `ray_id`: Ray's trial (a pack's, for a packed member)."""
    ray_id = ray_id or trial_id
    last = hist[-1] if hist else {}
    epochs = int(last.get("epoch", 0)) if last else 0
    row: dict[str, Any] = {"trial_id": trial_id, "trial_index": trial_index(trial_id)}
    for k in run.searched:
        v = config.get(k)
        if isinstance(v, dict) and k in run.groups:  # a case: its label, then each parameter
            label, v = run.case(k, v)  # it sets, in the spec's key order (Ray sorts keys)
            row[f"param.{k}"] = label
            for ck, cv in v.items():
                row[f"param.{ck}"] = json.dumps(cv) if isinstance(cv, list) else cv
        else:
            row[f"param.{k}"] = json.dumps(v) if isinstance(v, list) else v
    error = _error_text(d, event)
    status, detail = _status(last, epochs, error, event, run)
    notes = dict.fromkeys(h[CHECKPOINT_NOTE] for h in hist if h.get(CHECKPOINT_NOTE))
    if notes:  # a restore passed over an unreadable checkpoint: the trial says so
        detail = "; ".join([detail, *notes])
    row.update(status=status, status_detail=detail, epochs=epochs,
               time_s=float(last.get("time_total_s", math.nan)) if last else math.nan,
               best_epoch=int(last.get("best_epoch", 0) or 0) if last else 0,
               error=error.splitlines()[0][:300] if error else None,
               hostname=last.get("hostname"), node_ip=last.get("node_ip"),
               node_id=last.get("node_id"), n_params=last.get("n_params"),
               started_at=run.starts.get(ray_id), ended_at=(event or {}).get("time"))
    if last.get("weights"):  # where the model's weights started (e.g. resnet18: imagenet or random)
        row["weights"] = last["weights"]
    for m, mode in run.modes.items():
        vals = [h[m] for h in hist if isinstance(h.get(m), (int, float)) and not _bad(h[m])]
        row[m] = last.get(m, math.nan) if last else math.nan
        if not m.startswith("test_"):
            row[f"best_{m}"] = (max(vals) if mode == "max" else min(vals)) if vals else math.nan
    row["config"] = json.dumps(run.config(config), default=str)
    return row


def _bad(x: float) -> bool:
    return isinstance(x, float) and (math.isnan(x) or math.isinf(x))


# Ray's words when a trial's process died under it, and what a user is told (first match wins)
DEATHS = (
    (("OutOfMemoryError", "due to the node running low on memory"),
     "the trial's worker process was killed: the node ran out of memory (OOM)"),
    (("NodeDiedError", "node has died", "node running this task has died"),
     "the node running the trial was lost"),
    (("ActorDiedError", "worker process has died", "actor died unexpectedly"),
     "the trial's worker process died (killed by a signal or the OOM killer, or it crashed)"),
)


def _error_text(d: Path, event: dict[str, Any] | None) -> str | None:
    """The trial's error, if its last end event is not a completion (a trial that failed and
    then completed on a retry has no error). Ray's own message for a process that died is
    prefixed with what it means."""
    if event and event.get("event") == "complete":
        return None
    text = None
    if event and event.get("error"):
        text = str(event["error"])
    elif (p := d / "error.txt").exists():
        text = p.read_text(errors="replace").strip() or None  # empty: Ray could not write it
    if text is None:
        return "error" if event and event.get("event") == "error" else None
    for markers, meaning in DEATHS:
        if any(m in text for m in markers):
            detail = re.search(r"Worker exit detail: (.*?)(?: Some common causes|$)", text, re.S)
            return f"{meaning}; Ray: {detail.group(1).strip()}" if detail else f"{meaning}."
    # Ray's error.txt ends with the exception line; that line is the message a user needs
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1] if lines else "error"


def _status(last: dict[str, Any], epochs: int, error: str | None, event: dict[str, Any] | None,
            run: _Run) -> tuple[str, str]:
    if last.get("diverged"):
        return "diverged", f"diverged (NaN/inf loss) at epoch {epochs}"
    if error:
        return "error", f"error: {error.splitlines()[0][:200]}"
    if last.get("stopped_in_pack"):
        return "stopped", str(last["stopped_in_pack"])
    if last.get("early_stopped"):
        return "completed", f"early-stopped at epoch {epochs}: {last['early_stopped']}"
    if run.budget and (event is None or epochs < run.max_epochs):
        return "stopped", f"stopped at epoch {epochs}: the {run.budget} ran out"
    if event is None:
        return "incomplete", f"incomplete at epoch {epochs} (interrupted or still running)"
    if epochs >= run.max_epochs:
        return "completed", "completed"
    if run.aborted:
        return "stopped", f"stopped at epoch {epochs}: experiment aborted after too many failures"
    return "stopped", f"stopped by {run.stopper} at epoch {epochs}"


def write_tables(run_dir: str | Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Rebuild and write trials.csv / trials.parquet / history.parquet, the artifacts and the
    best trial's best-validation weights (best_model/)."""
    run_dir = Path(run_dir)
    trials, history, artifacts = collect(run_dir)
    trials, history = _keep_missing(run_dir, trials, history)
    info = read_run_info(run_dir)
    trials = mark_goals(trials, info.get("objectives") or {}, info.get("constraints") or {})
    trials = mark_collapsed(trials, history, (info.get("dataset") or {}).get("n_classes"))
    keep_best_model(run_dir, trials)
    _atomic(run_dir / "trials.csv", lambda p: trials.to_csv(p, index=False))
    _atomic(run_dir / "trials.parquet", lambda p: trials.to_parquet(p, index=False))
    _atomic(run_dir / "history.parquet", lambda p: history.to_parquet(p, index=False))
    if artifacts:
        (run_dir / "artifacts").mkdir(exist_ok=True)
        for key, values in artifacts.items():
            _atomic(run_dir / "artifacts" / f"{key}.json", lambda p, v=values: p.write_text(json.dumps(v)))
    return trials, history


def _old_table(run_dir: Path, name: str) -> pd.DataFrame | None:
    """A table as the run folder last had it: its parquet file if readable, else (the trials
    table) its CSV copy; None when neither is there."""
    p = run_dir / f"{name}.parquet"
    if p.exists() and name + ".parquet" not in broken_tables(run_dir):
        return pd.read_parquet(p)
    csv = run_dir / f"{name}.csv"
    if csv.exists():
        try:
            return pd.read_csv(csv)
        except (ValueError, OSError):  # cut short as well
            return None
    return None


def _keep_missing(run_dir: Path, trials: pd.DataFrame,
                  history: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Never fewer trials or epochs than the tables had: trials whose folders are gone (deleted,
    not copied) keep their rows as the tables had them (each table on its own: the trials table
    from its CSV copy when the parquet file is gone), and it is said."""
    old_t, old_h = _old_table(run_dir, "trials"), _old_table(run_dir, "history")
    have = set(trials["trial_id"]) if len(trials) else set()
    # (a trial whose place another now holds was run again: a resume of a lost trial)
    taken = set(trials["trial_index"]) if len(trials) and "trial_index" in trials else set()
    gone: list[Any] = []
    if old_t is not None and "trial_id" in old_t:
        places = old_t.get("trial_index", [None] * len(old_t))
        gone = [t for t, i in zip(old_t["trial_id"], places, strict=True) if t not in have and i not in taken]
    if old_h is not None and "trial_id" in old_h:
        listed = set(gone) | (set(old_t["trial_id"]) if old_t is not None and "trial_id" in old_t else set())
        gone += [t for t in dict.fromkeys(old_h["trial_id"]) if t not in have and t not in listed]
    if not gone:
        return trials, history
    rows = set(old_t["trial_id"]) if old_t is not None and "trial_id" in old_t else set()
    rowless = [t for t in gone if t not in rows]
    print(f"hpo: {len(gone)} trial(s) of the tables have no trial folder in {run_dir} any more "
          f"({', '.join(map(str, gone[:5]))}{', ...' if len(gone) > 5 else ''}): their rows are kept "
          f"as the tables had them. Copy their trial_<id> folders back (e.g. from the run's bucket "
          f"or a backup) and run `hpo report {run_dir}` to rebuild them."
          + (f" {len(rowless)} of them had no row left in the trials table (trials.parquet and "
             f"trials.csv gone): only their epochs are kept." if rowless else ""), file=sys.stderr)
    if old_t is not None and "trial_id" in old_t:
        keep_t = old_t[old_t["trial_id"].isin(gone)]
        trials = (pd.concat([trials, keep_t], ignore_index=True) if len(trials)
                  else keep_t.reset_index(drop=True))
    if old_h is not None and "trial_id" in old_h:
        keep_h = old_h[old_h["trial_id"].isin(gone)]
        history = (pd.concat([history, keep_h], ignore_index=True) if len(history)
                   else keep_h.reset_index(drop=True))
    if "trial_index" in trials:
        trials = trials.sort_values("trial_index", kind="stable").reset_index(drop=True)
    return trials, history


EXPLODED = 1e3  # a train loss this many times its first epoch's (or above 1e6) has exploded


def mark_collapsed(trials: pd.DataFrame, history: pd.DataFrame, n_classes: int | None) -> pd.DataFrame:
    """`collapsed`: a trial that trained without NaN but learned nothing (its best validation
    accuracy within 5% of chance above chance) or whose train loss exploded (x1000 its first
    epoch's, or above 1e6); its status_detail says which. The status stays (it did train)."""
    if trials.empty:
        return trials
    trials = trials.copy()
    chance = 1 / n_classes if n_classes and n_classes > 1 else None
    first = last = pd.Series(dtype=float)
    if not history.empty and "train_loss" in history:
        h = history.sort_values("epoch").groupby("trial_id")["train_loss"]
        first, last = h.first(), h.last()
    why = []
    for _, r in trials.iterrows():
        w = None
        acc = r.get("best_val_acc")
        if r["status"] in ("completed", "stopped") and chance is not None and pd.notna(acc) \
                and acc <= chance + 0.05 * (1 - chance):
            w = f"val_acc never above chance (best {acc:.3g}, chance {chance:.3g})"
        f0, f1 = first.get(r["trial_id"]), last.get(r["trial_id"])
        if w is None and r["status"] in ("completed", "stopped") and pd.notna(f1) and (
                f1 > 1e6 or (pd.notna(f0) and f0 > 0 and f1 > EXPLODED * f0)):
            w = f"train loss exploded to {f1:.3g} (first epoch {f0:.3g})"
        why.append(w)
    trials["collapsed"] = [w is not None for w in why]
    trials["status_detail"] = [d if w is None else f"{d}; collapsed: {w}"
                               for d, w in zip(trials["status_detail"], why, strict=True)]
    return trials


def mark_goals(trials: pd.DataFrame, objectives: dict[str, str],
               constraints: dict[str, list[float | None]]) -> pd.DataFrame:
    """`feasible` (within every constraint) and `pareto` (no eligible, feasible trial is at
    least as good in every objective and better in one) columns, when the run has them."""
    if trials.empty:
        return trials
    trials = trials.copy()
    if constraints:
        ok = pd.Series(True, index=trials.index)
        for m, (lo, hi) in constraints.items():
            col = objective_column(trials, m)
            v = pd.to_numeric(trials.get(col, pd.Series(float("nan"), index=trials.index)), errors="coerce")
            ok &= v.notna() & (v >= lo if lo is not None else True) & (v <= hi if hi is not None else True)
        trials["feasible"] = ok
    if len(objectives) > 1:
        cols = [objective_column(trials, m) for m in objectives]
        signs = [-1.0 if d == "max" else 1.0 for d in objectives.values()]  # all minimized
        cand = trials["status"].isin(ELIGIBLE) & trials[cols].notna().all(axis=1)
        if "feasible" in trials:
            cand &= trials["feasible"]
        pts = {i: [s * float(trials.at[i, c]) for s, c in zip(signs, cols, strict=True)]
               for i in trials.index[cand]}
        front = {i for i, a in pts.items()
                 if not any(all(x <= y for x, y in zip(b, a, strict=True)) and b != a for b in pts.values())}
        trials["pareto"] = [i in front for i in trials.index]
    return trials


def keep_best_model(run_dir: Path, trials: pd.DataFrame) -> None:
    """Copy the best trial's best-validation weights (the best_model.pt of its last checkpoint)
    to <run>/best_model/model.pt with model.json saying how to rebuild it (hpo.model_io)."""
    info = read_run_info(run_dir)
    best = best_trial(trials, info.get("metric", ""), info.get("mode", "max")) if info.get("metric") else None
    if best is None:
        return
    tid = str(best["trial_id"])
    if isinstance(best.get("pack"), str) and tid.startswith(f"{best['pack']}_m"):  # a pack member
        member = tid.rpartition("_m")[2]
        ckpts = [c / f"best_model_m{member}.pt" for c in checkpoints(run_dir, best["pack"])]
    else:
        ckpts = [c / "best_model.pt" for c in checkpoints(run_dir, tid)]
    ckpts = [c for c in ckpts if c.is_file()]
    if not ckpts:
        return  # no checkpoints (checkpoint.every 0, a pack member, a user's own loop)
    out = run_dir / "best_model"
    out.mkdir(exist_ok=True)
    shutil.copyfile(ckpts[-1], out / "model.pt.tmp")
    (out / "model.pt.tmp").replace(out / "model.pt")
    col = f"best_{info['metric']}"
    meta = {"trial_id": best["trial_id"], "trainable": info.get("trainable"), "model": info.get("model"),
            "config": json.loads(best["config"]), "best_epoch": int(best["best_epoch"]),
            info["metric"]: float(best[col]) if col in best else None,
            **{k: float(best[k]) for k in best.index if k.startswith("test_") and pd.notna(best[k])},
            "dataset": {k: info.get("dataset", {}).get(k) for k in ("name", "example_shape", "n_classes",
                                                                    "normalize")}}
    _atomic(out / "model.json", lambda p: p.write_text(json.dumps(meta, indent=1, default=str)))


def checkpoints(run_dir: Path, trial_id: str) -> list[Path]:
    """The trial's checkpoint folders on disk, oldest first: those its log names (a trial
    continued after a stop writes them in a folder of its own), else those in its folder."""
    d = Path(run_dir) / trial_dir_name(trial_id)
    named = [Path(run_dir) / r["checkpoint"] for r in read_jsonl(d / TRIAL_LOG) if r.get("checkpoint")]
    found = list(dict.fromkeys(p for p in named if p.is_dir()))
    return found or sorted(p for p in d.glob("checkpoint_*") if p.is_dir())


def refresh(run_dir: str | Path) -> None:
    """Write the tables of a run that has not written its own: one still running, or killed
    before the end (run.json says `running`), or whose tables are missing or unreadable."""
    run_dir = Path(run_dir)
    if _trial_dirs(run_dir) and (not has_tables(run_dir) or broken_tables(run_dir)
                                 or read_run_info(run_dir).get("state", "running") == "running"):
        write_tables(run_dir)


def _atomic(path: Path, write: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    write(tmp)
    tmp.replace(path)
