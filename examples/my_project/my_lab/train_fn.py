"""A training function of the project's own, when the loop itself is the researcher's: hpo
gives it the configuration and a context (data, device, seed, epochs, report, checkpoints)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import BaseModel, Field

import hpo

METRICS = {"train_loss": "min", "val_loss": "min", "val_acc": "max"}


class Params(BaseModel):
    lr: float = Field(0.1, gt=0)
    hidden: int = Field(32, ge=2, le=512)
    seed: int = 0


def train(p: Params, ctx: hpo.Context) -> None:
    torch.manual_seed(p.seed)
    d = ctx.data
    x, y = torch.tensor(d.x_train), torch.tensor(d.y_train)
    xv, yv = torch.tensor(d.x_val), torch.tensor(d.y_val)
    model = torch.nn.Sequential(torch.nn.Linear(x.shape[1], p.hidden), torch.nn.Tanh(),
                                torch.nn.Linear(p.hidden, d.n_classes))
    opt = torch.optim.Adam(model.parameters(), lr=p.lr)
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
