"""A resume whose snapshot names a checkpoint Ray deleted after it (hpo/runner/relink.py)."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from hpo.runner import relink
from tests.conftest import write_spec

pytestmark = pytest.mark.slow

SPEC = """\
name: relinked
trainable: mlp
dataset: {name: mnist_sample, train_size: 600, val_size: 200}
metric: val_acc
searcher: {name: grid}
execution: {pack: off}
budget: {max_epochs: 4, max_concurrent_trials: 1}
checkpoint: {every: 1}
params:
  lr: {grid: [0.1, 0.01]}
  hidden: [16]
  batch_size: 50
"""


def _as_if_killed(run_dir, trial_id: str, named: str) -> None:
    """Ray's newest snapshot as a kill leaves it after Ray deleted a checkpoint it lists: the
    trial still running, its checkpoints listed as `named` and the one before it (whichever of
    them is no longer on disk: gone), its checkpoint index at `named`."""
    from ray.train._internal.session import _TrainingResult
    from ray.tune import Checkpoint

    state = relink.newest_state(run_dir)
    doc = json.loads(state.read_text())
    for i, (trial_json, meta_json) in enumerate(doc["trial_data"]):
        trial = relink._loads(trial_json)
        if trial["trial_id"] != trial_id:
            continue
        trial["status"] = "RUNNING"
        index = int(named.rsplit("_", 1)[-1])
        trial["storage"].current_checkpoint_index = index
        meta = relink._manager(meta_json)
        manager = meta.checkpoint_manager
        like = manager.latest_checkpoint_result.checkpoint
        folder = str(like.path).rstrip("/").rpartition("/")[0]
        results = [_TrainingResult(checkpoint=Checkpoint(f"{folder}/checkpoint_{k:06d}", filesystem=like.filesystem),
                                   metrics={"epoch": k + 1, "training_iteration": k + 1})
                   for k in (index - 1, index)]
        manager._checkpoint_results, manager._latest_checkpoint_result = results, results[-1]
        meta.checkpoint_manager = manager
        doc["trial_data"][i] = [relink._dumps(trial), meta.get_json_state()]
    state.write_text(json.dumps(doc))


def _epochs(trial_dir) -> list[int]:
    return [json.loads(x)["epoch"] for x in (trial_dir / "result.json").read_text().splitlines() if x.strip()]


def _finished_run_keeping_its_trials(tmp_path, monkeypatch):
    """A finished run whose last snapshot still lists its finished trials (the driver forgets
    them otherwise: hpo.runner.lean), for `_as_if_killed` to turn one back into a running one."""
    import hpo as api
    from hpo.runner import tuning

    with monkeypatch.context() as m:  # the resume forgets as any run does
        m.setattr(tuning, "forgets_ended", lambda exp, verbose: False)
        return api.run(write_spec(tmp_path, SPEC), storage=tmp_path / "runs")


def test_a_trial_whose_named_checkpoint_is_gone_resumes_from_the_next(tmp_path, ray_session, capsys,
                                                                       monkeypatch):
    """The snapshot names checkpoint_000001 (deleted; 000002 and 000003 on disk): the trial
    resumes from 000002 (epoch 3), trains epoch 4 only, ends completed, writes its next
    checkpoint after every one on disk, and Ray's rotation deletes the stale 000003."""
    import hpo as api

    res = _finished_run_keeping_its_trials(tmp_path, monkeypatch)
    d = res.run_dir
    want = res.trials.set_index("trial_id")
    tid = want.index[0]
    trial_dir = d / f"trial_{tid}"
    assert sorted(p.name for p in trial_dir.glob("checkpoint_*")) == ["checkpoint_000002", "checkpoint_000003"]
    _as_if_killed(d, tid, "checkpoint_000001")
    assert relink.named_checkpoints(relink.newest_state(d)) == {tid: "checkpoint_000001"}

    got = api.resume(d)
    printed = capsys.readouterr().out
    assert f"named checkpoint_000001 of trial {tid}" in printed
    assert "resumes from checkpoint_000002 (after epoch 3)" in printed
    t = got.trials.set_index("trial_id")
    assert (t["status"] == "completed").all() and (t["epochs"] == 4).all(), t[["status", "status_detail"]]
    assert _epochs(trial_dir) == [1, 2, 3, 4, 4]  # restored after epoch 3: epoch 4 again
    assert sorted(p.name for p in trial_dir.glob("checkpoint_*")) == ["checkpoint_000002", "checkpoint_000004"]
    hist = pd.read_parquet(d / "history.parquet")
    assert not hist.duplicated(["trial_id", "epoch"]).any() and len(hist) == 8
    # the other trial, ended in the snapshot, is left as it was
    assert _epochs(d / f"trial_{want.index[1]}") == [1, 2, 3, 4]


def test_an_older_listed_checkpoint_that_is_gone_is_dropped(tmp_path, ray_session, caplog, monkeypatch):
    """The snapshot names checkpoint_000002 (on disk) and still lists checkpoint_000001, which
    Ray deleted after it: the resume drops 000001 from the trial's list, so Ray's rotation never
    tries to delete it again (it failed with a traceback, and the index of the checkpoint being
    registered was not advanced); the trial resumes from 000002 and ends completed."""
    import hpo as api

    res = _finished_run_keeping_its_trials(tmp_path, monkeypatch)
    d = res.run_dir
    tid = res.trials["trial_id"].iloc[0]
    trial_dir = d / f"trial_{tid}"
    _as_if_killed(d, tid, "checkpoint_000002")
    assert relink.relink(d, None) == [tid]
    doc = json.loads(relink.newest_state(d).read_text())
    listed = [[relink._name(r.checkpoint.path) for r in meta.checkpoint_manager._checkpoint_results]
              for _, _, meta, _ in relink._unfinished(doc)]
    assert listed == [["checkpoint_000002"]]
    assert relink.relink(d, None) == []  # nothing left to drop

    got = api.resume(d)
    assert "Error handling checkpoint" not in caplog.text
    t = got.trials.set_index("trial_id")
    assert (t["status"] == "completed").all() and (t["epochs"] == 4).all(), t[["status", "status_detail"]]
    assert _epochs(trial_dir) == [1, 2, 3, 4, 4]  # restored after epoch 3: epoch 4 again
    assert sorted(p.name for p in trial_dir.glob("checkpoint_*")) == ["checkpoint_000002", "checkpoint_000003"]


def test_nothing_to_relink(tmp_path):
    """A run folder without Ray's snapshot (a bucket's run), or a cut one: nothing changes."""
    assert relink.relink(tmp_path, None) == []
    (tmp_path / "experiment_state-2026-01-01_00-00-00.json").write_text('{"trial_data": [')
    assert relink.relink(tmp_path, None) == []
    assert relink.named_checkpoints(tmp_path / "experiment_state-2026-01-01_00-00-00.json") == {}
