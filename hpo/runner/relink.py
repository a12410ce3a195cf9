"""Before a resume: unfinished trials whose checkpoint, as Ray's last experiment snapshot names
it, was deleted after the snapshot are pointed at the checkpoint that replaced it.

Ray deletes a trial's oldest checkpoint the moment a newer one is registered (CheckpointConfig
num_to_keep) but writes the experiment snapshot that names the newer one later, and copies it to
the run folder later still. A driver killed in between leaves a snapshot naming a checkpoint
that no longer exists, and Ray's restore of that trial fails ("does not exist on storage
anymore"): a trial that had trained, even one that had finished, ended as an error (CI, once in
a few dozen kills). Keeping more checkpoints only narrows that window.

The trial resumes instead from its oldest checkpoint after the deleted one that the driver had
logged (its row in the trial's own log names it): the closest to what the snapshot knew, so
what the scheduler decided since (saved after every decision, see scheduler_state) is made
again at the same epoch. Newer ones stay listed, oldest first, so that Ray's rotation deletes
them as the trial writes new ones, and the trial's checkpoint index moves past every
checkpoint on disk so that none is written over. Without such a checkpoint the trial starts
again at epoch 1, as Ray does for a trial without one.

The same race one checkpoint earlier leaves the named checkpoint in place but an older one
that the snapshot still lists deleted: Ray's rotation then fails deleting it again (a logged
traceback, and the new checkpoint's index is not advanced, so the next one is written over it).
Such entries are dropped from the trial's list.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from hpo.runner.collect import read_jsonl
from hpo.storage import TRIAL_LOG

ENDED = ("TERMINATED", "ERROR")


def newest_state(run_dir: Path) -> Path | None:
    """Ray's newest experiment snapshot in the run folder (None for a bucket's run: Ray's state
    is not in the local folder)."""
    states = sorted(Path(run_dir).glob("experiment_state-*.json"))
    return states[-1] if states else None


def named_checkpoints(state: Path) -> dict[str, str | None]:
    """Trial id -> the folder name of the checkpoint the snapshot `state` would restore it from
    (None: none), for the trials it does not hold as ended. Empty while the file is being
    written."""
    doc = read_snapshot(state)
    return {json.loads(trial_json)["trial_id"]: None if latest is None else _name(latest.checkpoint.path)
            for _, trial_json, _, latest in _unfinished(doc or {"trial_data": []})}


def relink(run_dir: Path, out: Any) -> list[str]:
    """Point every unfinished trial of the newest snapshot whose named checkpoint is gone at
    the one that replaced it, and drop the gone ones from every unfinished trial's list (see
    the module's docstring); returns the ids of the trials changed."""
    state = newest_state(run_dir)
    if state is None:
        return []
    doc = read_snapshot(state)
    if doc is None:
        return []  # repair_state deals with a cut snapshot
    fixed = []
    for i, trial_json, meta, latest in _unfinished(doc):
        if latest is None:  # no checkpoint (then Ray lists none): it starts at epoch 1 anyway
            continue
        manager, trial = meta.checkpoint_manager, _loads(trial_json)
        # the run folder may have moved since: the trial's folder there (Ray's restore maps its
        # checkpoints' paths the same way)
        here = Path(run_dir) / trial["storage"].trial_dir_name
        kept = [r for r in manager._checkpoint_results if (here / _name(r.checkpoint.path)).exists()]
        if (here / _name(latest.checkpoint.path)).exists():
            if len(kept) < len(manager._checkpoint_results):
                # an older one deleted after the snapshot: Ray's rotation would fail deleting it
                # again (a traceback, and the new checkpoint's index not advanced)
                manager._checkpoint_results = kept
                meta.checkpoint_manager = manager
                doc["trial_data"][i] = [trial_json, meta.get_json_state()]
                fixed.append(trial["trial_id"])
            continue
        gone = _name(latest.checkpoint.path)
        named_dir = str(latest.checkpoint.path).rstrip("/").rpartition("/")[0]
        on_disk = sorted(p.name for p in here.glob("checkpoint_*") if p.is_dir())
        logged = _logged_checkpoints(here)
        newer = [_result(f"{named_dir}/{n}", logged[n], latest) for n in on_disk
                 if n > gone and n in logged]
        manager._checkpoint_results = [*kept, *newer[1:], *newer[:1]]
        manager._latest_checkpoint_result = newer[0] if newer else None
        meta.checkpoint_manager = manager
        if on_disk:  # the next checkpoint it writes comes after every one on disk
            trial["storage"].current_checkpoint_index = max(
                trial["storage"].current_checkpoint_index, int(on_disk[-1].rsplit("_", 1)[-1]))
        doc["trial_data"][i] = [_dumps(trial), meta.get_json_state()]
        fixed.append(trial["trial_id"])
        epoch = newer[0].metrics.get("epoch") if newer else None
        print(f"hpo: Ray's last snapshot named {gone} of trial {trial['trial_id']}, which Ray "
              f"deleted after it; the trial resumes from "
              f"{f'{_name(newer[0].checkpoint.path)} (after epoch {epoch})' if newer else 'epoch 1'}",
              file=out, flush=True)
    if fixed:
        tmp = state.with_name(state.name + ".tmp")
        tmp.write_text(json.dumps(doc))
        tmp.replace(state)
    return fixed


def read_snapshot(state: Path) -> dict[str, Any] | None:
    """Ray's snapshot as JSON (its trials still JSON strings), or None where it cannot be read
    (being written, or cut)."""
    try:
        return json.loads(state.read_text())
    except (OSError, ValueError):
        return None


def _unfinished(doc: dict[str, Any]) -> Iterator[tuple[int, str, Any, Any]]:
    """(index in the snapshot's trial list, the trial's JSON, its run metadata, the checkpoint
    result Ray would restore it from or None) of each trial the snapshot does not hold as
    ended; the ended ones are not unpickled."""
    for i, (trial_json, meta_json) in enumerate(doc["trial_data"]):
        if json.loads(trial_json).get("status") in ENDED:
            continue
        meta = _manager(meta_json)
        manager = meta.checkpoint_manager
        yield i, trial_json, meta, manager.latest_checkpoint_result if manager is not None else None


def _logged_checkpoints(trial_dir: Path) -> dict[str, dict[str, Any]]:
    """Checkpoint folder name -> the result that wrote it, from the trial's own log (Ray's
    result.json for a trial from before hpo kept one)."""
    rows = read_jsonl(trial_dir / TRIAL_LOG) or read_jsonl(trial_dir / "result.json")
    return {r["checkpoint_dir_name"]: r for r in rows if r.get("checkpoint_dir_name")}


def _result(path: str, metrics: dict[str, Any], like: Any) -> Any:
    from ray.train._internal.session import _TrainingResult
    from ray.tune import Checkpoint

    return _TrainingResult(checkpoint=Checkpoint(path, filesystem=like.checkpoint.filesystem),
                           metrics=metrics)


def _name(path: str) -> str:
    return str(path).rstrip("/").rsplit("/", 1)[-1]


def _loads(text: str) -> Any:
    # Ray's own snapshot, in the user's own run folder: as trusted as Ray's restore of it
    from ray.tune.utils.serialization import _loads_with_cloudpickle

    return _loads_with_cloudpickle(text)


def _dumps(state: dict[str, Any]) -> str:
    from ray.tune.utils.serialization import TuneFunctionEncoder

    return json.dumps(state, indent=2, cls=TuneFunctionEncoder)


def _manager(meta_json: str) -> Any:
    from ray.tune.trainable.metadata import _TrainingRunMetadata

    return _TrainingRunMetadata.from_json_state(meta_json)
