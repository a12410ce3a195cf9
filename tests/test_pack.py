"""Trial packing: members of a vectorized pack reproduce ordinary `mlp` trials (same seed, same
data order) per epoch within floating-point tolerance, fail alone, and stop alone."""

from __future__ import annotations

import math

import pytest

from hpo.contract import EarlyStop, Halving, Settings
from hpo.data import load_dataset
from hpo.errors import SpecError
from hpo.experiment import load_experiment
from hpo.packing import plan, why_not
from hpo.trainables import mlp
from hpo.trainables.pack import run_pack, sha_rungs
from tests.conftest import write_spec
from tests.equivalence import SAME_KERNELS, close, differences

KEYS = ("train_loss", "train_acc", "val_loss", "val_acc", "test_loss", "test_acc", "best_epoch")
BASE = {"hidden": [32, 16], "batch_size": 50}


@pytest.fixture(scope="module")
def data():
    return load_dataset("mnist_sample", val_size=500, train_size=1500)


def ordinary(cfg, data, epochs, settings=None):
    reps = []
    mlp.train(cfg, data, Settings(max_epochs=epochs, metric="val_acc", **(settings or {})),
              lambda m, s: reps.append(m))
    return reps


def packed(cfgs, data, epochs, settings=None):
    reps = []
    run_pack(cfgs, data, Settings(max_epochs=epochs, metric="val_acc", **(settings or {})),
             lambda r, best_models=None, state_fn=None: reps.append(r))
    return [[r["members"][i] for r in reps if r["members"][i] is not None] for i in range(len(cfgs))]


GROUPS = [
    [dict(BASE, lr=0.1, momentum=0.9, seed=1), dict(BASE, lr=0.05, momentum=0.9, nesterov=True, seed=2),
     dict(BASE, lr=0.1, reg_type="l1", weight_decay=5e-4, seed=3), dict(BASE, lr=0.1, weight_decay=1e-3, seed=4),
     dict(BASE, lr=0.1, dropout=0.3, seed=5), dict(BASE, lr=0.02, dropout=0.5, momentum=0.5, seed=5)],
    [dict(BASE, optimizer="adam", lr=1e-3, seed=0), dict(BASE, optimizer="adam", lr=3e-3, weight_decay=1e-4, seed=1),
     dict(BASE, optimizer="adam", lr=1e-3, reg_type="l1", weight_decay=1e-4, dropout=0.2, seed=2)],
    [dict(BASE, optimizer="adagrad", lr=0.05, seed=0), dict(BASE, optimizer="adagrad", lr=0.01, seed=1)],
    [dict(BASE, optimizer="rmsprop", lr=1e-3, seed=0), dict(BASE, optimizer="rmsprop", lr=1e-3, momentum=0.5, seed=1)],
]


@pytest.mark.parametrize("cfgs", GROUPS,
                         ids=["sgd-momentum-nesterov-l1-l2-dropout", "adam-l2-l1-dropout", "adagrad", "rmsprop"])
def test_members_reproduce_ordinary_trials(data, cfgs):
    for cfg, got in zip(cfgs, packed(cfgs, data, 3), strict=True):
        want = ordinary(cfg, data, 3)
        assert len(got) == len(want) == 3
        assert not differences(want, got, KEYS), cfg


@pytest.mark.parametrize("test_epochs", [frozenset({4}), frozenset({2, 4})])
def test_members_reproduce_ordinary_trials_that_test_only_at_test_epochs(data, test_epochs):
    """As a fifo / ASHA run's trials do: test metrics of the kept best weights, NaN between."""
    cfgs = [dict(BASE, lr=0.1, momentum=0.9, seed=1), dict(BASE, lr=0.05, dropout=0.3, seed=2),
            dict(BASE, lr=0.1, weight_decay=1e-3, seed=4)]
    for cfg, got in zip(cfgs, packed(cfgs, data, 4, {"test_epochs": test_epochs}), strict=True):
        want = ordinary(cfg, data, 4, {"test_epochs": test_epochs})
        assert not differences(want, got, KEYS), cfg
        assert not math.isnan(got[-1]["test_acc"]) and math.isnan(got[0]["test_acc"])
        assert not differences(ordinary(cfg, data, 4)[-1:], got[-1:], ["test_acc"]), cfg


@pytest.mark.parametrize("exact", [True, False])
def test_the_bar_tells_a_wrong_update_apart(data, exact):
    """Exact or within the one-ulp spread, the comparison still fails a member whose update is a
    little wrong: 10% more learning rate, or the weight decay dropped."""
    for cfgs in GROUPS:
        cfg = cfgs[0]
        want = ordinary(cfg, data, 3)
        assert not differences(want, ordinary(cfg, data, 3), KEYS, exact)
        assert differences(want, ordinary(dict(cfg, lr=cfg["lr"] * 1.1), data, 3), KEYS, exact), cfg
    decayed = dict(BASE, lr=0.1, weight_decay=1e-3, seed=4)
    assert differences(ordinary(decayed, data, 3), ordinary(dict(decayed, weight_decay=0.0), data, 3), KEYS, exact)


def test_a_diverging_member_fails_alone(data):
    good = [dict(BASE, lr=0.1, momentum=0.9, seed=1), dict(BASE, lr=0.05, dropout=0.3, seed=2)]
    bad = dict(BASE, lr=500.0, momentum=0.9, seed=3)
    alone = packed(good, data, 3)
    mixed = packed([good[0], bad, good[1]], data, 3)
    assert mixed[1][-1]["diverged"] and len(mixed[1]) == len(ordinary(bad, data, 3)) < 3
    assert mixed[1][-1]["val_loss"] == math.inf
    for a, m in zip(alone, [mixed[0], mixed[2]], strict=True):  # the others: exactly as without it
        assert [r["val_loss"] for r in a] == [r["val_loss"] for r in m]
    assert [r["pack_size"] for r in mixed[0]] == [3, 2, 2]  # the pack shrank after the divergence


def test_successive_halving_and_early_stopping_inside_a_pack(data):
    assert sha_rungs(1, 2, 4) == [1, 2] and sha_rungs(1, 3, 9) == [1, 3]
    cfgs = [dict(BASE, lr=lr, seed=0) for lr in (0.3, 0.1, 0.01, 1e-4)]
    got = packed(cfgs, data, 4, {"halving": Halving(grace_period=1, reduction_factor=2)})
    epochs = sorted(len(g) for g in got)
    assert epochs == [1, 1, 2, 4]  # 4 -> 2 after epoch 1 -> 1 after epoch 2
    assert got[3][-1]["stopped_in_pack"] == "stopped by successive halving in the pack at epoch 1"
    es = packed([dict(BASE, lr=1e-6, seed=0), dict(BASE, lr=0.1, seed=0)], data, 6,
                {"early_stopping": EarlyStop(patience=2, min_delta=0.01)})
    assert len(es[0]) == 3 and "no val_acc gain" in es[0][-1]["early_stopped"]
    want = ordinary(dict(BASE, lr=1e-6, seed=0), data, 6, {"early_stopping": EarlyStop(patience=2, min_delta=0.01)})
    assert len(want) == 3


class _Killed(Exception):
    pass


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_a_pack_resumed_from_its_checkpoint_goes_on_as_if_never_stopped(data, optimizer):
    """Stopped after epoch 2 (one member already cut by halving at epoch 1), restored from the
    checkpoint it offered then: epochs 3-4 of every member equal the uninterrupted pack's, and
    the final best weights too."""
    import copy

    import torch

    cfgs = [dict(BASE, optimizer=optimizer, lr=lr, momentum=0.9 if optimizer == "sgd" else 0.0,
                 dropout=0.2, seed=s) for s, lr in enumerate((0.1, 0.03, 0.01, 1e-4))]
    settings = Settings(max_epochs=4, metric="val_acc", halving=Halving(grace_period=1, reduction_factor=2),
                        early_stopping=None)
    whole, whole_best = [], {}
    run_pack(cfgs, data, settings, lambda r, b=None, f=None: (whole.append(r), whole_best.update(b or {})))
    first, saved = [], {}

    def stop_after_2(r, b=None, f=None):
        first.append(r)
        if r["epoch"] == 2:
            saved["state"] = copy.deepcopy(f())
            raise _Killed

    with pytest.raises(_Killed):
        run_pack(cfgs, data, settings, stop_after_2)
    rest, rest_best = [], {}
    run_pack(cfgs, data, settings, lambda r, b=None, f=None: (rest.append(r), rest_best.update(b or {})),
             state=saved["state"])
    assert [r["epoch"] for r in rest] == [3, 4]
    def untimed(reps):
        return [[m and {k: v for k, v in m.items() if k != "epoch_time_s"} for m in r["members"]]
                for r in reps]

    assert untimed(first + rest) == untimed(whole)  # every member's metrics of every epoch, exactly
    assert whole_best.keys() == rest_best.keys()
    for m, sd in whole_best.items():
        assert all(torch.equal(sd[k], rest_best[m][k]) for k in sd)
    done = []  # restored from its final checkpoint: nothing left to train
    last = {}
    run_pack(cfgs, data, settings, lambda r, b=None, f=None: last.update(s=f()) if r["epoch"] == 4 else None)
    run_pack(cfgs, data, settings, lambda r, b=None, f=None: done.append(r), state=last["s"])
    assert done == []


SPEC = """\
name: packed
trainable: mlp
dataset: {name: mnist_sample, train_size: 1000, val_size: 300}
metric: val_acc
execution: {pack: auto}
budget: {max_epochs: 2, max_concurrent_trials: 2}
params:
  lr: {grid: [0.3, 0.1, 0.01]}
  batch_size: {grid: [64, 500]}
  hidden: [16]
"""


def test_plan_groups_by_shape_and_auto_limits_the_packed_batch(tmp_path):
    p = plan(load_experiment(write_spec(tmp_path, SPEC)))
    assert sorted(len(pk) for pk in p.packs) == [3, 3]  # one pack per batch size
    assert sorted(m["_index"] for pk in p.packs for m in pk) == list(range(6))
    p2 = plan(load_experiment(write_spec(tmp_path, SPEC), ["execution.pack=2"]))
    assert sorted(len(pk) for pk in p2.packs) == [1, 1, 2, 2]
    # 9000 x 784 x 4 bytes = 28 MB per member: at most 4 fit in auto's 128 MB
    big = SPEC.replace("train_size: 1000, val_size: 300", "val_size: 1000").replace(
        "batch_size: {grid: [64, 500]}", "batch_size: 9000\n  weight_decay: {grid: [0.0, 0.1]}")
    p3 = plan(load_experiment(write_spec(tmp_path, big)))
    assert sorted(len(pk) for pk in p3.packs) == [2, 4]


@pytest.mark.parametrize("overrides,reason", [
    (["trainable=cnn", "params.hidden=null", "params.dropout=0.5"], "dropout 0.5 (under torch.func.vmap"),
    (["searcher.name=optuna", "params.lr={loguniform: [0.01, 0.3]}", "params.batch_size=64"],
     "searcher `optuna` (packing needs every configuration up front: grid or random)"),
    (["scheduler.name=median"], "scheduler `median`"),
    (["params.batch_norm=true"], "batch_norm"),
])
def test_what_cannot_be_packed_runs_unpacked(tmp_path, overrides, reason):
    text = SPEC.replace("  hidden: [16]\n", "") if "trainable=cnn" in overrides else SPEC
    ovr = [o for o in overrides if o != "params.hidden=null"]
    assert reason in why_not(load_experiment(write_spec(tmp_path, text), ovr))


def test_a_random_search_packs_the_configurations_the_unpacked_run_draws(tmp_path):
    """Random search draws every configuration into the run's plan before the first trial, so
    it packs: the members are exactly the unpacked run's draws (same seed, same order of
    indices), grouped by shape."""
    from hpo.experiment import search_args

    spec = SPEC.replace("  lr: {grid: [0.3, 0.1, 0.01]}\n", "  lr: {loguniform: [0.01, 0.3]}\n").replace(
        "budget: {", "searcher: {name: random, seed: 7}\nbudget: {num_samples: 5, ")
    exp = load_experiment(write_spec(tmp_path, spec))
    assert why_not(exp) is None
    drawn = exp.searcher.draw(search_args(exp, 2), {"seed": exp.spec.seed})  # what tuning.plan_work draws
    assert len(drawn) == 10  # 5 samples x the 2 batch sizes of the grid inside
    members = {m["_index"]: m for pk in plan(exp).packs for m in pk}
    assert sorted(members) == list(range(10))
    for i, cfg in enumerate(drawn):
        assert {k: v for k, v in members[i].items() if k != "_index"} == cfg
    for pk in plan(exp).packs:  # one shape per pack
        assert len({m["batch_size"] for m in pk}) == 1


def test_auto_is_the_default_and_packs_only_where_members_reproduce_ordinary_trials(tmp_path):
    default = SPEC.replace("execution: {pack: auto}\n", "")
    assert len(plan(load_experiment(write_spec(tmp_path, default))).packs) == 2
    asha = ["scheduler.name=asha"]  # halving inside packs compares members with their pack only
    assert "compares members with their own pack" in why_not(load_experiment(write_spec(tmp_path, default), asha))
    # a pack is one Ray trial: what counts Ray trials would see one where there are many
    assert "max_failed_trials counts failed Ray trials" in why_not(
        load_experiment(write_spec(tmp_path, default), ["failure.max_failed_trials=2"]))
    tracked = default + "tracking: {tensorboard: {}}\n"
    assert "tracking (tensorboard) logs one run per Ray trial" in why_not(load_experiment(write_spec(tmp_path, tracked)))
    assert plan(load_experiment(write_spec(tmp_path, tracked), ["execution.pack=3"])) is not None
    halving = plan(load_experiment(write_spec(tmp_path, default), [*asha, "execution.pack=3"]))
    assert halving.halving is not None and sorted(map(len, halving.packs)) == [3, 3]
    assert plan(load_experiment(write_spec(tmp_path, default), ["execution.pack=off"])) is None


def test_bad_pack_setting(tmp_path):
    with pytest.raises(SpecError, match=r"execution\.pack"):
        load_experiment(write_spec(tmp_path, SPEC), ["execution.pack=sometimes"])


RANDOM = SPEC.replace("  lr: {grid: [0.3, 0.1, 0.01]}\n", "  lr: {loguniform: [0.01, 0.3]}\n").replace(
    "budget: {", "searcher: {name: random, seed: 7}\nbudget: {num_samples: 3, ")


@pytest.mark.slow
@pytest.mark.parametrize("spec", [SPEC, RANDOM], ids=["grid", "random"])
def test_packed_run_matches_the_unpacked_run(tmp_path, ray_session, spec):
    from hpo.report import build_report
    from hpo.runner import run

    path = write_spec(tmp_path, spec)
    packed_res = run(load_experiment(path), storage=tmp_path / "runs", dashboard=False, verbose=0)
    plain_res = run(load_experiment(path, ["execution.pack=off"]), storage=tmp_path / "runs",
                    dashboard=False, verbose=0)
    a = packed_res.trials.sort_values("trial_index").reset_index(drop=True)
    b = plain_res.trials.sort_values("trial_index").reset_index(drop=True)
    assert len(a) == len(b) == 6 and a["pack"].notna().all() and "pack" not in b
    assert a["pack"].value_counts().tolist() == [3, 3]
    for col in ("param.lr", "param.batch_size", "status", "epochs"):
        assert a[col].tolist() == b[col].tolist()
    for col in ("best_val_acc", "test_acc", "best_train_loss"):
        assert all(abs(x - y) < 1e-4 or close(col, x, y, SAME_KERNELS)
                   for x, y in zip(a[col], b[col], strict=True)), (col, a[col], b[col])
    h = packed_res.history
    assert len(h) == 12 and h.groupby("trial_id")["epoch"].max().eq(2).all()
    html = build_report(packed_res.run_dir, tmp_path / "r.html").read_text()
    assert "vectorized pack(s) of 3, 3" in html


def test_packed_updates_cover_every_optimizer_by_name():
    from hpo.trainables.optim import OPTIMIZERS
    from hpo.trainables.pack import PACKED_UPDATES

    assert set(PACKED_UPDATES) == set(OPTIMIZERS)
