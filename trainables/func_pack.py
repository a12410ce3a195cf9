"""Packing for any nn.Module (the `cnn`, `cifar_cnn`, a user's `model:`) through torch.func.

The members' modules are built one by one exactly as their ordinary trials build them (after
torch.manual_seed(seed)), their weights and buffers stacked into tensors (P, ...), and one
`vmap(functional_call(...))` runs every member's forward pass at once; backward gives every
member its own gradient, and `PackedOptim` (trainables/pack.py) applies torch.optim's update
with per-member lr / momentum / nesterov / L1 / L2. Batch norm works per member (its running
statistics are stacked buffers that the vmapped forward pass updates in place), but its
members do not reproduce their ordinary trials to float tolerance (`inexact_layers`), so only
an explicit `execution.pack: N` packs it. Frozen weights
(requires_grad False) ride along as buffers and are never updated. Each member's augmentation
is drawn from its own data-order generator, as its ordinary trial draws it.

What is refused (with the reason, before Ray starts; hpo/packing.py): random layers (dropout:
under vmap the masks come from one shared random stream, so a member would not reproduce its
ordinary trial), regression (packs train classifiers), and under `auto` batch norm and any model whose packed
step is not clearly faster than its members' steps one after another (`probe` times both; on a
CPU the convolutions are compute-bound, so a `cnn` pack gains little there).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torch.func import functional_call, vmap

from hpo.contract import Settings
from hpo.trainables.loop import count_params, device, materialize, to_tensors, torch_threads
from hpo.trainables.pack import PackedOptim, train_pack
from hpo.trainables.tasks import EVAL_CHUNK

__all__ = ["FuncPack", "inexact_layers", "probe", "random_layers", "train"]

Build = Callable[[Any], nn.Module]  # a member's config -> its ordinary (untrained) model


class FuncPack(PackedOptim):
    """P copies of one architecture with stacked weights, run through torch.func.vmap."""

    eval_chunk = EVAL_CHUNK  # conv activations of P members: keep evaluation chunks small

    def __init__(self, cfgs: list[Any], build: Build, shape: tuple[int, ...], dev: torch.device,
                 augment: Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None = None) -> None:
        super().__init__(cfgs, dev)
        self._build, self.example_dims, self.augment = build, len(shape), augment
        models = []
        for c in cfgs:
            torch.manual_seed(c.seed)  # exactly what an ordinary trial does before building
            model = build(c).to(dev)
            materialize(model, torch.zeros(1, *shape, device=dev))  # lazy layers, as a trial does
            models.append(model)
        self.base = models[0]  # its tensors are replaced by each member's in functional_call
        self.n_params = count_params(self.base)  # as a trial counts them
        trained = {k for k, p in models[0].named_parameters() if p.requires_grad}
        states = [m.state_dict() for m in models]
        self.names = [k for k in states[0] if k in trained]  # updated by the optimizer
        self.fixed_names = [k for k in states[0] if k not in trained]  # buffers, frozen weights
        self.params = [torch.stack([s[k].detach() for s in states]).requires_grad_() for k in self.names]
        self.fixed = [torch.stack([s[k].detach() for s in states]) for k in self.fixed_names]

        def one(params: list[torch.Tensor], fixed: list[torch.Tensor], x: torch.Tensor) -> torch.Tensor:
            tensors = {**dict(zip(self.names, params, strict=True)),
                       **dict(zip(self.fixed_names, fixed, strict=True))}
            return functional_call(self.base, tensors, (x,))

        self._each = vmap(one, in_dims=(0, 0, 0), randomness="error")
        self._shared = vmap(one, in_dims=(0, 0, None), randomness="error")

    def forward(self, x: torch.Tensor, train: bool) -> torch.Tensor:
        """x: (P, B, *example) or (B, *example) shared by all members -> logits (P, B, classes).
        In training mode batch norm updates each member's running statistics in place."""
        self.base.train(train)
        run = self._shared if x.dim() == self.example_dims + 1 else self._each
        return run(self.params, self.fixed, x)

    def snapshot(self) -> dict[str, Any]:
        return {**super().snapshot(), "fixed": [f.cpu().clone() for f in self.fixed]}

    def restore(self, snap: dict[str, Any]) -> None:
        super().restore(snap)
        self.fixed = [f.to(self.params[0].device) for f in snap["fixed"]]

    def keep_only(self, idx: list[int]) -> None:
        super().keep_only(idx)
        sel = torch.tensor(idx, device=self.params[0].device)
        self.fixed = [f[sel].clone() for f in self.fixed]

    def member(self, j: int) -> list[torch.Tensor]:
        """Member j's weights and buffers, on the CPU."""
        return [t[j].detach().to("cpu", copy=True) for t in (*self.params, *self.fixed)]

    def state_dict(self, cfg: Any, weights: list[torch.Tensor]) -> dict[str, Any]:
        """`member()`'s tensors as the state_dict of the member's ordinary model."""
        return dict(zip([*self.names, *self.fixed_names], weights, strict=True))

    def build(self, cfg: Any) -> nn.Module:
        return self._build(cfg)


def random_layers(model: nn.Module) -> list[str]:
    """Names of the modules that draw random numbers in training (dropout of any kind)."""
    return [f"{name or type(model).__name__} ({type(m).__name__})" for name, m in model.named_modules()
            if isinstance(m, (nn.modules.dropout._DropoutNd, nn.AlphaDropout, nn.FeatureAlphaDropout))]


def train(configs: list[dict[str, Any]], data: Any, settings: Settings, report: Callable[..., None],
          state: dict[str, Any] | None, config_model: Any, build: Callable[[Any, tuple[int, ...]], nn.Module],
          shape: tuple[int, ...],
          augment: Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None = None) -> None:
    """A trainable's packed loop: `train_pack` with a `FuncPack` of its own models.
    `build(cfg, shape)` is the model its ordinary trial builds; `shape` one example's shape as
    the model sees it."""
    cfgs = [config_model.model_validate(c) for c in configs]
    tensors = to_tensors(data, shape, key=settings.data_key)

    train_pack(lambda: FuncPack(cfgs, lambda c: build(c, shape), shape, device(), augment),
               cfgs, tensors, settings, report, state)


def inexact_layers(model: nn.Module) -> list[str]:
    """Names of the batch-norm modules: packed, their batch statistics round differently from
    the ordinary trial's (~1e-7), and batch norm amplifies that (dividing by small variances):
    on MNIST a member's training loss differed by 1e-3 after 12 steps. Trained correctly, but
    not a reproduction of its ordinary trial."""
    return [f"{name} ({type(m).__name__})" for name, m in model.named_modules()
            if isinstance(m, nn.modules.batchnorm._NormBase)]


def probe(cfgs: list[Any], build: Build, shape: tuple[int, ...], n_classes: int, threads: int,
          repeats: int = 3) -> tuple[str | None, str | None, float]:
    """(the reason these members cannot be packed, or None; the reason a packed member would
    not reproduce its ordinary trial exactly, or None; the speed-up of one packed training step
    over the members' ordinary steps one after another, on a random batch with the trial's
    threads). Measured on this machine, so `auto` packs only where packing wins here."""
    from hpo.trainables.optim import make_optimizer

    model = build(cfgs[0])
    materialize(model, torch.zeros(1, *shape))
    rand = random_layers(model)
    if rand:
        return (f"{', '.join(rand[:3])} draws random numbers, which under torch.func.vmap come from "
                f"one stream shared by the pack, so its members would not reproduce their trials"), None, 0.0
    norm = inexact_layers(model)
    inexact = (f"{', '.join(norm[:3])}: packed batch statistics round differently, which batch norm "
               f"amplifies, so members would not reproduce their ordinary trials exactly") if norm else None
    with torch_threads(threads):
        try:
            bs = cfgs[0].batch_size
            dev = device()  # where the trials will train, when the driver has it too
            x = torch.randn(bs, *shape, device=dev)
            y = torch.randint(0, max(n_classes, 1), (bs,), device=dev)
            singles = []
            for c in cfgs:
                net = build(c).to(dev)
                materialize(net, x[:1])
                singles.append((net, make_optimizer([p for p in net.parameters() if p.requires_grad], c)))

            def ordinary() -> None:
                for net, opt in singles:
                    loss = nn.functional.cross_entropy(net(x), y)
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()

            pack = FuncPack(cfgs, build, shape, dev)
            xs, ys = x.expand(len(cfgs), *x.shape), y.expand(len(cfgs), -1)

            def packed() -> None:
                out = pack.forward(xs, train=True)
                nn.functional.cross_entropy(out.flatten(0, 1), ys.flatten()).backward()
                pack.step()

            return None, inexact, _best_time(ordinary, repeats) / _best_time(packed, repeats)
        except Exception as e:  # noqa: BLE001 - a model torch.func cannot vmap: say so, run unpacked
            first = str(e).splitlines()[0][:200] if str(e) else ""
            return f"torch.func cannot vmap this model ({type(e).__name__}: {first})", None, 0.0


def _best_time(fn: Callable[[], None], repeats: int) -> float:
    sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)
    fn()  # warm-up
    best = float("inf")
    for _ in range(repeats):
        sync()
        t0 = time.perf_counter()
        fn()
        sync()
        best = min(best, time.perf_counter() - t0)
    return best
