"""The results on disk: the contract between the runner and everything after it.

A run folder ``<storage>/<name>/`` holds

* ``spec.yaml``      the resolved spec (after ``--set``), and ``run.json`` (seed, versions,
                     hardware, git commit, dataset, metric modes, start/end, state);
* ``events.jsonl``   one line per finished trial, written by the driver as it happens;
* ``trial_<id>/``    Ray's trial folders (``params.json``, ``result.json``, checkpoints,
                     ``error.txt``) — the raw per-epoch reports;
* ``trials.csv`` / ``trials.parquet``  one row per trial (columns in :data:`TRIAL_COLUMNS`
                     plus ``param.<name>`` for every searched parameter and ``best_<metric>``
                     for every metric);
* ``history.parquet`` one row per trial per epoch (``trial_id``, ``epoch`` and every metric).

:func:`collect` rebuilds both tables from the trial folders alone, so it works for finished,
interrupted and still-running runs and for runs copied from another machine. No Ray import.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from hpo.packing import PACK_KEY
from hpo.space import case_label

TRIAL_COLUMNS = {
    "trial_id": "Ray's trial id",
    "trial_index": "order in which the trial first started",
    "status": "completed (incl. early-stopped) | stopped | diverged | error | incomplete",
    "status_detail": "what happened, e.g. 'stopped by asha at epoch 3'",
    "epochs": "epochs reported",
    "time_s": "training time of the trial (Ray's time_total_s)",
    "best_epoch": "epoch of the best validation value (the one test metrics belong to)",
    "test_acc / test_loss": "test metrics at the best validation epoch",
    "error": "first line of the error for failed trials",
    "hostname / node_ip / node_id": "where the trial ran (Ray node)",
    "n_params": "trainable parameters of the model",
    "pack / pack_size": "the vectorized trial a packed member ran in, and how many it held",
}
# Ray bookkeeping fields kept in the history table next to the metrics
_RAY_KEEP = ("training_iteration", "time_total_s", "timestamp", "hostname", "node_ip", "pid")
_RAY_DROP = {"config", "done", "should_checkpoint", "checkpoint_dir_name", "date", "trial_id",
             "time_this_iter_s", "time_since_restore", "iterations_since_restore",
             "timesteps_total", "episodes_total", "experiment_tag", "timesteps_since_restore"}


def require_run_dir(run_dir: str | Path) -> Path:
    """`run_dir` as a Path, or a SpecError when it is not a run folder."""
    from hpo.errors import SpecError

    p = Path(run_dir)
    if not (p / "spec.yaml").exists():
        raise SpecError("not a run folder (no spec.yaml); give <storage>/<name>.", file=str(p))
    return p


def read_run_info(run_dir: Path) -> dict[str, Any]:
    p = Path(run_dir) / "run.json"
    return json.loads(p.read_text()) if p.exists() else {}


def read_spec(run_dir: Path) -> dict[str, Any]:
    return yaml.safe_load((Path(run_dir) / "spec.yaml").read_text())


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    rows = []
    if not path.exists():
        return rows
    for line in path.read_text().splitlines():
        line = line.strip()
        if line:
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                break  # a line cut by a crash: keep what came before it
    return rows


def trial_events(run_dir: str | Path) -> dict[str, dict[str, Any]]:
    """The last event of each trial in events.jsonl."""
    return _events(Path(run_dir))


def _events(run_dir: Path) -> dict[str, dict[str, Any]]:
    """The last end event (complete / error) of each trial."""
    return {e["trial_id"]: e for e in _read_jsonl(run_dir / "events.jsonl")
            if e.get("trial_id") and e.get("event") in ("complete", "error")}


def start_order(run_dir: str | Path) -> dict[str, int]:
    """trial_id -> index in the order trials first started."""
    order: dict[str, int] = {}
    for e in _read_jsonl(Path(run_dir) / "events.jsonl"):
        if e.get("event") == "start" and e.get("trial_id") not in order:
            order[e["trial_id"]] = len(order)
    return order


def abort_reason(run_dir: str | Path) -> str | None:
    """Why the experiment was aborted (failure.max_failed_trials), or None."""
    for e in _read_jsonl(Path(run_dir) / "events.jsonl"):
        if e.get("event") == "abort":
            return str(e.get("reason"))
    return None


def _trial_dirs(run_dir: Path) -> list[Path]:
    return sorted(p for p in run_dir.iterdir() if p.is_dir() and (p / "params.json").exists())


def _trial_index(trial_id: str) -> int:
    """The creation index in a variant generator's id ("99a3c_00014" -> 14); -1 for searchers'
    random ids (e.g. "3ca312b9", which can be all digits)."""
    head, sep, tail = trial_id.rpartition("_")
    return int(tail) if sep and head and tail.isdigit() else -1


def collect(run_dir: str | Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(trials, history) rebuilt from the files in a run folder."""
    run_dir = Path(run_dir)
    spec = read_spec(run_dir)
    info = read_run_info(run_dir)
    modes: dict[str, str] = info.get("metrics", {})
    searched = [k for k, v in (spec.get("params") or {}).items() if isinstance(v, dict)]
    max_epochs = int(spec.get("budget", {}).get("max_epochs", 0))
    scheduler = spec.get("scheduler", {}).get("name", "fifo")
    events = _events(run_dir)
    aborted = abort_reason(run_dir) is not None
    order = start_order(run_dir)
    cases = _spec_cases(spec.get("params") or {})

    trials, history = [], []
    for d in _trial_dirs(run_dir):
        config = json.loads((d / "params.json").read_text())
        rows = _read_jsonl(d / "result.json")
        trial_id = rows[0]["trial_id"] if rows else d.name.removeprefix("trial_")
        if PACK_KEY in config:  # a vectorized pack: one trial per member
            for i, member in enumerate(config[PACK_KEY]):
                mid = f"{trial_id}_m{i}"
                mrows = [{**{k: r[k] for k in _RAY_KEEP if k in r}, **r["members"][i]}
                         for r in rows if isinstance(r.get("members"), list) and r["members"][i]]
                hist = _history_rows(mid, mrows)
                history.extend(hist)
                cfg = {k: v for k, v in member.items() if k != "_index"}
                row = _trial_row(mid, d, cfg, hist, events.get(trial_id), searched, modes,
                                 max_epochs, "abort" if aborted else scheduler, cases)
                # the pack's time is shared by its members (it trained them all at once)
                row.update(trial_index=int(member["_index"]), pack=trial_id,
                           pack_size=len(config[PACK_KEY]), time_s=row["time_s"] / len(config[PACK_KEY]))
                trials.append(row)
            continue
        hist = _history_rows(trial_id, rows)
        history.extend(hist)
        trials.append(_trial_row(trial_id, d, config, hist, events.get(trial_id), searched,
                                 modes, max_epochs, "abort" if aborted else scheduler, cases))
    for row in trials:  # searchers' random trial ids carry no index: use the start order
        if row["trial_index"] < 0:
            row["trial_index"] = order.get(row["trial_id"], len(order) + len(trials))
    trials_df = pd.DataFrame(trials)
    if not trials_df.empty:
        trials_df = trials_df.sort_values("trial_index", kind="stable").reset_index(drop=True)
    return trials_df, pd.DataFrame(history)


def trial_config(run_dir: str | Path, trial_id: str) -> dict[str, Any]:
    """The configuration a trial trained with: its params.json with each group's case merged
    in, parameters in the spec's order (pastable into a spec's params as constants)."""
    run_dir = Path(run_dir)
    pack, _, i = trial_id.rpartition("_m")
    if pack and i.isdigit() and not (run_dir / f"trial_{trial_id}").exists():  # a pack member
        member = json.loads((run_dir / f"trial_{pack}" / "params.json").read_text())[PACK_KEY][int(i)]
        config = {k: v for k, v in member.items() if k != "_index"}
    else:
        config = json.loads((run_dir / f"trial_{trial_id}" / "params.json").read_text())
    params = read_spec(run_dir).get("params") or {}
    cases = _spec_cases(params)
    out: dict[str, Any] = {}
    for k in [*params, *(k for k in config if k not in params)]:
        if k not in config:
            continue
        v = config[k]
        if isinstance(v, dict) and isinstance(params.get(k), dict):
            out.update(cases.get(_case_key(v), v))
        else:
            out[k] = v
    return out


def last_reported(run_dir: str | Path, trial_id: str, key: str) -> Any:
    """The last value a trial reported under `key` (e.g. `surface`), or None."""
    rows = _read_jsonl(Path(run_dir) / f"trial_{trial_id}" / "result.json")
    return next((r[key] for r in reversed(rows) if key in r), None)


def _history_rows(trial_id: str, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out: dict[int, dict[str, Any]] = {}
    for r in rows:
        h = {"trial_id": trial_id}
        # list values (e.g. a regression's `surface` predictions) are artifacts, not history
        h.update({k: v for k, v in r.items() if k not in _RAY_DROP and not isinstance(v, list)})
        # a restored trial (PBT, resume) may report an epoch again: the last report wins
        out[int(r.get("epoch", r.get("training_iteration", 0)))] = h
    return [out[k] for k in sorted(out)]


def _case_key(case: dict[str, Any]) -> str:
    return json.dumps(case, sort_keys=True, default=str)


def _spec_cases(params: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every case of every group in the spec, keyed independently of key order."""
    out = {}
    for v in params.values():
        if isinstance(v, dict) and len(v) == 1:
            values = next(iter(v.values()))
            if isinstance(values, list):
                out.update({_case_key(c): c for c in values if isinstance(c, dict)})
    return out


def _trial_row(trial_id: str, d: Path, config: dict[str, Any], hist: list[dict[str, Any]],
               event: dict[str, Any] | None, searched: list[str], modes: dict[str, str],
               max_epochs: int, scheduler: str, cases: dict[str, dict[str, Any]]) -> dict[str, Any]:
    last = hist[-1] if hist else {}
    epochs = int(last.get("epoch", 0)) if last else 0
    row: dict[str, Any] = {"trial_id": trial_id, "trial_index": _trial_index(trial_id)}
    for k in searched:
        v = config.get(k)
        if isinstance(v, dict):  # a case of a group: its label, then each parameter it sets
            v = cases.get(_case_key(v), v)  # in the spec's key order (Ray sorts keys)
            row[f"param.{k}"] = case_label(v)
            for ck, cv in v.items():
                row[f"param.{ck}"] = json.dumps(cv) if isinstance(cv, list) else cv
        else:
            row[f"param.{k}"] = json.dumps(v) if isinstance(v, list) else v
    error = _error_text(d, event)
    status, detail = _status(last, epochs, error, event, max_epochs, scheduler)
    row.update(status=status, status_detail=detail, epochs=epochs,
               time_s=float(last.get("time_total_s", math.nan)) if last else math.nan,
               best_epoch=int(last.get("best_epoch", 0) or 0) if last else 0,
               error=error.splitlines()[0][:300] if error else None,
               hostname=last.get("hostname"), node_ip=last.get("node_ip"),
               node_id=last.get("node_id"), n_params=last.get("n_params"))
    if last.get("weights"):  # where the model's weights started (e.g. resnet18: imagenet or random)
        row["weights"] = last["weights"]
    for m, mode in modes.items():
        vals = [h[m] for h in hist if isinstance(h.get(m), (int, float)) and not _bad(h[m])]
        row[m] = last.get(m, math.nan) if last else math.nan
        if not m.startswith("test_"):
            row[f"best_{m}"] = (max(vals) if mode == "max" else min(vals)) if vals else math.nan
    return row


def _bad(x: float) -> bool:
    return isinstance(x, float) and (math.isnan(x) or math.isinf(x))


def _error_text(d: Path, event: dict[str, Any] | None) -> str | None:
    if event and event.get("error"):
        return str(event["error"])
    p = d / "error.txt"
    if p.exists():
        lines = [ln for ln in p.read_text(errors="replace").strip().splitlines() if ln.strip()]
        # Ray's error.txt ends with the exception line; that line is the message a user needs
        return lines[-1] if lines else "error"
    return None


def _status(last: dict[str, Any], epochs: int, error: str | None, event: dict[str, Any] | None,
            max_epochs: int, scheduler: str) -> tuple[str, str]:
    if last.get("diverged"):
        return "diverged", f"diverged (NaN/inf loss) at epoch {epochs}"
    if error:
        return "error", f"error: {error.splitlines()[0][:200]}"
    if last.get("stopped_in_pack"):
        return "stopped", str(last["stopped_in_pack"])
    if last.get("early_stopped"):
        return "completed", f"early-stopped at epoch {epochs}: {last['early_stopped']}"
    if event is None:
        return "incomplete", f"incomplete at epoch {epochs} (interrupted or still running)"
    if epochs >= max_epochs:
        return "completed", "completed"
    if scheduler == "abort":
        return "stopped", f"stopped at epoch {epochs}: experiment aborted after too many failures"
    who = "the median rule" if scheduler == "median" else scheduler.upper()
    return "stopped", f"stopped by {who} at epoch {epochs}"


def write_tables(run_dir: str | Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Rebuild and write trials.csv / trials.parquet / history.parquet; return the tables."""
    run_dir = Path(run_dir)
    trials, history = collect(run_dir)
    _atomic(run_dir / "trials.csv", lambda p: trials.to_csv(p, index=False))
    _atomic(run_dir / "trials.parquet", lambda p: trials.to_parquet(p, index=False))
    _atomic(run_dir / "history.parquet", lambda p: history.to_parquet(p, index=False))
    return trials, history


def _atomic(path: Path, write: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    write(tmp)
    tmp.replace(path)


def best_trial(trials: pd.DataFrame, metric: str, mode: str) -> pd.Series | None:
    col = f"best_{metric}" if f"best_{metric}" in trials else metric
    ok = trials[trials["status"].isin(["completed", "stopped", "incomplete"])].dropna(subset=[col])
    if ok.empty:
        return None
    return ok.loc[ok[col].idxmax() if mode == "max" else ok[col].idxmin()]
