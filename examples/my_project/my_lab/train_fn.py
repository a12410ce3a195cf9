"""A training function of the project's own, when the loop itself is the researcher's: hpo
gives it the configuration (a plain dict of the trial's parameters) and a context (data,
device, seed, epochs, report, checkpoints). To declare types and ranges, annotate `config` with
a pydantic model instead (README, "Your own training loop")."""

from __future__ import annotations

import torch
import torch.nn.functional as F

import hpo

METRICS = {"train_loss": "min", "val_loss": "min", "val_acc": "max"}


def train(config: dict, ctx: hpo.Context) -> None:
    torch.manual_seed(ctx.seed)
    hidden, lr = config.get("hidden", 32), config.get("lr", 0.1)
    d = ctx.data
    x, y = torch.tensor(d.x_train), torch.tensor(d.y_train)
    xv, yv = torch.tensor(d.x_val), torch.tensor(d.y_val)
    model = torch.nn.Sequential(torch.nn.Linear(x.shape[1], hidden), torch.nn.Tanh(),
                                torch.nn.Linear(hidden, d.n_classes))
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    if (state := ctx.restore()) is not None:  # resumed: continue where the checkpoint was
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
    for _ in ctx.epochs():
        loss = F.cross_entropy(model(x), y)  # full batch: the data is small
        opt.zero_grad()
        loss.backward()
        opt.step()
        with torch.no_grad():
            out = model(xv)
            val_loss, val_acc = F.cross_entropy(out, yv).item(), (out.argmax(1) == yv).float().mean().item()
        ctx.report({"train_loss": loss.item(), "val_loss": val_loss, "val_acc": val_acc},
                   checkpoint={"model": model.state_dict(), "opt": opt.state_dict()})
