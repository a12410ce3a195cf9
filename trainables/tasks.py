"""What differs between a classification and a regression trial: the loss, how a split is
evaluated, how training metrics are measured, the metrics reported and what a diverged trial
reports instead of NaN. One entry per dataset task; the epoch loop (trainables/loop.py) is the
same for all."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from hpo.trainables.metrics import CLASSIFICATION_METRICS, REGRESSION_METRICS


@torch.no_grad()
def _classify(model: nn.Module, x: torch.Tensor, y: torch.Tensor, chunk: int = 2048) -> dict[str, float]:
    """Mean cross-entropy and accuracy in eval mode."""
    model.eval()
    loss = torch.zeros((), device=x.device)
    correct = torch.zeros((), device=x.device, dtype=torch.long)
    for i in range(0, len(y), chunk):
        out = model(x[i : i + chunk])
        loss += F.cross_entropy(out, y[i : i + chunk], reduction="sum")
        correct += (out.argmax(1) == y[i : i + chunk]).sum()
    n = max(len(y), 1)
    return {"loss": loss.item() / n, "acc": correct.item() / n}


@torch.no_grad()
def _regress(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
    model.eval()
    return {"mse": F.mse_loss(model(x).reshape(len(y)), y).item()}


class _Sums:
    """Training loss and accuracy summed over an epoch's batches, on the device (no sync per step)."""

    def __init__(self, device: torch.device) -> None:
        self.loss = torch.zeros((), device=device)
        self.correct = torch.zeros((), device=device, dtype=torch.long)

    def add(self, out: torch.Tensor, y: torch.Tensor, loss: torch.Tensor) -> None:
        self.loss += loss.detach() * len(y)
        self.correct += (out.argmax(1) == y).sum()

    def metrics(self, n: int) -> dict[str, float]:
        return {"loss": self.loss.item() / n, "acc": self.correct.item() / n}


@dataclass(frozen=True)
class Task:
    metrics: dict[str, str]  # name -> "min" | "max", as trainables declare METRICS
    loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    evaluate: Callable[[nn.Module, torch.Tensor, torch.Tensor], dict[str, float]]  # unprefixed
    # per-batch sums during training (classification), or None: evaluate the training set after
    # the epoch (regression, where the training set is small)
    sums: Callable[[torch.device], Any] | None
    random_batch: Callable[[int, tuple[int, ...], int], tuple[torch.Tensor, torch.Tensor]]


TASKS: dict[str, Task] = {
    "classification": Task(
        CLASSIFICATION_METRICS, F.cross_entropy, _classify, _Sums,
        lambda bs, shape, k: (torch.randn(bs, *shape), torch.randint(0, k, (bs,)))),
    "regression": Task(
        REGRESSION_METRICS, lambda out, y: F.mse_loss(out.reshape(len(y)), y), _regress, None,
        lambda bs, shape, k: (torch.randn(bs, *shape), torch.randn(bs))),
}
