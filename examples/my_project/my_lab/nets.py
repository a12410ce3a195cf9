"""The project's own model. hpo calls `build` with the hyperparameters declared in NetParams
(checked before any trial starts), the dataset's input shape and the number of outputs."""

from __future__ import annotations

import math

from pydantic import BaseModel, Field
from torch import nn


class NetParams(BaseModel):
    width: int = Field(64, ge=4, le=1024, description="units per hidden layer")
    depth: int = Field(2, ge=1, le=6, description="hidden layers")
    dropout: float = Field(0.0, ge=0, lt=1)


def build(p: NetParams, input_shape: tuple[int, ...], n_outputs: int) -> nn.Module:
    layers: list[nn.Module] = [nn.Flatten()]
    width = math.prod(input_shape)
    for _ in range(p.depth):
        layers += [nn.Linear(width, p.width), nn.ReLU()]
        if p.dropout:
            layers.append(nn.Dropout(p.dropout))
        width = p.width
    layers.append(nn.Linear(width, n_outputs))
    return nn.Sequential(*layers)
