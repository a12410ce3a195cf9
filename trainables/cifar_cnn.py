"""`cifar_cnn`: a small CNN for 32x32 colour images (CIFAR-10), with optional augmentation.

The `cnn` architecture (conv 3x3 [+ batch norm] + activation + 2x2 max-pool blocks, a dense
layer, dropout) with up to 4 blocks, 32/64/128 filters by default, and ``augment``: random
crop with 4-pixel padding and horizontal flip, done on tensor batches (trainables/augment.py).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, PositiveInt

from hpo.contract import Packing, Reporter, Settings
from hpo.data.base import ArrayDataset
from hpo.trainables import cnn, func_pack
from hpo.trainables.metrics import CLASSIFICATION_METRICS

METRICS = CLASSIFICATION_METRICS
TASKS = ("classification",)


class Config(cnn.Config):
    lr: float = Field(0.05, gt=0)
    momentum: float = Field(0.9, ge=0, lt=1)
    batch_size: PositiveInt = 128
    batch_norm: bool = True
    conv_layers: Literal[1, 2, 3, 4] = 3  # type: ignore[assignment]
    filters: list[PositiveInt] = Field(default_factory=lambda: [32, 64, 128, 256],
                                       description="filters of conv blocks 1..4")
    dense: PositiveInt = Field(256, description="width of the dense hidden layer")
    augment: bool = Field(False, description="random crop (pad 4) and horizontal flip")


PACKING = Packing(run="hpo.trainables.cifar_cnn:train_packed", refuse=cnn.not_packable, probe=True)


def train(config: dict[str, Any], data: ArrayDataset, settings: Settings,
          report: Reporter, state: dict[str, Any] | None = None) -> None:
    from hpo.trainables.augment import random_crop_flip
    from hpo.trainables.loop import run_classifier

    cfg = Config.model_validate(config)
    shape = cnn._shape(data.x_train.shape[1:])
    run_classifier(cfg, data, shape, lambda: cnn.build_model(cfg, shape, data.n_classes),
                   cnn.param_count(cfg, shape, data.n_classes), settings, report, state,
                   augment=random_crop_flip if cfg.augment else None)


def train_packed(configs: list[dict[str, Any]], data: ArrayDataset, settings: Settings,
                 report: Any, state: dict[str, Any] | None = None) -> None:
    from hpo.trainables.augment import random_crop_flip

    shape = cnn._shape(data.x_train.shape[1:])
    augment = random_crop_flip if Config.model_validate(configs[0]).augment else None  # a pack key
    func_pack.train(configs, data, settings, report, state, Config,
                    lambda c, s: cnn.build_model(c, s, data.n_classes), shape, augment)


def estimate_epoch_s(config: dict[str, Any], input_shape: tuple[int, ...], n_classes: int,
                     sizes: dict[str, int], threads: int = 1) -> float:
    from hpo.trainables.loop import time_epoch

    cfg = Config.model_validate(config)
    shape = cnn._shape(input_shape)
    return time_epoch(cfg, lambda: cnn.build_model(cfg, shape, n_classes), shape, n_classes, sizes,
                      threads, builtin=True)


def make_model(config: dict[str, Any], example_shape: tuple[int, ...], n_classes: int) -> Any:
    """The network a trial with `config` trained, untrained (to load saved weights into)."""
    cfg = Config.model_validate(config)
    return cnn.build_model(cfg, cnn._shape(tuple(example_shape)), n_classes)
