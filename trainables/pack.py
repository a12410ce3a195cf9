"""Trial packing: train many configurations of one shape as one vectorized model.

Members share everything that fixes tensor shapes and the code path (for the `mlp`: hidden
widths, batch size, activation, optimizer type, dataset); everything else is a per-member
tensor: learning rate, momentum / nesterov, weight decay, L1 or L2, dropout rate, seed (initial
weights, data order and dropout masks). Two packed models share one training loop
(`train_pack`) and one optimizer (`PackedOptim`, torch.optim's rules with per-member tensors):
`PackedMLP` here, hand-written (weights stacked (P, in, out), every layer one batched matmul),
and `FuncPack` (trainables/func_pack.py) for any nn.Module through torch.func.

Each member reproduces the ordinary trial with the same config: the same initial weights
(each member's model is built after torch.manual_seed(seed), as the trial does), the same data
order (its own randperm generator, which also draws its augmentation), the same dropout masks
(`PackedMLP`: a generator continuing the global RNG stream where the model init left it), and
torch.optim's update rules. A member that diverges, stops early or is cut by successive halving
is removed from the stacked tensors at the end of the epoch (the pack shrinks, so its compute
is released); the others go on untouched. No Ray here: `train_pack` reports one dict per epoch
with every member's metrics.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import torch
import torch.nn.functional as F

from hpo.contract import Settings, data_seed, rungs
from hpo.trainables import mlp
from hpo.trainables.epochs import EpochBook
from hpo.trainables.loop import Tensors, device, is_oom, oom_error, to_tensors
from hpo.trainables.tasks import TASKS


class PackedOptim:
    """Per-member hyperparameters as tensors and torch.optim's update of stacked parameters
    (`self.params`: tensors of shape (P, ...), one row per member)."""

    params: list[torch.Tensor]
    n_params: int  # of one member, as an ordinary trial counts its model's
    eval_chunk = 2048
    augment: Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None = None

    def __init__(self, cfgs: list[Any], dev: torch.device) -> None:
        def col(values: list[float]) -> torch.Tensor:
            return torch.tensor(values, dtype=torch.float32, device=dev)

        self.cfgs = cfgs  # the members still in the pack
        self.update = PACKED_UPDATES[cfgs[0].optimizer]
        self.lr = col([c.lr for c in cfgs])
        self.momentum = col([c.momentum for c in cfgs])
        self.nesterov = torch.tensor([c.nesterov for c in cfgs], device=dev)
        self.l2 = col([c.weight_decay if c.reg_type == "l2" else 0.0 for c in cfgs])
        self.l1 = col([c.weight_decay if c.reg_type == "l1" else 0.0 for c in cfgs])
        self._flags()
        self.state: dict[str, list[torch.Tensor]] = {}
        self.step_count = 0

    def _flags(self) -> None:
        # skip the work no member needs (each elementwise pass over the stacked weights costs)
        self.any_l2 = bool((self.l2 > 0).any())
        self.any_l1 = bool((self.l1 > 0).any())
        self.any_momentum = bool((self.momentum > 0).any())
        self.all_nesterov = bool(self.nesterov.all())
        self.any_nesterov = bool(self.nesterov.any())

    @property
    def size(self) -> int:
        return self.params[0].shape[0]

    def l1_penalty(self) -> torch.Tensor:
        return sum((self.l1.view(-1, *[1] * (p.dim() - 1)) * p.abs()).flatten(1).sum(1)
                   for p in self.params).sum()

    @torch.no_grad()
    def step(self) -> None:
        """One update of every member, following torch.optim's rules for its optimizer."""
        self.step_count += 1
        for k, p in enumerate(self.params):
            view = (-1,) + (1,) * (p.dim() - 1)
            g = p.grad
            if self.any_l2:
                g.addcmul_(self.l2.view(view), p)  # L2 through weight decay: grad + wd * p
            self.update(self, k, p, g, view)
            p.grad = None

    def _state(self, name: str, k: int, p: torch.Tensor) -> torch.Tensor:
        if name not in self.state:  # (not setdefault: that would build the zeros every call)
            self.state[name] = [torch.zeros_like(q) for q in self.params]
        return self.state[name][k]

    def snapshot(self) -> dict[str, Any]:
        """Everything training changes (weights, optimizer buffers and step), on the CPU."""
        return {"params": [p.detach().cpu().clone() for p in self.params],
                "state": {k: [b.cpu().clone() for b in bufs] for k, bufs in self.state.items()},
                "step_count": self.step_count}

    def restore(self, snap: dict[str, Any]) -> None:
        """Continue from `snapshot()` of a pack with the same members (after keep_only)."""
        dev = self.params[0].device
        self.params = [p.to(dev).requires_grad_() for p in snap["params"]]
        self.state = {k: [b.to(dev) for b in bufs] for k, bufs in snap["state"].items()}
        self.step_count = int(snap["step_count"])

    def keep_only(self, idx: list[int]) -> None:
        """Drop every member not in `idx` (positions in the current pack)."""
        sel = torch.tensor(idx, device=self.params[0].device)
        self.params = [p.detach()[sel].clone().requires_grad_() for p in self.params]
        for name, bufs in self.state.items():
            self.state[name] = [b[sel].clone() for b in bufs]
        for attr in ("lr", "momentum", "nesterov", "l2", "l1"):
            setattr(self, attr, getattr(self, attr)[sel])
        self.cfgs = [self.cfgs[i] for i in idx]
        self._flags()


class PackedMLP(PackedOptim):
    """P stacked `mlp`s with per-member hyperparameters and dropout streams."""

    def __init__(self, cfgs: list[mlp.Config], in_features: int, n_classes: int,
                 dev: torch.device) -> None:
        super().__init__(cfgs, dev)
        self.in_features, self.n_classes = in_features, n_classes
        self.act = getattr(torch, cfgs[0].activation)  # torch.relu / tanh / sigmoid: the same names
        ws: list[list[torch.Tensor]] = []
        self.gens: list[torch.Generator] = []
        for c in cfgs:
            torch.manual_seed(c.seed)  # exactly what `mlp` does before building its model
            model = mlp.build_model(c, in_features, n_classes)
            g = torch.Generator()
            g.set_state(torch.get_rng_state())  # dropout masks continue the same stream
            self.gens.append(g)
            ws.append([p.detach().clone() for p in model.parameters()])
        # params: per layer a weight (P, in, out) (nn.Linear's weight transposed, so the batched
        # matmul needs no transposed copy) and a bias (P, out)
        self.params = [torch.stack([w[k].t() if w[k].dim() == 2 else w[k] for w in ws])
                       .contiguous().to(dev).requires_grad_() for k in range(len(ws[0]))]
        self.n_params = mlp.param_count(cfgs[0], in_features, n_classes)
        self.keep = torch.tensor([1.0 - c.dropout for c in cfgs], dtype=torch.float32, device=dev)
        self.has_dropout = any(c.dropout > 0 for c in cfgs)

    def forward(self, x: torch.Tensor, train: bool) -> torch.Tensor:
        """x: (P, B, in) or (B, in) shared by all members -> logits (P, B, classes)."""
        n = len(self.params) // 2
        for i in range(n):
            w, b = self.params[2 * i], self.params[2 * i + 1]
            if x.dim() == 2:  # a batch shared by all members (evaluation): one wide matmul
                p_, i_, o_ = w.shape
                x = (x @ w.permute(1, 0, 2).reshape(i_, p_ * o_)).view(-1, p_, o_).transpose(0, 1)
                x = x + b.unsqueeze(1)
            else:
                x = torch.baddbmm(b.unsqueeze(1), x, w)
            if i < n - 1:
                x = self.act(x)
                if train and self.has_dropout:
                    x = x * self._masks(x.shape[1:])
        return x

    def _masks(self, shape: torch.Size) -> torch.Tensor:
        # one mask per member from its own generator, as F.dropout would draw it
        ms = [torch.empty(shape).bernoulli_(float(k), generator=g) / k if k < 1 else torch.ones(shape)
              for k, g in zip(self.keep.tolist(), self.gens, strict=True)]
        return torch.stack(ms).to(self.params[0].device)

    def snapshot(self) -> dict[str, Any]:
        return {**super().snapshot(), "gens": [g.get_state() for g in self.gens]}

    def restore(self, snap: dict[str, Any]) -> None:
        super().restore(snap)
        for g, st in zip(self.gens, snap["gens"], strict=True):
            g.set_state(st)

    def keep_only(self, idx: list[int]) -> None:
        super().keep_only(idx)
        self.keep = self.keep[torch.tensor(idx, device=self.keep.device)]
        self.gens = [self.gens[i] for i in idx]

    def member(self, j: int) -> list[torch.Tensor]:
        """Member j's weights (its slice of the stacked ones), on the CPU."""
        return [p[j].detach().to("cpu", copy=True) for p in self.params]

    def state_dict(self, cfg: mlp.Config, weights: list[torch.Tensor]) -> dict[str, Any]:
        """`member()`'s weights as the state_dict of an ordinary `mlp`."""
        net = mlp.build_model(cfg, self.in_features, self.n_classes)
        linears = [m for m in net.modules() if isinstance(m, torch.nn.Linear)]
        with torch.no_grad():
            for layer, (w, b) in zip(linears, zip(weights[::2], weights[1::2], strict=True), strict=True):
                layer.weight.copy_(w.t())  # stacked as (in, out): nn.Linear holds (out, in)
                layer.bias.copy_(b)
        return net.state_dict()

    def build(self, cfg: mlp.Config) -> torch.nn.Module:
        """The ordinary model of one member (to load `state_dict()` into)."""
        return mlp.build_model(cfg, self.in_features, self.n_classes)


def _sgd(pm: PackedOptim, k: int, p: torch.Tensor, g: torch.Tensor, view: tuple[int, ...]) -> None:
    d = g
    if pm.any_momentum:
        mom = pm.momentum.view(view)
        buf = pm._state("buf", k, p)
        buf.mul_(mom).add_(g)  # first step: buf = g (buf starts at 0)
        if pm.all_nesterov:
            d = g.addcmul_(buf, mom)
        elif pm.any_nesterov:
            d = torch.where(pm.nesterov.view(view), g + mom * buf, buf)
        else:
            d = buf
    p.addcmul_(d, pm.lr.view(view), value=-1)


def _adam(pm: PackedOptim, k: int, p: torch.Tensor, g: torch.Tensor, view: tuple[int, ...]) -> None:
    b1, b2, eps, t = 0.9, 0.999, 1e-8, pm.step_count
    m, v = pm._state("m", k, p), pm._state("v", k, p)
    m.lerp_(g, 1 - b1)
    v.mul_(b2).addcmul_(g, g, value=1 - b2)
    bc1, bc2 = 1 - b1**t, 1 - b2**t
    denom = (v.sqrt() / math.sqrt(bc2)).add_(eps)
    p.sub_((pm.lr.view(view) / bc1) * m / denom)


def _adagrad(pm: PackedOptim, k: int, p: torch.Tensor, g: torch.Tensor, view: tuple[int, ...]) -> None:
    s = pm._state("sum", k, p)
    s.addcmul_(g, g)
    p.sub_(pm.lr.view(view) * g / (s.sqrt().add_(1e-10)))


def _rmsprop(pm: PackedOptim, k: int, p: torch.Tensor, g: torch.Tensor, view: tuple[int, ...]) -> None:
    alpha, eps = 0.99, 1e-8
    sq, buf = pm._state("sq", k, p), pm._state("buf", k, p)
    sq.mul_(alpha).addcmul_(g, g, value=1 - alpha)
    buf.mul_(pm.momentum.view(view)).add_(g / (sq.sqrt().add_(eps)))
    p.sub_(pm.lr.view(view) * buf)


# The packed update of each optimizer, keyed by the names of hpo.trainables.optim.OPTIMIZERS
# (torch.optim's rules, with per-member lr / momentum / nesterov as tensors)
PACKED_UPDATES: dict[str, Callable[..., None]] = {
    "sgd": _sgd, "adam": _adam, "adagrad": _adagrad, "rmsprop": _rmsprop}


@torch.no_grad()
def evaluate(model: PackedOptim, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-member (mean cross-entropy, accuracy) on a shared set."""
    p, chunk = model.size, model.eval_chunk
    loss = torch.zeros(p, device=x.device)
    correct = torch.zeros(p, device=x.device, dtype=torch.long)  # counts: exact accuracies
    for i in range(0, len(y), chunk):
        out = model.forward(x[i : i + chunk], train=False)
        yy = y[i : i + chunk].expand(p, -1)
        loss += F.cross_entropy(out.flatten(0, 1), yy.flatten(), reduction="none").view(p, -1).sum(1)
        correct += (out.argmax(2) == yy).sum(1)
    n = max(len(y), 1)
    return loss / n, correct.double() / n


def sha_rungs(grace: int, rf: float, max_epochs: int) -> list[int]:
    """Where a pack halves its members: ASHA's rungs (hpo.contract.rungs) below max_epochs (at
    max_epochs every member ends anyway)."""
    return [r for r in rungs(grace, rf, max_epochs) if r < max_epochs]


def run_pack(configs: list[dict[str, Any]], data: Any, settings: Settings,
             report: Callable[..., None], state: dict[str, Any] | None = None) -> None:
    """The `mlp`'s packed loop (its PACKING.run): `train_pack` with a `PackedMLP`."""
    cfgs = [mlp.Config.model_validate(c) for c in configs]
    n_in = int(data.x_train[0].size)
    tensors = to_tensors(data, (n_in,), key=settings.data_key)
    train_pack(lambda: PackedMLP(cfgs, n_in, data.n_classes, device()), cfgs, tensors, settings,
               report, state, n_params=mlp.param_count(cfgs[0], n_in, data.n_classes))


def train_pack(make: Callable[[], PackedOptim], cfgs: list[Any], tensors: Tensors,
               settings: Settings, report: Callable[..., None],
               state: dict[str, Any] | None = None, n_params: int | None = None) -> None:
    """Train the members `cfgs` together (the packed model `make()` builds) for
    settings.max_epochs epochs.

    report({"epoch", "epoch_time_s", "members": [metrics dict | None per member]}) once per
    epoch; a member's dict is None once it has ended (its last dict says how it ended).
    settings.halving enables successive halving inside the pack; early stopping, divergence and
    the best-epoch test metrics are booked per member as in ordinary trials (EpochBook). The
    last report also hands over each member's best-validation weights as the state_dict of its
    ordinary model (report(row, best_models={member index: state_dict})). Every report also
    offers the pack's checkpoint (report(row, best_models, state_fn)); `state`, a restored one,
    continues the pack where it was: the members still training, their weights, optimizer
    state, random streams and books, so the epochs after it are those of an uninterrupted run.
    An allocator failure names the batch size and the pack's size, as an ordinary trial's does
    (`n_params`: one member's, for a failure while the pack is built).
    """
    model = None
    try:
        model = make()
        _train_pack(model, cfgs, tensors, settings, report, state)
    except Exception as e:
        if is_oom(e):
            n = model.n_params if model is not None else n_params
            raise oom_error(e, cfgs[0].batch_size, n * len(cfgs) if n else None) from e
        raise


def _train_pack(model: PackedOptim, cfgs: list[Any], tensors: Tensors, settings: Settings,
                report: Callable[..., None], state: dict[str, Any] | None = None) -> None:
    halving = settings.halving
    rungs = set(sha_rungs(halving.grace_period, halving.reduction_factor, settings.max_epochs)
                if halving else ())
    metrics = TASKS["classification"].metrics
    P = len(cfgs)  # noqa: N806
    active = list(range(P))  # member ids still training, in pack order
    books = [EpochBook(settings, metrics) for _ in range(P)]
    gens = [torch.Generator() for _ in range(P)]
    best_params: dict[int, list[torch.Tensor]] = {}  # member -> its best weights (model.member)
    n, bs = len(tensors.y_train), min(cfgs[0].batch_size, len(tensors.y_train))
    start = 0
    if state is not None:  # resumed: the pack as it was at its checkpoint
        start, active = int(state["epoch"]), list(state["active"])
        if start >= settings.max_epochs or not active:
            return  # restored from its final checkpoint: nothing is left to train
        model.keep_only(active)  # (member ids are their positions in the full pack)
        model.restore(state["model"])
        books = [EpochBook(settings, metrics, b) for b in state["books"]]
        best_params = state["best_params"]

    for epoch in range(start, settings.max_epochs):
        t0 = time.perf_counter()
        a = len(active)
        train_loss, train_acc = _train_epoch(model, tensors, [cfgs[m] for m in active],
                                             [gens[m] for m in active], epoch, n, bs)
        val_loss, val_acc = (t.tolist() for t in evaluate(model, tensors.x_val, tensors.y_val))
        elapsed = time.perf_counter() - t0
        test = _PackTest(model, tensors)

        def keep_best(j: int, m: int) -> None:  # m (at j) is at its best
            best_params[m] = model.member(j)

        def improved(j: int, m: int, test: _PackTest = test) -> dict[str, float]:
            keep_best(j, m)
            return test.member(j)

        def test_best(m: int) -> dict[str, float]:  # (settings.test_epochs) m's kept best weights
            net = model.build(cfgs[m])
            net.load_state_dict(model.state_dict(cfgs[m], best_params[m]))
            x, y = tensors.x_test, tensors.y_test
            r = TASKS["classification"].evaluate(net.to(x.device), x, y)
            return {"test_loss": r["loss"], "test_acc": r["acc"]}

        reports: list[dict[str, Any] | None] = [None] * P
        ended: set[int] = set()
        for j, m in enumerate(active):
            mt = {"train_loss": train_loss[j], "train_acc": train_acc[j], "val_loss": val_loss[j],
                  "val_acc": val_acc[j]}
            extra = {"n_params": model.n_params, "pack_size": a}
            reports[m], ends = (
                books[m].end_epoch(epoch, mt, partial(test_best, m), extra, keep=partial(keep_best, j, m))
                if settings.test_epochs is not None
                else books[m].end_epoch(epoch, mt, partial(improved, j, m), extra))
            reports[m]["epoch_time_s"] = elapsed / a  # type: ignore[index]
            if ends:
                ended.add(m)
        if epoch + 1 in rungs:  # successive halving inside the pack
            alive = [m for m in active if m not in ended]
            keep = max(1, math.ceil(len(alive) / halving.reduction_factor))  # type: ignore[union-attr]
            sign, select = settings.sign, settings.metric
            ranked = sorted(alive, key=lambda m: -sign * reports[m][select])  # type: ignore[index]
            for m in ranked[keep:]:
                reports[m]["stopped_in_pack"] = (  # type: ignore[index]
                    f"stopped by successive halving in the pack at epoch {epoch + 1}")
                ended.add(m)
        keep_pos = [j for j, m in enumerate(active) if m not in ended]
        last = epoch + 1 == settings.max_epochs or not keep_pos
        best_models = ({m: model.state_dict(cfgs[m], p) for m, p in best_params.items()}
                       if last else None)
        if ended and keep_pos:  # the ended members leave before the checkpoint is taken
            model.keep_only(keep_pos)
        active = [active[j] for j in keep_pos]

        def pack_state(epoch: int = epoch, active: list[int] = active) -> dict[str, Any]:
            return {"epoch": epoch + 1, "active": list(active), "books": [b.state() for b in books],
                    "best_params": dict(best_params),
                    "model": model.snapshot() if active else None}

        report({"epoch": epoch + 1, "epoch_time_s": elapsed, "members": reports}, best_models, pack_state)
        if not active:
            return


class _PackTest:
    """Test metrics of pack members, from one evaluation of the whole pack made the first time
    a member needs them in an epoch (only members whose validation metric improved do)."""

    def __init__(self, model: PackedOptim, tensors: Tensors) -> None:
        self.model, self.tensors = model, tensors
        self.values: list[list[float]] = []

    def member(self, j: int) -> dict[str, float]:
        if not self.values:
            self.values = [t.tolist() for t in evaluate(self.model, self.tensors.x_test, self.tensors.y_test)]
        return {"test_loss": self.values[0][j], "test_acc": self.values[1][j]}


def _train_epoch(model: PackedOptim, tensors: Tensors, cfgs: list[Any], gens: list[torch.Generator],
                 epoch: int, n: int, bs: int) -> tuple[list[float], list[float]]:
    """One epoch of every active member, each in its own data order (and augmentation, drawn
    from the same generator as an ordinary trial draws it); per-member train loss/acc."""
    dev = tensors.x_train.device
    perms = []
    for c, g in zip(cfgs, gens, strict=True):
        g.manual_seed(data_seed(c.seed, epoch))  # the data order of the ordinary trial
        perms.append(torch.randperm(n, generator=g))
    perm = torch.stack(perms).to(dev)  # (A, n)
    a = len(cfgs)
    losses_at: list[torch.Tensor] = []  # per step (A,), summed once at the end as a trial does
    sizes: list[int] = []
    correct = torch.zeros(a, device=dev)
    x, rest = tensors.x_train, tensors.x_train.shape[1:]
    xbuf = x.new_empty((a * bs, *rest))  # every step's batches gathered into one buffer (as loop.fit)
    for i in range(0, n, bs):
        idx = perm[:, i : i + bs]
        k = idx.shape[1]
        xb = torch.index_select(x, 0, idx.reshape(-1), out=xbuf[: a * k]).view(a, k, *rest)  # (A, B, ...)
        yb = tensors.y_train[idx]  # (A, B)
        if model.augment is not None:
            xb = torch.stack([model.augment(xb[j], g) for j, g in enumerate(gens)])
        out = model.forward(xb, train=True)
        losses = F.cross_entropy(out.flatten(0, 1), yb.flatten(), reduction="none").view(a, -1).mean(1)
        total = losses.sum() + (model.l1_penalty() if model.any_l1 else 0.0)
        total.backward()
        model.step()
        losses_at.append(losses.detach())
        sizes.append(idx.shape[1])
        correct += (out.argmax(2) == yb).sum(1)
    w = torch.tensor(sizes, dtype=torch.float64, device=dev)[:, None]
    loss_sum = (torch.stack(losses_at).double() * w).sum(0)
    return (loss_sum / n).tolist(), (correct / n).tolist()
