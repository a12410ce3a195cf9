"""hpo from Python (a notebook, a script): the functions the CLI is a thin layer over.

    import hpo
    exp = hpo.validate("search_spaces/lr_reg.yaml", overrides=["budget.max_epochs=2"])
    run = hpo.run({"name": "mine", "model": "my_lab.nets:build", ...}, storage="runs")
    run.trials, run.history, run.best_config, run.report_path
    run = hpo.load_run("runs/mine")

A spec is a YAML path, a built-in study's name ("lr_reg"), a dict of the same fields, or a
validated :class:`hpo.spec.Spec`. Bad input raises :class:`hpo.SpecError` with the same one-line
message as the CLI, before Ray starts. Nothing is printed unless `progress=True`.
"""

from __future__ import annotations

import copy
import io
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from hpo.experiment import Experiment, check, check_raw, load_experiment
from hpo.spec import Spec, apply_override

SpecLike = str | Path | dict[str, Any] | Spec


@dataclass
class Run:
    """A run folder and its results tables (hpo.results), as a notebook wants them."""

    run_dir: Path
    trials: pd.DataFrame
    history: pd.DataFrame
    metric: str
    mode: str
    state: str
    info: dict[str, Any] = field(default_factory=dict)
    report_path: Path | None = None

    @property
    def best(self) -> pd.Series | None:
        """The best trial's row (eligible trials only, ranked by best_<metric>), or None."""
        from hpo.results import best_trial

        return best_trial(self.trials, self.metric, self.mode)

    @property
    def best_config(self) -> dict[str, Any] | None:
        """The configuration the best trial trained with (pastable into a spec's params)."""
        from hpo.results import trial_config

        best = self.best
        return None if best is None else trial_config(best)

    def report(self, out: str | Path | None = None) -> Path:
        self.report_path = build_report(self.run_dir, out)
        return self.report_path

    def __repr__(self) -> str:
        best = self.best
        b = "none yet" if best is None else f"{best[f'best_{self.metric}']:.4g} ({best['trial_id']})"
        return (f"Run({str(self.run_dir)!r}, state={self.state!r}, trials={len(self.trials)}, "
                f"best {self.metric}={b})")


def validate(spec: SpecLike, overrides: Sequence[str] = (), local: bool = True) -> Experiment:
    """Load and check a spec (everything checked before Ray starts); returns the experiment."""
    if isinstance(spec, Spec):
        if overrides:
            return validate(spec.model_dump(mode="json"), overrides, local)
        return check(spec, local)
    if isinstance(spec, dict):
        raw = copy.deepcopy(spec)
        for o in overrides:
            apply_override(raw, o)
        return check_raw(raw, local)
    return load_experiment(spec, list(overrides), local)


def make_plan(spec: SpecLike, overrides: Sequence[str] = ()) -> Any:
    """What running the spec would take (trials, epochs, a wall-time estimate): hpo.plan.Plan."""
    from hpo import plan

    return plan.make_plan(validate(spec, overrides))


def run(spec: SpecLike, overrides: Sequence[str] = (), *, storage: str | Path | None = None,
        name: str | None = None, address: str | None = None, dashboard: bool = False,
        progress: bool = False, report_dir: str | Path | None = "reports") -> Run:
    """Run an experiment to the end and build its report; returns the Run.

    progress=True prints hpo's lines and its one-line progress (as `hpo run` does); otherwise
    the run is silent. The report is written to <run>/report.html (and report_dir/<run>.html)."""
    from hpo.runner import run as run_experiment

    exp = validate(spec, overrides, local=address is None)
    res = run_experiment(exp, storage=storage, name=name, address=address, dashboard=dashboard,
                         verbose=0, out=sys.stdout if progress else io.StringIO(), progress=progress)
    out = build_report(res.run_dir, Path(report_dir) / f"{res.run_dir.name}.html" if report_dir else None)
    loaded = load_run(res.run_dir)
    loaded.report_path = out
    return loaded


def resume(run_dir: str | Path, *, more: int | None = None, address: str | None = None,
           progress: bool = False) -> Run:
    """Continue an interrupted run in place, or with `more=N` add N samples to a finished one
    (see `hpo resume`)."""
    from hpo.results import require_run_dir
    from hpo.runner import extend, extension_overrides
    from hpo.runner import resume as resume_experiment

    d = require_run_dir(run_dir)
    out = sys.stdout if progress else io.StringIO()
    if more is not None:
        exp = load_experiment(d / "spec.yaml", extension_overrides(d, more), local=address is None)
        extend(exp, d, address=address, dashboard=False, verbose=0, out=out)
        return load_run(d)
    exp = load_experiment(d / "spec.yaml", local=address is None)
    resume_experiment(exp, d, address=address, dashboard=False, verbose=0, out=out)
    return load_run(d)


def load_run(run_dir: str | Path) -> Run:
    """A run folder's tables (written first if the run has not written its own)."""
    from hpo import results
    from hpo.runner.collect import refresh

    d = results.require_run_dir(run_dir)
    refresh(d)
    trials, history = results.load_tables(d)
    info = results.read_run_info(d)
    metric, mode = results.metric_and_mode(d)
    return Run(d, trials, history, metric, mode, info.get("state", "unknown"), info)


def build_report(run_dir: str | Path | Run, out: str | Path | None = None) -> Path:
    """Build the HTML report of a run folder; returns the report's path (<run>/report.html
    when `out` is None)."""
    from hpo import report
    from hpo.results import require_run_dir
    from hpo.runner.collect import refresh

    d = require_run_dir(run_dir.run_dir if isinstance(run_dir, Run) else run_dir)
    refresh(d)
    written = report.build_report(d, out or d / report.REPORT_FILE)
    return Path(written)

