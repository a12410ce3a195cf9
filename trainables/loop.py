"""The epoch loop shared by the classification trainables (plain torch, no Ray).

Data arrive as an in-memory :class:`hpo.data.ArrayDataset`; batches are index slices of tensors
built once per worker process (not a DataLoader of PIL images). Each epoch reports one metrics
dict; ``test_loss``/``test_acc`` are those of the best validation epoch so far, so the last report
of a trial, however it ended, carries the test metrics of its best-val epoch.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from hpo.data.base import ArrayDataset
from trainables.early_stop import EarlyStopping
from trainables.metrics import CLASSIFICATION_METRICS

# report(metrics, state_fn): state_fn builds the checkpoint state only if the caller saves one
Reporter = Callable[[dict[str, Any], Callable[[], dict[str, Any]] | None], None]


@dataclass
class Tensors:
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor


_CACHE: dict[Any, Tensors] = {}


def device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def to_tensors(ds: ArrayDataset, shape: tuple[int, ...], key: Any = None) -> Tensors:
    """Normalized float tensors of shape (N, *shape), cached per process under `key`.

    With Ray's actor reuse a worker runs many trials; converting 60k images once per worker
    instead of once per trial saves a fraction of a second per trial.
    """
    dev = device()
    ck = (key, shape, str(dev))
    if key is not None and ck in _CACHE:
        return _CACHE[ck]

    per_channel = isinstance(ds.mean, (tuple, list))

    def x(a: Any) -> torch.Tensor:
        t = torch.from_numpy(a.astype(np.float32)) / ds.scale  # a copy: writable
        if per_channel:  # (N, C, ...) images: one mean/std per channel
            view = (1, -1) + (1,) * (t.dim() - 2)
            t = (t - torch.tensor(ds.mean).view(view)) / torch.tensor(ds.std).view(view)
        else:
            t = (t - ds.mean) / ds.std
        return t.reshape(len(a), *shape).to(dev)

    def y(a: Any) -> torch.Tensor:
        return torch.from_numpy(a.astype(np.int64)).to(dev)

    t = Tensors(x(ds.x_train), y(ds.y_train), x(ds.x_val), y(ds.y_val), x(ds.x_test), y(ds.y_test))
    if key is not None:
        _CACHE.clear()
        _CACHE[ck] = t
    return t


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, chunk: int = 2048) -> tuple[float, float]:
    """(mean cross-entropy, accuracy) in eval mode."""
    model.eval()
    loss = torch.zeros((), device=x.device)
    correct = torch.zeros((), device=x.device, dtype=torch.long)
    for i in range(0, len(y), chunk):
        out = model(x[i : i + chunk])
        loss += F.cross_entropy(out, y[i : i + chunk], reduction="sum")
        correct += (out.argmax(1) == y[i : i + chunk]).sum()
    n = max(len(y), 1)
    return loss.item() / n, correct.item() / n


def l1_penalty(model: nn.Module, lam: float) -> torch.Tensor:
    return lam * sum(p.abs().sum() for p in model.parameters() if p.requires_grad)


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


class TrialOutOfMemory(MemoryError):
    """Raised instead of a bare allocator error, with what the user needs to fix it.
    (One string argument only: Ray pickles the exception to the driver.)"""


def oom_error(err: BaseException, batch_size: int, n_params: int | None) -> TrialOutOfMemory:
    size = (f"{n_params:,} parameters ({n_params * 4 / 1e6:,.0f} MB of float32)"
            if n_params else "of unknown size")
    return TrialOutOfMemory(
        f"out of memory: batch_size={batch_size}, model {size}; lower batch_size or the model "
        f"size, or give the trial more memory ({type(err).__name__}: {str(err).splitlines()[0][:200]})")


def is_oom(err: BaseException) -> bool:
    text = str(err).lower()
    return isinstance(err, (MemoryError, torch.OutOfMemoryError)) or (
        isinstance(err, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text
                                           or "not enough memory" in text))


def fit_classifier(
    model: nn.Module,
    opt: torch.optim.Optimizer,
    data: Tensors,
    cfg: Any,
    settings: dict[str, Any],
    report: Reporter,
    state: dict[str, Any] | None = None,
    augment: Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None = None,
) -> None:
    """Train for settings["max_epochs"] epochs, reporting once per epoch.

    Stops early, reporting ``diverged=True``, when a loss becomes NaN/inf; the losses are then
    reported as +inf so a model-based searcher sees the worst value, never NaN.
    """
    select = settings.get("select", "val_acc")
    sign = 1.0 if CLASSIFICATION_METRICS.get(select, "max") == "max" else -1.0
    best: dict[str, float] = {"score": -math.inf, "test_loss": math.nan, "test_acc": math.nan}
    start = 0
    if state is not None:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        from trainables.optim import set_hyperparams

        set_hyperparams(opt, cfg)  # PBT may have changed them since the checkpoint
        best, start = dict(state["best"]), int(state["epoch"])
    stopper = EarlyStopping.from_settings(settings, sign, (state or {}).get("early_stopping"))
    if stopper is not None and stopper.bad_epochs >= stopper.patience:
        return  # restored from the checkpoint of its early stop: it has finished
    n_params = count_params(model)
    l1 = cfg.weight_decay if cfg.reg_type == "l1" and cfg.weight_decay > 0 else 0.0
    n, bs = len(data.y_train), min(cfg.batch_size, len(data.y_train))
    gen = torch.Generator()

    for epoch in range(start, settings["max_epochs"]):
        t0 = time.perf_counter()
        model.train()
        gen.manual_seed(cfg.seed * 100_003 + epoch)  # same data order for the same seed
        perm = torch.randperm(n, generator=gen).to(data.x_train.device)
        loss_sum = torch.zeros((), device=data.x_train.device)
        correct = torch.zeros((), device=data.x_train.device, dtype=torch.long)
        for i in range(0, n, bs):
            idx = perm[i : i + bs]
            xb, yb = data.x_train[idx], data.y_train[idx]
            if augment is not None:
                xb = augment(xb, gen)
            out = model(xb)
            loss = F.cross_entropy(out, yb)
            total = loss + l1_penalty(model, l1) if l1 else loss
            opt.zero_grad(set_to_none=True)
            total.backward()
            opt.step()
            loss_sum += loss.detach() * len(idx)
            correct += (out.argmax(1) == yb).sum()
        train_loss, train_acc = loss_sum.item() / n, correct.item() / n
        val_loss, val_acc = evaluate(model, data.x_val, data.y_val)
        diverged = not (math.isfinite(train_loss) and math.isfinite(val_loss))
        m = {"train_loss": train_loss, "train_acc": train_acc, "val_loss": val_loss, "val_acc": val_acc}
        if not diverged and sign * m[select] > best["score"]:
            best["score"] = sign * m[select]
            best["test_loss"], best["test_acc"] = evaluate(model, data.x_test, data.y_test)
            best["best_epoch"] = epoch + 1
        if diverged:  # the searcher must see the worst value, never NaN
            m.update(train_loss=math.inf, val_loss=math.inf, train_acc=0.0, val_acc=0.0)
        m.update(
            epoch=epoch + 1,
            epoch_time_s=time.perf_counter() - t0,
            test_loss=best["test_loss"],
            test_acc=best["test_acc"],
            best_epoch=best.get("best_epoch", 0),
            diverged=diverged,
            n_params=n_params,
        )
        stop = stopper is not None and stopper.end_epoch(m, select)
        report(m, None if diverged else checkpoint_state(model, opt, epoch + 1, best, stopper))
        if diverged or stop:
            return


def checkpoint_state(model: nn.Module, opt: torch.optim.Optimizer, epoch: int, best: dict[str, Any],
                     stopper: EarlyStopping | None) -> Callable[[], dict[str, Any]]:
    """The state a checkpoint of this epoch holds, built only if the caller saves one."""
    return lambda: {"model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": epoch,
                    "best": best, "early_stopping": stopper.state() if stopper else None}


def run_classifier(cfg: Any, data: ArrayDataset, shape: tuple[int, ...], build: Callable[[], nn.Module],
                   n_params: int, settings: dict[str, Any], report: Reporter,
                   state: dict[str, Any] | None = None,
                   augment: Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None = None) -> None:
    """Seed, convert the data once per worker, build the model on the trial's device, train.
    An allocator failure becomes a TrialOutOfMemory naming the batch size and model size."""
    from trainables.optim import make_optimizer

    torch.manual_seed(cfg.seed)
    tensors = to_tensors(data, shape, key=settings.get("data_key"))
    try:
        model = build().to(device())
        trained = [p for p in model.parameters() if p.requires_grad]  # frozen layers stay as they are
        fit_classifier(model, make_optimizer(trained, cfg), tensors, cfg, settings, report, state,
                       augment)
    except Exception as e:
        if is_oom(e):
            raise oom_error(e, cfg.batch_size, n_params) from e
        raise


def time_epoch(cfg: Any, build: Callable[[], nn.Module], shape: tuple[int, ...], n_classes: int,
               sizes: dict[str, int], threads: int = 1) -> float:
    """Seconds per epoch estimated from a few timed training steps on one random batch."""
    from trainables.optim import make_optimizer

    torch.set_num_threads(threads)
    bs = min(cfg.batch_size, sizes["train"])
    model = build()
    opt = make_optimizer(model.parameters(), cfg)
    x, y = torch.randn(bs, *shape), torch.randint(0, n_classes, (bs,))
    times = []
    for _ in range(4):  # the first is warm-up
        t0 = time.perf_counter()
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - t0)
    step = min(times[1:])
    steps = math.ceil(sizes["train"] / bs)
    return steps * step + step / 3 * (sizes["val"] + sizes["test"]) / bs  # eval: forward only
