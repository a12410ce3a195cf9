"""The best model of a run, kept and loaded back.

Every trial's checkpoints hold its best-validation weights (best_model.pt beside the resume
state); when the tables are written the collector copies the best trial's to
``<run>/best_model/model.pt`` with ``model.json`` (trainable, configuration, dataset shape and
normalization, the metrics it reached). :func:`load_model` rebuilds the network through the
trainable's declared ``make_model`` and loads those weights; :func:`export` copies the folder.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from hpo.errors import SpecError

FOLDER = "best_model"


def model_dir(path: str | Path) -> Path:
    """A run folder's best_model/, or an exported folder itself."""
    p = Path(path)
    for d in (p / FOLDER, p):
        if (d / "model.json").exists() and (d / "model.pt").exists():
            return d
    raise SpecError("no saved best model here (best_model/model.pt): the run has no finished "
                    "checkpointed trial yet, or its trainable does not checkpoint "
                    "(checkpoint.every: 0, packed trials, a user's own training loop).", file=str(p))


def describe(path: str | Path) -> dict[str, Any]:
    return json.loads((model_dir(path) / "model.json").read_text())


def load_model(path: str | Path, device: str = "cpu") -> Any:
    """The best trial's trained nn.Module in eval mode, from a run folder or an export.

    Inputs are expected as hpo feeds them: x / scale, then (x - mean) / std (see
    describe(path)["dataset"]["normalize"]; per channel when mean is a list)."""
    import torch

    from hpo.trainables import get_trainable

    d = model_dir(path)
    meta = describe(d)
    ds = meta["dataset"]
    info = get_trainable(meta["trainable"], model=meta.get("model"))
    model = info.make_model(meta["config"], tuple(ds["example_shape"]), int(ds["n_classes"]))
    state = torch.load(d / "model.pt", map_location=device, weights_only=True)
    model.load_state_dict(state)
    return model.to(device).eval()


def export(run_dir: str | Path, out: str | Path) -> Path:
    """Copy the run's best model (weights, model.json) to `out`, with a note on loading it."""
    src, dst = model_dir(run_dir), Path(out)
    dst.mkdir(parents=True, exist_ok=True)
    for f in ("model.pt", "model.json"):
        shutil.copyfile(src / f, dst / f)
    meta = describe(dst)
    (dst / "README.txt").write_text(
        f"Best trial {meta['trial_id']} of {Path(run_dir).name} (trainable {meta['trainable']}"
        f"{', model ' + meta['model'] if meta.get('model') else ''}).\n"
        f"Load it with:  import hpo; model = hpo.load_model({str(dst)!r})  (an nn.Module in eval mode)\n"
        f"or rebuild the network from model.json's config and torch.load('model.pt') into it.\n"
        f"Inputs: x / scale, then (x - mean) / std, with model.json's dataset.normalize.\n")
    return dst
