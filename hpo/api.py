"""hpo from Python (a notebook, a script): the functions the CLI is a thin layer over.

    import hpo
    exp = hpo.validate("search_spaces/lr_reg.yaml", overrides=["budget.max_epochs=2"])
    run = hpo.run({"name": "mine", "model": "my_lab.nets:build", ...}, storage="runs")
    run.trials, run.history, run.best_config, run.report_path
    run = hpo.load_run("runs/mine")

A spec is a YAML path, a built-in study's name ("lr_reg"), a dict of the same fields, a
validated :class:`hpo.spec.Spec`, or a checked :class:`hpo.experiment.Experiment`. Bad input
raises :class:`hpo.SpecError` with the same one-line message as the CLI, before Ray starts.
Nothing is printed unless `progress=True`. A run comes back as :class:`Run` (the one run type,
hpo.results.RunFolder), its report built.
"""

from __future__ import annotations

import copy
import difflib
import io
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hpo import plan, report, results
from hpo.errors import SpecError
from hpo.experiment import Experiment, check, check_raw, load_experiment
from hpo.results import RunFolder, require_run_dir
from hpo.runner import extend, extension_overrides
from hpo.runner import resume as resume_experiment
from hpo.runner import run as run_experiment
from hpo.runner.collect import refresh
from hpo.spec import Spec, apply_override, spec_to_yaml
from hpo.storage import locate, open_storage

SpecLike = str | Path | dict[str, Any] | Spec | Experiment


# a run folder and its results tables, as a notebook wants them: the one run type (hpo.results)
Run = RunFolder


def validate(spec: SpecLike, overrides: Sequence[str] = (), local: bool = True) -> Experiment:
    """Load and check a spec (everything checked before Ray starts); returns the experiment
    (an Experiment given without overrides is returned as it is: it was checked)."""
    if isinstance(spec, Experiment):
        if not overrides:
            return spec
        spec = spec.spec
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
    return plan.make_plan(validate(spec, overrides))


def run(spec: SpecLike, overrides: Sequence[str] = (), *, storage: str | Path | None = None,
        name: str | None = None, address: str | None = None, dashboard: bool = False,
        progress: bool = False, report_dir: str | Path | None = "reports", resume: bool = False,
        force: bool = False, verbose: int = 0, out: Any = None) -> Run:
    """Run an experiment to the end and build its report; returns the Run.

    progress=True prints hpo's lines and its one-line progress (as `hpo run` does); otherwise
    the run is silent (`out`, a file, takes hpo's lines instead). The report is written to
    <run>/report.html (and report_dir/<run>.html). resume=True (`hpo run --resume`) continues
    `<storage>/<name>` if it exists, refusing a different spec unless force=True, else starts it."""
    exp = validate(spec, overrides, local=address is None)
    out = out if out is not None else (sys.stdout if progress else io.StringIO())
    kw = {"address": address, "dashboard": dashboard, "verbose": verbose, "out": out}
    if resume:
        st = open_storage(str(storage or exp.spec.storage))
        run_dir = st.root / (name or exp.spec.name)
        st.download(run_dir)
        if (run_dir / "spec.yaml").exists():
            _check_same_spec(exp, run_dir, force)
            return _reported(resume_experiment(exp, run_dir, storage=st, **kw), report_dir)
        print(f"hpo: nothing to resume at {run_dir}; starting it.", file=out)
    res = run_experiment(exp, storage=storage, name=name, progress=progress, **kw)
    return _reported(res, report_dir)


def resume(run_dir: str | Path, *, more: int | None = None, address: str | None = None,
           dashboard: bool = False, progress: bool = False, report_dir: str | Path | None = "reports",
           verbose: int = 0, out: Any = None) -> Run:
    """Continue an interrupted run in place, or with `more=N` add N samples to a finished one
    (see `hpo resume`), and build its report. `run_dir` may be a bucket URI (s3://.../<name>)."""
    storage, d = locate(run_dir)  # a folder, or s3://bucket/runs/<name> (fetched first)
    require_run_dir(d)
    out = out if out is not None else (sys.stdout if progress else io.StringIO())
    kw = {"address": address, "dashboard": dashboard, "verbose": verbose, "storage": storage, "out": out}
    if more is not None:
        exp = load_experiment(d / "spec.yaml", extension_overrides(d, more), local=address is None)
        return _reported(extend(exp, d, **kw), report_dir)
    exp = load_experiment(d / "spec.yaml", local=address is None)
    return _reported(resume_experiment(exp, d, **kw), report_dir)


def _reported(res: Run, report_dir: str | Path | None) -> Run:
    """The run with its report built (and uploaded with the run to a bucket); none when the
    storage stopped taking writes, and the one there when `hpo resume` changed nothing."""
    outcome = res.outcome
    if outcome is not None and outcome.fault:
        return res  # nothing more can be written there; `hpo resume` writes it all once fixed
    own = res.run_dir / report.REPORT_FILE
    if outcome is not None and outcome.unchanged and own.exists():
        res.report_path = own
        return res
    res.report_path = build_report(res.run_dir, Path(report_dir) / f"{res.run_dir.name}.html"
                                   if report_dir else None)
    if outcome is not None:  # the run folder's own copy goes to the bucket with the run
        outcome.storage.upload(res.run_dir)
    return res


def _check_same_spec(exp: Experiment, run_dir: Path, force: bool) -> None:
    old, new = (run_dir / "spec.yaml").read_text(), spec_to_yaml(exp.spec)
    if old == new or force:
        return
    diff = "".join(difflib.unified_diff(old.splitlines(True), new.splitlines(True),
                                        f"{run_dir}/spec.yaml (on disk)", "given spec"))
    raise SpecError(f"the spec differs from the one this run started with; resuming would mix "
                    f"two experiments. Use --force to resume anyway, or --name for a new run.\n{diff}",
                    file=str(run_dir))


def load_run(run_dir: str | Path) -> Run:
    """A run folder's tables (written first if the run has not written its own)."""
    d = results.require_run_dir(run_dir)
    refresh(d)
    return RunFolder.read(d)


def build_report(run_dir: str | Path | Run, out: str | Path | None = None) -> Path:
    """Build the HTML report of a run folder; returns the report's path (<run>/report.html
    when `out` is None)."""
    d = require_run_dir(run_dir.run_dir if isinstance(run_dir, Run) else run_dir)
    refresh(d)
    written = report.build_report(d, out or d / report.REPORT_FILE)
    return Path(written)

