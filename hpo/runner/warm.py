"""Where the warm head of `hpo up` is: its record file and whether its process lives. Read by a
driver starting Ray (hpo.runner.session) and by hpo.runner.head, which starts and stops it."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def home() -> Path:
    return Path(os.environ.get("HPO_HOME") or Path.home() / ".cache" / "hpo")


def record_path() -> Path:
    return home() / "ray_head.json"


def running() -> dict[str, Any] | None:
    """The warm head's record if its process is alive, else None (a stale record is removed)."""
    p = record_path()
    try:
        rec = json.loads(p.read_text())
    except (OSError, ValueError):
        return None
    if _alive(rec.get("pid")):
        return rec
    p.unlink(missing_ok=True)
    return None


def _alive(pid: Any) -> bool:
    import psutil

    try:
        proc = psutil.Process(int(pid))
        return proc.status() != psutil.STATUS_ZOMBIE and "hpo.warm_head" in " ".join(proc.cmdline())
    except (psutil.Error, TypeError, ValueError):
        return False
