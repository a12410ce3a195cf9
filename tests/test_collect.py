"""The collector (hpo.runner.collect): reading a run never destroys it."""

from __future__ import annotations

import json
import shutil

import pandas as pd

from hpo.runner.collect import write_tables

SPEC = "name: r\ntrainable: mlp\ndataset: mnist_sample\nmetric: val_acc\nparams: {lr: {grid: [0.1, 0.2, 0.3, 0.4]}}\n"


def test_tables_never_lose_trials_whose_folders_are_gone(tmp_path, capsys):
    d = tmp_path / "r"
    d.mkdir()
    (d / "spec.yaml").write_text(SPEC)
    (d / "run.json").write_text(json.dumps({"metric": "val_acc", "mode": "max", "metrics": {"val_acc": "max"},
                                            "state": "running"}))
    for i, lr in enumerate((0.1, 0.2, 0.3, 0.4)):
        t = d / f"trial_t{i}"
        t.mkdir()
        rows = [{"config": {"lr": lr, "_hpo": {"plan": i}}}] + [{"epoch": e, "val_acc": lr * e} for e in (1, 2, 3)]
        (t / "trial.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        with open(d / "events.jsonl", "a") as f:
            f.write(json.dumps({"trial_id": f"t{i}", "event": "start", "time": i}) + "\n")
            f.write(json.dumps({"trial_id": f"t{i}", "event": "complete", "time": i + 0.5}) + "\n")
    trials, history = write_tables(d)
    assert len(trials) == 4 and len(history) == 12 and list(trials["trial_index"]) == [0, 1, 2, 3]
    shutil.rmtree(d / "trial_t1")
    shutil.rmtree(d / "trial_t3")
    trials2, history2 = write_tables(d)
    assert len(trials2) == 4 and len(history2) == 12
    assert "2 trial(s) of the tables have no trial folder" in capsys.readouterr().err
    pd.testing.assert_frame_equal(pd.read_parquet(d / "trials.parquet").drop(columns=["collapsed"], errors="ignore"),
                                  trials.drop(columns=["collapsed"], errors="ignore"), check_like=True)
    # the trials table deleted as well (its CSV copy left), or both trials files: the history
    # keeps every epoch, the trials table every trial it can still be told
    (d / "trials.parquet").unlink()
    trials3, history3 = write_tables(d)
    assert len(trials3) == 4 and len(history3) == 12
    assert sorted(trials3["trial_id"]) == ["t0", "t1", "t2", "t3"]
    (d / "trials.parquet").unlink()
    (d / "trials.csv").unlink()
    trials4, history4 = write_tables(d)
    assert sorted(trials4["trial_id"]) == ["t0", "t2"] and len(history4) == 12
    assert "2 trial(s) of the tables have no trial folder" in capsys.readouterr().err
