"""`regression2d`: synthetic 2-D regression f(x) = x1 * exp(-x1^2 - x2^2), x in [-2, 2]^2.

Training points are drawn uniformly from the square (a fixed pool; the `regression` trainable's
``m`` takes its first m points, so m=100 is a subset of m=1000); validation points likewise
from an independent stream; the test set is the full grid linspace(-2, 2, N) x linspace(-2, 2, N)
(row-major with x1 varying fastest), so predictions on it draw the surface in the report.
Generated in memory, never downloaded.
"""

from __future__ import annotations

import numpy as np

from hpo.data.base import ArrayDataset

LOW, HIGH = -2.0, 2.0
POOL = 10_000  # training points available to `m`
GRID_N = 50  # test grid: GRID_N x GRID_N points
FORMULA = "f(x) = x1 * exp(-x1^2 - x2^2)"


def f(x1: np.ndarray, x2: np.ndarray) -> np.ndarray:
    return x1 * np.exp(-(x1**2) - x2**2)


def grid(n: int = GRID_N) -> tuple[np.ndarray, np.ndarray]:
    """The test grid's axes as (X1, X2) of shape (n, n); X1 varies along columns."""
    lin = np.linspace(LOW, HIGH, n)
    return np.meshgrid(lin, lin, indexing="xy")


def _uniform(seed: int, n: int) -> np.ndarray:
    return np.random.default_rng(seed).uniform(LOW, HIGH, size=(n, 2)).astype(np.float32)


def load_regression2d(val_size: int, grid_n: int = GRID_N) -> ArrayDataset:
    x_tr, x_val = _uniform(0, POOL), _uniform(1, val_size)
    g1, g2 = grid(grid_n)
    x_te = np.stack([g1.ravel(), g2.ravel()], axis=1).astype(np.float32)

    def y(x: np.ndarray) -> np.ndarray:
        return f(x[:, 0], x[:, 1]).astype(np.float32)

    return ArrayDataset(
        name="regression2d", x_train=x_tr, y_train=y(x_tr), x_val=x_val, y_val=y(x_val),
        x_test=x_te, y_test=y(x_te), n_classes=0,
        source=f"synthetic: {FORMULA}, x uniform in [-2, 2]^2; test on a {grid_n}x{grid_n} grid",
        extra={"grid_n": grid_n, "formula": FORMULA},
    )
