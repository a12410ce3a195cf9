"""The terminal view of a run: one readable line whenever a trial ends (and at most every
`every_s` seconds while trials report), instead of Ray's wide table:

    hpo: 6/16 done (1 stopped, 1 diverged) · 2 running · 8 pending · best val_acc 0.9752
         (lr=0.01, weight_decay=0.0001) · 41 s · ETA ~1.8 min

Ray's table stays available (`hpo run --verbose`); `--quiet` prints neither. A Tune callback in
the driver: it only counts and formats, so it costs the trials nothing. It counts configurations:
a packed trial (hpo.packing) counts as its members, and its best member is the one shown. The ETA
appears once a tenth of the configurations (at least 2) have ended, from their measured pace.
"""

from __future__ import annotations

import math
import time
from typing import Any

from ray.tune import Callback

from hpo.contract import PACK_KEY


def _size(trial: Any) -> int:
    """The configurations a Ray trial trains: a pack's members, else 1."""
    members = (getattr(trial, "config", None) or {}).get(PACK_KEY)
    return len(members) if isinstance(members, list) else 1


class Progress(Callback):
    def __init__(self, metric: str, mode: str, planned: int, searched: list[str],
                 every_s: float = 30.0) -> None:
        # prints to sys.stdout at print time: Tune pickles its callbacks with the experiment
        self.metric, self.sign, self.planned = metric, 1.0 if mode == "max" else -1.0, planned
        self.searched, self.every_s = searched, every_s
        self.t0 = time.time()
        self.last_print = 0.0
        self.ended: dict[str, str] = {}  # trial_id -> completed | stopped | diverged | error
        self.running: set[str] = set()
        self.size: dict[str, int] = {}  # trial_id -> its configurations (a pack's members)
        self.best: tuple[float, dict[str, Any]] | None = None
        self.epochs: dict[str, int] = {}

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.running.add(trial.trial_id)
        self.size[trial.trial_id] = _size(trial)

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict[str, Any],
                        **info: Any) -> None:
        self.epochs[trial.trial_id] = int(result.get("epoch", result.get("training_iteration", 0)))
        cfg = trial.config or {}
        members = result.get("members") if PACK_KEY in cfg else None
        rows = ([(m, c) for m, c in zip(members, cfg[PACK_KEY], strict=False) if isinstance(m, dict)]
                if isinstance(members, list) else [(result, cfg)])
        for r, c in rows:
            v = r.get(self.metric)
            if isinstance(v, (int, float)) and math.isfinite(v) and not r.get("diverged") and \
                    (self.best is None or self.sign * v > self.sign * self.best[0]):
                self.best = (float(v), {k: c.get(k) for k in self.searched if k in c})
        if result.get("diverged"):
            self.ended[trial.trial_id] = "diverged"
        if time.time() - self.last_print >= self.every_s:
            self.show(trials)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.running.discard(trial.trial_id)
        self.ended.setdefault(trial.trial_id, "completed")
        self.show(trials)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.running.discard(trial.trial_id)
        self.ended[trial.trial_id] = "error"
        self.show(trials)

    def line(self, n_trials: int | None = None) -> str:
        done = sum(self.size.get(t, 1) for t in self.ended)
        running = sum(self.size.get(t, 1) for t in self.running)
        planned = max(self.planned, done + running)
        extra = {s: sum(self.size.get(t, 1) for t, v in self.ended.items() if v == s)
                 for s in ("diverged", "error")}
        detail = ", ".join(f"{n} {s}" for s, n in extra.items() if n)
        pending = max(0, planned - done - running)
        elapsed = time.time() - self.t0
        parts = [f"{done}/{planned} done" + (f" ({detail})" if detail else ""), f"{running} running",
                 f"{pending} pending"]
        if self.best is not None:
            cfg = ", ".join(f"{k}={_short(v)}" for k, v in self.best[1].items())
            parts.append(f"best {self.metric} {self.best[0]:.4g}" + (f" ({cfg})" if cfg else ""))
        parts.append(_dur(elapsed))
        if max(2, planned / 10) <= done < planned:  # a pace measured on enough trials
            parts.append(f"ETA ~{_dur(elapsed / done * (planned - done))}")
        return "hpo: " + " · ".join(parts)

    def show(self, trials: list | None = None) -> None:
        self.last_print = time.time()
        print(self.line(len(trials) if trials else None), flush=True)


def _short(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, dict):  # a case of a group
        return "{" + ", ".join(f"{k}={_short(x)}" for k, x in v.items()) + "}"
    return str(v)


def _dur(s: float) -> str:
    return f"{s:.0f} s" if s < 120 else f"{s / 60:.1f} min" if s < 7200 else f"{s / 3600:.1f} h"
