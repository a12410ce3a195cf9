"""The terminal progress line counts configurations, packed or not (hpo.runner.progress)."""

from __future__ import annotations

from types import SimpleNamespace

from hpo.contract import PACK_KEY
from hpo.runner.progress import Progress


def test_packed_trials_count_as_their_members_and_the_best_member_is_shown(capsys):
    p = Progress("val_acc", "max", 16, ["lr"])
    packs = [SimpleNamespace(trial_id=f"p{j}", config={PACK_KEY: [{"lr": 0.1 * (8 * j + i + 1), "_index": 8 * j + i}
                                                                   for i in range(8)]}) for j in range(2)]
    for t in packs:
        p.on_trial_start(0, [], t)
    assert "0/16 done · 16 running · 0 pending" in p.line()
    p.on_trial_result(0, [], packs[0], {"epoch": 1, "val_acc": 0.9,
                                         "members": [{"val_acc": 0.5 + i / 100} for i in range(7)] + [None]})
    p.on_trial_complete(0, [], packs[0])
    line = capsys.readouterr().out
    assert "8/16 done · 8 running · 0 pending" in line and "best val_acc 0.56 (lr=0.7)" in line
    assert "ETA" in line  # half of them ended: a measured pace
    p.on_trial_complete(0, [], packs[1])
    assert "16/16 done · 0 running · 0 pending" in capsys.readouterr().out


def test_no_eta_before_a_tenth_of_the_trials_ended():
    p = Progress("val_acc", "max", 40, ["lr"])
    for i in range(3):
        t = SimpleNamespace(trial_id=f"t{i}", config={"lr": 0.1})
        p.on_trial_start(0, [], t)
        p.on_trial_complete(0, [], t)
    assert "3/40 done" in p.line() and "ETA" not in p.line()
    t = SimpleNamespace(trial_id="t3", config={"lr": 0.1})
    p.on_trial_start(0, [], t)
    p.on_trial_complete(0, [], t)
    assert "ETA" in p.line()
