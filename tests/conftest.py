from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "datasets"


def shared_mnist() -> Path | None:
    """The real MNIST folder, from HPO_DATA_DIR or ../shared/datasets, when it is there."""
    for d in (os.environ.get("HPO_DATA_DIR"), str(SHARED)):
        if d and (Path(d) / "MNIST" / "raw" / "train-images-idx3-ubyte.gz").exists():
            return Path(d)
    return None


@pytest.fixture
def mnist_dir() -> Path:
    d = shared_mnist()
    if d is None:
        pytest.skip("real MNIST not available (set HPO_DATA_DIR)")
    return d


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    # No test downloads anything, and none joins a warm Ray (`hpo up`) running on this machine.
    monkeypatch.setenv("HPO_OFFLINE", "1")
    monkeypatch.setenv("HPO_HOME", str(tmp_path_factory.getbasetemp() / "hpo_home"))
    monkeypatch.setenv("HPO_REPORT_STRICT", "1")  # a report section that fails fails the test


def _start_ray() -> None:
    import ray

    os.environ["HPO_OFFLINE"] = "1"
    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING",
             runtime_env={"worker_process_setup_hook": "hpo.trainables._ray.warm_up",
                          "env_vars": {"HPO_OFFLINE": "1"}})


@pytest.fixture(scope="session")
def ray_session():
    """One local Ray for all in-process runner tests (no dashboard: faster start)."""
    import ray

    _start_ray()
    yield
    ray.shutdown()


FAILED = pytest.StashKey[bool]()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report = yield
    if report.failed:
        item.stash[FAILED] = True
    return report


@pytest.fixture(autouse=True)
def _fresh_ray_after_a_failure(request: pytest.FixtureRequest):
    """A test that failed on the shared Ray (or timed out) may leave actors holding its CPUs or
    a trial controller mid-step; the next test gets a new Ray instead of waiting on them."""
    yield
    if "ray_session" in request.fixturenames and request.node.stash.get(FAILED, False):
        import ray

        ray.shutdown()
        _start_ray()


def write_spec(tmp_path: Path, text: str, name: str = "spec.yaml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


MINIMAL = """\
name: t
trainable: mlp
dataset: mnist_sample
metric: val_acc
params:
  lr: {grid: [0.1, 0.01]}
"""


def wait_for(cond: Any, timeout: float, what: str, every: float = 0.2) -> Any:
    """`cond()`'s first truthy value within `timeout` seconds, else an AssertionError naming `what`."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        got = cond()
        if got:
            return got
        time.sleep(every)
    raise AssertionError(f"timed out waiting for {what}")
