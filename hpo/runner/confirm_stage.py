"""The confirmation stage (spec `confirm:`): after the search, the top-k configurations x new
seeds run as a grid of their own in <run>/confirm/. What to confirm and how it is summarized is
hpo.confirm (tables only); this module runs it, and continues an unfinished one on resume
(from its own record, as any run)."""

from __future__ import annotations

import time
from typing import Any

from hpo import confirm, results
from hpo.data import ArrayDataset
from hpo.experiment import Experiment, check
from hpo.results import RunFolder
from hpo.runner import record, tuning
from hpo.runner.folder import execute, run_info
from hpo.spec import load_spec, spec_to_yaml
from hpo.storage import Storage


def run_confirm(exp: Experiment, data: ArrayDataset, main: RunFolder, verbose: int, out: Any,
                restore: bool, storage: Storage) -> None:
    spec, d = exp.spec, confirm.confirm_dir(main.run_dir)
    assert spec.confirm is not None
    if results.read_run_info(d).get("state") == "finished":
        return
    if restore and record.has_record(d) and (d / "spec.yaml").exists():
        cexp = check(load_spec(d / "spec.yaml"), local=False)
        info = results.read_run_info(d) or run_info(cexp, data)
        work = tuning.resume_work(cexp, d, storage).work

        def fit() -> None:
            tuning.fit(cexp, data, d, verbose, storage, work=work)
    else:
        pareto = len(exp.objectives) > 1 and spec.confirm.pick == "pareto"
        picks = confirm.pick(main.trials, spec.metric, exp.mode, spec.confirm.top_k, pareto=pareto)
        if not picks:
            print("hpo: confirm: no finished trial to confirm.", file=out)
            return
        cexp = check(confirm.confirm_spec(spec, picks), local=False)
        confirm.write_picks(main.run_dir, picks)
        (d / "spec.yaml").write_text(spec_to_yaml(cexp.spec))
        info = run_info(cexp, data)

        def fit() -> None:
            tuning.fit(cexp, data, d, verbose, storage)

    which = ("Pareto-optimal configurations (best primary metric first)"
             if len(exp.objectives) > 1 and spec.confirm.pick == "pareto" else "configuration(s)")
    print(f"hpo: confirming the top {spec.confirm.top_k} {which} with "
          f"{spec.confirm.seeds} new seeds each -> {d}", file=out, flush=True)
    execute(cexp, d, info, time.time(), out, fit, storage)
    table = confirm.confirm_table(main.run_dir)
    if table is not None:
        print("hpo: confirmation (mean ± std over new seeds):\n"
              + table.to_string(index=False, float_format=lambda v: f"{v:.4f}"), file=out, flush=True)
