"""`model`: a user's own PyTorch model, trained by hpo's loop.

    model: my_lab.nets:build

    class NetParams(BaseModel):            # the model's own hyperparameters, types and ranges
        channels: int = Field(16, ge=1)
        depth: int = Field(2, ge=1, le=6)

    def build(p: NetParams, input_shape: tuple[int, ...], n_outputs: int) -> nn.Module: ...

    def build(config, input_shape, n_outputs): ...     # or: config: dict / Mapping

`build` is called with its hyperparameters: a plain dict of the trial's parameters (the spec's
searched and constant values that are not hpo's training parameters) when its first argument is
unannotated or annotated dict / Mapping, as Ray Tune, Optuna and W&B hand them (any name is
taken; the forward pass before Ray checks them, and a KeyError there names the parameter the
spec lacks); or an instance of the pydantic model annotated on it (declared types and ranges,
checked by name). Then the dataset's input shape (e.g. (1, 28, 28), or (d,)
for a table) and the number of classes (1 output for regression). A trial's parameters are the
model's plus hpo's training ones (lr, optimizer, momentum, nesterov, weight_decay, reg_type,
batch_size, seed: hpo.trainables.config.OptimConfig); a spec is checked against both before Ray
starts, and one forward pass on a batch of the dataset's shape checks the output shape.
Everything the built-in classifiers have (optimizers, L1/L2, full batch, early stopping,
divergence, checkpoints, resume, confirm, best-val test metrics, `hpo plan`) comes from the
shared loop; the task (classification / regression) is the dataset's.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Mapping
from functools import cache
from typing import Any

from pydantic import BaseModel, ConfigDict

from hpo.contract import Packing, Reporter, Settings, model_shape
from hpo.data.base import ArrayDataset
from hpo.errors import SpecError
from hpo.trainables.config import OptimConfig
from hpo.trainables.metrics import CLASSIFICATION_METRICS, REGRESSION_METRICS

METRICS_BY_TASK = {"classification": CLASSIFICATION_METRICS, "regression": REGRESSION_METRICS}
METRICS = {**CLASSIFICATION_METRICS, **REGRESSION_METRICS}
TASKS = ("classification", "regression")
FIELD = "model"
# configurations equal but in PER_MEMBER fields pack as one torch.func model of the user's
# network (trainables/func_pack.py), where `auto`'s timing says it pays
PACKING = Packing(run="hpo.trainables.model:train_packed", probe=True)


class NoParams(BaseModel):
    """The hyperparameters of a model that declares none."""

    model_config = ConfigDict(extra="forbid")


class AnyParams(BaseModel):
    """The hyperparameters of a model that takes a plain dict: whatever the spec gives."""

    model_config = ConfigDict(extra="allow")


def takes_dict(params_model: type[BaseModel]) -> bool:
    return params_model is AnyParams


@cache
def resolve(ref: str) -> tuple[Any, type[BaseModel], type[BaseModel]]:
    """(build, its hyperparameter model, the trial's Config model) for `module:function`."""
    from hpo.refs import import_ref

    build = import_ref(ref, FIELD, "`model:` names a function build(params, input_shape, n_outputs)")
    try:
        sig = inspect.signature(build)
        sig.bind(None, (1,), 1)
    except (TypeError, ValueError):
        raise SpecError(f"`{ref}` must take (params, input_shape, n_outputs); its signature is "
                        f"{_signature(build)}.", field=FIELD) from None
    params = _params_model(build, ref)
    clash = sorted(set(params.model_fields) & set(OptimConfig.model_fields))
    if clash:
        raise SpecError(f"`{params.__name__}` declares {', '.join(clash)}, which hpo's loop sets "
                        f"(training parameters: {', '.join(OptimConfig.model_fields)}); rename them.",
                        field=FIELD)
    config = type(f"{params.__name__}Config", (params, OptimConfig),
                  {"model_config": ConfigDict(extra="allow" if takes_dict(params) else "forbid"),
                   "__module__": __name__})
    return build, params, config


def _signature(fn: Any) -> str:
    try:
        return f"({', '.join(inspect.signature(fn).parameters)})"
    except (TypeError, ValueError):
        return "(unknown)"


def _params_model(build: Any, ref: str) -> type[BaseModel]:
    first = next(iter(inspect.signature(build).parameters))
    try:
        hints = typing.get_type_hints(build)
    except Exception as e:  # noqa: BLE001 - a user's annotation that does not resolve
        raise SpecError(f"`{ref}`: cannot resolve its type annotations ({e}).", field=FIELD) from None
    ann = hints.get(first)
    origin = typing.get_origin(ann) or ann
    if ann is None or ann is Any or (isinstance(origin, type) and issubclass(origin, (dict, Mapping))):
        return AnyParams  # a plain dict of the trial's parameters
    if not (isinstance(ann, type) and issubclass(ann, BaseModel)):
        raise SpecError(f"`{ref}`: the first argument `{first}` is annotated {ann!r}; leave it "
                        f"unannotated or annotate it dict (a plain dict of the trial's parameters), "
                        f"or a pydantic BaseModel of the model's hyperparameters (types and ranges).",
                        field=FIELD)
    return ann


def input_shape(data: ArrayDataset) -> tuple[int, ...]:
    return model_shape(data.x_train.shape[1:])


def _build(ref: str, config: dict[str, Any], shape: tuple[int, ...], n_outputs: int) -> Any:
    build, params_model, config_model = resolve(ref)
    cfg = config_model.model_validate(config)
    if takes_dict(params_model):
        params: Any = {k: v for k, v in cfg.model_dump().items() if k not in OptimConfig.model_fields}
    else:
        params = params_model.model_validate({k: getattr(cfg, k) for k in params_model.model_fields})
    return cfg, build(params, shape, n_outputs)


def check_forward(ref: str, config: dict[str, Any], shape: tuple[int, ...], n_classes: int) -> None:
    """Build the model for one configuration and run one batch of 2 through it; a clear error
    when it cannot be built or its output does not fit the dataset."""
    import torch

    n_out = n_classes or 1
    shape = model_shape(shape)  # as training feeds it (grey images get their channel axis)
    try:
        _, model = _build(ref, config, shape, n_out)
        model.eval()
        with torch.no_grad():
            out = model(torch.randn(2, *shape))
    except SpecError:
        raise
    except KeyError as e:  # a dict-taking build reading a parameter the spec does not give
        given = sorted(k for k in config if k not in OptimConfig.model_fields)
        raise SpecError(f"`{ref}` reads parameter {e.args[0]!r}, which the spec does not give; add "
                        f"it under params: (given: {', '.join(given) or 'none'}).", field=FIELD) from None
    except Exception as e:  # noqa: BLE001 - any failure of the user's code, said in one line
        raise SpecError(f"`{ref}` failed on a batch of shape {(2, *shape)}: {type(e).__name__}: "
                        f"{str(e).splitlines()[0] if str(e) else ''}", field=FIELD) from None
    if not isinstance(out, torch.Tensor):
        raise SpecError(f"`{ref}`'s model returned {type(out).__name__}, not a tensor.", field=FIELD)
    want = [(2, n_classes)] if n_classes else [(2, 1), (2,)]
    if tuple(out.shape) not in want:
        what = (f"the dataset has {n_classes} classes, so it must be (2, {n_classes})" if n_classes
                else "a regression needs one output per example: (2, 1) or (2,)")
        raise SpecError(f"`{ref}`'s model maps a batch of shape {(2, *shape)} to {tuple(out.shape)}; "
                        f"{what}.", field=FIELD)


def train(config: dict[str, Any], data: ArrayDataset, settings: Settings,
          report: Reporter, state: dict[str, Any] | None = None) -> None:
    from hpo.trainables.loop import run_trial, to_tensors
    from hpo.trainables.tasks import TASKS as TASK_ENTRIES

    ref = settings.model
    assert ref is not None  # set by the runner for `model:` specs
    task = "classification" if data.n_classes else "regression"
    shape = input_shape(data)
    cfg = resolve(ref)[2].model_validate(config)
    run_trial(cfg, lambda: to_tensors(data, shape, key=settings.data_key),
              lambda: _build(ref, config, shape, data.n_classes or 1)[1], None,
              TASK_ENTRIES[task], settings, report, state)


def train_packed(configs: list[dict[str, Any]], data: ArrayDataset, settings: Settings,
                 report: Any, state: dict[str, Any] | None = None) -> None:
    from hpo.trainables import func_pack

    ref = settings.model
    assert ref is not None
    func_pack.train(configs, data, settings, report, state, resolve(ref)[2],
                    lambda c, s: _build(ref, c.model_dump(), s, data.n_classes or 1)[1], input_shape(data))


def estimate_epoch_s(config: dict[str, Any], input_shape: tuple[int, ...], n_classes: int,
                     sizes: dict[str, int], threads: int = 1, model: str | None = None) -> float:
    """Seconds per epoch from timing a few training steps of one batch (used by `hpo plan`)."""
    from hpo.trainables.loop import time_epoch

    assert model is not None
    cfg = resolve(model)[2].model_validate(config)
    shape = model_shape(input_shape)
    return time_epoch(cfg, lambda: _build(model, config, shape, n_classes or 1)[1], shape,
                      max(n_classes, 1), sizes, threads, task="classification" if n_classes else "regression")


def make_model(config: dict[str, Any], example_shape: tuple[int, ...], n_classes: int,
               model: str | None = None) -> Any:
    """The user's network for `config`, untrained (to load saved weights into)."""
    assert model is not None
    return _build(model, config, model_shape(example_shape), n_classes or 1)[1]
