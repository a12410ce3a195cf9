"""Trainable registry: a name maps to the module that implements it.

A trainable module declares, next to its code, what :mod:`hpo.contract` lists (``Config``,
``METRICS``, ``TASKS``, optionally ``CHECKPOINTS`` and ``PACKING``) and its training function;
the core reads those declarations through :class:`TrainableInfo` and never imports a concrete
trainable module itself (the module is imported when a declaration is first read).
Adding a trainable is one module plus one line below.

A user's own trainable is allowed only as an explicit ``module:function`` reference in the spec
(``trainable: my_lab.trainables:train``): the module must define ``Config``, ``METRICS`` and
``TASKS`` like the built-in ones (see hpo.contract), and be importable on every Ray node.
Nothing else in a spec is ever imported or evaluated.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from functools import cached_property
from types import ModuleType
from typing import Any

from hpo.contract import Packing
from hpo.registry import Registry

TRAINABLES: Registry[str] = Registry("trainable")
TRAINABLES.add("mlp", "hpo.trainables.mlp")
TRAINABLES.add("cnn", "hpo.trainables.cnn")
TRAINABLES.add("cifar_cnn", "hpo.trainables.cifar_cnn")
TRAINABLES.add("resnet18", "hpo.trainables.resnet18")
TRAINABLES.add("regression", "hpo.trainables.regression")


@dataclass(frozen=True)
class TrainableInfo:
    name: str
    module_path: str
    function: str = "train"

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

    @property
    def packing(self) -> Packing | None:
        """How its configurations pack into one vectorized trial; None: not packable."""
        return getattr(self.module, "PACKING", None)

    def estimate_epoch_s(self) -> Any:
        """Its `estimate_epoch_s(config, input_shape, n_classes, sizes, threads)`, or None."""
        return getattr(self.module, "estimate_epoch_s", None)

    def train(self, *args: Any, **kwargs: Any) -> None:
        getattr(self.module, self.function)(*args, **kwargs)


def get_trainable(name: str, field: str = "trainable") -> TrainableInfo:
    if ":" not in name:
        return TrainableInfo(name, TRAINABLES.get(name, field=field))
    return _user_trainable(name, field)


def _user_trainable(ref: str, field: str) -> TrainableInfo:
    from hpo.errors import SpecError

    module_path, _, function = ref.partition(":")
    if not module_path or not function.isidentifier():
        raise SpecError(f"`{ref}` is not a `module:function` reference.", field=field)
    info = TrainableInfo(ref, module_path, function)
    try:
        module = info.module
    except ImportError as e:
        raise SpecError(f"cannot import `{module_path}` ({e}); it must be importable on every "
                        f"Ray node (installed, or on PYTHONPATH).", field=field) from None
    missing = [a for a in ("Config", "METRICS", "TASKS", function) if not hasattr(module, a)]
    if missing:
        raise SpecError(f"`{module_path}` lacks {', '.join(missing)}: a trainable module defines "
                        f"Config, METRICS, TASKS and the training function (see hpo.contract).",
                        field=field)
    return info
