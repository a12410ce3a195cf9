"""hpo: hyperparameter search for PyTorch models on Ray Tune, from one YAML file (or a dict) to
a static HTML report. The Python API (the CLI is a thin layer over it):

    hpo.validate(spec) -> Experiment        hpo.make_plan(spec) -> Plan
    hpo.run(spec, overrides=..., storage=...) -> Run (trials, history, best_config, report_path)
    hpo.resume(run_dir) -> Run              hpo.load_run(run_dir) -> Run
    hpo.build_report(run_dir) -> Path       hpo.load_model(run_dir) -> the best trial's nn.Module
    hpo.up() / hpo.down()                   a warm local Ray that runs join (`hpo up` / `hpo down`)

Errors in a spec raise hpo.SpecError before Ray starts. A user's own training function gets an
hpo.Context (see hpo.trainables.context).
"""

from __future__ import annotations

from typing import Any

from hpo.errors import SpecError

__all__ = ["Context", "Run", "SpecError", "build_report", "down", "load_model", "load_run", "make_plan",
           "resume", "run", "up", "validate"]

_API = {"Run", "build_report", "load_run", "make_plan", "resume", "run", "validate"}


def __getattr__(name: str) -> Any:
    # lazy, so `import hpo.spec` (and the CLI's start) stays light
    if name in _API:
        from hpo import api

        return getattr(api, name)
    if name == "load_model":
        from hpo.model_io import load_model

        return load_model
    if name in ("up", "down"):
        from hpo.runner import head

        return getattr(head, name)
    if name == "Context":
        from hpo.trainables.context import Context

        return Context
    raise AttributeError(f"module 'hpo' has no attribute {name!r}")
