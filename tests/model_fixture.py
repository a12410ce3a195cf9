"""A user's model module for the registry tests: build(params, input_shape, n_outputs)."""

from __future__ import annotations

from pydantic import BaseModel, Field


class Params(BaseModel):
    width: int = Field(8, ge=1)


def build(p: Params, input_shape: tuple[int, ...], n_outputs: int):
    from torch import nn

    return nn.Sequential(nn.Flatten(), nn.LazyLinear(n_outputs))


def ctx_without_metrics(p: Params, ctx) -> None:  # a context trainable that forgot METRICS
    pass
