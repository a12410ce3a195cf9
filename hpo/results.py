"""The results on disk: the contract between the runner and everything after it.

A run folder ``<storage>/<name>/`` holds

* ``spec.yaml``       the resolved spec (after ``--set``), and ``run.json`` (seed, versions,
                      hardware, git commit, dataset, metric modes, start/end, state);
* ``trials.parquet``  one row per trial (``trials.csv`` the same for people): the columns in
                      :data:`TRIAL_COLUMNS`, ``param.<name>`` for every searched parameter,
                      ``best_<metric>`` for every non-test metric, and ``config``, the JSON of the
                      configuration the trial trained with;
* ``history.parquet`` one row per trial per epoch (``trial_id``, ``epoch`` and every metric);
* ``artifacts/<key>.json`` values a trial reported that are not metrics (e.g. a regression's
                      ``surface`` predictions), ``{trial_id: value}``;
* ``report.html``     the report built from the files above;

and, for the runner's own use, ``events.jsonl`` and Ray's ``trial_<id>/`` folders, which
:mod:`hpo.runner.collect` turns into the tables. Everything after the runner (report, compare,
confirm's picks, ``hpo best``) reads only the files listed above, through this module: a run
folder whose trial folders were deleted reads the same. No Ray, no torch.
"""

from __future__ import annotations

import datetime as dt
import json
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from hpo.errors import SpecError
from hpo.space import Distribution, parse_param
from hpo.spec import Spec, read_spec_file, validate_partly

TRIAL_COLUMNS = {
    "trial_id": "Ray's trial id",
    "trial_index": "order in which the trial first started",
    "status": "completed (incl. early-stopped) | stopped | diverged | error | incomplete",
    "status_detail": "what happened, e.g. 'stopped by ASHA at epoch 3'",
    "epochs": "epochs reported",
    "time_s": "training time of the trial (Ray's time_total_s)",
    "best_epoch": "epoch of the best validation value (the one test metrics belong to)",
    "test_acc / test_loss": "test metrics at the best validation epoch",
    "error": "first line of the error for failed trials",
    "hostname / node_ip / node_id": "where the trial ran (Ray node)",
    "n_params": "trainable parameters of the model",
    "pack / pack_size": "the vectorized trial a packed member ran in, and how many it held",
    "config": "JSON of the trial's configuration (cases merged in, spec order)",
    "started_at / ended_at": "when the trial started and ended (unix seconds; a pack's for its members)",
    "collapsed": "trained without NaN but learned nothing (accuracy at chance) or its loss exploded",
    "pareto / feasible": "on the Pareto set (several objectives) / within the constraints",
}
TABLES = ("trials.parquet", "history.parquet")
# Trials that may be selected as best: everything that trained without failing. Stopped trials
# count (a scheduler cut them, their values are real); incomplete ones only exist while a run
# goes on or after an interruption, and are then the best known so far.
ELIGIBLE = ("completed", "stopped", "incomplete")
DONE = ("completed", "stopped")  # trials that trained to their end without failing


def require_run_dir(run_dir: str | Path) -> Path:
    """`run_dir` as a Path, or a SpecError when it is not a run folder."""
    p = Path(run_dir)
    if not (p / "spec.yaml").exists():
        raise SpecError("not a run folder (no spec.yaml); give <storage>/<name>.", file=str(p))
    return p


def read_run_info(run_dir: str | Path) -> dict[str, Any]:
    p = Path(run_dir) / "run.json"
    return json.loads(p.read_text()) if p.exists() else {}


def read_spec(run_dir: str | Path) -> Spec:
    """The spec the run started with, validated: every default filled in as the run had it. A
    field this hpo does not know (a spec.yaml written by another version) is left out with a
    warning; a spec.yaml that is no spec at all is a SpecError naming the file."""
    path = Path(run_dir) / "spec.yaml"
    spec, problems = validate_partly(read_spec_file(path))
    if spec is None:
        raise SpecError("is not a spec this hpo can read: " + "; ".join(problems), file=str(path))
    if problems:
        warnings.warn(f"{path}: read without what this hpo does not know: {'; '.join(problems)}",
                      stacklevel=2)
    return spec


def metric_and_mode(run_dir: str | Path) -> tuple[str, str]:
    """The run's selection metric and its direction (run.json, else the spec; an old run without
    a mode: accuracies are maximized, everything else minimized)."""
    info, spec = read_run_info(run_dir), read_spec(run_dir)
    metric = info.get("metric") or spec.metric or next(iter(spec.objectives))
    return metric, info.get("mode") or spec.mode or spec.objectives.get(metric) \
        or ("max" if metric.endswith("acc") else "min")


def has_tables(run_dir: str | Path) -> bool:
    return all((Path(run_dir) / f).exists() for f in TABLES)


def broken_tables(run_dir: str | Path) -> list[str]:
    """The tables of a run folder that exist but cannot be read (e.g. cut short by a full disk
    or a copy that stopped half-way)."""
    import pyarrow.parquet as pq

    bad = []
    for f in TABLES:
        p = Path(run_dir) / f
        if p.exists():
            try:
                pq.read_metadata(p)
            except Exception:  # noqa: BLE001 - any unreadable file is reported the same way
                bad.append(f)
    return bad


def load_tables(run_dir: str | Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(trials, history) as the collector wrote them; a SpecError when there are none yet."""
    d = Path(run_dir)
    if not has_tables(d):
        raise SpecError("no results tables here yet (trials.parquet, history.parquet); "
                        "`hpo report` writes them for an unfinished run.", file=str(d))
    if bad := broken_tables(d):
        raise SpecError(f"{', '.join(bad)} cannot be read (cut short?); `hpo report {d}` "
                        f"rebuilds the tables from the trials' own files.", file=str(d))
    return pd.read_parquet(d / "trials.parquet"), pd.read_parquet(d / "history.parquet")


def runs_table(run_dirs: list[Path]) -> pd.DataFrame:
    """One row per run, newest first: name, state, trials done of planned, best value so far,
    started, wall time. From run.json and the trials table (as last written)."""
    rows = []
    for d in run_dirs:
        info = read_run_info(d)
        table = d / "trials.parquet"
        trials = pd.read_parquet(table) if table.exists() else pd.DataFrame()
        metric, mode = info.get("metric", "?"), info.get("mode", "max")
        best = best_trial(trials, metric, mode) if len(trials) and metric != "?" else None
        done = int(trials["status"].isin(DONE + ("diverged", "error")).sum()) if len(trials) else 0
        state = info.get("state", "unknown")
        started = float(info.get("started") or 0)
        wall = info.get("wall_time_s")
        if state == "running":  # a run killed without a word stays `running`: its clock shows it
            wall = time.time() - started if started else None
        planned = info.get("n_trials_planned", "?")
        rows.append({"run": d.name, "state": state, "trials": f"{done}/{planned}",
                     "metric": f"{metric} ({mode})",
                     "best": None if best is None else float(best[selection_column(trials, metric)]),
                     "started": (dt.datetime.fromtimestamp(started).strftime("%Y-%m-%d %H:%M")
                                 if started else "?"),
                     "wall_s": None if wall is None else round(float(wall), 1), "_t": started})
    out = pd.DataFrame(rows)
    if out.empty:
        return out
    return out.sort_values("_t", ascending=False).drop(columns="_t").reset_index(drop=True)


def selection_column(trials: pd.DataFrame, metric: str) -> str:
    """The column trials are ranked by: the best value of `metric` over a trial's epochs."""
    return f"best_{metric}" if f"best_{metric}" in trials else metric


def objective_column(trials: pd.DataFrame, name: str) -> str:
    """The column of an objective or constrained value: a metric's best over the epochs, or a
    per-trial value such as `n_params`."""
    return selection_column(trials, name)


def bound_text(metric: str, lo: float | None, hi: float | None) -> str:
    """A constraint as people write it: "0.9 <= val_acc", "n_params <= 300000"."""
    return (f"{lo:g} <= " if lo is not None else "") + metric + (f" <= {hi:g}" if hi is not None else "")


def eligible(trials: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Trials that may be selected as best: an eligible status, a value of `metric`, and
    within the constraints (when the run has any)."""
    if trials.empty:
        return trials
    col = selection_column(trials, metric)
    ok = trials[trials["status"].isin(ELIGIBLE)].dropna(subset=[col])
    if "feasible" in ok:
        ok = ok[ok["feasible"].fillna(False).astype(bool)]
    return ok


def ranked(trials: pd.DataFrame, metric: str, mode: str) -> pd.DataFrame:
    """The eligible trials, best first (ties keep the trial order)."""
    ok = eligible(trials, metric)
    if ok.empty:
        return ok
    return ok.sort_values(selection_column(trials, metric), ascending=mode == "min", kind="stable")


def pareto_set(trials: pd.DataFrame, objectives: dict[str, str], metric: str, mode: str) -> pd.DataFrame:
    """The Pareto-optimal trials (the collector's `pareto` column), best `metric` first:
    trial_id, each objective's value and the searched parameters."""
    if trials.empty or "pareto" not in trials or len(objectives) < 2:
        return trials.iloc[0:0]
    cols = {m: objective_column(trials, m) for m in objectives}
    front = trials[trials["pareto"].fillna(False).astype(bool)]
    front = front.sort_values(selection_column(trials, metric), ascending=mode == "min", kind="stable")
    params = [c for c in trials.columns if c.startswith("param.")]
    return front[["trial_id", *dict.fromkeys(cols.values()), *params]].rename(
        columns={c: m for m, c in cols.items()} | {p: p.removeprefix("param.") for p in params}
    ).reset_index(drop=True)


def best_trial(trials: pd.DataFrame, metric: str, mode: str) -> pd.Series | None:
    ok = eligible(trials, metric)
    if ok.empty:
        return None
    col = selection_column(trials, metric)
    return ok.loc[ok[col].idxmax() if mode == "max" else ok[col].idxmin()]


def trial_config(row: pd.Series | dict[str, Any]) -> dict[str, Any]:
    """The configuration a trial trained with (its `config` column): each group's case merged
    in, parameters in the spec's order, pastable into a spec's params as constants."""
    return json.loads(row["config"])


def artifact(run_dir: str | Path, key: str, trial_id: str) -> Any:
    """The last value a trial reported under `key` (e.g. `surface`), or None."""
    p = Path(run_dir) / "artifacts" / f"{key}.json"
    return json.loads(p.read_text()).get(trial_id) if p.exists() else None


@dataclass
class Outcome:
    """What the command that just ran (or resumed) a run did, beyond what its folder holds."""

    wall_time_s: float
    storage: Any  # hpo.storage.Storage: where the run folder lives (its bucket, for a URI storage)
    fault: str | None = None  # the storage stopped taking writes: what happened, in words
    unchanged: bool = False  # a finished run given to `hpo resume`: nothing was written


@dataclass
class RunFolder:
    """A run, as its folder's results files hold it: the one run type that the API (`hpo.Run`),
    the CLI, the report and the runner's result share. `RunFolder.read(d)` reads one; the runner
    returns one built from the tables it has just written, with the `outcome` of its command."""

    run_dir: Path
    spec: Spec
    info: dict[str, Any]
    trials: pd.DataFrame
    history: pd.DataFrame
    metric: str
    mode: str
    outcome: Outcome | None = None
    report_path: Path | None = None

    @classmethod
    def read(cls, run_dir: str | Path) -> RunFolder:
        """The run folder's spec, run.json and tables (a SpecError when it has no tables yet)."""
        d = require_run_dir(run_dir)
        trials, history = load_tables(d)
        metric, mode = metric_and_mode(d)
        return cls(d, read_spec(d), read_run_info(d), trials, history, metric, mode)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def state(self) -> str:
        return str(self.info.get("state", "unknown"))

    @property
    def modes(self) -> dict[str, str]:
        """Every metric the trainable reports -> min | max."""
        return dict(self.info.get("metrics") or {})

    @property
    def searched(self) -> dict[str, Distribution]:
        """Searched params, parsed: name -> Distribution (its kind's properties say how to draw)."""
        return {k: p for k, v in self.spec.params.items() if isinstance(p := parse_param(k, v), Distribution)}

    @property
    def max_epochs(self) -> int:
        return self.spec.budget.max_epochs

    @property
    def best_col(self) -> str:
        return f"best_{self.metric}"

    @property
    def best(self) -> pd.Series | None:
        """The best trial's row (eligible trials only, ranked by best_<metric>), or None."""
        return best_trial(self.trials, self.metric, self.mode)

    @property
    def best_config(self) -> dict[str, Any] | None:
        """The configuration the best trial trained with (pastable into a spec's params)."""
        best = self.best
        return None if best is None else trial_config(best)

    def __repr__(self) -> str:
        best = self.best
        b = "none yet" if best is None else f"{best[self.best_col]:.4g} ({best['trial_id']})"
        return (f"Run({str(self.run_dir)!r}, state={self.state!r}, trials={len(self.trials)}, "
                f"best {self.metric}={b})")
