"""Optimizer and activation registries shared by the trainables.

Names are plain data so specs can be checked without importing torch (the driver never needs
it); the factories import torch when a trial builds its model.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

# name -> torch.optim class name and the config fields it takes besides lr and weight_decay.
# L2 goes through the optimizer's weight_decay only when reg_type == "l2" (L1 is an explicit
# penalty added to the loss, see loop.l1_penalty).
OPTIMIZERS: dict[str, tuple[str, tuple[str, ...]]] = {
    "sgd": ("SGD", ("momentum", "nesterov")),
    "adam": ("Adam", ()),
    "adagrad": ("Adagrad", ()),
    "rmsprop": ("RMSprop", ("momentum",)),
}

# name -> torch.nn class name
ACTIVATIONS: dict[str, str] = {"relu": "ReLU", "sigmoid": "Sigmoid", "tanh": "Tanh"}


def activation(name: str) -> Any:
    from torch import nn

    return getattr(nn, ACTIVATIONS[name])()


def _weight_decay(cfg: Any) -> float:
    return cfg.weight_decay if cfg.reg_type == "l2" else 0.0


def make_optimizer(params: Iterable[Any], cfg: Any) -> Any:
    import torch

    cls_name, extra = OPTIMIZERS[cfg.optimizer]
    kwargs = {k: getattr(cfg, k) for k in extra}
    # foreach left to torch: multi-tensor updates on CUDA, the per-tensor loop on CPU, where
    # foreach=True made the `mlp`'s epoch 5-9% slower (benchmarks/throughput.py)
    return getattr(torch.optim, cls_name)(params, lr=cfg.lr, weight_decay=_weight_decay(cfg), **kwargs)


def set_hyperparams(opt: Any, cfg: Any) -> None:
    """Apply (possibly mutated, e.g. by PBT) hyperparameters to a restored optimizer."""
    for g in opt.param_groups:
        g["lr"] = cfg.lr
        g["weight_decay"] = _weight_decay(cfg)
        if "momentum" in g:
            g["momentum"] = cfg.momentum
