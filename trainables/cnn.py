"""`cnn`: a small convolutional classifier for 28x28 grey images (MNIST).

1 or 2 conv blocks (3x3 conv, optional batch norm, activation, 2x2 max-pool; 32 then 64 filters
by default), a dense hidden layer with optional dropout, and the output layer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, PositiveInt, model_validator

from hpo.contract import Packing, Reporter, Settings
from hpo.data.base import ArrayDataset
from hpo.trainables.config import TrainConfig
from hpo.trainables.metrics import CLASSIFICATION_METRICS
from hpo.trainables.optim import activation

if TYPE_CHECKING:
    from torch import nn


METRICS = CLASSIFICATION_METRICS
TASKS = ("classification",)


class Config(TrainConfig):
    lr: float = Field(0.01, gt=0)
    conv_layers: Literal[1, 2] = 2
    filters: list[PositiveInt] = Field(default_factory=lambda: [32, 64],
                                       description="filters of conv block 1 and 2")
    dense: PositiveInt = Field(128, description="width of the dense hidden layer")

    @model_validator(mode="after")
    def _filters(self) -> Config:
        if len(self.filters) < self.conv_layers:
            raise ValueError(f"filters needs {self.conv_layers} values for {self.conv_layers} conv layers")
        return self


def not_packable(cfg: Config) -> str | None:
    return (f"dropout {cfg.dropout} (under torch.func.vmap the masks come from one random stream "
            f"shared by the pack, so members would not reproduce their trials)" if cfg.dropout else None)


# Any configurations equal but in PER_MEMBER fields pack as one torch.func model
# (trainables/func_pack.py); `auto` times the pack first (on a CPU convolutions gain little).
PACKING = Packing(run="hpo.trainables.cnn:train_packed", refuse=not_packable, probe=True)


def _shape(data_shape: tuple[int, ...]) -> tuple[int, int, int]:
    # (H, W) grey images become (1, H, W); (C, H, W) stays
    return (1, *data_shape) if len(data_shape) == 2 else tuple(data_shape)  # type: ignore[return-value]


def build_model(cfg: Config, shape: tuple[int, int, int], n_classes: int) -> nn.Sequential:
    from torch import nn

    c, h, w = shape
    layers: list[nn.Module] = []
    for f in cfg.filters[: cfg.conv_layers]:
        layers.append(nn.Conv2d(c, f, kernel_size=3, padding=1))
        if cfg.batch_norm:
            layers.append(nn.BatchNorm2d(f))
        layers += [activation(cfg.activation), nn.MaxPool2d(2)]
        c, h, w = f, h // 2, w // 2
    layers += [nn.Flatten(), nn.Linear(c * h * w, cfg.dense), activation(cfg.activation)]
    if cfg.dropout:
        layers.append(nn.Dropout(cfg.dropout))
    layers.append(nn.Linear(cfg.dense, n_classes))
    return nn.Sequential(*layers)


def param_count(cfg: Config, shape: tuple[int, int, int], n_classes: int) -> int:
    c, h, w = shape
    n = 0
    for f in cfg.filters[: cfg.conv_layers]:
        n += c * f * 9 + f + (2 * f if cfg.batch_norm else 0)
        c, h, w = f, h // 2, w // 2
    return n + c * h * w * cfg.dense + cfg.dense + cfg.dense * n_classes + n_classes


def train(config: dict[str, Any], data: ArrayDataset, settings: Settings,
          report: Reporter, state: dict[str, Any] | None = None) -> None:
    from hpo.trainables.loop import run_classifier

    cfg = Config.model_validate(config)
    shape = _shape(data.x_train.shape[1:])
    run_classifier(cfg, data, shape, lambda: build_model(cfg, shape, data.n_classes),
                   param_count(cfg, shape, data.n_classes), settings, report, state)


def train_packed(configs: list[dict[str, Any]], data: ArrayDataset, settings: Settings,
                 report: Any, state: dict[str, Any] | None = None) -> None:
    from hpo.trainables import func_pack

    shape = _shape(data.x_train.shape[1:])
    func_pack.train(configs, data, settings, report, state, Config,
                    lambda c, s: build_model(c, s, data.n_classes), shape)


def estimate_epoch_s(config: dict[str, Any], input_shape: tuple[int, ...], n_classes: int,
                     sizes: dict[str, int], threads: int = 1) -> float:
    from hpo.trainables.loop import time_epoch

    cfg = Config.model_validate(config)
    shape = _shape(input_shape[1:] if len(input_shape) == 3 and input_shape[0] == 1 else input_shape)
    return time_epoch(cfg, lambda: build_model(cfg, shape, n_classes), shape, n_classes, sizes, threads,
                      builtin=True)


def make_model(config: dict[str, Any], example_shape: tuple[int, ...], n_classes: int) -> nn.Module:
    """The network a trial with `config` trained, untrained (to load saved weights into)."""
    cfg = Config.model_validate(config)
    return build_model(cfg, _shape(tuple(example_shape)), n_classes)
