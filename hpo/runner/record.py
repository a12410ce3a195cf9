"""hpo's own record of a run, and what a resume has left to do. No Ray import.

The record is files in the run folder that the driver writes as things happen and Ray never
writes, copies or reads:

- ``plan.json``: what the run is to try, written before its first trial, as segments. A segment
  is either its configurations themselves (grid and random search: their draws do not depend
  on results, so they are drawn once, with the run's seed, before any trial starts) or a number
  of samples (a searcher that learns: Optuna, Nevergrad). `hpo resume --more` adds a segment.
- ``events.jsonl``: each trial's start, resumption and end (complete / error), and aborts.
- ``trial_<id>/trial.jsonl``: the trial's configuration, then every result as it was reported,
  each with the moment the driver logged it (`logged`) and the checkpoint it wrote, relative
  to the run folder (`checkpoint`).

Every trial's Tune config carries hpo's key (hpo.contract.RECORD_KEY) saying which plan item
or segment it is, so the record needs no matching by value. A resume reads only this record:
finished trials (complete or error) are kept as they are; an unfinished one continues from the
last checkpoint its log names, in a new Ray trial whose results go on in the same log
(`continues`); plan items never started run; a searcher that learns is told the finished trials
and draws the samples left. The live view, the collector and the report read the same files.

Why these files and not the Optuna storage the live view mirrors to: they hold what Optuna does
not (per-epoch results of every kind, checkpoints, errors, packs of trials), they are appended
line by line by one writer (a line cut by a kill loses only itself: collect.read_jsonl), they
need nothing but JSON to read, and they travel with the run folder (a bucket, a colleague's
copy). The Optuna journal is a view built from them (hpo.runner.mirror).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hpo.contract import RECORD_KEY, without_record
from hpo.runner.collect import read_jsonl, trial_dir_name
from hpo.storage import EVENTS_FILE, TRIAL_LOG

PLAN_FILE = "plan.json"


@dataclass(frozen=True)
class Segment:
    """Part of a run's plan: its configurations, or `n` samples of a searcher that learns."""

    index: int
    n: int
    configs: tuple[dict[str, Any], ...] | None = None  # None: a searcher that learns draws them
    first: int = 0  # the plan index of its first configuration

    @property
    def planned(self) -> bool:
        return self.configs is not None


def read_plan(run_dir: Path) -> list[Segment]:
    """The run's plan (empty for a run from before hpo kept one)."""
    try:
        doc = json.loads((Path(run_dir) / PLAN_FILE).read_text())
    except (OSError, ValueError):
        return []
    out = []
    for i, s in enumerate(doc.get("segments", [])):
        configs = s.get("configs")
        out.append(Segment(i, int(s["n"]), None if configs is None else tuple(configs),
                           int(s.get("first", 0))))
    return out


def append_line(path: Path, line: dict[str, Any], encoder: Any = None) -> None:
    """One JSON line at the end of `path` (its folder made if it is missing): how every line of
    the record is written (the event log, the trial logs). A cut line loses only itself."""
    text = json.dumps(line, cls=encoder) + "\n"
    try:
        with open(path, "a") as f:
            f.write(text)
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a") as f:
            f.write(text)


def add_event(run_dir: Path, line: dict[str, Any], encoder: Any = None) -> None:
    """One event of the run (a trial's start, resumption or end, an abort), stamped now."""
    append_line(Path(run_dir) / EVENTS_FILE, {**line, "time": time.time()}, encoder)


def add_segment(run_dir: Path, configs: list[dict[str, Any]] | None, n: int) -> Segment:
    """Append a segment to the run's plan (written whole, atomically) and return it."""
    plan = read_plan(run_dir)
    first = sum(s.n for s in plan if s.planned)
    seg = Segment(len(plan), n if configs is None else len(configs),
                  None if configs is None else tuple(configs), first)
    doc = {"segments": [{"n": s.n, "first": s.first,
                         "configs": None if s.configs is None else list(s.configs)} for s in (*plan, seg)]}
    path = Path(run_dir) / PLAN_FILE
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(doc, default=str))
    tmp.replace(path)
    return seg


@dataclass
class TrialRecord:
    """One trial as the record holds it."""

    trial_id: str
    config: dict[str, Any]  # its Tune config, without hpo's key
    tag: dict[str, Any]  # hpo's key: {"plan": i} or {"segment": s}
    rows: list[dict[str, Any]] = field(default_factory=list)
    end: str | None = None  # "complete" | "error" | None (cut by a stop)
    started: float = 0.0
    ended: float | None = None

    @property
    def done(self) -> bool:
        return self.end is not None

    def checkpoint(self, run_dir: Path) -> tuple[str, int] | None:
        """(path relative to the run folder, epoch) of the newest checkpoint its log names that
        is on disk, or None."""
        for r in reversed(self.rows):
            rel = r.get("checkpoint") or (f"{trial_dir_name(self.trial_id)}/{r['checkpoint_dir_name']}"
                                          if r.get("checkpoint_dir_name") else None)
            if rel and (Path(run_dir) / rel).is_dir():
                return rel, int(r.get("epoch", r.get("training_iteration", 0)))
        return None


def has_record(run_dir: Path) -> bool:
    """Whether the run recorded anything (its plan, an event, a trial's log)."""
    d = Path(run_dir)
    return (d / PLAN_FILE).exists() or (d / EVENTS_FILE).exists() or any(d.glob(f"trial_*/{TRIAL_LOG}"))


def read_trials(run_dir: Path) -> dict[str, TrialRecord]:
    """Every trial the record holds, by hpo id, in the order they first started."""
    run_dir = Path(run_dir)
    out: dict[str, TrialRecord] = {}
    events = read_jsonl(run_dir / EVENTS_FILE)
    for e in events:
        tid = e.get("trial_id")
        if tid and e.get("event") == "start" and tid not in out:
            out[tid] = TrialRecord(tid, {}, {}, started=float(e.get("time", 0.0)))
    for d in sorted(run_dir.glob("trial_*")):
        tid = d.name.removeprefix("trial_")
        lines = read_jsonl(d / TRIAL_LOG)
        if not (lines and isinstance(lines[0].get("config"), dict)):
            continue
        rec = out.setdefault(tid, TrialRecord(tid, {}, {}, started=d.stat().st_mtime))
        rec.config = without_record(lines[0]["config"])
        rec.tag = dict(lines[0]["config"].get(RECORD_KEY) or {})
        rec.rows = lines[1:]
    for e in events:
        tid = e.get("trial_id")
        if tid in out and e.get("event") in ("complete", "error"):
            out[tid].end, out[tid].ended = e["event"], float(e.get("time", 0.0))
    return {k: v for k, v in out.items() if v.config}


def canonical(config: dict[str, Any]) -> str:
    return json.dumps(without_record(config), sort_keys=True, default=str)


@dataclass
class Left:
    """What a resume has to do: continue the unfinished trials, run the plan items never
    started, and draw `samples` more from each segment of a searcher that learns."""

    continued: list[tuple[TrialRecord, int | None, int]]  # (trial, plan index or None, segment)
    fresh: list[tuple[int, dict[str, Any]]]  # (plan index, config) never started
    samples: dict[int, int]  # segment -> samples still to draw
    done: list[TrialRecord]  # finished (complete or error), kept as they are
    unplanned: list[TrialRecord] = field(default_factory=list)  # in no plan item

    @property
    def nothing(self) -> bool:
        return not (self.continued or self.fresh or any(self.samples.values()))


def left(plan: list[Segment], trials: dict[str, TrialRecord]) -> Left:
    """What is left of `plan` given the record's `trials`. A trial from before hpo tagged them
    is matched to a plan item by its configuration."""
    items: dict[int, tuple[int, dict[str, Any]]] = {}  # plan index -> (segment, config)
    for s in plan:
        for j, c in enumerate(s.configs or ()):
            items[s.first + j] = (s.index, c)
    by_value: dict[str, list[int]] = {}
    for i, (_, c) in items.items():
        by_value.setdefault(canonical(c), []).append(i)
    taken: dict[int, TrialRecord] = {}
    unplanned: list[TrialRecord] = []
    for t in trials.values():
        i = t.tag.get("plan")
        if i is None and "segment" not in t.tag and (free := by_value.get(canonical(t.config))):
            i = free.pop(0)  # a trial from before the plan: matched by value
        if i is not None and int(i) in items and int(i) not in taken:
            taken[int(i)] = t
        else:
            unplanned.append(t)
    out = Left([], [], {}, [], unplanned)
    for i, (seg, config) in sorted(items.items()):
        t = taken.get(i)
        if t is None:
            out.fresh.append((i, config))
        elif t.done:
            out.done.append(t)
        else:
            out.continued.append((t, i, seg))
    learning = [s for s in plan if not s.planned]
    for t in unplanned:
        seg = int(t.tag.get("segment", learning[-1].index if learning else -1))
        if t.done:
            out.done.append(t)
        else:
            out.continued.append((t, None, seg))
    for s in learning:
        used = sum(1 for t in unplanned if int(t.tag.get("segment", learning[-1].index)) == s.index)
        out.samples[s.index] = max(0, s.n - used)
    return out


@dataclass(frozen=True)
class Step:
    """One call Tune made to the scheduler, as the record has it (hpo.adapters.replay)."""

    when: float
    kind: str  # "add" | "result" | "complete"
    trial_id: str
    result: dict[str, Any] | None = None


def steps(trials: list[TrialRecord], upto: dict[str, int]) -> list[Step]:
    """The scheduler calls the record holds for `trials`, in the order the driver logged them:
    each trial's start, its results (of a trial that continues after a stop, only up to the
    epoch of the checkpoint it continues from, `upto`: it reports the rest again) and, for one
    that completed, its end with its last result."""
    out = []
    for t in trials:
        out.append(Step(t.started, "add", t.trial_id))
        limit = upto.get(t.trial_id)
        rows = [r for r in t.rows if limit is None or int(r.get("epoch", 0)) <= limit]
        last = t.started
        for k, r in enumerate(rows):
            # (rows from before hpo stamped them: Ray's whole-second timestamp, in order)
            stamp = float(r.get("logged") or r.get("timestamp") or last)
            last = max(last, stamp) + (0 if r.get("logged") else 1e-6 * (k + 1))
            out.append(Step(last, "result", t.trial_id, r))
        if t.end == "complete" and rows:
            out.append(Step(max(last, t.ended or last), "complete", t.trial_id, rows[-1]))
    return out
