"""Build hpo/data/mnist_sample.npz: a real, stratified MNIST subset shipped with the package.

Provenance: the first-come, class-balanced 10,000 training and 2,000 test images of the
md5-verified MNIST files (Y. LeCun, C. Cortes, C. Burges), here read from
``../shared/datasets/MNIST/raw``. MNIST is made available under CC BY-SA 3.0.

    python scripts/make_mnist_sample.py [DATA_DIR]
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from hpo.data.mnist import SAMPLE_FILE, _read_verified


def balanced_first(y: np.ndarray, n: int) -> np.ndarray:
    per_class = n // 10
    idx = np.concatenate([np.flatnonzero(y == c)[:per_class] for c in range(10)])
    return np.sort(idx)


def main(data_dir: str) -> None:
    a = _read_verified(Path(data_dir))
    tr, te = balanced_first(a["train_y"], 10_000), balanced_first(a["test_y"], 2_000)
    np.savez_compressed(
        SAMPLE_FILE,
        train_x=a["train_x"][tr], train_y=a["train_y"][tr],
        test_x=a["test_x"][te], test_y=a["test_y"][te],
    )
    print(f"wrote {SAMPLE_FILE} ({SAMPLE_FILE.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "../shared/datasets")
