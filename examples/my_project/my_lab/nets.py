"""The project's own model. hpo calls `build` with a plain dict of the trial's parameters (the
spec's values that are not hpo's training ones: width, depth, dropout here), the dataset's input
shape and the number of outputs. `build_typed` is the same network with its hyperparameters
declared as a pydantic model instead: types and ranges are then checked by name before any
trial starts."""

from __future__ import annotations

import math

from pydantic import BaseModel, Field
from torch import nn


def build(config: dict, input_shape: tuple[int, ...], n_outputs: int) -> nn.Module:
    return _mlp(math.prod(input_shape), n_outputs, int(config.get("width", 64)),
                int(config.get("depth", 2)), float(config.get("dropout", 0.0)))


class NetParams(BaseModel):
    width: int = Field(64, ge=4, le=1024, description="units per hidden layer")
    depth: int = Field(2, ge=1, le=6, description="hidden layers")
    dropout: float = Field(0.0, ge=0, lt=1)


def build_typed(p: NetParams, input_shape: tuple[int, ...], n_outputs: int) -> nn.Module:
    return _mlp(math.prod(input_shape), n_outputs, p.width, p.depth, p.dropout)


def _mlp(n_in: int, n_outputs: int, width: int, depth: int, dropout: float) -> nn.Module:
    layers: list[nn.Module] = [nn.Flatten()]
    for _ in range(depth):
        layers += [nn.Linear(n_in, width), nn.ReLU()]
        if dropout:
            layers.append(nn.Dropout(dropout))
        n_in = width
    layers.append(nn.Linear(n_in, n_outputs))
    return nn.Sequential(*layers)
