"""A warm local Ray kept between commands: `hpo up` starts it in a process of its own, `hpo run`
hands it the sweep (hpo.runner.served) and `hpo resume` joins it by itself (when no --address is
given), `hpo down` stops it.

Every command that starts its own Ray pays Ray's start (~5 s, half of it the dashboard) and its
shutdown at exit (~1.5 s); joining a running one pays neither. The head is an ordinary local Ray
started the way `hpo run` starts one (loopback only, token authentication on, the dashboard on
127.0.0.1, workers importing torch as they start), held by a small process whose id and Ray
address are recorded in ``$HPO_HOME/ray_head.json`` (default ``~/.cache/hpo``). `hpo down`
stops that process by its id; it shuts its Ray down and removes the record. A record whose
process is gone is stale and ignored.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hpo.runner import served
from hpo.runner.warm import _alive, home, record_path, running  # noqa: F401 (hpo.runner.head's API)

START_TIMEOUT_S = 120


def up(dashboard: bool = True, num_cpus: int | None = None,
       num_gpus: int | None = None) -> tuple[dict[str, Any], bool]:
    """Start the warm head unless one is running. Returns (its record, whether it was started now)."""
    rec = running()
    if rec:
        return rec, False
    home().mkdir(parents=True, exist_ok=True)
    log = home() / "ray_head.log"
    cmd = [sys.executable, "-m", "hpo.warm_head", "--record", str(record_path())]
    cmd += [] if dashboard else ["--no-dashboard"]
    cmd += ["--num-cpus", str(num_cpus)] if num_cpus is not None else []
    cmd += ["--num-gpus", str(num_gpus)] if num_gpus is not None else []
    with open(log, "w") as f:  # its own session: it outlives this command and its terminal
        proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
    deadline = time.time() + START_TIMEOUT_S
    while time.time() < deadline:
        rec = running()
        if rec and rec["pid"] == proc.pid:
            proc.returncode = 0  # it lives on in a session of its own: not this process's to wait for
            return rec, True
        if proc.poll() is not None:
            raise RuntimeError(f"the warm Ray did not start (exit {proc.returncode}); its log, "
                               f"{log}:\n" + log.read_text()[-3000:])
        time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"the warm Ray did not start within {START_TIMEOUT_S} s; its log: {log}")


def down(timeout_s: float = 60) -> dict[str, Any] | None:
    """Stop the warm head by its process id; returns its record, or None when none was running."""
    rec = running()
    if not rec:
        return None
    pid = int(rec["pid"])
    os.kill(pid, signal.SIGTERM)  # the head shuts its Ray down and removes its record
    deadline = time.time() + timeout_s
    while _alive(pid) and time.time() < deadline:
        time.sleep(0.1)
    if _alive(pid):
        os.killpg(pid, signal.SIGKILL)  # its session: the head and the Ray processes it started
    record_path().unlink(missing_ok=True)
    return rec


def serve(record: Path, dashboard: bool, num_cpus: int | None, num_gpus: int | None,
          main: Callable[[list[str]], int], parser: Callable[[], argparse.ArgumentParser]) -> None:
    """The head process: start a local Ray, record where it is, keep idle workers for trials
    and run the `hpo run` commands clients send it (hpo.runner.served), until SIGTERM."""
    import ray

    from hpo.runner.folder import SIGTERM_SEEN
    from hpo.runner.session import init_ray, tune_env

    tune_env()
    url = init_ray(None, dashboard, sys.stdout, "hpo up", num_cpus=num_cpus, num_gpus=num_gpus, warm=False)
    ctx = ray.get_runtime_context()
    rec = {"pid": os.getpid(), "address": ctx.gcs_address, "dashboard_url": url,
           "started": time.time(), "resources": ray.cluster_resources(), "node_id": ctx.get_node_id(),
           "auth_mode": os.environ.get("RAY_AUTH_MODE", "disabled")}  # set by ray.init turning tokens on
    try:
        server: served.Server | None = served.Server(served.socket_path(record.parent), main, parser)
        rec["socket"] = str(server.path)
    except (OSError, AttributeError) as e:  # no Unix sockets with fd passing (Windows), a path too long
        server = None
        print(f"hpo: the warm head runs no commands itself ({type(e).__name__}: {e}); they join its Ray",
              flush=True)
    workers = int(rec["resources"].get("CPU", 0))
    if server and served.keep_workers(workers):
        served.wait_idle_workers(workers)  # `hpo up` returns with them ready for its first run
    tmp = record.with_suffix(".tmp")
    tmp.write_text(json.dumps(rec, indent=1))
    tmp.replace(record)  # atomic: a reader sees no record or a whole one

    stop = False

    def on_term(signum: int, frame: Any) -> None:
        nonlocal stop
        stop = True
        if server:
            server.interrupt()  # `hpo down` while a served command is outside its fit: as Ctrl-C

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    while not stop:
        if server is None:
            time.sleep(0.5)
        elif server.serve_next(timeout=0.5):
            stop = stop or SIGTERM_SEEN.is_set()  # `hpo down` while the run trained: it ended first
            if not stop:
                served.keep_workers(workers)  # the run's trial actors took (and ended) some
    if server:
        server.close()
    ray.shutdown()
    record.unlink(missing_ok=True)


def main(cli_main: Callable[[list[str]], int], parser: Callable[[], argparse.ArgumentParser]) -> None:
    """The head process's arguments; `cli_main` and `parser` (the CLI's) run clients' commands."""
    ap = argparse.ArgumentParser(prog="python -m hpo.warm_head")
    ap.add_argument("--record", type=Path, required=True)
    ap.add_argument("--no-dashboard", action="store_true")
    ap.add_argument("--num-cpus", type=int)
    ap.add_argument("--num-gpus", type=int)
    a = ap.parse_args()
    serve(a.record, not a.no_dashboard, a.num_cpus, a.num_gpus, cli_main, parser)
