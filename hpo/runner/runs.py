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
from hpo.runner.folder import RunResult, claim_run_dir, execute, run_info
from hpo.spec import spec_to_yaml
from hpo.storage import Storage, open_storage

__all__ = ["RunResult", "claim_run_dir", "extend", "extension_overrides", "resume", "run"]


def run(exp: Experiment, *, storage: str | Path | None = None, name: str | None = None,
        address: str | None = None, dashboard: bool = True, verbose: int = 1,
        out: Any = sys.stdout, progress: bool = False) -> RunResult:
    """Start a new run in a fresh folder `<storage>/<name>` (never reusing an existing one).
    `verbose`: Ray's progress table; `progress`: hpo's one-line view instead (hpo run's default)."""
    from hpo.runner import session, tuning

    spec = exp.spec
    st = open_storage(str(storage or spec.storage))
    run_dir = claim_run_dir(st, name or spec.name)
    t0 = time.time()
    try:
        data = session.start(exp, address, dashboard, out, run_dir.name)
    except BaseException:
        with contextlib.suppress(OSError):
            run_dir.rmdir()  # claimed but never used: free the name
        raise
    (run_dir / "spec.yaml").write_text(spec_to_yaml(spec))
    info = run_info(exp, data)
    if st.is_remote:
        info["storage_uri"] = st.display(run_dir)
    s = data.sizes
    print(f"hpo: {spec.name}: {exp.n_trials} trial(s) of `{spec.trainable}` on {data.name} "
          f"({s['train']} train / {s['val']} val / {s['test']} test"
          f"{', EMBEDDED SAMPLE' if data.is_sample else ''}) -> {st.display(run_dir)}", file=out, flush=True)
    print(f"hpo: live view: hpo dashboard {st.root}  (optuna-dashboard on http://127.0.0.1:8080; "
          f"this run is study `{run_dir.name}`)", file=out, flush=True)
    res = execute(exp, run_dir, info, t0, out,
                  lambda: tuning.fit(exp, data, run_dir, verbose, st, progress), st)
    if spec.confirm and res.state == "finished":
        from hpo.runner.confirm_stage import run_confirm

        run_confirm(exp, data, res, verbose, out, restore=False, storage=st)
    return res


def resume(exp: Experiment, run_dir: str | Path, *, address: str | None = None,
           dashboard: bool = True, verbose: int = 1, out: Any = sys.stdout,
           storage: Storage | None = None) -> RunResult:
    """Continue an interrupted run in place: finished trials are kept and never rerun,
    unfinished ones restart from their last checkpoint, the searcher's state is restored by Ray.
    ASHA's and the median rule's state is saved with the run and restored; Hyperband's and
    PBT's start empty (SchedulerEntry.resume_exact)."""
    from hpo.runner import session, tuning

    run_dir = Path(run_dir).resolve()
    st = storage or Storage(run_dir.parent)
    session.tune_env()
    if not tuning.can_restore(run_dir, st):
        raise SpecError("no Ray experiment state here (tuner.pkl); nothing to resume.",
                        file=str(run_dir))
    t0 = time.time()
    data = session.start(exp, address, dashboard, out, run_dir.name)
    info = results.read_run_info(run_dir) or run_info(exp, data)
    info.setdefault("resumed", []).append(t0)
    sched = exp.scheduler
    rungs = ("" if sched.resume_exact else f"; Ray does not save {sched.display}'s state, so it "
             f"starts empty and judges restored trials only on what they report from now on")
    print(f"hpo: resuming {run_dir} (finished trials are kept; unfinished ones restart from "
          f"their last checkpoint{rungs})", file=out, flush=True)
    res = execute(exp, run_dir, info, t0, out, lambda: tuning.restore_fit(exp, data, run_dir, st), st)
    if exp.spec.confirm and res.state == "finished":
        from hpo.runner.confirm_stage import run_confirm

        run_confirm(exp, data, res, verbose, out, restore=True, storage=st)
    return res


def extension_overrides(run_dir: str | Path, more: int) -> list[str]:
    """The spec changes that turn a finished run's spec into `more` new samples of it: that
    many samples, no known points (they ran), a searcher seed of its own (new draws, not the
    first run's again) and, for a searcher that learns, the run's own trials as a warm start."""
    from hpo.searchers import SEARCHERS

    d = results.require_run_dir(run_dir)
    info, spec = results.read_run_info(d), results.read_spec(d)
    if info.get("state") != "finished":
        raise SpecError(f"run state is `{info.get('state')}`; --more extends a finished run "
                        f"(finish this one first: hpo resume {d}).", file=str(d))
    if more < 1:
        raise SpecError(f"--more takes a number of samples >= 1, got {more}.", field="--more")
    searcher = spec.get("searcher") or {}
    name = searcher.get("name", "grid") if isinstance(searcher, dict) else searcher
    if name == "grid":
        raise SpecError("a grid search is complete when it has run; to repeat it with other "
                        "seeds use `confirm:` or budget.num_samples in a new run.", field="--more")
    trials, _ = results.load_tables(d)
    seed = (searcher.get("seed") if isinstance(searcher, dict) else None) or spec.get("seed") or 0
    out = [f"budget.num_samples={more}", "points_to_evaluate=[]",
           f"searcher.seed={int(seed) + 1000 * (1 + len(info.get('extended', []))) + len(trials)}"]
    if SEARCHERS.get(name).model_based:
        out.append(f"warm_start={d}")
    return out


def extend(exp: Experiment, run_dir: str | Path, *, address: str | None = None,
           dashboard: bool = True, verbose: int = 1, out: Any = sys.stdout,
           storage: Storage | None = None) -> RunResult:
    """Add `exp.spec.budget.num_samples` new trials to a finished run in place (`exp` from
    :func:`extension_overrides`): a new Tuner in the same folder; the trials already there are
    not touched, and the tables then hold both."""
    from hpo.runner import session, tuning

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
                   lambda: tuning.fit(exp, data, run_dir, verbose, st, progress=False), st)
