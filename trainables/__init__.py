"""Trainable registry: a name maps to the module that implements it.

A trainable module is an :class:`hpo.contract.Trainable` (``METRICS`` and its training
function) with any of the hooks in :data:`hpo.contract.HOOKS` (``Config`` among them); the core
reads those declarations through :class:`TrainableInfo` (``hook``: a hook's default when absent)
and never imports a concrete trainable module itself (the module is imported when a declaration
is first read).
Adding a trainable is one module plus one line below.

A user's own trainable is allowed only as an explicit ``module:function`` reference in the spec
(``trainable: my_lab.trainables:train``): the module must define ``Config``, ``METRICS`` and
``TASKS`` like the built-in ones (see hpo.contract), and be importable on every Ray node.
Nothing else in a spec is ever imported or evaluated.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from types import ModuleType
from typing import Any

from hpo.contract import Packing, hook, model_shape
from hpo.registry import Registry

TRAINABLES: Registry[str] = Registry("trainable")
TRAINABLES.add("mlp", "hpo.trainables.mlp")
TRAINABLES.add("cnn", "hpo.trainables.cnn")
TRAINABLES.add("cifar_cnn", "hpo.trainables.cifar_cnn")
TRAINABLES.add("resnet18", "hpo.trainables.resnet18")
TRAINABLES.add("regression", "hpo.trainables.regression")
TRAINABLES.add("model", "hpo.trainables.model")  # a user's nn.Module (spec `model:`), hpo's loop


@dataclass(frozen=True)
class TrainableInfo:
    name: str
    module_path: str
    function: str = "train"
    model: str | None = None  # the `model` trainable: the user's `module:function`

    @cached_property
    def module(self) -> ModuleType:
        return importlib.import_module(self.module_path)

    def __getstate__(self) -> dict[str, Any]:
        # Ray pickles the trainable (and this) to every worker: send the module's name, not the
        # module, so a user's module is imported in the worker after its search path is set
        return {k: v for k, v in self.__dict__.items() if k != "module"}

    @property
    def config_model(self) -> Any:
        if self.model is not None:
            return self.module.resolve(self.model)[2]
        if self.context_takes_dict:
            from hpo.trainables.context import any_params

            return any_params()
        return self.context_config or hook(self.module, "Config")

    @property
    def context_takes_dict(self) -> bool:
        """A (config, ctx) function whose `config` is unannotated, `dict` or a `Mapping`, in a
        module without `Config`: it receives a plain dict of the trial's parameters."""
        if ":" not in self.name or not self.takes_context or hook(self.module, "Config") is not None:
            return False

        fn = self.function_obj
        first = next(iter(inspect.signature(fn).parameters))
        try:
            ann = typing.get_type_hints(fn).get(first)
        except Exception:  # noqa: BLE001 - unresolvable annotations: not the dict form
            return False
        origin = typing.get_origin(ann) or ann
        return ann is None or ann is Any or (isinstance(origin, type) and issubclass(origin, Mapping))

    @property
    def function_obj(self) -> Any:
        return getattr(self.module, self.function)

    @property
    def takes_context(self) -> bool:
        """The small contract: `fn(config, ctx)` (else the low-level five-argument one)."""
        return ":" in self.name and len(inspect.signature(self.function_obj).parameters) == 2

    @property
    def context_config(self) -> Any:
        """The pydantic model annotated on a context-style function's first argument, or None."""
        if ":" not in self.name:
            return None

        from pydantic import BaseModel

        fn = self.function_obj
        first = next(iter(inspect.signature(fn).parameters), None)
        try:
            ann = typing.get_type_hints(fn).get(first) if first else None
        except Exception:  # noqa: BLE001 - unresolvable annotations: fall back to Config
            ann = None
        return ann if isinstance(ann, type) and issubclass(ann, BaseModel) else None

    @property
    def metrics(self) -> dict[str, str]:
        return dict(self.module.METRICS)

    @property
    def attributes(self) -> dict[str, str]:
        """Per-trial values besides the metrics that objectives and constraints may name
        (hpo's loop reports `n_params` for every model it builds)."""
        return {"n_params": "min"} if hook(self.module, "make_model") is not None else {}

    def metrics_for(self, task: str) -> dict[str, str]:
        """The metrics it reports on a dataset of `task` (most trainables: always the same)."""
        return dict(hook(self.module, "METRICS_BY_TASK").get(task) or self.module.METRICS)

    @property
    def tasks(self) -> tuple[str, ...]:
        return tuple(hook(self.module, "TASKS"))

    @property
    def checkpoints(self) -> bool:
        return bool(hook(self.module, "CHECKPOINTS"))

    @property
    def packing(self) -> Packing | None:
        """How its configurations pack into one vectorized trial; None: not packable."""
        return hook(self.module, "PACKING")

    def make_model(self, config: dict[str, Any], example_shape: tuple[int, ...], n_classes: int) -> Any:
        """The untrained nn.Module a trial with `config` trained (its `make_model`), or a
        SpecError when the trainable cannot rebuild its model (a user's own training loop)."""
        fn = hook(self.module, "make_model")
        if fn is None:
            from hpo.errors import SpecError

            raise SpecError(f"trainable `{self.name}` does not declare make_model(config, "
                            f"example_shape, n_classes); its model cannot be rebuilt.", field="trainable")
        if self.model is not None:
            return fn(config, example_shape, n_classes, model=self.model)
        return fn(config, example_shape, n_classes)

    def estimate_epoch_s(self) -> Any:
        """Its `estimate_epoch_s(config, input_shape, n_classes, sizes, threads)`, or None."""
        fn = hook(self.module, "estimate_epoch_s")
        if fn is not None and self.model is not None:
            return functools.partial(fn, model=self.model)
        return fn

    def check_forward(self, config: dict[str, Any], input_shape: tuple[int, ...], n_classes: int) -> None:
        """One forward pass of a user's model (`model:`) on the dataset's shape, before Ray; a
        no-op for a trainable without the hook."""
        fn = hook(self.module, "check_forward")
        if fn is not None and self.model is not None:
            fn(self.model, config, input_shape, n_classes)

    def time_pack(self, cfgs: list[Any], input_shape: tuple[int, ...], n_classes: int,
                  threads: int) -> tuple[str | None, str | None, float]:
        """Its `time_pack` hook, else the torch.func pack probe (hpo.trainables.func_pack.probe)
        over the models `make_model` builds."""
        fn = hook(self.module, "time_pack")
        if fn is None:
            from hpo.trainables.func_pack import probe as fn
        return fn(cfgs, lambda c: self.make_model(c.model_dump(), input_shape, n_classes),
                  model_shape(input_shape), n_classes, threads)

    def train(self, config: dict[str, Any], data: Any, settings: Any, report: Any,
              state: dict[str, Any] | None = None) -> None:
        """Run one trial (the Ray adapter calls this in the worker)."""
        if self.takes_context:
            from hpo.trainables.context import run_with_context

            cfg = dict(config) if self.context_takes_dict else self.config_model.model_validate(config)
            run_with_context(self.function_obj, cfg, data, settings, self.metrics, report, state)
        else:
            self.function_obj(config, data, settings, report, state)


def get_trainable(name: str, field: str = "trainable", model: str | None = None) -> TrainableInfo:
    if name == "model":
        from hpo.errors import SpecError

        if model is None:
            raise SpecError("trainable `model` trains your own nn.Module: give `model: "
                            "package.module:build` (see README, Your own model and data).", field=field)
        info = TrainableInfo(name, TRAINABLES.get(name, field=field), model=model)
        info.config_model  # noqa: B018 - import and check the reference now, before Ray
        return info
    if ":" not in name:
        return TrainableInfo(name, TRAINABLES.get(name, field=field))
    return _user_trainable(name, field)


def _user_trainable(ref: str, field: str) -> TrainableInfo:
    from hpo.errors import SpecError
    from hpo.refs import import_ref

    fn = import_ref(ref, field, "a trainable is a training function")
    module_path, _, function = ref.partition(":")
    info = TrainableInfo(ref, module_path, function)
    try:
        n_args = len(inspect.signature(fn).parameters)
    except (TypeError, ValueError):
        n_args = -1
    if n_args not in (2, 5):
        raise SpecError(f"`{ref}` must take (config, ctx) (see hpo.Context), or the low-level "
                        f"(config, data, settings, report, state); it takes {n_args} argument(s).",
                        field=field)
    module = info.module
    missing = [a for a in ("METRICS",) if not hasattr(module, a)]
    if info.context_config is None and hook(module, "Config") is None and not info.context_takes_dict:
        missing.append("Config (or a pydantic model annotated on the function's first argument, or "
                       "none: a plain dict)")
    if missing:
        raise SpecError(f"`{module_path}` lacks {', '.join(missing)}: a trainable declares its "
                        f"METRICS (name -> min | max) and its parameters (see hpo.contract).",
                        field=field)
    bad = {k: v for k, v in dict(module.METRICS).items() if v not in ("min", "max")}
    if bad:
        raise SpecError(f"`{module_path}`.METRICS: each metric's direction is `min` or `max`, got "
                        f"{bad}.", field=field)
    return info
