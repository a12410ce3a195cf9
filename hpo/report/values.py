"""What the report's sections share in reading a run (hpo.results.RunFolder): which columns are
numbers, which axes are logarithmic, how a value is written for a reader."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from hpo.space import Distribution


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
