"""Every private Ray / Optuna name hpo relies on, in one place, checked once per process.

hpo is built on Ray Tune's and Optuna's public APIs. Where they lack something hpo needs, hpo
reaches a private name, and only in this package: `lean` (the driver's memory in long sweeps),
`hyperband` (Ray's HyperBand without its deadlock), `ray_init` (a loopback-only local Ray, the
warm head's workers, Ray's log lines). `TOUCHES`
lists each: which names, what Ray or Optuna lacks, the upstream issue where there is one, and
what happens without it.

`check()` resolves every name before the first trial (`hpo.runner.session.start`). A name that
is gone (a newer Ray) switches its feature off with one line that says which feature, which
name and which Ray was tested (`announce`), and the run stays correct; where correctness would
suffer (`essential`), what needs it is refused before any trial (`require`). `pyproject.toml`
pins the Ray that was tested; README "Trying a newer Ray" says how to try another.

A name is `module:Attr.attr` (resolved by import and getattr), or `module:Class.method@name`:
an attribute the method assigns (`self.name = ...`), found among the method's own names, so
instance attributes are checked without building the object.
"""

from __future__ import annotations

import functools
import importlib
from dataclasses import dataclass
from typing import Any

from hpo.errors import SpecError

TESTED = {"ray": "2.60", "optuna": "5.0"}


@dataclass(frozen=True)
class Touch:
    feature: str        # what hpo does with the names
    names: tuple[str, ...]
    lacks: str          # what the public API lacks
    without: str        # what happens when a name is gone
    issue: str = ""     # the upstream issue, where there is one
    essential: bool = False  # refuse what needs it, before any trial, when a name is gone


TOUCHES: dict[str, Touch] = {
    "no_result_frames": Touch(
        "Ray skips the end-of-fit DataFrames hpo never reads",
        ("ray.tune:ExperimentAnalysis._fetch_trial_dataframes",),
        "Tuner.fit always reads every trial's results into DataFrames for its ResultGrid",
        "each fit ends reading every trial's results (~1.5 s and ~37 KB per 1,000 trials)"),
    "optuna_frames": Touch(
        "Optuna's kept import tracebacks are dropped after a fit",
        ("optuna._imports:_DeferredImportExceptionContextManager.__init__@_deferred",),
        "Optuna keeps the traceback of each failed optional import, and its frames",
        "a finished fit's trials stay in memory until the process ends"),
    "callback_census": Touch(
        "Tune's usage tag of callbacks, taken without importing W&B and MLflow",
        ("ray.air._internal.usage:_count_callbacks", "ray.air._internal.usage:tag_callbacks"),
        "Tune imports its W&B, MLflow, Comet and Aim integrations to count callbacks by class",
        "each run's start takes ~1.3 s longer"),
    "loopback": Touch(
        "a local Ray listens on 127.0.0.1 only",
        ("ray._private.ray_constants:ENABLE_RAY_CLUSTER",),
        "ray.init has no public switch to keep a local node on the loopback address",
        "a local Ray would listen on this machine's network address: refused (start Ray "
        "yourself, `ray start --head --node-ip-address 127.0.0.1`, and pass --address)",
        essential=True),
    "token_auth": Touch(
        "a driver joining `hpo up`'s Ray turns token authentication on, as the head did",
        ("ray._private.authentication.authentication_token_setup:_enable_token_auth",),
        "Ray turns tokens on by itself only for a cluster it finds on its own",
        "joining the warm head may be refused: set RAY_AUTH_MODE=token"),
    "prestart_workers": Touch(
        "the warm head keeps idle workers for the next run's trials",
        ("ray._private.grpc_utils:init_grpc_channel", "ray._private.worker:global_worker",
         "ray.core.generated.node_manager_pb2:PrestartWorkersRequest"),
        "the raylet's PrestartWorkers request has no Python API",
        "each run's trials start their own workers (slower first trials)"),
    "hyperband": Touch(
        "HyperBand without Ray's deadlock on a trial that leaves a bracket",
        ("ray.tune.schedulers:HyperBandScheduler._process_bracket",
         "ray.tune.schedulers:HyperBandScheduler.__init__@_trial_info",
         "ray.tune.schedulers:HyperBandScheduler.__init__@_hyperbands"),
        "a bracket is processed only through a private method, and never again once flagged",
        "scheduler `hyperband` could hang on a failed trial: refused (use asha)",
        essential=True),
    "log_filters": Touch(
        "Ray's notices that hpo says in its own words are filtered",
        ("ray.train._internal.storage:StorageContext",
         "ray._private.authentication.authentication_token_setup:logger"),
        "the notices come from loggers inside Ray's private modules",
        "Ray's own notices show as well"),
}


def resolve(name: str) -> bool:
    """Whether `name` (`module:Attr.attr` or `module:Class.method@assigned`) exists."""
    module, _, path = name.partition(":")
    path, _, assigned = path.partition("@")
    try:
        obj: Any = importlib.import_module(module)
        for part in filter(None, path.split(".")):
            obj = getattr(obj, part)
    except (ImportError, AttributeError):
        return False
    if assigned:
        code = getattr(obj, "__code__", None)
        return code is not None and assigned in code.co_names
    return True


@functools.cache
def check() -> dict[str, tuple[str, ...]]:
    """The touches whose names are gone, each with those names (empty when all are there)."""
    out = {}
    for key, touch in TOUCHES.items():
        gone = tuple(n for n in touch.names if not resolve(n))
        if gone:
            out[key] = gone
    return out


def usable(key: str) -> bool:
    return key not in check()


def line(key: str) -> str:
    t, gone = TOUCHES[key], check().get(key, ())
    tested = ", ".join(f"{k} {v}" for k, v in TESTED.items())
    return (f"hpo: {t.feature}: off ({', '.join(gone)} not found; tested with {tested}): "
            f"{t.without}")


_announced: set[str] = set()


def announce(out: Any) -> list[str]:
    """One line per non-essential touch that is off, once per process; returns their keys."""
    off = [k for k in check() if not TOUCHES[k].essential]
    for key in off:
        if key not in _announced:
            _announced.add(key)
            print(line(key), file=out, flush=True)
    return off


def require(key: str, field: str | None = None) -> None:
    """Refuse, before any trial, what needs an essential touch that is gone."""
    if not usable(key):
        raise SpecError(line(key), field=field)
