"""`regression`: a fully connected regressor for the synthetic `regression2d` dataset.

Trains on the first ``m`` points of the dataset's training pool (so the study "m = 100 vs 1000"
is one searched parameter) with the shared epoch loop, reports train/val/test MSE each epoch,
and, every tenth of the run and at its end, the best-val model's predictions on the test grid
(``surface``), which the collector keeps as the artifact the report draws next to the truth.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, PositiveInt

from hpo.contract import Reporter, Settings
from hpo.data.base import ArrayDataset
from hpo.trainables.config import TrainConfig
from hpo.trainables.metrics import REGRESSION_METRICS

METRICS = REGRESSION_METRICS
TASKS = ("regression",)
POOL = 10_000  # hpo.data.synthetic.POOL, repeated so checking a spec needs no data module


class Config(TrainConfig):
    lr: float = Field(0.01, gt=0)
    optimizer: Literal["sgd", "adam", "adagrad", "rmsprop"] = "adam"
    activation: Literal["relu", "sigmoid", "tanh"] = "tanh"
    batch_size: PositiveInt = 32
    hidden: list[PositiveInt] = Field(default_factory=lambda: [32, 32], description="layer widths")
    m: int = Field(100, ge=2, le=POOL, description="training points (the first m of the pool)")


def build_model(cfg: Config) -> Any:
    from hpo.trainables.mlp import build_model as mlp

    return mlp(cfg, 2, 1)  # type: ignore[arg-type]  # same fields: hidden, activation, ...


def param_count(cfg: Config) -> int:
    widths = [2, *cfg.hidden, 1]
    return sum(a * b + b for a, b in zip(widths, widths[1:], strict=False)) + (
        2 * sum(cfg.hidden) if cfg.batch_norm else 0)


def train(config: dict[str, Any], data: ArrayDataset, settings: Settings,
          report: Reporter, state: dict[str, Any] | None = None) -> None:
    import numpy as np
    import torch

    from hpo.trainables.loop import Tensors, device, run_trial
    from hpo.trainables.tasks import TASKS

    cfg = Config.model_validate(config)
    if cfg.m > len(data.y_train):
        raise ValueError(f"m={cfg.m} but the training pool has {len(data.y_train)} points")

    def t(a: Any) -> torch.Tensor:
        return torch.from_numpy(np.array(a, dtype=np.float32)).to(device())  # a writable copy

    def tensors() -> Tensors:
        return Tensors(t(data.x_train[: cfg.m]), t(data.y_train[: cfg.m]), t(data.x_val), t(data.y_val),
                       t(data.x_test), t(data.y_test))

    def surface(model: Any) -> dict[str, list[float]]:
        """Predictions of the model on the test grid (the best-val model's, when reported)."""
        x_test = t(data.x_test)
        with torch.no_grad():
            model.eval()
            pred = model(x_test).squeeze(1)
        return {"surface": [round(float(v), 5) for v in pred.cpu()]}

    run_trial(cfg, tensors, lambda: build_model(cfg), param_count(cfg), TASKS["regression"], settings,
              report, state, artifacts=surface)


def estimate_epoch_s(config: dict[str, Any], input_shape: tuple[int, ...], n_classes: int,
                     sizes: dict[str, int], threads: int = 1) -> float:
    """Seconds per epoch from timing a few steps (used by `hpo plan`)."""
    from hpo.trainables.loop import time_epoch

    cfg = Config.model_validate(config)
    return time_epoch(cfg, lambda: build_model(cfg), (2,), 1, {**sizes, "train": cfg.m}, threads,
                      task="regression")


def make_model(config: dict[str, Any], example_shape: tuple[int, ...], n_classes: int) -> Any:
    """The network a trial with `config` trained, untrained (to load saved weights into)."""
    return build_model(Config.model_validate(config))
