"""The best model of a run, kept and loaded back.

Every trial's checkpoints hold its best-validation weights (best_model.pt beside the resume
state); when the tables are written the collector copies the best trial's to
``<run>/best_model/model.pt`` with ``model.json`` (trainable, configuration, dataset shape and
normalization, the metrics it reached). :func:`load_model` rebuilds the network through the
trainable's declared ``make_model`` and loads those weights; :func:`export` copies the folder
and adds ``model.pt2``, the network itself as a ``torch.export`` program (batch size free), which
loads with torch alone: :func:`load_model` falls back to it where the model's code cannot be
imported (an export moved to another machine or folder).
"""

from __future__ import annotations

import json
import math
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
    try:
        info = get_trainable(meta["trainable"], model=meta.get("model"))
        model = info.make_model(meta["config"], tuple(ds["example_shape"]), int(ds["n_classes"]))
    except SpecError as e:  # the model's code is not importable here
        if not (d / PROGRAM).exists():
            raise SpecError(f"{e.message} An export made with `hpo best RUN --export DIR` loads "
                            f"without the model's code (its {PROGRAM}).", file=str(d)) from None
        return _Program(torch.export.load(d / PROGRAM).module()).to(device)

    state = torch.load(d / "model.pt", map_location=device, weights_only=True)
    model.load_state_dict(state)
    return model.to(device).eval()


PROGRAM = "model.pt2"  # the network as a torch.export program: loads with torch alone


def _module_base() -> type:
    import torch

    return torch.nn.Module


class _Program(_module_base()):  # type: ignore[misc]
    """An exported program as an nn.Module that takes .eval() / .train() (it was captured in
    eval mode; torch's own exported module refuses both)."""

    def __init__(self, program: Any) -> None:
        super().__init__()
        self.program = program

    def forward(self, x: Any) -> Any:
        return self.program(x)

    def train(self, mode: bool = True) -> _Program:
        self.training = mode  # (the program itself stays as it was captured: eval)
        return self


def _program(run_dir: Path, dst: Path) -> str | None:
    """Write the best model as a torch.export program to dst/PROGRAM (inputs as hpo feeds them,
    any batch size); None, or why it could not be."""
    import torch

    try:
        model = load_model(run_dir)
        shape = tuple(describe(run_dir)["dataset"]["example_shape"])
        from hpo.contract import model_shape

        # the layout the network takes: as a user's model gets it, flat (the mlp), or as stored
        for s in dict.fromkeys([model_shape(shape), (math.prod(shape),), shape]):
            x = torch.randn(2, *s)
            try:
                with torch.no_grad():
                    model(x)
            except Exception:  # noqa: BLE001, S112 - not this layout: try the next
                continue
            batch = torch.export.Dim("batch", max=1 << 20)
            ep = torch.export.export(model, (x,), dynamic_shapes=({0: batch},))
            torch.export.save(ep, dst / PROGRAM)
            (dst / "model.pt2.shape").write_text(json.dumps(list(s)))
            return None
        return f"no input layout of {shape} runs through the model"
    except Exception as e:  # noqa: BLE001 - a model torch.export cannot capture: said in the README
        (dst / PROGRAM).unlink(missing_ok=True)
        return f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"


def export(run_dir: str | Path, out: str | Path) -> Path:
    """Copy the run's best model (weights, model.json) to `out`, with a note on loading it."""
    src, dst = model_dir(run_dir), Path(out)
    dst.mkdir(parents=True, exist_ok=True)
    for f in ("model.pt", "model.json"):
        shutil.copyfile(src / f, dst / f)
    meta = describe(dst)
    why = _program(src, dst)
    code = f"model {meta['model']}" if meta.get("model") else f"trainable {meta['trainable']}"
    layout = json.loads((dst / "model.pt2.shape").read_text()) if why is None else None
    program = (f"Anywhere, with torch alone (no hpo, no model code):\n"
               f"  import torch; model = torch.export.load('{PROGRAM}').module()\n"
               f"  (in eval mode already; inputs: float tensors of shape (batch, "
               f"{', '.join(map(str, layout or []))}))\n"
               f"hpo.load_model uses {PROGRAM} itself where the model's code cannot be imported.\n"
               if why is None else f"No {PROGRAM} (torch.export could not capture the model: {why});\n"
               f"loading needs the model's code ({code}) importable, e.g. next to your script.\n")
    (dst / "README.txt").write_text(
        f"Best trial {meta['trial_id']} of {Path(run_dir).name} ({code}).\n"
        f"With hpo and the model's code importable:  import hpo; model = hpo.load_model({str(dst)!r})\n"
        f"  (an nn.Module in eval mode), or rebuild the network from model.json's config and\n"
        f"  torch.load('model.pt', weights_only=True) into it.\n"
        f"{program}"
        f"Inputs: x / scale, then (x - mean) / std, with model.json's dataset.normalize.\n")
    return dst
