"""torch.func packs (trainables/func_pack.py): members of a packed `cnn`, `cifar_cnn` (with
augmentation) and a user's own model reproduce their ordinary trials per epoch; batch norm packs
train and resume but are not exact, so `auto` refuses them; dropout is refused; `auto` follows
the timing probe and says why."""

from __future__ import annotations

import copy
import sys

import numpy as np
import pytest

from hpo import packing
from hpo.contract import Settings
from hpo.data import load_dataset
from hpo.data.base import ArrayDataset
from hpo.experiment import load_experiment
from hpo.trainables import cifar_cnn, cnn, model
from hpo.trainables.loop import to_tensors
from hpo.trainables.tasks import TASKS
from tests.conftest import write_spec
from tests.equivalence import differences

KEYS = ("train_loss", "train_acc", "val_loss", "val_acc", "test_loss", "test_acc", "best_epoch", "n_params")
SMALL = {"filters": [4, 8], "dense": 16, "batch_size": 50}


@pytest.fixture(scope="module")
def data():
    return load_dataset("mnist_sample", val_size=300, train_size=600)


@pytest.fixture
def one_thread():
    """Both sides on one torch thread, whatever an earlier test left: summation orders (and so
    the last bits) differ between thread counts."""
    from hpo.trainables.loop import torch_threads

    with torch_threads(1):
        yield


def members(train_packed, cfgs, data, epochs, **settings):
    reps, best = [], {}
    train_packed(cfgs, data, Settings(max_epochs=epochs, metric="val_acc", **settings),
                 lambda r, b=None, f=None: (reps.append(r), best.update(b or {})))
    return [[r["members"][i] for r in reps if r["members"][i] is not None] for i in range(len(cfgs))], best


def ordinary(train, cfg, data, epochs, **settings):
    reps = []
    train(cfg, data, Settings(max_epochs=epochs, metric="val_acc", **settings), lambda m, s: reps.append(m))
    return reps


def assert_same(want, got, what):
    """Exact where packed and ordinary take the same kernels, else within one ulp's spread
    (tests/equivalence.py)."""
    assert not differences(want, got, KEYS), what


@pytest.mark.parametrize("cfgs", [
    [dict(SMALL, lr=0.05, momentum=0.9, seed=1), dict(SMALL, lr=0.02, reg_type="l1", weight_decay=1e-4, seed=2),
     dict(SMALL, lr=0.05, momentum=0.5, nesterov=True, weight_decay=1e-3, seed=3)],
    # (seed 1 at lr 3e-3 is one where a near-zero gradient component's sign flips between two
    # float summation orders on one thread; Adam turns it into a full step: 2.5e-4 apart by epoch 2)
    [dict(SMALL, optimizer="adam", lr=1e-3, seed=0), dict(SMALL, optimizer="adam", lr=3e-3, weight_decay=1e-4, seed=2)],
], ids=["sgd-momentum-nesterov-l1-l2", "adam-l2"])
def test_cnn_members_reproduce_ordinary_trials(data, cfgs, one_thread):
    got, best = members(cnn.train_packed, cfgs, data, 3)
    for cfg, g in zip(cfgs, got, strict=True):
        assert_same(ordinary(cnn.train, cfg, data, 3), g, cfg)
    # each member's best weights are an ordinary `cnn` state_dict that gives its test accuracy
    t = to_tensors(data, (1, 28, 28))
    for i, cfg in enumerate(cfgs):
        net = cnn.make_model(cfg, (28, 28), 10)
        net.load_state_dict(best[i])
        assert TASKS["classification"].evaluate(net, t.x_test, t.y_test)["acc"] == pytest.approx(
            got[i][-1]["test_acc"], abs=2e-5)


def _images(n, seed):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8), rng.integers(0, 4, n)


def test_cifar_cnn_members_reproduce_ordinary_trials_with_augmentation():
    (xt, yt), (xv, yv), (xs, ys) = _images(200, 0), _images(60, 1), _images(60, 2)
    ds = ArrayDataset("cifar_like", xt, yt, xv, yv, xs, ys, n_classes=4, mean=(0.5, 0.5, 0.5),
                      std=(0.25, 0.25, 0.25), scale=255.0)
    base = dict(conv_layers=1, filters=[4], dense=8, batch_size=40, batch_norm=False, augment=True)
    cfgs = [dict(base, lr=0.05, seed=3), dict(base, lr=0.01, momentum=0.0, seed=4)]
    got, _ = members(cifar_cnn.train_packed, cfgs, ds, 2)
    for cfg, g in zip(cfgs, got, strict=True):
        assert_same(ordinary(cifar_cnn.train, cfg, ds, 2), g, cfg)


def test_a_users_own_model_packs_lazy_layers_included(data, monkeypatch):
    monkeypatch.syspath_prepend(str(__import__("pathlib").Path(__file__).parent.parent))
    ref = "tests.model_fixture:build"  # Flatten + LazyLinear: materialized as the trial does
    cfgs = [dict(lr=0.1, momentum=0.9, seed=5), dict(lr=0.05, weight_decay=1e-3, seed=6)]
    got, best = members(model.train_packed, cfgs, data, 2, model=ref)
    for cfg, g in zip(cfgs, got, strict=True):
        assert_same(ordinary(model.train, cfg, data, 2, model=ref), g, cfg)
    assert got[0][-1]["n_params"] == 784 * 10 + 10 and set(best[0]) == {"1.weight", "1.bias"}


def test_batch_norm_packs_train_and_resume_exactly_but_auto_does_not_pack_them(data, tmp_path):
    cfgs = [dict(SMALL, batch_norm=True, lr=lr, momentum=0.9, seed=s) for s, lr in enumerate((0.05, 0.01))]
    settings = Settings(max_epochs=3, metric="val_acc")
    whole = []
    cnn.train_packed(cfgs, data, settings, lambda r, b=None, f=None: whole.append(r))
    assert all(m["val_acc"] > 0.3 for m in whole[-1]["members"])  # it trains
    saved, rest = {}, []

    class Killed(Exception):
        pass

    def stop_after_1(r, b=None, f=None):
        if r["epoch"] == 1:
            saved["state"] = copy.deepcopy(f())
            raise Killed

    with pytest.raises(Killed):
        cnn.train_packed(cfgs, data, settings, stop_after_1)
    cnn.train_packed(cfgs, data, settings, lambda r, b=None, f=None: rest.append(r), state=saved["state"])

    def untimed(reps):
        return [[{k: v for k, v in m.items() if k != "epoch_time_s"} for m in r["members"]] for r in reps]

    assert untimed(rest) == untimed(whole[1:])  # running statistics are part of the checkpoint
    exp = load_experiment(write_spec(tmp_path, CNN_SPEC), ["params.batch_norm=true"])
    assert "packed batch statistics round differently" in packing.why_not(exp)
    forced = load_experiment(write_spec(tmp_path, CNN_SPEC), ["params.batch_norm=true", "execution.pack=2"])
    assert packing.why_not(forced) is None and len(packing.plan(forced).packs) == 2


CNN_SPEC = """\
name: cnnpack
trainable: cnn
dataset: {name: mnist_sample, train_size: 600, val_size: 300}
metric: val_acc
budget: {max_epochs: 2, max_concurrent_trials: 2}
params:
  lr: {grid: [0.05, 0.01]}
  seed: {grid: [0, 1]}
  filters: [4, 8]
  dense: 16
  batch_size: 50
"""


def test_auto_packs_a_cnn_only_where_the_timing_probe_says_it_pays(tmp_path, monkeypatch):
    from hpo.trainables import func_pack

    calls = []

    def fake(speedup):
        def probe(cfgs, build, shape, n_classes, threads):
            calls.append((len(cfgs), shape, n_classes))
            assert tuple(build(cfgs[0])(__import__("torch").zeros(2, *shape)).shape) == (2, 10)
            return None, None, speedup
        return probe

    monkeypatch.setattr(packing, "_PROBED", {})
    monkeypatch.setattr(func_pack, "probe", fake(1.05))
    slow = load_experiment(write_spec(tmp_path, CNN_SPEC))
    assert "measured 1.05x the speed of its members' steps one after another here" in packing.why_not(slow)
    assert packing.plan(slow) is None and calls == [(4, (1, 28, 28), 10)]
    assert packing.plan(load_experiment(write_spec(tmp_path, CNN_SPEC), ["execution.pack=2"])) is not None

    monkeypatch.setattr(packing, "_PROBED", {})
    monkeypatch.setattr(func_pack, "probe", fake(2.5))
    fast = packing.plan(load_experiment(write_spec(tmp_path, CNN_SPEC)))
    assert fast is not None and [len(p) for p in fast.packs] == [4]  # lr and seed are per member
    wide = load_experiment(write_spec(tmp_path, CNN_SPEC), ["params.dense={grid: [16, 32]}"])
    assert sorted(len(p) for p in packing.plan(wide).packs) == [4, 4]  # a shape: one pack each


def test_what_a_func_pack_refuses(tmp_path, monkeypatch):
    dropout = load_experiment(write_spec(tmp_path, CNN_SPEC), ["params.dropout=0.3"])
    assert "dropout 0.3" in packing.why_not(dropout)
    # a user's model with a dropout layer: found by building it
    (tmp_path / "drop_nets.py").write_text(
        "from torch import nn\n\ndef build(p, input_shape, n_outputs):\n"
        "    return nn.Sequential(nn.Flatten(), nn.LazyLinear(8), nn.Dropout(0.2), nn.Linear(8, n_outputs))\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("drop_nets", None)
    spec = CNN_SPEC.replace("trainable: cnn", "trainable: model\nmodel: drop_nets:build").replace(
        "  filters: [4, 8]\n  dense: 16\n", "")
    reason = packing.why_not(load_experiment(write_spec(tmp_path, spec)))
    assert "2 (Dropout) draws random numbers" in reason
    assert "regression" in packing.why_not(load_experiment(write_spec(tmp_path, spec.replace(
        "mnist_sample, train_size: 600, val_size: 300", "regression2d").replace("val_acc", "val_mse"))))


def test_the_probe_times_a_real_pack(data):
    from hpo.trainables import func_pack

    cfgs = [cnn.Config.model_validate(dict(SMALL, lr=lr, seed=s)) for s, lr in enumerate((0.1, 0.01, 0.05))]
    reason, inexact, speedup = func_pack.probe(cfgs, lambda c: cnn.build_model(c, (1, 28, 28), 10),
                                               (1, 28, 28), 10, threads=1, repeats=1)
    assert reason is None and inexact is None and speedup > 0
    bn = [c.model_copy(update={"batch_norm": True}) for c in cfgs]
    assert "BatchNorm2d" in func_pack.probe(bn, lambda c: cnn.build_model(c, (1, 28, 28), 10),
                                             (1, 28, 28), 10, threads=1, repeats=1)[1]


@pytest.mark.slow
def test_a_packed_cnn_run_matches_the_unpacked_run(tmp_path, ray_session):
    from hpo.runner import run

    path = write_spec(tmp_path, CNN_SPEC)
    packed = run(load_experiment(path, ["execution.pack=2"]), storage=tmp_path / "runs", dashboard=False, verbose=0)
    plain = run(load_experiment(path, ["execution.pack=off"]), storage=tmp_path / "runs", dashboard=False, verbose=0)
    a = packed.trials.sort_values(["param.lr", "param.seed"]).reset_index(drop=True)
    b = plain.trials.sort_values(["param.lr", "param.seed"]).reset_index(drop=True)
    assert len(a) == len(b) == 4 and a["pack"].notna().all()
    for col in ("param.lr", "param.seed", "status", "epochs"):
        assert a[col].tolist() == b[col].tolist()
    for col in ("best_val_acc", "test_acc", "best_train_loss"):
        assert all(abs(x - y) < 1e-4 for x, y in zip(a[col], b[col], strict=True)), (col, a[col], b[col])
    assert (packed.run_dir / "best_model" / "model.json").exists()
