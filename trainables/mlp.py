"""`mlp`: a fully connected classifier (e.g. the 784-128-10 two-layer MNIST net)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveInt, model_validator

from hpo.data.base import ArrayDataset
from trainables.metrics import CLASSIFICATION_METRICS
from trainables.optim import ACTIVATIONS, OPTIMIZERS, activation, make_optimizer

if TYPE_CHECKING:
    from torch import nn

    from trainables.loop import Reporter

# torch is imported inside the functions below so the driver can check specs without it.
METRICS = CLASSIFICATION_METRICS
TASKS = ("classification",)


class Config(BaseModel):
    model_config = ConfigDict(extra="forbid")

    lr: float = Field(0.1, gt=0)
    optimizer: Literal[tuple(OPTIMIZERS)] = "sgd"  # type: ignore[valid-type]
    momentum: float = Field(0.0, ge=0, lt=1)
    nesterov: bool = False
    weight_decay: float = Field(0.0, ge=0, description="lambda of the L1 or L2 penalty")
    reg_type: Literal["l2", "l1", "none"] = "l2"
    batch_size: PositiveInt = 64
    hidden: list[PositiveInt] = Field(default_factory=lambda: [128], description="layer widths")
    activation: Literal[tuple(ACTIVATIONS)] = "relu"  # type: ignore[valid-type]
    dropout: float = Field(0.0, ge=0, lt=1)
    batch_norm: bool = False
    seed: int = 0

    @model_validator(mode="after")
    def _nesterov(self) -> Config:
        if self.nesterov and (self.optimizer != "sgd" or self.momentum <= 0):
            raise ValueError("nesterov needs optimizer sgd and momentum > 0")
        return self


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


def train(config: dict[str, Any], data: ArrayDataset, settings: dict[str, Any],
          report: Reporter, state: dict[str, Any] | None = None) -> None:
    import torch

    from trainables.loop import device, fit_classifier, is_oom, oom_error, to_tensors

    cfg = Config.model_validate(config)
    torch.manual_seed(cfg.seed)
    in_features = int(data.x_train[0].size)
    tensors = to_tensors(data, (in_features,), key=settings.get("data_key"))
    try:
        model = build_model(cfg, in_features, data.n_classes).to(device())
        fit_classifier(model, make_optimizer(model.parameters(), cfg), tensors, cfg, settings,
                       report, state)
    except Exception as e:
        if is_oom(e):
            raise oom_error(e, cfg.batch_size, param_count(cfg, in_features, data.n_classes)) from e
        raise


def param_count(cfg: Config, in_features: int, n_classes: int) -> int:
    """Parameters of the model `cfg` describes, without building it (it may not fit)."""
    widths = [in_features, *cfg.hidden, n_classes]
    n = sum(a * b + b for a, b in zip(widths, widths[1:], strict=False))
    return n + (2 * sum(cfg.hidden) if cfg.batch_norm else 0)


def estimate_epoch_s(config: dict[str, Any], input_shape: tuple[int, ...], n_classes: int,
                     sizes: dict[str, int], threads: int = 1) -> float:
    """Seconds per epoch from timing a few training steps of one batch (used by `hpo plan`)."""
    import math
    import time

    import torch
    import torch.nn.functional as F

    cfg = Config.model_validate(config)
    torch.set_num_threads(threads)
    in_features = math.prod(input_shape)
    bs = min(cfg.batch_size, sizes["train"])
    model = build_model(cfg, in_features, n_classes)
    opt = make_optimizer(model.parameters(), cfg)
    x, y = torch.randn(bs, in_features), torch.randint(0, n_classes, (bs,))
    times = []
    for _ in range(4):  # the first is warm-up
        t0 = time.perf_counter()
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - t0)
    step = min(times[1:])
    steps = math.ceil(sizes["train"] / bs)
    eval_s = step / 3 * (sizes["val"] + sizes["test"]) / bs  # forward only, ~1/3 of a step
    return steps * step + eval_s
