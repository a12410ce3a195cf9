"""`mlp`: a fully connected classifier (e.g. the 784-128-10 two-layer MNIST net)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from pydantic import Field, PositiveInt

from hpo.contract import Packing, Reporter, Settings
from hpo.data.base import ArrayDataset
from hpo.trainables.config import TrainConfig
from hpo.trainables.metrics import CLASSIFICATION_METRICS
from hpo.trainables.optim import activation

if TYPE_CHECKING:
    from torch import nn


# torch is imported inside the functions below so the driver can check specs without it.
METRICS = CLASSIFICATION_METRICS
TASKS = ("classification",)


class Config(TrainConfig):
    hidden: list[PositiveInt] = Field(default_factory=lambda: [128], description="layer widths")


def _not_packable(cfg: Config) -> str | None:
    return "batch_norm (batch statistics are not packed)" if cfg.batch_norm else None


# Configurations equal in these fields (they fix tensor shapes and the code path) train as one
# vectorized model (hpo/trainables/pack.py); everything else is a per-member tensor.
PACKING = Packing(run="hpo.trainables.pack:run_pack", refuse=_not_packable,
                  keys=("hidden", "batch_size", "activation", "optimizer"))


def build_model(cfg: Config, in_features: int, n_classes: int) -> nn.Sequential:
    from torch import nn

    layers: list[nn.Module] = [nn.Flatten()]
    width = in_features
    for h in cfg.hidden:
        layers.append(nn.Linear(width, h))
        if cfg.batch_norm:
            layers.append(nn.BatchNorm1d(h))
        layers.append(activation(cfg.activation))
        if cfg.dropout:
            layers.append(nn.Dropout(cfg.dropout))
        width = h
    layers.append(nn.Linear(width, n_classes))
    return nn.Sequential(*layers)


def param_count(cfg: Config, in_features: int, n_classes: int) -> int:
    """Parameters of the model `cfg` describes, without building it (it may not fit)."""
    widths = [in_features, *cfg.hidden, n_classes]
    n = sum(a * b + b for a, b in zip(widths, widths[1:], strict=False))
    return n + (2 * sum(cfg.hidden) if cfg.batch_norm else 0)


def train(config: dict[str, Any], data: ArrayDataset, settings: Settings,
          report: Reporter, state: dict[str, Any] | None = None) -> None:
    from hpo.trainables.loop import run_classifier

    cfg = Config.model_validate(config)
    n = int(data.x_train[0].size)
    run_classifier(cfg, data, (n,), lambda: build_model(cfg, n, data.n_classes),
                   param_count(cfg, n, data.n_classes), settings, report, state)


def estimate_epoch_s(config: dict[str, Any], input_shape: tuple[int, ...], n_classes: int,
                     sizes: dict[str, int], threads: int = 1) -> float:
    """Seconds per epoch from timing a few training steps of one batch (used by `hpo plan`)."""
    from hpo.trainables.loop import time_epoch

    cfg = Config.model_validate(config)
    n = math.prod(input_shape)
    return time_epoch(cfg, lambda: build_model(cfg, n, n_classes), (n,), n_classes, sizes, threads)


def make_model(config: dict[str, Any], example_shape: tuple[int, ...], n_classes: int) -> nn.Module:
    """The network a trial with `config` trained, untrained (to load saved weights into)."""
    cfg = Config.model_validate(config)
    return build_model(cfg, math.prod(example_shape), n_classes)
