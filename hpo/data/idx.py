"""Reader for the IDX format of MNIST-style datasets (optionally gzipped)."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (``.gz`` or raw) into an array of its declared shape."""
    p = Path(path)
    opener = gzip.open if p.suffix == ".gz" else open
    with opener(p, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _DTYPES:
        raise ValueError(f"{p}: not an IDX file (bad magic number)")
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    offset = 4 + 4 * ndim
    arr = np.frombuffer(data, dtype=_DTYPES[data[2]], offset=offset)
    if arr.size != int(np.prod(dims)):
        raise ValueError(f"{p}: truncated IDX file ({arr.size} values, header says {dims})")
    return arr.reshape(dims)


def idx_length(path: str | Path) -> int | None:
    """The first dimension an IDX file's header declares (its number of examples), reading only
    the header; None when it is not an IDX file."""
    p = Path(path)
    opener = gzip.open if p.suffix == ".gz" else open
    try:
        with opener(p, "rb") as f:
            head = f.read(8)
    except (OSError, EOFError):
        return None
    if len(head) < 8 or head[0] != 0 or head[1] != 0 or head[2] not in _DTYPES or head[3] < 1:
        return None
    return int.from_bytes(head[4:8], "big")


def write_idx(path: str | Path, arr: np.ndarray) -> None:
    """Write a uint8 array as IDX (gzipped when the name ends in .gz); used by tests and tools."""
    a = np.ascontiguousarray(arr, dtype=np.uint8)
    header = bytes([0, 0, 0x08, a.ndim]) + b"".join(d.to_bytes(4, "big") for d in a.shape)
    p = Path(path)
    opener = gzip.open if p.suffix == ".gz" else open
    with opener(p, "wb") as f:
        f.write(header + a.tobytes())
