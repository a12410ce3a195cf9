"""`hpo run` served by the warm head of `hpo up`: the command's first ~4 s are its own driver's
start and a new Ray job's worker processes starting (Python, Ray, torch: ~2.5 s of each trial
actor's start). Ray keeps worker processes per job, never between jobs, so a warm Ray alone
cannot keep them. The head can: it is one long-lived driver that keeps idle workers started
(Ray's raylet `PrestartWorkers`, torch imported) and runs the sweep itself when `hpo run` asks.

    client (`hpo run` with no --address)     head (`hpo up`, hpo.runner.head.serve)
      connect $HPO_HOME/ray_head.sock  --->   busy with another run? -> "busy"
      send argv, cwd, environment and         names your own code (`model:`, `module:function`)?
      its stdin/stdout/stderr (the fds)       -> "declined": its modules would stay imported
                                              else run the CLI's main(argv) in that cwd and
      Ctrl-C -> "interrupt"           --->    environment, writing to those fds; SIGINT on
                                              "interrupt" or a lost client, as in a terminal
      exit with the run's code        <---    {"rc": n}; start idle workers again

"busy" and "declined" (and a head without a socket) leave the client to run the sweep itself,
joining the warm Ray as before. The socket is the user's only (0600, in $HPO_HOME).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import queue
import signal
import socket
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from hpo import refs
from hpo.errors import SpecError
from hpo.ray_compat import usable
from hpo.ray_compat.ray_init import raylet

SOCKET = "ray_head.sock"
IN_HEAD = False  # True in the head process: its commands never ask a head
KEEP_IDLE_S = 3600  # prestarted workers wait this long for trials; replenished after each command
MAX_REQUEST = 1 << 20


def socket_path(home: Path) -> Path:
    return home / SOCKET


# ---------------------------------------------------------------- client (no Ray, no torch)

def try_served(argv: list[str], rec: dict[str, Any], out: Any = sys.stderr) -> int | None:
    """Have the warm head run `hpo <argv>`; its exit code, or None when it would not (busy,
    declined, unreachable): then the caller runs the command itself."""
    path = rec.get("socket")
    if not path:
        return None
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(path)
        req = json.dumps({"argv": argv, "cwd": os.getcwd(), "env": dict(os.environ)}).encode() + b"\n"
        socket.send_fds(s, [req], [0, 1, 2])
    except (OSError, AttributeError):  # gone, refused, a closed stdin; no fd passing here
        s.close()
        return None
    previous = signal.getsignal(signal.SIGINT)

    def interrupt(signum: int, frame: Any) -> None:
        with contextlib.suppress(OSError):
            s.sendall(b"interrupt\n")

    signal.signal(signal.SIGINT, interrupt)
    try:
        with s, s.makefile("rb") as replies:
            for line in replies:
                msg = json.loads(line)
                if "rc" in msg:
                    return int(msg["rc"])
                if "declined" in msg:
                    print(f"hpo: the warm head of `hpo up` does not run this spec itself "
                          f"({msg['declined']}); joining its Ray instead.", file=out, flush=True)
                    return None
                if msg.get("busy"):
                    return None
        print(f"hpo: the warm head of `hpo up` (process {rec.get('pid')}) stopped during the "
              f"command; its log: {Path(path).with_name('ray_head.log')}", file=out, flush=True)
        return 1
    finally:
        signal.signal(signal.SIGINT, previous)


# ---------------------------------------------------------------- server (in the head)

class Server:
    """Accepts commands on a Unix socket in a thread; `serve_next` runs one in the caller's
    (the head's main) thread: Tune, signals and Ray's driver all want the main thread."""

    def __init__(self, path: Path, main: Callable[[list[str]], int],
                 parser: Callable[[], argparse.ArgumentParser]) -> None:
        """`main` runs one command line and `parser` parses one: the CLI's, handed down by the
        head's entry point (hpo.warm_head), which sits above the CLI."""
        self.main, self.parser = main, parser
        self._log = os.dup(2)  # the head's own stderr (its log): what the clients' commands did
        path.unlink(missing_ok=True)
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)
        try:
            self.sock.bind(str(path))  # created 0600: only this user can connect
        finally:
            os.umask(old)
        self.sock.listen(8)
        global IN_HEAD
        IN_HEAD = True
        self._jobs: queue.Queue[tuple[socket.socket, bytes, list[int]]] = queue.Queue(maxsize=1)
        self._busy = threading.Lock()
        self._lock = threading.RLock()  # also taken in a signal handler (`interrupt`, main thread)
        self._running = False
        threading.Thread(target=self._accept, daemon=True, name="hpo-served-accept").start()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()
            os.close(self._log)
        self.path.unlink(missing_ok=True)

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            try:
                conn.settimeout(10)  # a client sends its request at once
                data, fds, _, _ = socket.recv_fds(conn, 65536, 3)
                while not data.endswith(b"\n") and len(data) < MAX_REQUEST:
                    more = conn.recv(65536)
                    if not more:
                        break
                    data += more
            except OSError:
                conn.close()
                continue
            conn.settimeout(None)
            if len(fds) != 3 or not self._busy.acquire(blocking=False):
                _close(conn, fds, {"busy": True})
                continue
            self._jobs.put((conn, data, fds))

    def serve_next(self, timeout: float) -> bool:
        """Run the next command if one arrives within `timeout`; whether one ran."""
        try:
            conn, data, fds = self._jobs.get(timeout=timeout)
        except queue.Empty:
            return False
        reply: dict[str, Any] = {"rc": 1}
        try:
            req = json.loads(data)
            with _as_client(req, fds):
                why, valid = declined(req["argv"], self.parser)
                if why:
                    reply = {"declined": why}
                else:
                    reply = {"rc": self._run(conn, req["argv"], announce=valid)}
        except Exception as e:  # noqa: BLE001  (the head serves on; the client hears why)
            print(f"hpo: the warm head could not run the command: {type(e).__name__}: {e}",
                  file=sys.stderr, flush=True)
        finally:
            self._busy.release()  # first: a client told the result may send its next command at once
            _close(conn, fds, reply)
        return True

    def _run(self, conn: socket.socket, argv: list[str], announce: bool) -> int:
        def watch() -> None:  # Ctrl-C at the client, or the client gone: SIGINT, as a terminal would
            with contextlib.suppress(OSError), conn.makefile("rb") as f:
                for _ in f:
                    self.interrupt()
            self.interrupt()

        if announce:
            print(f"hpo: run by the warm head of `hpo up` (process {os.getpid()}): its idle workers take "
                  f"the trials; `hpo down` stops it.", flush=True)
        with self._lock:
            self._running = True
        threading.Thread(target=watch, daemon=True, name="hpo-served-watch").start()
        rc = 1
        try:
            try:
                rc = self.main(argv)
            finally:
                with self._lock:
                    self._running = False
        except SystemExit as e:
            rc = e.code if isinstance(e.code, int) else 1
        except KeyboardInterrupt:
            rc = 130
        except BaseException:  # noqa: BLE001  (as an uncaught error would print and exit 1)
            text = traceback.format_exc()
            print(text, end="", file=sys.stderr)  # the client's
            self._say(text)  # and the head's log: a client that is gone hears nothing
            rc = 1
        self._say(f"hpo: served `hpo {' '.join(argv)}`: exit {rc}\n")
        return rc

    def _say(self, text: str) -> None:
        with contextlib.suppress(OSError):
            os.write(self._log, text.encode("utf-8", "backslashreplace"))

    def interrupt(self) -> None:
        """SIGINT to the command being served (a no-op between commands)."""
        with self._lock:
            if self._running:
                signal.raise_signal(signal.SIGINT)


def declined(argv: list[str], parser: Callable[[], argparse.ArgumentParser]) -> tuple[str | None, bool]:
    """Why the head would not run this command itself (or None), and whether its spec is
    valid (an invalid one is run: its error is printed as without a head). Only `hpo run` of a spec with
    hpo's own trainables and datasets: user code imported into the long-lived head would stay
    there, and edits to it would be missed by the next run."""
    from hpo.experiment import load_experiment

    try:
        args = parser().parse_args(argv)
    except SystemExit:
        return "its arguments do not parse here (was the head started by another hpo?)", False
    if args.command != "run" or args.address or args.own_driver:
        return f"only `hpo run` on the local Ray is served, not `hpo {args.command}`", False
    try:
        spec = load_experiment(args.spec, args.overrides, local=True).spec
    except SpecError:
        return None, False
    refs = [ref for ref in (spec.model, spec.trainable, spec.dataset.name) if ref and ":" in ref]
    return (f"it names your own code: {', '.join(refs)}" if refs else None), True


@contextlib.contextmanager
def _as_client(req: dict[str, Any], fds: list[int]) -> Iterator[None]:
    """Within: the client's stdin/stdout/stderr (file descriptors and sys.std*), working
    directory and environment (Ray's own variables stay the head's), the default SIGINT
    handler; after: all as before, and no module, sys.path entry or search path the command
    added from outside the installed packages."""
    saved_fds = [os.dup(i) for i in (0, 1, 2)]
    saved_std = sys.stdin, sys.stdout, sys.stderr
    saved_env, saved_cwd = dict(os.environ), os.getcwd()
    saved_path, saved_extra, saved_mods = list(sys.path), list(refs._EXTRA), set(sys.modules)
    saved_sig = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    for f in saved_std[1:]:
        f.flush()
    try:
        for i, fd in enumerate(fds):
            os.dup2(fd, i)
        sys.stdin = io.TextIOWrapper(io.FileIO(0, "r", closefd=False), encoding="utf-8")
        sys.stdout, sys.stderr = (_ToClient(io.FileIO(i, "w", closefd=False), encoding="utf-8",
                                            errors="backslashreplace", line_buffering=True)
                                  for i in (1, 2))
        os.environ.clear()
        os.environ.update({k: v for k, v in req["env"].items() if not k.startswith("RAY_")})
        os.environ.update({k: v for k, v in saved_env.items() if k.startswith("RAY_")})
        os.chdir(req["cwd"])
        signal.signal(signal.SIGINT, signal.default_int_handler)
        yield
    finally:
        for f in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                f.flush()
        sys.stdin, sys.stdout, sys.stderr = saved_std
        for i, fd in enumerate(saved_fds):
            os.dup2(fd, i)
            os.close(fd)
        os.environ.clear()
        os.environ.update(saved_env)
        os.chdir(saved_cwd)
        sys.path[:], refs._EXTRA[:] = saved_path, saved_extra
        for s, h in saved_sig.items():
            signal.signal(s, h)
        installed = tuple(str(Path(p).resolve()) for p in {sys.prefix, sys.base_prefix})
        own = str(Path(__file__).resolve().parents[1])
        for name in set(sys.modules) - saved_mods:
            file = getattr(sys.modules[name], "__file__", None) or ""
            if file and not str(Path(file).resolve()).startswith((*installed, own)):
                del sys.modules[name]


class _ToClient(io.TextIOWrapper):
    """The client's stdout or stderr. A client that went away (its terminal closed, killed)
    leaves a pipe or terminal that fails every write; its output is dropped instead of raising
    into the run, which ends as interrupted with all its trials produced."""

    def write(self, s: str) -> int:
        try:
            return super().write(s)
        except OSError:
            return len(s)

    def flush(self) -> None:
        with contextlib.suppress(OSError):
            super().flush()


def _close(conn: socket.socket, fds: list[int], reply: dict[str, Any]) -> None:
    with contextlib.suppress(OSError):
        conn.sendall(json.dumps(reply).encode() + b"\n")
    with contextlib.suppress(OSError):
        conn.shutdown(socket.SHUT_RDWR)
    conn.close()
    for fd in fds:
        with contextlib.suppress(OSError):
            os.close(fd)


# ---------------------------------------------------------------- idle workers (Ray internals)

def wait_idle_workers(n: int, timeout_s: float = 20) -> int:
    """Wait until `n` idle workers of this job have finished starting (Python, Ray, torch: their
    CPU time stops growing), at most `timeout_s`; how many have. `hpo up` returns after this,
    so its first `hpo run` finds them ready."""
    import psutil

    if not usable("prestart_workers"):
        return 0
    deadline, ready, last = time.time() + timeout_s, 0, {}
    try:
        with raylet() as (stub, job, _):
            while time.time() < deadline:
                cpu = {}
                for pid in _idle_worker_pids(stub, job):
                    with contextlib.suppress(psutil.Error):
                        t = psutil.Process(pid).cpu_times()
                        cpu[pid] = t.user + t.system
                # idle: under 1/6 of a core since the last look (starting: a whole one, importing torch)
                ready = sum(1 for pid, c in cpu.items() if pid in last and c - last[pid] < 0.05)
                if ready >= n:
                    break
                last = cpu
                time.sleep(0.3)
    except Exception:  # noqa: BLE001  (a speed-up only)
        pass
    return ready


def _idle_worker_pids(stub: Any, job: bytes) -> list[int]:
    from ray.core.generated import common_pb2, node_manager_pb2

    stats = stub.GetNodeStats(node_manager_pb2.GetNodeStatsRequest(), timeout=5)
    return [c.pid for c in stats.core_workers_stats
            if c.job_id == job and c.worker_type == common_pb2.WORKER
            and set(c.actor_id) <= {0xFF} and c.num_executed_tasks == 0]  # no actor: a nil id


def keep_workers(n: int) -> int:
    """Start workers until `n` idle ones of this job wait for trial actors; how many were asked
    for (0 when enough wait, or the raylet refused: trials then start their own, as usual).

    Ray has the request (raylet `PrestartWorkers`, with a keep-alive) but no Python API for it;
    it is sent over Ray's own gRPC channel to this node's raylet (with the token when
    authentication is on). A worker takes an actor only when the job and the runtime env match
    exactly: the env is the one Tune gives its trial actors (`trial_runtime_env`)."""
    from ray.core.generated import common_pb2, node_manager_pb2
    from ray.core.generated.runtime_environment_pb2 import RuntimeEnvInfo

    if not usable("prestart_workers"):
        return 0
    try:
        with raylet() as (stub, job, w):
            missing = max(0, n - len(_idle_worker_pids(stub, job)))
            if missing:
                env = trial_runtime_env(w.core_worker.get_current_runtime_env())
                stub.PrestartWorkers(node_manager_pb2.PrestartWorkersRequest(
                    language=common_pb2.Language.PYTHON, job_id=job,
                    runtime_env_info=RuntimeEnvInfo(serialized_runtime_env=env),
                    keep_alive_duration_secs=KEEP_IDLE_S, num_workers=missing), timeout=5)
        return missing
    except Exception as e:  # noqa: BLE001  (a speed-up only)
        print(f"hpo: could not start idle workers ({type(e).__name__}: {e}); trials start their own",
              file=sys.stderr, flush=True)
        return 0


def trial_runtime_env(job_env: str) -> str:
    """The serialized runtime env of Tune's trial actors: the job's with the `env_vars` Tune's
    actor class adds (ray.tune.execution.class_cache), merged as Ray's core worker merges a
    child's env into its parent's and written as it writes it (compact JSON, sorted keys)."""
    from ray.tune.execution.class_cache import DEFAULT_ENV_VARS, ENV_VARS_TO_PROPAGATE

    env = json.loads(job_env or "{}")
    tune_vars = {**DEFAULT_ENV_VARS, **{k: os.environ[k] for k in ENV_VARS_TO_PROPAGATE if k in os.environ}}
    env["env_vars"] = {**env.get("env_vars", {}), **tune_vars}
    return json.dumps(env, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
