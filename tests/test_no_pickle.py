"""Reading or resuming a run executes nothing from it: run folders travel (a bucket, a
colleague's copy), and a pickle runs code when it is loaded. A pickle that would create a file
is planted in every place a run folder holds one (Ray's state and trial files, the old
scheduler state, checkpoints, the best model); `hpo report`, `hpo best`, `hpo resume` and
`hpo.load_model` then run, and the file never appears."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import write_spec

pytestmark = pytest.mark.slow

SPEC = """\
name: planted
trainable: mlp
dataset: {name: mnist_sample, train_size: 1000, val_size: 200}
metric: val_acc
searcher: {name: grid}
execution: {pack: off}
budget: {max_epochs: 2, max_concurrent_trials: 1}
checkpoint: {every: 1}
params: {lr: {grid: [0.1, 0.01]}, hidden: [8], batch_size: 50}
"""


class Planted:
    """Creates `path` when unpickled."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self):  # noqa: D105
        return (os.system, (f"touch {self.path}",))


def test_reading_or_resuming_a_run_never_unpickles_what_it_holds(tmp_path):
    import pickle

    import torch

    import hpo

    marker = tmp_path / "PWNED"
    res = hpo.run(write_spec(tmp_path, SPEC), storage=tmp_path / "runs")
    d = res.run_dir
    assert res.state == "finished" and (d / "best_model" / "model.pt").exists()
    evil = pickle.dumps(Planted(marker))
    pickle.loads(evil)  # the plant works: loading it creates the file
    assert marker.exists()
    marker.unlink()
    # one trial made unfinished: the resume continues it from its (planted) checkpoint
    events = [json.loads(x) for x in (d / "events.jsonl").read_text().splitlines()]
    cut = events[-1]["trial_id"]
    (d / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events
                                            if not (e["trial_id"] == cut and e["event"] == "complete")))
    log = d / f"trial_{cut}" / "trial.jsonl"
    log.write_text("".join(log.read_text().splitlines(True)[:-1]))  # cut after its first epoch
    (d / "run.json").write_text(json.dumps({**json.loads((d / "run.json").read_text()), "state": "interrupted"}))
    planted = [d / "tuner.pkl", d / "scheduler_state.pkl", d / "searcher-state.pkl"]
    for p in [*d.glob("*.pkl"), *d.glob("trial_*/*.pkl"), *planted]:
        p.write_bytes(evil)
    (d / "trial_x").mkdir()
    (d / "trial_x" / "error.pkl").write_bytes(evil)
    for p in [*d.glob("trial_*/checkpoint_*/*.pt"), d / "best_model" / "model.pt"]:
        torch.save({"weights": Planted(marker)}, p)
    env = {**os.environ, "HPO_OFFLINE": "1"}
    for args in (["report", str(d)], ["best", str(d)], ["resume", str(d), "--no-dashboard", "--no-progress"]):
        r = subprocess.run([sys.executable, "-m", "hpo.cli", *args], cwd=tmp_path, env=env,
                           capture_output=True, text=True, timeout=600)
        assert not marker.exists(), (args, r.stdout[-2000:], r.stderr[-2000:])
        assert "Traceback" not in r.stdout + r.stderr or args[0] != "report", r.stderr[-2000:]
    t = hpo.load_run(d).trials
    assert len(t) == 2 and (t["status"] == "completed").all()
    said = t.set_index("trial_id").loc[cut, "status_detail"]
    assert "could not be read" in said and "started again at epoch 1" in said, said
    for p in [d / "best_model" / "model.pt"]:
        torch.save({"weights": Planted(marker)}, p)
    with pytest.raises(Exception):  # noqa: B017, PT011 - refused by torch's weights-only loader
        hpo.load_model(d)
    assert not marker.exists()
