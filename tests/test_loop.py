"""The shared epoch loop (trainables/loop.py) and its per-task pieces (trainables/tasks.py)."""

from __future__ import annotations

import textwrap

import pytest
import torch
import torch.nn.functional as F

from hpo.contract import Settings
from hpo.trainables import cnn, model
from hpo.trainables.loop import channels_last, run_trial, to_tensors
from hpo.trainables.tasks import TASKS
from tests.test_cnn import squares


def test_training_sums_fold_their_logits_and_give_the_exact_loss_and_accuracy():
    torch.manual_seed(0)
    sums = TASKS["classification"].sums(torch.device("cpu"))
    outs, ys, losses = [], [], []
    for i in range(150):  # more than two folds, a short last batch
        b = 7 if i == 149 else 32
        out, y = torch.randn(b, 5), torch.randint(0, 5, (b,))
        loss = F.cross_entropy(out, y)
        sums.add(out, y, loss)
        outs.append(out)
        ys.append(y)
        losses.append(loss.item() * b)
        assert len(sums.logits) < sums.fold  # logits are folded into classes as they come
    n = sum(len(y) for y in ys)
    got = sums.metrics(n)
    assert got["acc"] == (torch.cat(outs).argmax(1) == torch.cat(ys)).sum().item() / n
    assert got["loss"] == pytest.approx(sum(losses) / n, rel=1e-6)


def test_built_in_conv_models_train_channels_last_on_a_cpu_to_the_same_metrics():
    assert channels_last((1, 28, 28), torch.device("cpu"))
    assert not channels_last((784,), torch.device("cpu"))
    assert not channels_last((3, 32, 32), torch.device("cuda"))
    data = squares(200)
    t = to_tensors(data, (1, 28, 28), key=None, last=True)
    assert t.x_train.is_contiguous(memory_format=torch.channels_last)
    cfg = cnn.Config(filters=[4, 8], dense=16, lr=0.05, momentum=0.9, batch_size=32)
    runs = {}
    for last in (True, False):
        reps: list[dict] = []
        run_trial(cfg, lambda last=last: to_tensors(data, (1, 28, 28), key=None, last=last),
                  lambda: cnn.build_model(cfg, (1, 28, 28), 4), None, TASKS["classification"],
                  Settings(max_epochs=2, metric="val_acc"), lambda m, s, r=reps: r.append(m), last=last)
        runs[last] = reps
    for a, b in zip(runs[True], runs[False], strict=True):  # a layout, not a different computation
        for k in ("train_loss", "val_loss", "val_acc", "test_acc"):
            assert a[k] == pytest.approx(b[k], abs=1e-4), k


def test_a_users_conv_model_that_views_its_activations_trains_in_the_default_layout(tmp_path, monkeypatch):
    # the PyTorch tutorial's `x.view(len(x), -1)` after a convolution fails on channels-last
    # activations: a user's own model must never be switched to that layout
    (tmp_path / "viewnet.py").write_text(textwrap.dedent("""
        from pydantic import BaseModel
        from torch import nn

        class Params(BaseModel):
            channels: int = 2

        class Net(nn.Module):
            def __init__(self, n_out):
                super().__init__()
                self.conv, self.fc = nn.Conv2d(1, 2, 3), nn.Linear(2 * 26 * 26, n_out)  # 28x28 in

            def forward(self, x):
                return self.fc(self.conv(x).relu().view(len(x), -1))

        def build(p: Params, input_shape, n_outputs):
            return Net(n_outputs)
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    reps: list[dict] = []
    model.train({"lr": 0.05}, squares(100), Settings(max_epochs=1, metric="val_acc", model="viewnet:build"),
                lambda m, s: reps.append(m))
    assert len(reps) == 1 and 0 <= reps[0]["val_acc"] <= 1


def test_timing_an_epoch_leaves_the_callers_torch_threads_as_they_were():
    from hpo.trainables import mlp

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        s = mlp.estimate_epoch_s({"hidden": [8], "batch_size": 16}, (1, 28, 28), 10,
                                 {"train": 64, "val": 32, "test": 32}, threads=1)
        assert s > 0 and torch.get_num_threads() == 2  # `hpo plan` from Python: its threads stay
    finally:
        torch.set_num_threads(before)
