"""The benchmark scripts that must behave in a known way on any machine."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA: the script would run")
def test_gpu_benchmark_refuses_clearly_without_cuda(tmp_path):
    out = tmp_path / "BENCHMARKS.md"
    out.write_text("# Benchmarks\n\nkept\n")
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "run_all.py"), "--only", "gpu", "--out", str(out)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    assert "needs a CUDA GPU" in r.stderr and "make bench" in r.stderr
    assert out.read_text() == "# Benchmarks\n\nkept\n"  # nothing written over

