"""Optimizer and activation registries shared by the trainables."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import nn

# name -> factory(params, lr, cfg); L2 goes through the optimizer's weight_decay only when
# reg_type == "l2" (L1 is an explicit penalty added to the loss, see loop.l1_penalty).
OPTIMIZERS: dict[str, Callable[..., torch.optim.Optimizer]] = {
    "sgd": lambda p, c, wd: torch.optim.SGD(p, lr=c.lr, momentum=c.momentum,
                                            nesterov=c.nesterov, weight_decay=wd, foreach=True),
    "adam": lambda p, c, wd: torch.optim.Adam(p, lr=c.lr, weight_decay=wd, foreach=True),
    "adagrad": lambda p, c, wd: torch.optim.Adagrad(p, lr=c.lr, weight_decay=wd, foreach=True),
    "rmsprop": lambda p, c, wd: torch.optim.RMSprop(p, lr=c.lr, momentum=c.momentum,
                                                    weight_decay=wd, foreach=True),
}

ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU,
    "sigmoid": nn.Sigmoid,
    "tanh": nn.Tanh,
}


def make_optimizer(params: Iterable[nn.Parameter], cfg: Any) -> torch.optim.Optimizer:
    wd = cfg.weight_decay if cfg.reg_type == "l2" else 0.0
    return OPTIMIZERS[cfg.optimizer](params, cfg, wd)


def set_hyperparams(opt: torch.optim.Optimizer, cfg: Any) -> None:
    """Apply (possibly mutated, e.g. by PBT) hyperparameters to a restored optimizer."""
    wd = cfg.weight_decay if cfg.reg_type == "l2" else 0.0
    for g in opt.param_groups:
        g["lr"] = cfg.lr
        g["weight_decay"] = wd
        if "momentum" in g:
            g["momentum"] = cfg.momentum
