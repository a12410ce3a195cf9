"""The run folder (hpo.runner.folder): a name is claimed atomically, so runs started at the
same moment into the same storage never share a folder."""

from __future__ import annotations

import multiprocessing as mp
from pathlib import Path

from hpo.runner.folder import claim_run_dir


def _claim(args: tuple[str, str]) -> str:
    root, barrier_file = args
    import time

    while not Path(barrier_file).exists():  # start together
        time.sleep(0.001)
    return claim_run_dir(Path(root), "same").name


def test_runs_started_at_once_claim_distinct_folders(tmp_path):
    go = tmp_path / "go"
    with mp.get_context("spawn").Pool(8) as pool:
        pending = pool.map_async(_claim, [(str(tmp_path / "runs"), str(go))] * 16)
        import time

        time.sleep(2)  # let every worker start and wait at the barrier
        go.touch()
        names = pending.get(60)
    assert sorted(names) == sorted(["same"] + [f"same-{i}" for i in range(2, 17)])
    assert all((tmp_path / "runs" / n).is_dir() for n in names)


def test_a_taken_name_is_never_reused(tmp_path):
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "spec.yaml").write_text("kept")
    assert claim_run_dir(tmp_path, "r").name == "r-2"
    assert claim_run_dir(tmp_path, "r").name == "r-3"
    assert (tmp_path / "r" / "spec.yaml").read_text() == "kept"
