"""The Ray dashboard of a local `hpo run`: it answers during the run, only on loopback, and
only with the cluster's token."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import write_spec

pytestmark = pytest.mark.slow

SPEC = """\
name: dash
trainable: mlp
dataset: {name: mnist_sample, train_size: 9000, val_size: 500}
metric: val_acc
budget: {max_epochs: 8, max_concurrent_trials: 2}
params:
  lr: {grid: [0.1, 0.01]}
  hidden: [64]
  batch_size: 16
"""


def status(url: str, token: str | None = None) -> int:
    req = urllib.request.Request(url)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        return urllib.request.urlopen(req, timeout=10).status
    except urllib.error.HTTPError as e:
        return e.code


def listening_addresses(port: int) -> set[str]:
    """Local IPv4 addresses with a listening TCP socket on `port`, read from /proc (no traffic)."""
    import socket
    import struct

    out = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        ip_hex, port_hex = local.split(":")
        if state == "0A" and int(port_hex, 16) == port:  # 0A = LISTEN
            out.add(socket.inet_ntoa(struct.pack("<I", int(ip_hex, 16))))
    six = Path("/proc/net/tcp6")
    if six.exists() and any(ln.split()[3] == "0A" and int(ln.split()[1].split(":")[1], 16) == port
                            for ln in six.read_text().splitlines()[1:]):
        out.add("ipv6")
    return out


def test_dashboard_needs_the_token_and_listens_on_loopback_only(tmp_path):
    spec = write_spec(tmp_path, SPEC)
    proc = subprocess.Popen([sys.executable, "-m", "hpo.cli", "run", str(spec), "--storage",
                             str(tmp_path / "runs"), "--no-progress"], cwd=tmp_path, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            env={**os.environ, "HPO_OFFLINE": "1", "PYTHONUNBUFFERED": "1"})
    try:
        url, seen = None, []
        for line in proc.stdout:
            seen.append(line)
            m = re.search(r"Ray dashboard: (http://127\.0\.0\.1:\d+)", line)
            if m:
                url = m.group(1)
                break
        assert url, "".join(seen)[-3000:]
        token = (Path.home() / ".ray" / "auth_token").read_text().strip()
        assert proc.poll() is None  # the run is still going
        assert status(f"{url}/api/version") == 401
        assert status(f"{url}/nodes?view=summary") == 401
        assert status(f"{url}/api/version", token) == 200
        assert status(f"{url}/nodes?view=summary", token) == 200
        assert listening_addresses(int(url.rsplit(":", 1)[1])) == {"127.0.0.1"}
        assert proc.poll() is None
        out, _ = proc.communicate(timeout=600)
        assert proc.returncode == 0, out[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
