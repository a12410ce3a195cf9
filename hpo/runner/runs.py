"""The three ways a run goes: run, resume, extend (re-exported by :mod:`hpo.runner`)."""

from __future__ import annotations

import contextlib
import sys
import time
from pathlib import Path
from typing import Any

from hpo import results
from hpo.errors import SpecError
from hpo.experiment import Experiment
from hpo.results import Outcome, RunFolder
from hpo.runner import record, session, tuning
from hpo.runner.confirm_stage import run_confirm
from hpo.runner.folder import claim_run_dir, execute, run_info
from hpo.searchers import SEARCHERS
from hpo.spec import spec_to_yaml
from hpo.storage import Storage, open_storage

__all__ = ["claim_run_dir", "extend", "extension_overrides", "resume", "run"]


def run(exp: Experiment, *, storage: str | Path | None = None, name: str | None = None,
        address: str | None = None, dashboard: bool = True, verbose: int = 1,
        out: Any = sys.stdout, progress: bool = False) -> RunFolder:
    """Start a new run in a fresh folder `<storage>/<name>` (never reusing an existing one).
    `verbose`: Ray's progress table; `progress`: hpo's one-line view instead (hpo run's default)."""
    spec = exp.spec
    st = open_storage(str(storage or spec.storage))
    run_dir = claim_run_dir(st, name or spec.name)
    t0 = time.time()
    # the spec first (whole or not at all): a kill from here on leaves a folder `hpo resume` takes
    tmp = run_dir / "spec.yaml.tmp"
    tmp.write_text(spec_to_yaml(spec))
    tmp.replace(run_dir / "spec.yaml")
    try:
        data = session.start(exp, address, dashboard, out, run_dir.name)
    except BaseException:
        with contextlib.suppress(OSError):
            (run_dir / "spec.yaml").unlink()
            run_dir.rmdir()  # claimed but never used: free the name
        raise
    info = run_info(exp, data)
    if st.is_remote:
        info["storage_uri"] = st.display(run_dir)
    s = data.sizes
    print(f"hpo: {spec.name}: {exp.n_trials} trial(s) of `{spec.trainable}` on {data.name} "
          f"({s['train']} train / {s['val']} val / {s['test']} test"
          f"{', EMBEDDED SAMPLE' if data.is_sample else ''}) -> {st.display(run_dir)}", file=out, flush=True)
    if not exp.searched_names:
        print(f"hpo: nothing is searched: a single configuration ({exp.n_trials} trial(s)), a "
              f"baseline", file=out, flush=True)
    print(f"hpo: live view: hpo dashboard {st.root}  (optuna-dashboard on http://127.0.0.1:8080; "
          f"this run is study `{run_dir.name}`)", file=out, flush=True)
    return _fit(exp, data, run_dir, info, t0, st, verbose, out, progress=progress)


def resume(exp: Experiment, run_dir: str | Path, *, address: str | None = None,
           dashboard: bool = True, verbose: int = 1, out: Any = sys.stdout,
           storage: Storage | None = None) -> RunFolder:
    """Continue a run in place from hpo's own record of it (hpo.runner.record), never from Ray's
    snapshot: finished trials are kept as they are and never rerun; unfinished ones continue
    from their last checkpoint; plan items never started run; a searcher that learns is told
    the finished trials; ASHA and the median rule are rebuilt from the recorded results. A
    finished run is left as it is."""
    run_dir = Path(run_dir).resolve()
    st = storage or Storage(run_dir.parent)
    info = results.read_run_info(run_dir)
    if not record.has_record(run_dir):  # stopped while it started: nothing ran yet
        print(f"hpo: resuming {run_dir}: nothing of it was recorded yet (stopped while starting); "
              f"it starts now, in place", file=out, flush=True)
        return _start_in_place(exp, run_dir, info, st, address, dashboard, verbose, out)
    found = tuning.resume_work(exp, run_dir, st)
    work = found.work
    confirming = bool(exp.spec.confirm) and results.read_run_info(
        run_dir / "confirm").get("state") != "finished"
    if not work.n and info.get("state") == "finished" and not found.ended and not confirming:
        if results.has_tables(run_dir) and not results.broken_tables(run_dir):
            trials, history = results.load_tables(run_dir)
        else:  # missing or cut short (a kill while they were written): rebuilt from the record
            from hpo.runner.collect import write_tables

            trials, history = write_tables(run_dir)
        print(f"hpo: {run_dir} is finished ({len(trials)} trial(s)); nothing to resume, nothing "
              f"changed. `hpo resume {run_dir} --more N` adds N samples.", file=out, flush=True)
        return RunFolder(run_dir, exp.spec, info, trials, history, exp.spec.metric, exp.mode,
                         outcome=Outcome(float(info.get("wall_time_s") or 0.0), st, unchanged=True))
    t0 = time.time()
    info = info or {}
    info.setdefault("resumed", []).append(t0)
    sched = exp.scheduler
    rungs = ("" if sched.resume_exact or not work.n else f"; {sched.display} is not rebuilt from the "
             f"record: it starts empty and judges continued trials only on what they report from now on")
    parts = [f"{found.kept} finished trial(s) kept", f"{found.continued} continue from their last checkpoint"]
    if found.restarted:
        parts.append(f"{found.restarted} start again (no checkpoint)")
    if found.ended:
        parts.append(f"{found.ended} had nothing left to train and are ended")
    fresh = len(work.configs) - found.continued - found.restarted
    if fresh:
        parts.append(f"{fresh} not started yet")
    if work.samples:
        parts.append(f"{work.samples} more sample(s) from the searcher, told the finished trials")
    print(f"hpo: resuming {run_dir}: {'; '.join(parts)}{rungs}", file=out, flush=True)
    if not work.n and not confirming:  # trained to the end already: tables and state now
        return execute(exp, run_dir, info or run_info_fallback(exp, run_dir), t0, out, lambda: None, st)
    data = session.start(exp, address, dashboard, out, run_dir.name)
    return _fit(exp, data, run_dir, info or run_info(exp, data), t0, st, verbose, out, work=work,
                restore=True)


def _start_in_place(exp: Experiment, run_dir: Path, info: dict[str, Any], st: Storage,
                    address: str | None, dashboard: bool, verbose: int, out: Any) -> RunFolder:
    t0 = time.time()
    data = session.start(exp, address, dashboard, out, run_dir.name)
    return _fit(exp, data, run_dir, info or run_info(exp, data), t0, st, verbose, out)


def _fit(exp: Experiment, data: Any, run_dir: Path, info: dict[str, Any], t0: float, st: Storage,
         verbose: int, out: Any, progress: bool = False, work: Any = None,
         restore: bool = False) -> RunFolder:
    """The Tuner's fit to the end (`execute`: the tables and the state whatever happens), then
    the confirm stage of a finished run (`restore`: picking up one a kill cut)."""
    res = execute(exp, run_dir, info, t0, out,
                  lambda: tuning.fit(exp, data, run_dir, verbose, st, progress, work=work, out=out), st)
    if exp.spec.confirm and res.state == "finished":
        run_confirm(exp, data, res, verbose, out, restore=restore, storage=st)
    return res


def run_info_fallback(exp: Experiment, run_dir: Path) -> dict[str, Any]:
    """run.json of a run killed before it wrote one (what the spec says of it)."""
    return {"name": exp.spec.name, "started": time.time(), "metric": exp.spec.metric,
            "mode": exp.mode, "metrics": exp.metrics, "searched": exp.searched_names,
            "n_trials_planned": exp.n_trials, "trainable": exp.spec.trainable}


def extension_overrides(run_dir: str | Path, more: int) -> list[str]:
    """The spec changes that turn a finished run's spec into `more` new samples of it: that
    many samples, no known points (they ran), a searcher seed of its own (new draws, not the
    first run's again) and, for a searcher that learns, the run's own trials as a warm start."""
    d = results.require_run_dir(run_dir)
    info, spec = results.read_run_info(d), results.read_spec(d)
    if info.get("state") != "finished":
        raise SpecError(f"run state is `{info.get('state')}`; --more extends a finished run "
                        f"(finish this one first: hpo resume {d}).", file=str(d))
    if more < 1:
        raise SpecError(f"--more takes a number of samples >= 1, got {more}.", field="--more")
    name = spec.searcher.name
    if name == "grid":
        raise SpecError("a grid search is complete when it has run; to repeat it with other "
                        "seeds use `confirm:` or budget.num_samples in a new run.", field="--more")
    trials, _ = results.load_tables(d)
    seed = spec.searcher.options.get("seed") or spec.seed
    out = [f"budget.num_samples={more}", "points_to_evaluate=[]",
           f"searcher.seed={int(seed) + 1000 * (1 + len(info.get('extended', []))) + len(trials)}"]
    if SEARCHERS.get(name).model_based:
        out.append(f"warm_start={d}")
    return out


def extend(exp: Experiment, run_dir: str | Path, *, address: str | None = None,
           dashboard: bool = True, verbose: int = 1, out: Any = sys.stdout,
           storage: Storage | None = None) -> RunFolder:
    """Add `exp.spec.budget.num_samples` new trials to a finished run in place (`exp` from
    :func:`extension_overrides`): a new Tuner in the same folder; the trials already there are
    not touched, and the tables then hold both."""
    run_dir = Path(run_dir).resolve()
    st = storage or Storage(run_dir.parent)
    t0 = time.time()
    data = session.start(exp, address, dashboard, out, run_dir.name)
    info = results.read_run_info(run_dir)
    more = exp.spec.budget.num_samples
    info.setdefault("extended", []).append({"started": t0, "more": more})
    info["n_trials_planned"] = int(info.get("n_trials_planned") or 0) + more
    print(f"hpo: extending {run_dir} with {more} more sample(s); its trials are kept"
          + (f" and guide the searcher ({len(exp.prior)} finished)" if exp.prior else ""),
          file=out, flush=True)
    return execute(exp, run_dir, info, t0, out,
                   lambda: tuning.fit(exp, data, run_dir, verbose, st, progress=False, out=out), st)
