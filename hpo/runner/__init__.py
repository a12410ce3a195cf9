"""Run a checked experiment on Ray Tune and leave its results on disk.

    run(exp) -> RunResult      a new run in a fresh folder <storage>/<name>
    resume(exp, run_dir)       continue an interrupted run in place

The runner is split by concern: :mod:`~hpo.runner.session` (Ray's start and the cluster check),
:mod:`~hpo.runner.folder` (the run folder, run.json and the end of a run),
:mod:`~hpo.runner.tuning` (settings, trainable, Tuner, restore), :mod:`~hpo.runner.events` (the
event log and abort callback), :mod:`~hpo.runner.confirm_stage` and :mod:`~hpo.runner.collect`
(the collector that writes the results tables). Ray is imported in session, tuning and events,
and in hpo.trainables._ray; everything before (spec, experiment checks) and after (results
tables, report) works without it.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from hpo import results
from hpo.errors import SpecError
from hpo.experiment import Experiment
from hpo.runner.folder import RunResult, execute, run_info, unique_run_dir
from hpo.spec import spec_to_yaml
from hpo.storage import Storage, open_storage

__all__ = ["RunResult", "resume", "run", "unique_run_dir"]


def run(exp: Experiment, *, storage: str | Path | None = None, name: str | None = None,
        address: str | None = None, dashboard: bool = True, verbose: int = 1,
        out: Any = sys.stdout, progress: bool = False) -> RunResult:
    """Start a new run in a fresh folder `<storage>/<name>` (never reusing an existing one).
    `verbose`: Ray's progress table; `progress`: hpo's one-line view instead (hpo run's default)."""
    from hpo.runner import session, tuning

    spec = exp.spec
    st = open_storage(str(storage or spec.storage))
    run_dir = unique_run_dir(st, name or spec.name)
    t0 = time.time()
    data = session.start(exp, address, dashboard, out, run_dir.name)
    run_dir.mkdir(parents=True)
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
    Ray does not persist scheduler state: ASHA/Hyperband/median rungs start empty again."""
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
    print(f"hpo: resuming {run_dir} (finished trials are kept; unfinished ones restart from "
          f"their last checkpoint; scheduler rungs start empty)", file=out, flush=True)
    res = execute(exp, run_dir, info, t0, out, lambda: tuning.restore_fit(exp, data, run_dir, st), st)
    if exp.spec.confirm and res.state == "finished":
        from hpo.runner.confirm_stage import run_confirm

        run_confirm(exp, data, res, verbose, out, restore=True, storage=st)
    return res
