"""`regression`: a fully connected regressor for the synthetic `regression2d` dataset.

Trains on the first ``m`` points of the dataset's training pool (so the study "m = 100 vs 1000"
is one searched parameter), reports train/val/test MSE each epoch, and, every tenth of the run
and at its end, the best-val model's predictions on the test grid (``surface``), from which the
report draws the 3-D surface next to the truth.
"""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, PositiveInt

from hpo.data.base import ArrayDataset
from trainables.config import TrainConfig

if TYPE_CHECKING:
    from trainables.loop import Reporter

METRICS = {"train_mse": "min", "val_mse": "min", "test_mse": "min", "epoch_time_s": "min"}
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
    from trainables.mlp import build_model as mlp

    return mlp(cfg, 2, 1)  # type: ignore[arg-type]  # same fields: hidden, activation, ...


def param_count(cfg: Config) -> int:
    widths = [2, *cfg.hidden, 1]
    return sum(a * b + b for a, b in zip(widths, widths[1:], strict=False)) + (
        2 * sum(cfg.hidden) if cfg.batch_norm else 0)


def train(config: dict[str, Any], data: ArrayDataset, settings: dict[str, Any],
          report: Reporter, state: dict[str, Any] | None = None) -> None:
    import numpy as np
    import torch
    import torch.nn.functional as F

    from trainables.early_stop import EarlyStopping
    from trainables.loop import checkpoint_state, device, l1_penalty
    from trainables.optim import make_optimizer, set_hyperparams

    cfg = Config.model_validate(config)
    if cfg.m > len(data.y_train):
        raise ValueError(f"m={cfg.m} but the training pool has {len(data.y_train)} points")
    torch.manual_seed(cfg.seed)
    dev = device()

    def t(a: Any) -> torch.Tensor:
        return torch.from_numpy(np.array(a, dtype=np.float32)).to(dev)  # a writable copy

    x, y = t(data.x_train[: cfg.m]), t(data.y_train[: cfg.m])
    x_val, y_val, x_test, y_test = t(data.x_val), t(data.y_val), t(data.x_test), t(data.y_test)
    model = build_model(cfg).to(dev)
    opt = make_optimizer(model.parameters(), cfg)
    select = settings.get("select", "val_mse")
    sign = 1.0 if METRICS.get(select, "min") == "max" else -1.0
    best: dict[str, Any] = {"score": -math.inf, "test_mse": math.nan, "best_epoch": 0, "pred": None}
    start = 0
    if state is not None:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        set_hyperparams(opt, cfg)
        best, start = dict(state["best"]), int(state["epoch"])
    stopper = EarlyStopping.from_settings(settings, sign, (state or {}).get("early_stopping"))
    if stopper is not None and stopper.bad_epochs >= stopper.patience:
        return
    max_epochs = int(settings["max_epochs"])
    every = max(1, max_epochs // 10)
    l1 = cfg.weight_decay if cfg.reg_type == "l1" and cfg.weight_decay > 0 else 0.0
    bs = min(cfg.batch_size, cfg.m)
    gen = torch.Generator()

    @torch.no_grad()
    def mse(xx: torch.Tensor, yy: torch.Tensor) -> tuple[float, torch.Tensor]:
        model.eval()
        pred = model(xx).squeeze(1)
        return F.mse_loss(pred, yy).item(), pred

    for epoch in range(start, max_epochs):
        t0 = time.perf_counter()
        model.train()
        gen.manual_seed(cfg.seed * 100_003 + epoch)
        perm = torch.randperm(cfg.m, generator=gen).to(dev)
        for i in range(0, cfg.m, bs):
            idx = perm[i : i + bs]
            loss = F.mse_loss(model(x[idx]).squeeze(1), y[idx])
            total = loss + l1_penalty(model, l1) if l1 else loss
            opt.zero_grad(set_to_none=True)
            total.backward()
            opt.step()
        train_mse, _ = mse(x, y)
        val_mse, _ = mse(x_val, y_val)
        diverged = not (math.isfinite(train_mse) and math.isfinite(val_mse))
        m: dict[str, Any] = {"train_mse": train_mse, "val_mse": val_mse}
        if not diverged and sign * m[select] > best["score"]:
            best["score"] = sign * m[select]
            best["test_mse"], pred = mse(x_test, y_test)
            best["pred"] = [round(float(v), 5) for v in pred.cpu()]
            best["best_epoch"] = epoch + 1
        if diverged:
            m.update(train_mse=math.inf, val_mse=math.inf)
        m.update(epoch=epoch + 1, epoch_time_s=time.perf_counter() - t0, test_mse=best["test_mse"],
                 best_epoch=best["best_epoch"], diverged=diverged, n_params=param_count(cfg))
        stop = stopper is not None and stopper.end_epoch(m, select)
        if best["pred"] is not None and (stop or (epoch + 1) % every == 0 or epoch + 1 == max_epochs):
            m["surface"] = best["pred"]  # predictions of the best-val model on the test grid
        report(m, None if diverged else checkpoint_state(model, opt, epoch + 1, best, stopper))
        if diverged or stop:
            return


def estimate_epoch_s(config: dict[str, Any], input_shape: tuple[int, ...], n_classes: int,
                     sizes: dict[str, int], threads: int = 1) -> float:
    """Seconds per epoch from timing a few steps (used by `hpo plan`)."""
    import torch
    import torch.nn.functional as F

    from trainables.optim import make_optimizer

    torch.set_num_threads(threads)
    cfg = Config.model_validate(config)
    model = build_model(cfg)
    opt = make_optimizer(model.parameters(), cfg)
    bs = min(cfg.batch_size, cfg.m)
    xb, yb = torch.randn(bs, 2), torch.randn(bs)
    times = []
    for _ in range(6):
        t0 = time.perf_counter()
        loss = F.mse_loss(model(xb).squeeze(1), yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - t0)
    return math.ceil(cfg.m / bs) * min(times[1:]) + 0.005  # + evaluation and Ray's report
