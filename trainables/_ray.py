"""The one place trainables meet Ray: wrap a Ray-free training function into a Tune function
trainable.

Checkpoints are written every `settings.checkpoint_every` epochs (torch.save of the state the
loop hands over) and restored through `tune.get_checkpoint()`, so PBT and resume work.
"""

from __future__ import annotations

import importlib
import os
import resource
import sys
import tempfile
from collections.abc import Callable
from typing import Any

from hpo.contract import CHECKPOINT_NOTE, PACK_KEY, RECORD_KEY, Settings, expand_cases, without_record
from hpo.ray_compat.ray_init import quiet_storage_notices
from hpo.trainables import TrainableInfo

STATE_FILE = "state.pt"
BEST_FILE = "best_model.pt"  # the best-validation weights (a state_dict), beside the resume state


def warm_up() -> None:
    """Ray worker setup hook: import torch and the training loop while the driver is busy
    setting up, instead of inside the first trial of every worker (about 2 s each here)."""
    import hpo.trainables.loop  # noqa: F401  (imports torch)


def _where(node_id: str, note: str | None = None) -> dict[str, Any]:
    """Where a report was made, for the report's per-node view: the Ray node and this worker's
    peak RSS (ru_maxrss is in KiB on Linux); and what a restore passed over, if anything."""
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    where = {"node_id": node_id, "worker_peak_rss_mb": round(rss_mb, 1)}
    return {**where, CHECKPOINT_NOTE: note} if note else where


def restore(ckpt: Any, load: Callable[[str], Any]) -> tuple[Any, str | None]:
    """The state `load(dir)` reads from the checkpoint Tune restores, and a note when that
    checkpoint could not be read (cut short, corrupt): the trial's next older checkpoint is
    tried, then none (it starts again at epoch 1). Never a traceback for a bad file."""
    if ckpt is None:
        return None, None
    bad = []
    for c in [ckpt, *_older(ckpt)]:
        try:
            with c.as_directory() as d:
                state = load(d)
        except Exception as e:  # noqa: BLE001 - any unreadable file: try the next one
            bad.append(f"{_name(c)} ({type(e).__name__}: {str(e).splitlines()[0][:120] if str(e) else ''})")
            continue
        note = None if not bad else (f"checkpoint {'; '.join(bad)} could not be read: resumed from "
                                     f"{_name(c)} instead")
        return state, note
    return None, f"checkpoint {'; '.join(bad)} could not be read: the trial started again at epoch 1"


def start_checkpoint(config: dict[str, Any], settings: Settings) -> Any:
    """The checkpoint a trial starts from: Tune's (a retry, PBT), else the one hpo's record
    names for a trial continued after a stop (in the run folder: local, or in its bucket), else
    None."""
    from ray import tune

    ckpt = tune.get_checkpoint()
    if ckpt is not None:
        return ckpt
    rel = (config.get(RECORD_KEY) or {}).get("checkpoint_rel")
    if not rel or not settings.run_root:
        return None
    if "://" in settings.run_root:
        import pyarrow.fs as pafs

        fs, path = pafs.FileSystem.from_uri(settings.run_root)
        return tune.Checkpoint(f"{path.rstrip('/')}/{rel}", filesystem=fs)
    return tune.Checkpoint(os.path.join(settings.run_root, rel))


def _name(ckpt: Any) -> str:
    return str(ckpt.path).rstrip("/").rsplit("/", 1)[-1]


def _older(ckpt: Any) -> list[Any]:
    """The trial's other checkpoints older than `ckpt`, newest first (on its own filesystem:
    local or object storage)."""
    import pyarrow.fs as pafs
    from ray import tune

    parent, _, name = str(ckpt.path).rstrip("/").rpartition("/")
    try:
        infos = ckpt.filesystem.get_file_info(pafs.FileSelector(parent))
    except OSError:
        return []
    older = sorted((i.path for i in infos if i.type == pafs.FileType.Directory
                    and i.base_name.startswith("checkpoint_") and i.base_name < name), reverse=True)
    return [tune.Checkpoint(p, filesystem=ckpt.filesystem) for p in older]


def _begin(settings: Settings) -> str:
    """Per-trial set-up in the worker: user code's search path, threads, quieter Ray logging;
    returns the node id."""
    import ray
    import torch

    for p in reversed(settings.search_path):  # a `model:` / module:function next to the spec
        if p not in sys.path and os.path.isdir(p):
            sys.path.insert(0, p)

    # "Checkpoint successfully created" once per epoch per trial drowns the progress table
    quiet_storage_notices()
    torch.set_num_threads(max(1, settings.threads))
    return ray.get_runtime_context().get_node_id()  # where it ran, for the report


def make_trainable(info: TrainableInfo) -> Any:
    """A Tune function trainable `fn(config, data, settings)` for a registered trainable."""

    def trainable(config: dict[str, Any], data: Any = None, settings: Settings | None = None) -> None:
        import torch
        from ray import tune

        assert settings is not None  # always bound by the runner (tune.with_parameters)
        node_id = _begin(settings)
        every = settings.checkpoint_every

        def load(d: str) -> dict[str, Any]:
            state = torch.load(os.path.join(d, STATE_FILE), weights_only=True)  # tensors, no code
            if os.path.exists(os.path.join(d, BEST_FILE)):
                state["best_model"] = torch.load(os.path.join(d, BEST_FILE), weights_only=True)
            return state

        state, note = restore(start_checkpoint(config, settings), load)

        def report(metrics: dict[str, Any], state_fn: Any) -> None:
            metrics = {**metrics, **_where(node_id, note)}
            # the last epoch always checkpoints: a trial that finished just before a crash is then
            # restored at its end on resume and trains nothing again
            last = metrics["epoch"] >= settings.max_epochs or bool(metrics.get("early_stopped"))
            if state_fn is not None and every and (metrics["epoch"] % every == 0 or last):
                with tempfile.TemporaryDirectory() as d:
                    st = state_fn()
                    best = st.pop("best_model", None) if isinstance(st, dict) else None
                    torch.save(st, os.path.join(d, STATE_FILE))
                    if best:  # a plain state_dict file the collector copies without torch
                        torch.save(best, os.path.join(d, BEST_FILE))
                    tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(d))
            else:
                tune.report(metrics)

        # a group of cases (params: {setup: {grid: [{optimizer: adam, lr: 0.001}, ...]}}) is
        # one key in Tune's config; the trainable sees its parameters merged in
        info.train(expand_cases(without_record(config), settings.groups), data, settings, report, state)

    trainable.__name__ = info.name
    return trainable


def make_pack_trainable(info: TrainableInfo) -> Any:
    """A Tune function trainable training one pack of members with the trainable's declared
    packed loop (its PACKING.run); each report carries every member's metrics (`members`),
    expanded into one trial each by the collector, and the pack's best active member under the
    selection metric for Tune's own bookkeeping."""
    assert info.packing is not None
    module, _, fn = info.packing.run.partition(":")

    def packed(config: dict[str, Any], data: Any = None, settings: Settings | None = None) -> None:
        import torch
        from ray import tune

        assert settings is not None
        node_id = _begin(settings)
        run_pack = getattr(importlib.import_module(module), fn)
        members = [expand_cases({k: v for k, v in m.items() if k != "_index"}, settings.groups)
                   for m in config[PACK_KEY]]
        metric, every = settings.metric, settings.checkpoint_every

        def load(d: str) -> dict[str, Any] | None:  # a pack's last checkpoint may hold only weights
            p = os.path.join(d, STATE_FILE)
            return torch.load(p, weights_only=True) if os.path.exists(p) else None  # tensors, no code

        state, note = restore(start_checkpoint(config, settings), load)

        def report(r: dict[str, Any], best_models: dict[int, Any] | None = None,
                   state_fn: Any = None) -> None:
            vals = [m[metric] for m in r["members"] if m is not None]
            best = (max(vals) if settings.mode == "max" else min(vals)) if vals else float("nan")
            row = {**r, metric: best, **_where(node_id, note)}
            # like an ordinary trial: a checkpoint every `every` epochs and at the pack's end
            # (which also carries each member's best weights, for the collector)
            save = state_fn is not None and every and (r["epoch"] % every == 0 or best_models is not None)
            if not (save or best_models):
                tune.report(row)
                return
            with tempfile.TemporaryDirectory() as d:
                for i, weights in (best_models or {}).items():
                    torch.save(weights, os.path.join(d, f"best_model_m{i}.pt"))
                if save:
                    torch.save(state_fn(), os.path.join(d, STATE_FILE))
                tune.report(row, checkpoint=tune.Checkpoint.from_directory(d))

        run_pack(members, data, settings, report, state)  # (an OOM says batch and pack size)

    packed.__name__ = f"packed_{info.name}"
    return packed
