"""Tracker registry: where a run's trials are logged besides hpo's own files, through Ray
Tune callbacks (one entry per tracker: its options, its package, its callback): Ray's own for
W&B and TensorBoard, hpo's for MLflow (a parent run per sweep, a nested run per trial, no Ray
bookkeeping: hpo.adapters.mlflow_sweep says why).

    tracking:
      mlflow: {tracking_uri: http://127.0.0.1:5000, experiment: lr_study}   # hpo.adapters.mlflow_sweep
      wandb: {project: hpo, mode: offline}                                  # WandbLoggerCallback
      tensorboard: {}                                                       # TBXLoggerCallback

A missing package is a SpecError with its install command, before Ray starts, and so is a
tracking server that does not accept a connection within REACH_TIMEOUT_S (an unreachable MLflow
server used to stall every trial for minutes). TensorBoard
files are written with tensorboardX (Ray's TBXLoggerCallback), which does not import torch
into the driver.
"""

from __future__ import annotations

import importlib.util
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from hpo.contract import PACK_KEY, RAY_FIELDS, RECORD_KEY
from hpo.errors import SpecError, did_you_mean
from hpo.registry import Registry


class _Options(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MlflowOptions(_Options):
    tracking_uri: str | None = Field(None, description="default: MLFLOW_TRACKING_URI or ./mlruns")
    experiment: str | None = Field(None, description="default: the run's name")
    tags: dict[str, str] = Field(default_factory=dict)


class WandbOptions(_Options):
    project: str = "hpo"
    entity: str | None = None
    group: str | None = Field(None, description="default: the run's name")
    mode: Literal["online", "offline", "disabled"] = "online"


class TensorboardOptions(_Options):
    pass


@dataclass(frozen=True)
class TrackerEntry:
    options: type[_Options]
    package: str  # import name
    install: str  # what to pip install
    build: Callable[[Any, Path, Any], Any]  # (options, run_dir, experiment) -> Ray callback
    # (options) -> why its server cannot be reached, or None; checked before Ray starts
    reach: Callable[[Any], str | None] | None = None


REACH_TIMEOUT_S = 3.0


def reachable(uri: str | None) -> str | None:
    """None when an http(s) tracking URI's host accepts a connection within REACH_TIMEOUT_S
    (or the URI is not a server: a folder, file:, databricks, ...); else why not, in words."""
    parts = urlsplit(uri or "")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname, port), timeout=REACH_TIMEOUT_S):
            return None
    except TimeoutError:
        return f"no answer from {parts.hostname}:{port} within {REACH_TIMEOUT_S:g} s"
    except OSError as e:
        return f"{parts.hostname}:{port}: {e.strerror or e}"


def _mlflow_reach(o: MlflowOptions) -> str | None:
    uri = o.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
    why = reachable(uri)
    return None if why is None else f"cannot reach the MLflow server at {uri} ({why})"


def _mlflow(o: MlflowOptions, run_dir: Path, exp: Any) -> Any:
    from hpo.adapters.mlflow_sweep import MlflowSweep

    s = exp.spec
    sweep = {"trainable": s.model or s.trainable, "dataset": s.dataset.name, "metric": s.metric,
             "mode": exp.mode, "searcher": s.searcher.name, "scheduler": s.scheduler.name,
             "max_epochs": s.budget.max_epochs, "trials": exp.n_trials,
             "searched": ",".join(exp.searched_names)}
    return MlflowSweep(o.tracking_uri, o.experiment or run_dir.name, dict(o.tags), run_dir.name,
                       dict(exp.metrics), sweep)


def _wandb(o: WandbOptions, run_dir: Path, exp: Any) -> Any:
    from ray.air.integrations.wandb import WandbLoggerCallback

    if o.mode != "online":  # Ray's callback asks for an API key unless WANDB_MODE says otherwise
        os.environ["WANDB_MODE"] = o.mode

    # the experiment, not Ray's plumbing: hpo's record key and Ray's bookkeeping left out
    return WandbLoggerCallback(project=o.project, entity=o.entity, group=o.group or run_dir.name,
                               mode=o.mode, dir=str(run_dir), log_config=False,
                               excludes=[RECORD_KEY, PACK_KEY, *RAY_FIELDS, "diverged"])


def _tensorboard(o: TensorboardOptions, run_dir: Path, exp: Any) -> Any:
    from ray.tune.logger import TBXLoggerCallback

    return TBXLoggerCallback()


TRACKERS: Registry[TrackerEntry] = Registry("tracker")
TRACKERS.add("mlflow", TrackerEntry(MlflowOptions, "mlflow", "pip install 'hpo[mlflow]'", _mlflow,
                                    reach=_mlflow_reach))
TRACKERS.add("wandb", TrackerEntry(WandbOptions, "wandb", "pip install 'hpo[wandb]'", _wandb))
TRACKERS.add("tensorboard", TrackerEntry(TensorboardOptions, "tensorboardX",
                                         "pip install 'hpo[tensorboard]'", _tensorboard))


def check(tracking: dict[str, Any]) -> dict[str, BaseModel]:
    """Each tracker's options, validated, with its package present; else a SpecError."""
    out: dict[str, BaseModel] = {}
    for name, raw in (tracking or {}).items():
        entry = TRACKERS.get(name, field="tracking")
        try:
            opts = entry.options.model_validate(raw or {})
        except ValidationError as e:
            err = e.errors()[0]
            key = ".".join(str(x) for x in err["loc"])
            allowed = list(entry.options.model_fields)
            msg = (f"unknown option.{did_you_mean(key, allowed)} Allowed: {', '.join(allowed) or 'none'}."
                   if err["type"] == "extra_forbidden" else f"{err['msg']} (got {err.get('input')!r}).")
            raise SpecError(msg, field=f"tracking.{name}.{key}") from None
        if importlib.util.find_spec(entry.package) is None:
            raise SpecError(f"logging to {name} needs the `{entry.package}` package: {entry.install}.",
                            field=f"tracking.{name}")
        # a server that does not answer would stall every trial: refused before Ray starts
        why = entry.reach(opts) if entry.reach is not None else None
        if why:
            raise SpecError(f"{why}. Start it, fix the URI, or remove tracking.{name} to run "
                            f"without it.", field=f"tracking.{name}")
        out[name] = opts
    return out


def callbacks(tracking: dict[str, BaseModel], run_dir: Path, exp: Any) -> list[Any]:
    return [TRACKERS.get(name).build(opts, run_dir, exp) for name, opts in tracking.items()]
