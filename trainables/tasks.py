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

# Evaluation runs under inference mode in chunks of 256: for the `cnn` on this CPU that is 1.4x
# faster than no_grad over chunks of 2,048 (its activations then stay in cache); the same for
# the `mlp` (benchmarks/throughput.py measures the epoch as a whole).
EVAL_CHUNK = 256


@torch.inference_mode()
def _classify(model: nn.Module, x: torch.Tensor, y: torch.Tensor,
              chunk: int = EVAL_CHUNK) -> dict[str, float]:
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


@torch.inference_mode()
def _regress(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
    model.eval()
    return {"mse": F.mse_loss(model(x).reshape(len(y)), y).item()}


class _Sums:
    """Training loss and accuracy over an epoch's batches: no op per step (the batch's loss and
    logits are kept on the device), predicted classes taken every `fold` batches (memory stays
    bounded whatever the classes) and sums once at the end of the epoch (no sync per step)."""

    fold = 64

    def __init__(self, device: torch.device) -> None:
        self.losses: list[torch.Tensor] = []
        self.sizes: list[int] = []
        self.logits: list[torch.Tensor] = []  # batches not yet folded into preds
        self.preds: list[torch.Tensor] = []
        self.ys: list[torch.Tensor] = []

    def add(self, out: torch.Tensor, y: torch.Tensor, loss: torch.Tensor) -> None:
        self.losses.append(loss.detach())
        self.sizes.append(len(y))
        self.logits.append(out.detach())
        self.ys.append(y)
        if len(self.logits) == self.fold:
            self._fold()

    def _fold(self) -> None:
        if self.logits:
            self.preds.append(torch.cat(self.logits).argmax(1))
            self.logits.clear()

    def metrics(self, n: int) -> dict[str, float]:
        if not self.losses:
            return {"loss": 0.0, "acc": 0.0}
        losses = torch.stack(self.losses).double()
        sizes = torch.tensor(self.sizes, dtype=torch.float64, device=losses.device)
        self._fold()
        correct = (torch.cat(self.preds) == torch.cat(self.ys)).sum()
        return {"loss": (losses * sizes).sum().item() / n, "acc": correct.item() / n}


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
