"""Trainable registry: a name maps to the module that implements it.

A trainable module defines, next to its code:
  - ``Config``: a pydantic model of its parameters (extra="forbid"), used to check a spec's
    params before any trial starts;
  - ``METRICS``: the metrics it reports each epoch, name -> "min" | "max";
  - ``TASKS``: the dataset tasks it accepts (e.g. ("classification",));
  - ``train(config, data, settings, report, state)``: the training loop, free of Ray.
Adding a trainable is one module plus one line below.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from functools import cached_property
from types import ModuleType
from typing import Any

from hpo.registry import Registry

TRAINABLES: Registry[str] = Registry("trainable")
TRAINABLES.add("mlp", "trainables.mlp")


@dataclass(frozen=True)
class TrainableInfo:
    name: str
    module_path: str

    @cached_property
    def module(self) -> ModuleType:
        return importlib.import_module(self.module_path)

    @property
    def config_model(self) -> Any:
        return self.module.Config

    @property
    def metrics(self) -> dict[str, str]:
        return dict(self.module.METRICS)

    @property
    def tasks(self) -> tuple[str, ...]:
        return tuple(self.module.TASKS)

    @property
    def checkpoints(self) -> bool:
        return bool(getattr(self.module, "CHECKPOINTS", True))

    def train(self, *args: Any, **kwargs: Any) -> None:
        self.module.train(*args, **kwargs)


def get_trainable(name: str, field: str = "trainable") -> TrainableInfo:
    return TrainableInfo(name, TRAINABLES.get(name, field=field))
