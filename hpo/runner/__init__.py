"""Run a checked experiment on Ray Tune and leave its results on disk.

    run(exp) -> RunFolder      a new run in a fresh folder <storage>/<name> (hpo.results.RunFolder)
    resume(exp, run_dir)       continue an interrupted run in place
    extend(exp, run_dir)       add samples to a finished run in place (hpo resume --more N)

The runner is split by concern: :mod:`~hpo.runner.session` (Ray's start and the cluster check),
:mod:`~hpo.runner.folder` (the run folder, run.json and the end of a run),
:mod:`~hpo.runner.tuning` (settings, trainable, Tuner, restore), :mod:`~hpo.runner.events` (the
event log and abort callback), :mod:`~hpo.runner.confirm_stage` and :mod:`~hpo.runner.collect`
(the collector that writes the results tables). Ray is imported in session, tuning and events,
and in hpo.trainables._ray; everything before (spec, experiment checks) and after (results
tables, report) works without it.
"""

from typing import Any

__all__ = ["claim_run_dir", "extend", "extension_overrides", "resume", "run"]


def __getattr__(name: str) -> Any:
    # loaded on first use: `hpo run` with the warm head running imports hpo.runner.head and
    # .served only, not pandas and the rest (0.5 s of the command's start)
    if name in __all__:
        from hpo.runner import runs

        return getattr(runs, name)
    raise AttributeError(f"module 'hpo.runner' has no attribute {name!r}")
