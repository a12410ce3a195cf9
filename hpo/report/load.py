"""Everything a report needs, read from a run folder's results files (hpo.results): spec.yaml,
run.json and the trials / history tables. Never Ray's trial folders."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from hpo import results
from hpo.space import Distribution, parse_param
from hpo.spec import Spec


@dataclass
class RunData:
    run_dir: Path
    spec: Spec
    info: dict[str, Any]
    trials: pd.DataFrame
    history: pd.DataFrame
    metric: str
    mode: str
    modes: dict[str, str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def searched(self) -> dict[str, Distribution]:
        """Searched params, parsed: name -> Distribution (its kind's properties say how to draw)."""
        return {k: p for k, v in self.spec.params.items()
                if isinstance(p := parse_param(k, v), Distribution)}

    @property
    def max_epochs(self) -> int:
        return self.spec.budget.max_epochs

    @property
    def best_col(self) -> str:
        return f"best_{self.metric}"

    def best(self) -> pd.Series | None:
        return results.best_trial(self.trials, self.metric, self.mode)


def load_run(run_dir: str | Path) -> RunData:
    run_dir = results.require_run_dir(run_dir)
    spec = results.read_spec(run_dir)
    info = results.read_run_info(run_dir)
    trials, history = results.load_tables(run_dir)
    metric, mode = results.metric_and_mode(run_dir)
    return RunData(run_dir, spec, info, trials, history, metric, mode, info.get("metrics", {}))


def is_numeric(s: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s)


def is_log_scale(param: Distribution, values: pd.Series) -> bool:
    """Log-sampled, or numeric positive values spread over at least a factor of 20."""
    if param.is_log:
        return True
    if not is_numeric(values):
        return False
    v = values.dropna()
    return bool(len(v)) and (v > 0).all() and v.max() / v.min() >= 20


def finite(x: Any) -> bool:
    try:
        return math.isfinite(float(x))
    except (TypeError, ValueError):
        return False


def show(v: Any) -> str:
    """A value as a reader wants it: integers as integers (`depth=1`, not 1.0), other floats to 4
    significant digits (`lr=0.01`, not 0.010000000000000002), the rest as it is."""
    if isinstance(v, bool) or v is None:
        return str(v)
    if isinstance(v, float) and math.isfinite(v):
        return str(int(v)) if v.is_integer() and abs(v) < 1e15 else f"{v:.4g}"
    if isinstance(v, str) and v.endswith(".0") and v[:-2].lstrip("-").isdigit():
        return v[:-2]  # a number a table kept as text ("1.0")
    try:
        import numpy as np

        if isinstance(v, np.generic):
            return show(v.item())
    except ImportError:  # pragma: no cover
        pass
    return str(v)
