"""The epoch loop shared by every built-in trainable (plain torch, no Ray): one `fit` for
classification and regression (the task says what differs, trainables/tasks.py), the per-epoch
bookkeeping in trainables/epochs.py.

Data arrive as an in-memory :class:`hpo.data.ArrayDataset`; batches are index slices of tensors
built once per worker process (not a DataLoader of PIL images). Each epoch reports one metrics
dict; ``test_loss``/``test_acc`` are those of the best validation epoch so far, so the last report
of a trial, however it ended, carries the test metrics of its best-val epoch.
"""

from __future__ import annotations

import contextlib
import copy
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from hpo.contract import Reporter, Settings, data_seed
from hpo.data.base import ArrayDataset
from hpo.trainables.epochs import EpochBook
from hpo.trainables.optim import make_optimizer, set_hyperparams
from hpo.trainables.tasks import TASKS, Task

__all__ = ["Reporter", "Tensors", "evaluate", "fit", "run_classifier", "run_trial", "time_epoch"]


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


def channels_last(shape: tuple[int, ...], dev: torch.device) -> bool:
    """Whether a built-in model's (C, H, W) image batches train in channels-last layout: on
    the CPU oneDNN's convolutions run the `cnn`'s training step ~1.3x and its evaluation ~2x as
    fast so (benchmarks/throughput.py). Not on CUDA (not measured), and not for a user's own
    model, whose code may `.view()` a convolution's output, which channels-last refuses."""
    return len(shape) == 3 and dev.type == "cpu"


def to_tensors(ds: ArrayDataset, shape: tuple[int, ...], key: Any = None, *,
               last: bool = False) -> Tensors:
    """Normalized float tensors of shape (N, *shape), cached per process under `key`;
    images in channels-last layout with `last`.

    With Ray's actor reuse a worker runs many trials; converting 60k images once per worker
    instead of once per trial saves a fraction of a second per trial.
    """
    dev = device()
    ck = (key, shape, str(dev), last)
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
        t = t.reshape(len(a), *shape).to(dev)
        return t.contiguous(memory_format=torch.channels_last) if last else t

    def y(a: Any) -> torch.Tensor:  # class indices, or float targets (regression: no classes)
        return torch.from_numpy(a.astype(np.int64 if ds.n_classes else np.float32)).to(dev)

    t = Tensors(x(ds.x_train), y(ds.y_train), x(ds.x_val), y(ds.y_val), x(ds.x_test), y(ds.y_test))
    if key is not None:
        _CACHE.clear()
        _CACHE[ck] = t
    return t


def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, chunk: int = 2048) -> tuple[float, float]:
    """(mean cross-entropy, accuracy) in eval mode."""
    r = TASKS["classification"].evaluate(model, x, y)
    return r["loss"], r["acc"]


def l1_penalty(model: nn.Module, lam: float) -> torch.Tensor:
    return lam * sum(p.abs().sum() for p in model.parameters() if p.requires_grad)


def materialize(model: nn.Module, example: torch.Tensor) -> None:
    """Give lazy layers (nn.LazyLinear, nn.LazyConv2d, ...) their shapes by one forward pass of
    `example` (eval mode, no grad), before an optimizer sees the parameters. Their weights are
    drawn from the global RNG here, right after the model is built, as in any of its trials."""
    from torch.nn.parameter import is_lazy

    if any(is_lazy(p) for p in model.parameters()):
        model.eval()
        with torch.no_grad():
            model(example)
        model.train()


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


def fit(model: nn.Module, opt: torch.optim.Optimizer, data: Tensors, cfg: Any, task: Task,
        settings: Settings, report: Reporter, state: dict[str, Any] | None = None,
        augment: Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None = None,
        artifacts: Callable[[nn.Module], dict[str, list[float]]] | None = None) -> None:
    """Train for settings.max_epochs epochs, reporting once per epoch (bookkeeping: EpochBook).

    A NaN/inf loss ends the trial as diverged. `artifacts(model)`: list-valued results of the
    best-validation model (e.g. predictions on a grid), reported now and then (see EpochBook).
    """
    book = EpochBook(settings, task.metrics, state)
    best_weights: dict[str, torch.Tensor] = {}  # the best-validation model, kept in checkpoints
    if state is not None:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        set_hyperparams(opt, cfg)  # PBT may have changed them since the checkpoint
        best_weights = dict(state.get("best_model") or {})
    if book.finished:
        return
    extra = {"n_params": count_params(model)}
    l1 = cfg.weight_decay if cfg.reg_type == "l1" and cfg.weight_decay > 0 else 0.0
    n, bs = len(data.y_train), min(cfg.batch_size, len(data.y_train))
    gen = torch.Generator()

    def keep() -> None:  # the selection metric improved: these are the best weights
        best_weights.clear()
        best_weights.update({k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()})

    def test_now() -> dict[str, Any]:  # (every improvement) keep and test the current model
        keep()
        out = {f"test_{k}": v for k, v in task.evaluate(model, data.x_test, data.y_test).items()}
        return {**out, **(artifacts(model) if artifacts else {})}

    def test_best() -> dict[str, Any]:  # (test epochs only) the kept best weights
        best = model
        if book.best["best_epoch"] != book.epoch:  # weights have moved on since: a scratch copy
            best = copy.deepcopy(model)
            best.load_state_dict(best_weights)
        return {f"test_{k}": v for k, v in task.evaluate(best, data.x_test, data.y_test).items()}

    # artifacts (a regression's predictions on a grid) follow the best model as it improves
    lazy = settings.test_epochs is not None and artifacts is None
    # each step's batch is gathered into this one buffer: a fresh multi-megabyte tensor per step
    # costs the allocator (and page faults) more than the gather itself; 4-10% of an `mlp` epoch
    xbuf = torch.empty_like(data.x_train[:bs])  # in the data's layout (channels-last or not)

    for epoch in book.epochs():
        t0 = time.perf_counter()
        model.train()
        gen.manual_seed(data_seed(cfg.seed, epoch))  # same data order for the same seed
        perm = torch.randperm(n, generator=gen).to(data.x_train.device)
        sums = task.sums(data.x_train.device) if task.sums else None
        for i in range(0, n, bs):
            idx = perm[i : i + bs]
            xb, yb = torch.index_select(data.x_train, 0, idx, out=xbuf[: len(idx)]), data.y_train[idx]
            if augment is not None:
                xb = augment(xb, gen)
            out = model(xb)
            loss = task.loss(out, yb)
            total = loss + l1_penalty(model, l1) if l1 else loss
            opt.zero_grad(set_to_none=True)
            total.backward()
            opt.step()
            if sums is not None:
                sums.add(out, yb, loss)
        train = sums.metrics(n) if sums is not None else task.evaluate(model, data.x_train, data.y_train)
        val = task.evaluate(model, data.x_val, data.y_val)
        metrics = {**{f"train_{k}": v for k, v in train.items()}, **{f"val_{k}": v for k, v in val.items()}}
        m, ends = (book.end_epoch(epoch, metrics, test_best, extra, keep=keep) if lazy
                   else book.end_epoch(epoch, metrics, test_now, extra))
        m["epoch_time_s"] = time.perf_counter() - t0
        report(m, None if m["diverged"] else checkpoint_state(model, opt, book, best_weights))
        if ends:
            return


def checkpoint_state(model: nn.Module, opt: torch.optim.Optimizer, book: EpochBook,
                     best_weights: dict[str, torch.Tensor]) -> Callable[[], dict[str, Any]]:
    """The state a checkpoint of this epoch holds, built only if the caller saves one: the
    model and optimizer to resume from, the book, and the best-validation weights so far."""
    return lambda: {"model": model.state_dict(), "optimizer": opt.state_dict(), **book.state(),
                    "best_model": dict(best_weights)}


def run_trial(cfg: Any, tensors: Callable[[], Tensors], build: Callable[[], nn.Module], n_params: int | None,
              task: Task, settings: Settings, report: Reporter, state: dict[str, Any] | None = None,
              last: bool = False, **fit_kwargs: Any) -> None:
    """Seed, get the data as tensors, build the model on the trial's device (in channels-last
    layout with `last`, the data's layout), train. An allocator failure becomes a
    TrialOutOfMemory naming the batch size and model size."""
    torch.manual_seed(cfg.seed)
    data = tensors()
    try:
        model = build().to(device())
        if last:
            model = model.to(memory_format=torch.channels_last)
        materialize(model, data.x_train[:1])
        trained = [p for p in model.parameters() if p.requires_grad]  # frozen layers stay as they are
        fit(model, make_optimizer(trained, cfg), data, cfg, task, settings, report, state, **fit_kwargs)
    except Exception as e:
        if is_oom(e):
            raise oom_error(e, cfg.batch_size, n_params) from e
        raise


def run_classifier(cfg: Any, data: ArrayDataset, shape: tuple[int, ...], build: Callable[[], nn.Module],
                   n_params: int, settings: Settings, report: Reporter,
                   state: dict[str, Any] | None = None,
                   augment: Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None = None) -> None:
    """run_trial for a built-in classifier on normalized image tensors, converted once per
    worker (images in channels-last layout where that is faster: `channels_last`)."""
    last = channels_last(shape, device())
    run_trial(cfg, lambda: to_tensors(data, shape, key=settings.data_key, last=last), build, n_params,
              TASKS["classification"], settings, report, state, last=last, augment=augment)


def time_epoch(cfg: Any, build: Callable[[], nn.Module], shape: tuple[int, ...], n_classes: int,
               sizes: dict[str, int], threads: int = 1, task: str = "classification",
               builtin: bool = False) -> float:
    """Seconds per epoch estimated from a few timed training steps on one random batch
    (`builtin`: a built-in model, in the layout its trial trains in)."""
    last = builtin and channels_last(shape, torch.device("cpu"))
    t = TASKS[task]
    bs = min(cfg.batch_size, sizes["train"])
    with torch_threads(threads):  # the caller's (`hpo plan` from Python, a notebook) come back
        model = build()
        x, y = t.random_batch(bs, shape, n_classes)
        if last:  # channels-last, as a built-in model's trial trains on this CPU (`channels_last`)
            fmt = torch.channels_last
            model, x = model.to(memory_format=fmt), x.contiguous(memory_format=fmt)
        materialize(model, x[:1])
        opt = make_optimizer(model.parameters(), cfg)
        times = []
        for _ in range(4):  # the first is warm-up
            t0 = time.perf_counter()
            loss = t.loss(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            times.append(time.perf_counter() - t0)
    step = min(times[1:])
    steps = math.ceil(sizes["train"] / bs)
    return steps * step + step / 3 * (sizes["val"] + sizes["test"]) / bs  # eval: forward only


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """torch on `n` intra-op threads (at least 1) within; the previous count after."""
    old = torch.get_num_threads()
    torch.set_num_threads(max(1, n))
    try:
        yield
    finally:
        torch.set_num_threads(old)
