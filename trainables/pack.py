"""Trial packing: train many `mlp` configurations of one shape as one vectorized model.

Members share everything that fixes tensor shapes and the code path (hidden widths, batch size,
activation, optimizer type, dataset); everything else is a per-member tensor: learning rate,
momentum / nesterov, weight decay, L1 or L2, dropout rate, seed (initial weights, data order and
dropout masks). Weights are stacked (P, out, in) and every layer is one batched matmul.

Each member reproduces the ordinary `mlp` trial with the same config: the same initial weights
(each member's nn.Linear layers are built after torch.manual_seed(seed), as `mlp` does), the same
data order (its own randperm generator), the same dropout masks (a generator continuing the
global RNG stream where `mlp`'s model init left it), and torch.optim's update rules. A member that
diverges, stops early or is cut by successive halving is removed from the stacked tensors at the
end of the epoch (the pack shrinks, so its compute is released); the others go on untouched.
No Ray here: `run_pack` reports one dict per epoch with every member's metrics.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from trainables import mlp
from trainables.early_stop import EarlyStopping
from trainables.loop import Tensors, device, to_tensors
from trainables.metrics import CLASSIFICATION_METRICS

PACKABLE_OPTIMIZERS = ("sgd", "adam", "adagrad", "rmsprop")
_ACT = {"relu": torch.relu, "tanh": torch.tanh, "sigmoid": torch.sigmoid}


class PackedMLP:
    """P stacked MLPs with per-member hyperparameters and torch.optim-equivalent updates."""

    def __init__(self, cfgs: list[mlp.Config], in_features: int, n_classes: int,
                 dev: torch.device) -> None:
        c0 = cfgs[0]
        self.act = _ACT[c0.activation]
        self.optimizer = c0.optimizer
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

        def col(values: list[float]) -> torch.Tensor:
            return torch.tensor(values, dtype=torch.float32, device=dev)

        self.lr = col([c.lr for c in cfgs])
        self.momentum = col([c.momentum for c in cfgs])
        self.nesterov = torch.tensor([c.nesterov for c in cfgs], device=dev)
        self.l2 = col([c.weight_decay if c.reg_type == "l2" else 0.0 for c in cfgs])
        self.l1 = col([c.weight_decay if c.reg_type == "l1" else 0.0 for c in cfgs])
        self.keep = col([1.0 - c.dropout for c in cfgs])
        self.has_dropout = any(c.dropout > 0 for c in cfgs)
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

    def l1_penalty(self) -> torch.Tensor:
        return sum((self.l1.view(-1, *[1] * (p.dim() - 1)) * p.abs()).flatten(1).sum(1)
                   for p in self.params).sum()

    @torch.no_grad()
    def step(self) -> None:
        """One update of every member, following torch.optim's rules for its optimizer."""
        self.step_count += 1
        t = self.step_count
        for k, p in enumerate(self.params):
            view = (-1,) + (1,) * (p.dim() - 1)
            lr = self.lr.view(view)
            g = p.grad
            if self.any_l2:
                g.addcmul_(self.l2.view(view), p)  # L2 through weight decay: grad + wd * p
            if self.optimizer == "sgd":
                d = g
                if self.any_momentum:
                    mom = self.momentum.view(view)
                    buf = self._state("buf", k, p)
                    buf.mul_(mom).add_(g)  # first step: buf = g (buf starts at 0)
                    if self.all_nesterov:
                        d = g.addcmul_(buf, mom)
                    elif self.any_nesterov:
                        d = torch.where(self.nesterov.view(view), g + mom * buf, buf)
                    else:
                        d = buf
                p.addcmul_(d, lr, value=-1)
            elif self.optimizer == "adam":
                b1, b2, eps = 0.9, 0.999, 1e-8
                m, v = self._state("m", k, p), self._state("v", k, p)
                m.lerp_(g, 1 - b1)
                v.mul_(b2).addcmul_(g, g, value=1 - b2)
                bc1, bc2 = 1 - b1**t, 1 - b2**t
                denom = (v.sqrt() / math.sqrt(bc2)).add_(eps)
                p.sub_((lr / bc1) * m / denom)
            elif self.optimizer == "adagrad":
                s = self._state("sum", k, p)
                s.addcmul_(g, g)
                p.sub_(lr * g / (s.sqrt().add_(1e-10)))
            else:  # rmsprop
                alpha, eps = 0.99, 1e-8
                sq, buf = self._state("sq", k, p), self._state("buf", k, p)
                sq.mul_(alpha).addcmul_(g, g, value=1 - alpha)
                buf.mul_(self.momentum.view(view)).add_(g / (sq.sqrt().add_(eps)))
                p.sub_(lr * buf)
            p.grad = None

    def _state(self, name: str, k: int, p: torch.Tensor) -> torch.Tensor:
        if name not in self.state:  # (not setdefault: that would build the zeros every call)
            self.state[name] = [torch.zeros_like(q) for q in self.params]
        return self.state[name][k]

    def keep_only(self, idx: list[int]) -> None:
        """Drop every member not in `idx` (positions in the current pack)."""
        sel = torch.tensor(idx, device=self.params[0].device)
        self.params = [p.detach()[sel].clone().requires_grad_() for p in self.params]
        for name, bufs in self.state.items():
            self.state[name] = [b[sel].clone() for b in bufs]
        for attr in ("lr", "momentum", "nesterov", "l2", "l1", "keep"):
            setattr(self, attr, getattr(self, attr)[sel])
        self.gens = [self.gens[i] for i in idx]
        self._flags()


@torch.no_grad()
def evaluate(model: PackedMLP, x: torch.Tensor, y: torch.Tensor,
             chunk: int = 2048) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-member (mean cross-entropy, accuracy) on a shared set."""
    p = model.size
    loss = torch.zeros(p, device=x.device)
    correct = torch.zeros(p, device=x.device)
    for i in range(0, len(y), chunk):
        out = model.forward(x[i : i + chunk], train=False)
        yy = y[i : i + chunk].expand(p, -1)
        loss += F.cross_entropy(out.flatten(0, 1), yy.flatten(), reduction="none").view(p, -1).sum(1)
        correct += (out.argmax(2) == yy).sum(1)
    n = max(len(y), 1)
    return loss / n, correct / n


def sha_rungs(grace: int, rf: int, max_epochs: int) -> list[int]:
    rungs, r = [], max(1, grace)
    while r < max_epochs:
        rungs.append(r)
        r *= rf
    return rungs


def run_pack(configs: list[dict[str, Any]], data: Any, settings: dict[str, Any],
             report: Callable[[dict[str, Any]], None]) -> None:
    """Train the members in `configs` together for settings["max_epochs"] epochs.

    report({"epoch", "epoch_time_s", "members": [metrics dict | None per member]}) once per
    epoch; a member's dict is None once it has ended (its last dict says how it ended).
    settings["sha"] = {"grace_period", "reduction_factor"} enables successive halving inside
    the pack; settings["early_stopping"] works per member as in ordinary trials.
    """
    cfgs = [mlp.Config.model_validate(c) for c in configs]
    n_in = int(data.x_train[0].size)
    tensors: Tensors = to_tensors(data, (n_in,), key=settings.get("data_key"))
    dev = device()
    model = PackedMLP(cfgs, n_in, data.n_classes, dev)
    select = settings.get("select", "val_acc")
    sign = 1.0 if CLASSIFICATION_METRICS.get(select, "max") == "max" else -1.0
    max_epochs = int(settings["max_epochs"])
    sha = settings.get("sha")
    rungs = set(sha_rungs(sha["grace_period"], sha["reduction_factor"], max_epochs)) if sha else set()
    n_params = mlp.param_count(cfgs[0], n_in, data.n_classes)
    P = len(cfgs)  # noqa: N806
    active = list(range(P))  # member ids still training, in pack order
    best = [{"score": -math.inf, "test_loss": math.nan, "test_acc": math.nan, "best_epoch": 0}
            for _ in range(P)]
    stoppers = [EarlyStopping.from_settings(settings, sign) for _ in range(P)]
    gens = [torch.Generator() for _ in range(P)]
    n, bs = len(tensors.y_train), min(cfgs[0].batch_size, len(tensors.y_train))

    for epoch in range(max_epochs):
        t0 = time.perf_counter()
        perms = []
        for m in active:
            gens[m].manual_seed(cfgs[m].seed * 100_003 + epoch)  # the data order of `mlp`
            perms.append(torch.randperm(n, generator=gens[m]))
        perm = torch.stack(perms).to(dev)  # (A, n)
        a = len(active)
        loss_sum = torch.zeros(a, device=dev)
        correct = torch.zeros(a, device=dev)
        for i in range(0, n, bs):
            idx = perm[:, i : i + bs]
            xb, yb = tensors.x_train[idx], tensors.y_train[idx]  # (A, B, in), (A, B)
            out = model.forward(xb, train=True)
            losses = F.cross_entropy(out.flatten(0, 1), yb.flatten(), reduction="none").view(a, -1).mean(1)
            total = losses.sum() + (model.l1_penalty() if model.any_l1 else 0.0)
            total.backward()
            model.step()
            loss_sum += losses.detach() * idx.shape[1]
            correct += (out.argmax(2) == yb).sum(1)
        train_loss, train_acc = (loss_sum / n).tolist(), (correct / n).tolist()
        val_loss, val_acc = (t.tolist() for t in evaluate(model, tensors.x_val, tensors.y_val))
        elapsed = time.perf_counter() - t0
        reports: list[dict[str, Any] | None] = [None] * P
        ended: dict[int, str] = {}
        need_test = []
        for j, m in enumerate(active):
            mt = {"train_loss": train_loss[j], "train_acc": train_acc[j], "val_loss": val_loss[j],
                  "val_acc": val_acc[j]}
            diverged = not (math.isfinite(mt["train_loss"]) and math.isfinite(mt["val_loss"]))
            if diverged:
                mt.update(train_loss=math.inf, val_loss=math.inf, train_acc=0.0, val_acc=0.0)
                ended[m] = "diverged"
            elif sign * mt[select] > best[m]["score"]:
                best[m]["score"], best[m]["best_epoch"] = sign * mt[select], epoch + 1
                need_test.append(j)
            mt.update(epoch=epoch + 1, epoch_time_s=elapsed / a, diverged=diverged, n_params=n_params,
                      pack_size=a)
            if stoppers[m] is not None and stoppers[m].end_epoch(mt, select):
                ended[m] = "early"
            reports[m] = mt
        if need_test:  # test metrics of the best-val epoch, for the members that just improved
            tl, ta = evaluate(model, tensors.x_test, tensors.y_test)
            for j in need_test:
                m = active[j]
                best[m]["test_loss"], best[m]["test_acc"] = float(tl[j]), float(ta[j])
        if epoch + 1 in rungs:  # successive halving inside the pack
            alive = [m for m in active if m not in ended]
            keep = max(1, math.ceil(len(alive) / sha["reduction_factor"]))
            ranked = sorted(alive, key=lambda m: -sign * reports[m][select])  # type: ignore[index]
            for m in ranked[keep:]:
                reports[m]["stopped_in_pack"] = (  # type: ignore[index]
                    f"stopped by successive halving in the pack at epoch {epoch + 1}")
                ended[m] = "sha"
        for m in active:
            reports[m].update(test_loss=best[m]["test_loss"], test_acc=best[m]["test_acc"],  # type: ignore[union-attr]
                              best_epoch=best[m]["best_epoch"])
        report({"epoch": epoch + 1, "epoch_time_s": elapsed, "members": reports})
        if ended:
            keep_pos = [j for j, m in enumerate(active) if m not in ended]
            if not keep_pos:
                return
            model.keep_only(keep_pos)
            active = [active[j] for j in keep_pos]
