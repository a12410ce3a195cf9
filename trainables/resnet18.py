"""`resnet18`: torchvision's ResNet-18 with a new 10-class head, fine-tuned on CIFAR-10.

``finetune`` chooses what trains: ``head`` (the final layer only), ``last_block`` (layer4 and
the head) or ``all``. Frozen layers keep their weights and their batch-norm statistics (they
stay in eval mode). ``weights``: ``imagenet`` loads torchvision's ImageNet weights from a local
file (never downloaded here: ``$HPO_DATA_DIR/weights/`` or torch's hub cache), ``none`` starts
from random init, ``auto`` (default) uses the file when present. Every report says which
(`weights`), and the report shows it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, PositiveInt

from hpo.contract import Reporter, Settings
from hpo.data.base import ArrayDataset, default_data_dir
from hpo.trainables.config import TrainConfig
from hpo.trainables.metrics import CLASSIFICATION_METRICS

if TYPE_CHECKING:
    from torch import nn


METRICS = CLASSIFICATION_METRICS
TASKS = ("classification",)
WEIGHTS_FILE = "resnet18-f37072fd.pth"  # torchvision's ResNet18_Weights.IMAGENET1K_V1
N_PARAMS_BODY = 11_176_512  # ResNet-18 without its 1000-class fc layer
N_PARAMS_LAYER4 = 8_393_728


class Config(TrainConfig):
    lr: float = Field(0.01, gt=0)
    momentum: float = Field(0.9, ge=0, lt=1)
    batch_size: PositiveInt = 128
    finetune: Literal["head", "last_block", "all"] = "all"
    weights: Literal["auto", "imagenet", "none"] = "auto"
    augment: bool = Field(False, description="random crop (pad 4) and horizontal flip")


def weights_path() -> Path | None:
    """The local ImageNet weights file, if any."""
    candidates = [default_data_dir() / "weights" / WEIGHTS_FILE]
    try:
        import torch

        candidates.append(Path(torch.hub.get_dir()) / "checkpoints" / WEIGHTS_FILE)
    except ImportError:
        pass
    return next((p for p in candidates if p.exists()), None)


def build_model(cfg: Config, n_classes: int) -> tuple[nn.Module, str]:
    """(model, description of its initial weights)."""
    import torch
    from torch import nn
    from torchvision.models import resnet18

    model = resnet18(weights=None)
    path = weights_path() if cfg.weights != "none" else None
    if cfg.weights == "imagenet" and path is None:
        raise FileNotFoundError(
            f"weights: imagenet, but {WEIGHTS_FILE} is not on this node (looked in "
            f"{default_data_dir() / 'weights'} and torch's hub cache). Copy it there, or use "
            f"weights: auto / none.")
    desc = "random init"
    if path is not None:
        model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        desc = f"imagenet ({path.name})"
    model.fc = nn.Linear(model.fc.in_features, n_classes)
    trainable = {"head": (model.fc,), "last_block": (model.layer4, model.fc), "all": (model,)}
    for p in model.parameters():
        p.requires_grad = False
    for m in trainable[cfg.finetune]:
        for p in m.parameters():
            p.requires_grad = True
    return _FrozenBatchNorm(model), desc


def _FrozenBatchNorm(model: nn.Module) -> nn.Module:  # noqa: N802 - reads as a layer
    """`model` whose frozen batch-norm layers stay in eval mode when the loop calls train()."""
    from torch import nn

    class FineTuned(nn.Module):
        def __init__(self, inner: nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, x: Any) -> Any:
            return self.inner(x)

        def train(self, mode: bool = True) -> FineTuned:
            super().train(mode)
            for m in self.inner.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm) and not any(
                        p.requires_grad for p in m.parameters()):
                    m.eval()
            return self

    return FineTuned(model)


def param_count(cfg: Config, n_classes: int) -> int:
    return N_PARAMS_BODY + 512 * n_classes + n_classes


def train(config: dict[str, Any], data: ArrayDataset, settings: Settings,
          report: Reporter, state: dict[str, Any] | None = None) -> None:
    from hpo.trainables.augment import random_crop_flip
    from hpo.trainables.loop import run_classifier

    cfg = Config.model_validate(config)
    shape = tuple(data.x_train.shape[1:])
    init: dict[str, str] = {}

    def build() -> nn.Module:
        model, init["weights"] = build_model(cfg, data.n_classes)
        return model

    def report_with_init(metrics: dict[str, Any], state_fn: Any) -> None:
        report({**metrics, "weights": init.get("weights", "?"), "finetune": cfg.finetune}, state_fn)

    run_classifier(cfg, data, shape, build, param_count(cfg, data.n_classes), settings,
                   report_with_init, state, augment=random_crop_flip if cfg.augment else None)


def estimate_epoch_s(config: dict[str, Any], input_shape: tuple[int, ...], n_classes: int,
                     sizes: dict[str, int], threads: int = 1) -> float:
    from hpo.trainables.loop import time_epoch

    cfg = Config.model_validate(config)
    return time_epoch(cfg, lambda: build_model(cfg, n_classes)[0], tuple(input_shape), n_classes,
                      sizes, threads, builtin=True)


def make_model(config: dict[str, Any], example_shape: tuple[int, ...], n_classes: int) -> nn.Module:
    """The network a trial with `config` trained, without its initial weights (saved weights
    are loaded into it, so no ImageNet file is needed)."""
    cfg = Config.model_validate({**config, "weights": "none"})
    return build_model(cfg, n_classes)[0]
