"""Parameters every classification trainable shares (optimizer, regularization, batches, seed).

Plain pydantic, no torch: the driver checks specs against these without importing torch.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveInt, model_validator

from hpo.trainables.optim import ACTIVATIONS, OPTIMIZERS


class OptimConfig(BaseModel):
    """What hpo's loop needs to train any model: the optimizer, regularization, batches, seed.
    A user's own model (spec `model:`) gets these plus the hyperparameters it declares."""

    model_config = ConfigDict(extra="forbid")

    lr: float = Field(0.1, gt=0)
    optimizer: Literal[tuple(OPTIMIZERS)] = "sgd"  # type: ignore[valid-type]
    momentum: float = Field(0.0, ge=0, lt=1)
    nesterov: bool = False
    weight_decay: float = Field(0.0, ge=0, description="lambda of the L1 or L2 penalty")
    reg_type: Literal["l2", "l1", "none"] = "l2"
    batch_size: PositiveInt = 64
    seed: int = 0

    @model_validator(mode="after")
    def _nesterov(self) -> OptimConfig:
        if self.nesterov and (self.optimizer != "sgd" or self.momentum <= 0):
            raise ValueError("nesterov needs optimizer sgd and momentum > 0")
        return self


class TrainConfig(OptimConfig):
    """The built-in models' shared parameters: OptimConfig plus their architecture switches."""

    activation: Literal[tuple(ACTIVATIONS)] = "relu"  # type: ignore[valid-type]
    dropout: float = Field(0.0, ge=0, lt=1)
    batch_norm: bool = False
