"""hpo.runner.tuning's repair of Ray's experiment state before a resume (a storage fault)."""
from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from hpo.errors import SpecError
from hpo.runner.tuning import _rescue_dir, repair_state

NAME = "experiment_state-2026-11-25_09-00-00.json"


def state(step: int, *trials: str) -> str:
    data = [[json.dumps({"trial_id": t, "status": "RUNNING"}), json.dumps({})] for t in trials]
    return json.dumps({"trial_data": data, "runner_data": {"_iteration": step}, "stats": {}})


def known(path: Path) -> list[str]:
    return [json.loads(t)["trial_id"] for t, _ in json.loads(path.read_text())["trial_data"]]


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    d = tmp_path / "runs" / "sweep"
    d.mkdir(parents=True)
    return d


def keep(run_dir: Path, text: str) -> Path:
    kept = _rescue_dir(run_dir)
    kept.mkdir(parents=True)
    (kept / NAME).write_text(text)
    (kept / "search_gen_state-2026-11-25_09-00-00.json").write_text("{}")
    return kept


def test_a_whole_but_older_state_is_replaced_by_the_newer_kept_copy(run_dir):
    # the full storage took none of the last snapshots: the folder's knows 2 of the 4 trials
    (run_dir / NAME).write_text(state(40, "a", "b"))
    keep(run_dir, state(95, "a", "b", "c", "d"))
    out = io.StringIO()
    assert repair_state(run_dir, out) is True
    assert known(run_dir / NAME) == ["a", "b", "c", "d"]
    assert (run_dir / "search_gen_state-2026-11-25_09-00-00.json").exists()
    assert "older than the copy kept" in out.getvalue()


def test_a_whole_state_as_new_as_the_kept_copy_is_left_as_it_is(run_dir):
    (run_dir / NAME).write_text(state(95, "a", "b", "x"))
    keep(run_dir, state(95, "a", "b"))
    assert repair_state(run_dir, io.StringIO()) is False
    assert known(run_dir / NAME) == ["a", "b", "x"]


def test_a_cut_state_is_restored_from_the_kept_copy(run_dir):
    (run_dir / NAME).write_text(state(95, "a", "b", "c")[:50])
    keep(run_dir, state(90, "a", "b", "c"))
    out = io.StringIO()
    assert repair_state(run_dir, out) is True
    assert known(run_dir / NAME) == ["a", "b", "c"] and "was cut short" in out.getvalue()


def test_a_cut_state_without_a_kept_copy_falls_back_to_the_older_one(run_dir):
    (run_dir / "experiment_state-2026-11-25_08-00-00.json").write_text(state(10, "a"))
    (run_dir / NAME).write_text(state(95, "a", "b")[:50])
    assert repair_state(run_dir, io.StringIO()) is False
    assert (run_dir / (NAME + ".cut")).exists() and not (run_dir / NAME).exists()


def test_the_only_state_cut_without_a_kept_copy_refuses_the_resume(run_dir):
    (run_dir / NAME).write_text(state(95, "a")[:50])
    with pytest.raises(SpecError, match="cut short .* cannot be resumed"):
        repair_state(run_dir, io.StringIO())
