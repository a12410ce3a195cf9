"""A user's own trainable, referenced from a spec as `tests.custom_trainable:fit`."""

from __future__ import annotations

import time
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

METRICS = {"val_loss": "min"}
TASKS = ("classification",)


class Config(BaseModel):
    model_config = ConfigDict(extra="forbid")
    x: float = Field(0.0, ge=-10, le=10)
    seed: int = 0
    fail_at: int = Field(0, ge=0, description="raise (after a while) instead of reporting this epoch")


def fit(config: dict[str, Any], data: Any, settings: Any, report: Any, state: Any = None) -> None:
    cfg = Config.model_validate(config)
    for epoch in range(1, settings.max_epochs + 1):
        if epoch == cfg.fail_at:
            time.sleep(10)  # the trials beside it get to the end and wait for it
            raise RuntimeError(f"failing on purpose at epoch {epoch}")
        report({"epoch": epoch, "val_loss": (cfg.x - 2) ** 2 / epoch}, None)
