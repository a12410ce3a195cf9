"""Tracker registry: where a run's trials are logged besides hpo's own files, through Ray
Tune's own logger callbacks (one entry per tracker: its options, its package, its callback).

    tracking:
      mlflow: {tracking_uri: http://127.0.0.1:5000, experiment: lr_study}   # MLflowLoggerCallback
      wandb: {project: hpo, mode: offline}                                  # WandbLoggerCallback
      tensorboard: {}                                                       # TBXLoggerCallback

A missing package is a SpecError with its install command, before Ray starts. TensorBoard
files are written with tensorboardX (Ray's TBXLoggerCallback), which does not import torch
into the driver.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

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
    build: Callable[[Any, Path], Any]  # (options, run_dir) -> Ray callback


def _mlflow(o: MlflowOptions, run_dir: Path) -> Any:
    from ray.air.integrations.mlflow import MLflowLoggerCallback

    return MLflowLoggerCallback(tracking_uri=o.tracking_uri, experiment_name=o.experiment or run_dir.name,
                                tags={"hpo_run": run_dir.name, **o.tags}, save_artifact=False)


def _wandb(o: WandbOptions, run_dir: Path) -> Any:
    import os

    from ray.air.integrations.wandb import WandbLoggerCallback

    if o.mode != "online":  # Ray's callback asks for an API key unless WANDB_MODE says otherwise
        os.environ["WANDB_MODE"] = o.mode

    return WandbLoggerCallback(project=o.project, entity=o.entity, group=o.group or run_dir.name,
                               mode=o.mode, dir=str(run_dir), log_config=True)


def _tensorboard(o: TensorboardOptions, run_dir: Path) -> Any:
    from ray.tune.logger import TBXLoggerCallback

    return TBXLoggerCallback()


TRACKERS: Registry[TrackerEntry] = Registry("tracker")
TRACKERS.add("mlflow", TrackerEntry(MlflowOptions, "mlflow", "pip install 'hpo[mlflow]'", _mlflow))
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
        out[name] = opts
    return out


def callbacks(tracking: dict[str, BaseModel], run_dir: Path) -> list[Any]:
    return [TRACKERS.get(name).build(opts, run_dir) for name, opts in tracking.items()]
