"""hpo's own record of a run (hpo.runner.record) and the schedulers rebuilt from it
(hpo.adapters.replay): what a resume has left is read from the run folder alone."""

from __future__ import annotations

import json
import random
from pathlib import Path
from types import SimpleNamespace

import pytest

from hpo.adapters.replay import ASHA, Median, NoController, replay
from hpo.contract import RECORD_KEY
from hpo.runner import record
from hpo.storage import Storage


def write_trial(run: Path, tid: str, config: dict, rows: list[dict], end: str | None = None,
                t0: float = 0.0) -> None:
    d = run / f"trial_{tid}"
    d.mkdir(parents=True)
    (d / "trial.jsonl").write_text("".join(json.dumps(x) + "\n" for x in [{"config": config}, *rows]))
    with open(run / "events.jsonl", "a") as f:
        f.write(json.dumps({"trial_id": tid, "event": "start", "time": t0}) + "\n")
        if end:
            f.write(json.dumps({"trial_id": tid, "event": end, "time": t0 + 10}) + "\n")


def test_plan_segments_number_their_items_across_extensions(tmp_path):
    assert record.read_plan(tmp_path) == []
    a = record.add_segment(tmp_path, [{"lr": 0.1}, {"lr": 0.2}], 2)
    b = record.add_segment(tmp_path, None, 5)  # a searcher that learns: a count
    c = record.add_segment(tmp_path, [{"lr": 0.3}], 1)
    assert (a.first, a.n, b.index, b.n, b.planned, c.first) == (0, 2, 1, 5, False, 2)
    assert record.read_plan(tmp_path) == [a, b, c]
    (tmp_path / "plan.json.tmp").write_text("{cut")  # a kill while writing: the old plan stays
    assert record.read_plan(tmp_path) == [a, b, c]


def test_what_is_left_keeps_finished_trials_and_continues_cut_ones_from_their_checkpoint(tmp_path):
    plan = [record.add_segment(tmp_path, [{"lr": v} for v in (0.1, 0.2, 0.3, 0.4)], 4)]
    write_trial(tmp_path, "a", {"lr": 0.1, RECORD_KEY: {"plan": 0}}, [{"epoch": 1}], "complete")
    write_trial(tmp_path, "b", {"lr": 0.2, RECORD_KEY: {"plan": 1}}, [{"epoch": 1}], "error")
    (tmp_path / "trial_c" / "checkpoint_000000").mkdir(parents=True)
    (tmp_path / "trial_c").rename(tmp_path / "keep")
    write_trial(tmp_path, "c", {"lr": 0.3, RECORD_KEY: {"plan": 2}},
                [{"epoch": 1, "checkpoint": "trial_c/checkpoint_000000"},
                 {"epoch": 2, "checkpoint": "trial_c/checkpoint_000001"}])  # the newer one is gone
    (tmp_path / "keep" / "checkpoint_000000").rename(tmp_path / "trial_c" / "checkpoint_000000")
    trials = record.read_trials(tmp_path)
    assert list(trials) == ["a", "b", "c"] and trials["b"].end == "error" and not trials["c"].done
    assert trials["c"].checkpoint(tmp_path) == ("trial_c/checkpoint_000000", 1)
    left = record.left(plan, trials)
    assert [t.trial_id for t in left.done] == ["a", "b"]  # an errored trial is kept, not rerun
    assert [(t.trial_id, i) for t, i, _ in left.continued] == [("c", 2)]
    assert left.fresh == [(3, {"lr": 0.4})] and not left.nothing


def test_trials_from_before_the_plan_are_matched_by_value_and_learning_segments_count(tmp_path):
    plan = [record.add_segment(tmp_path, [{"lr": 0.1}, {"lr": 0.1}, {"lr": 0.2}], 3),
            record.add_segment(tmp_path, None, 3)]
    write_trial(tmp_path, "old", {"lr": 0.1}, [{"epoch": 1}], "complete")  # untagged: by value
    write_trial(tmp_path, "s1", {"lr": 0.7, RECORD_KEY: {"segment": 1}}, [], "complete")
    write_trial(tmp_path, "s2", {"lr": 0.8, RECORD_KEY: {"segment": 1}}, [])
    left = record.left(plan, record.read_trials(tmp_path))
    assert left.fresh == [(1, {"lr": 0.1}), (2, {"lr": 0.2})]  # the same value twice: once matched
    assert [(t.trial_id, seg) for t, _, seg in left.continued] == [("s2", 1)]
    assert left.samples == {1: 1}  # 3 samples, 2 drawn


def _trial(tid: str) -> SimpleNamespace:
    return SimpleNamespace(trial_id=tid, config={})


@pytest.mark.parametrize("make", [
    lambda: ASHA(time_attr="epoch", metric="v", mode="max", max_t=9, grace_period=1, reduction_factor=2),
    lambda: Median(time_attr="epoch", metric="v", mode="max", grace_period=1, min_samples_required=2),
], ids=["asha", "median"])
def test_a_scheduler_rebuilt_from_the_record_decides_as_the_uninterrupted_one(tmp_path, make):
    """Twelve trials, one after another, each reporting until the scheduler stops it: cut after
    the seventh trial's third epoch, the record replayed into a fresh scheduler, and the rest
    run live (the seventh continuing under its hpo id in a new Ray trial): every decision is
    the uninterrupted scheduler's."""
    rng = random.Random(0)
    curves = {f"t{i}": [rng.random() * (1 + e / 4) for e in range(1, 10)] for i in range(12)}
    curves["t6"] = [1.5 + e / 10 for e in range(1, 10)]  # the one cut: good enough to go on
    ctl = NoController()

    stops: set[str] = set()

    def run(sched: object, ids: list[str], log: dict, start: dict | None = None) -> dict[str, int]:
        out = {}
        for tid in ids:
            ray = _trial(tid)
            begin = (start or {}).get(tid, 0)
            if begin:  # a continuation: a new Ray trial naming the trial it continues
                ray = SimpleNamespace(trial_id="new" + tid, config={RECORD_KEY: {"trial": tid}})
            sched.on_trial_add(ctl, ray)
            for e in range(begin + 1, 10):
                r = {"epoch": e, "v": curves[tid][e - 1]}
                log.setdefault(tid, []).append(r)
                stop = sched.on_trial_result(ctl, ray, r) == "STOP"
                if stop:
                    stops.add(tid)
                if stop or e == 9:
                    sched.on_trial_complete(ctl, ray, r)
                    out[tid] = e
                    break
        return out

    ids = list(curves)
    whole = run(make(), ids, {})
    # the cut run: six trials, then three epochs of the seventh
    log: dict[str, list] = {}
    stops.clear()
    first = make()
    run(first, ids[:6], log)
    first.on_trial_add(ctl, _trial("t6"))
    for e in (1, 2, 3):
        r = {"epoch": e, "v": curves["t6"][e - 1]}
        assert first.on_trial_result(ctl, _trial("t6"), r) != "STOP"
        log.setdefault("t6", []).append(r)
    t, trials = 0.0, []
    for tid in ids[:7]:
        rows = [{**r, "logged": (t := t + 1)} for r in log[tid]]
        trials.append(record.TrialRecord(tid, {}, {}, rows, "complete" if tid != "t6" else None,
                                         started=rows[0]["logged"] - 0.5, ended=t + 0.1))
    fresh = make()
    assert replay(fresh, record.steps(trials, {"t6": 3})) == stops  # the stops it made
    rest = run(fresh, ids[6:], {}, start={"t6": 3})
    assert {**{k: whole[k] for k in ids[:6]}, **rest} == whole


def test_a_trial_finds_the_run_folder_in_its_bucket_with_its_options(tmp_path):
    local = Storage(tmp_path)
    assert local.run_root(tmp_path / "run") == str(tmp_path / "run")
    remote = Storage(tmp_path, "s3://k:s@bucket/runs?endpoint_override=127.0.0.1:9000&scheme=http")
    assert remote.run_root(tmp_path / "run") == (
        "s3://k:s@bucket/runs/run?endpoint_override=127.0.0.1:9000&scheme=http")


def test_the_plan_searcher_lets_tune_start_as_many_trials_as_may_run():
    from hpo.runner.plan_search import PlanSearcher

    assert PlanSearcher([{}] * 5, max_concurrent=3).max_pending() == 3
    assert PlanSearcher([{}] * 5, inner=object()).max_pending() == 1  # a searcher that learns
    assert PlanSearcher([{}] * 5).max_pending() >= 16
