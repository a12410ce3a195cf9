"""A user's own data: a `.npz` file, a CSV table, or a `module:function` returning arrays.

    dataset: {name: npz, path: data/blobs.npz}                 # x_train, y_train, x_test, y_test
                                                               # (+ optional x_val, y_val)
    dataset: {name: csv, path: data/table.csv, label: target, task: regression}
    dataset: {name: my_lab.data:load}                          # returns a dict of those arrays

Every dataset, built-in or user, goes through :func:`check_arrays` when loaded: matching lengths,
labels that are integers in [0, n_classes), no NaN/inf, one shape per example. A problem is a
SpecError naming the file (or function) and what is wrong, raised before Ray starts. The
validation split, when none is given, is made as for the built-ins (seeded, the same for every
trial).
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from hpo import environment
from hpo.data.base import ArrayDataset, split_train_val
from hpo.errors import SpecError
from hpo.refs import import_ref

REQUIRED = ("x_train", "y_train", "x_test", "y_test")
OPTIONAL = ("x_val", "y_val")
TASKS = ("classification", "regression")
# a user's arrays are held by the driver and once in Ray's object store: refuse what cannot fit
MEMORY_FRACTION = 0.5


def check_arrays(arrays: dict[str, Any], where: str, task: str | None = None) -> dict[str, np.ndarray]:
    """The arrays as numpy, checked; `task` None: classification when labels are integers."""
    missing = [k for k in REQUIRED if k not in arrays]
    if missing:
        raise SpecError(f"{where}: missing {', '.join(missing)}; a dataset needs "
                        f"{', '.join(REQUIRED)} (and optionally x_val, y_val).", field="dataset")
    if ("x_val" in arrays) != ("y_val" in arrays):
        raise SpecError(f"{where}: give both x_val and y_val, or neither (a validation split is "
                        f"then made from the training data).", field="dataset")
    out = {k: np.asarray(arrays[k]) for k in (*REQUIRED, *OPTIONAL) if k in arrays}
    for split in ("train", "val", "test"):
        if f"x_{split}" not in out:
            continue
        x, y = out[f"x_{split}"], out[f"y_{split}"]
        if x.ndim < 2:
            raise SpecError(f"{where}: x_{split} must have one row per example (shape (N, ...)), got "
                            f"shape {x.shape}.", field="dataset")
        if len(x) != len(y):
            raise SpecError(f"{where}: x_{split} has {len(x)} examples but y_{split} has {len(y)}.",
                            field="dataset")
        if len(x) == 0:
            raise SpecError(f"{where}: x_{split} is empty.", field="dataset")
        for name, a in ((f"x_{split}", x), (f"y_{split}", y)):
            if not (np.issubdtype(a.dtype, np.number) or a.dtype == bool):
                raise SpecError(f"{where}: {name} must be numeric, got dtype {a.dtype}.", field="dataset")
            if np.issubdtype(a.dtype, np.floating) and not np.isfinite(a).all():
                bad = int((~np.isfinite(a)).sum())
                raise SpecError(f"{where}: {name} holds {bad} NaN/inf value(s).", field="dataset")
    shapes = {out[f"x_{s}"].shape[1:] for s in ("train", "val", "test") if f"x_{s}" in out}
    if len(shapes) > 1:
        raise SpecError(f"{where}: examples must have one shape in every split, got "
                        f"{sorted(map(str, shapes))}.", field="dataset")
    return out


def check_dataset(ds: ArrayDataset) -> ArrayDataset:
    """The load-time check every dataset passes (built-in ones too): lengths, label range
    against the number of classes, finite values, one example shape."""
    splits = {f"{k}_{s}": getattr(ds, f"{k}_{s}") for k in ("x", "y") for s in ("train", "val", "test")}
    a = check_arrays(splits, ds.source or ds.name)
    if ds.n_classes:
        lo = min(int(a[k].min()) for k in ("y_train", "y_val", "y_test"))
        hi = max(int(a[k].max()) for k in ("y_train", "y_val", "y_test"))
        if lo < 0 or hi >= ds.n_classes:
            raise SpecError(f"{ds.source or ds.name}: labels must be in [0, {ds.n_classes}) for "
                            f"{ds.n_classes} classes, got {lo}..{hi}.", field="dataset")
    return ds


def infer_task(arrays: dict[str, np.ndarray], task: str | None) -> str:
    if task is not None:
        return task
    return "classification" if np.issubdtype(arrays["y_train"].dtype, np.integer) else "regression"


def _check_classes(a: dict[str, np.ndarray], k: int, where: str, declared: bool,
                   names: list[str] | None) -> None:
    """Every validation and test label is one of the k classes (else refused: which split,
    which labels, how many rows); a class no training label has is named (a warning)."""
    def say(labels: Any) -> str:
        return ", ".join(repr(names[int(v)]) if names else str(int(v)) for v in list(labels)[:8])

    for key in ("y_val", "y_test"):
        if key not in a:
            continue
        y = a[key]
        out = y >= k
        if out.any():
            whence = (f"dataset.n_classes: {k}" if declared else
                      f"the training labels: {say(range(k)) if names else f'0..{k - 1}'}")
            raise SpecError(f"{where}: {key} has label(s) {say(np.unique(y[out]))} in {int(out.sum())} "
                            f"row(s), outside the {k} classes ({whence}); fix those rows"
                            + ("" if declared else ", or declare dataset.n_classes if the training "
                               "set lacks a class on purpose") + ".", field="dataset")
    absent = sorted(set(range(k)) - {int(v) for v in np.unique(a["y_train"])})
    if absent:
        warnings.warn(f"{where}: class(es) {say(absent)} of {k} never appear in the training labels; "
                      f"the model cannot learn them.", stacklevel=3)


def to_dataset(arrays: dict[str, Any], where: str, name: str, val_size: int | None,
               task: str | None = None, n_classes: int | None = None,
               names: list[str] | None = None) -> ArrayDataset:
    """An ArrayDataset from checked arrays; labels as int64 (classification) or float32."""
    a = check_arrays(arrays, where, task)
    task = infer_task(a, task)
    if task == "classification":
        for k in ("y_train", "y_val", "y_test"):
            if k in a:
                y = a[k]
                if not np.issubdtype(y.dtype, np.integer) and not np.all(np.equal(np.mod(y, 1), 0)):
                    raise SpecError(f"{where}: {k} must hold integer class labels for classification "
                                    f"(or set dataset.task: regression).", field="dataset")
                a[k] = y.astype(np.int64).reshape(-1)
        ys = [a[k] for k in ("y_train", "y_val", "y_test") if k in a]
        lo, hi = min(int(y.min()) for y in ys), max(int(y.max()) for y in ys)
        # the classes: declared, else those of the training labels (never a stray test label's)
        k = n_classes or int(a["y_train"].max()) + 1
        if lo < 0 or (n_classes and hi >= k):
            raise SpecError(f"{where}: labels must be in [0, {k}) for {k} classes, got {lo}..{hi}.",
                            field="dataset")
        _check_classes(a, k, where, declared=bool(n_classes), names=names)
    else:
        for key in ("y_train", "y_val", "y_test"):
            if key in a:
                if a[key].ndim > 1 and a[key].shape[1:] != (1,):
                    raise SpecError(f"{where}: {key} must hold one target per example, got shape "
                                    f"{a[key].shape}.", field="dataset")
                a[key] = a[key].astype(np.float32).reshape(-1)
        k = 0
    x_dtype = np.uint8 if all(a[x].dtype == np.uint8 for x in a if x.startswith("x_")) else np.float32
    for key in [x for x in a if x.startswith("x_")]:
        a[key] = a[key].astype(x_dtype, copy=False)
    if "x_val" in a:
        x_tr, y_tr, x_val, y_val = a["x_train"], a["y_train"], a["x_val"], a["y_val"]
    else:
        n = len(a["y_train"])
        vs = val_size or max(1, n // 10)
        if vs >= n:
            raise SpecError(f"{where}: val_size {vs} leaves no training data ({n} examples).",
                            field="dataset.val_size")
        x_tr, y_tr, x_val, y_val = split_train_val(a["x_train"], a["y_train"], vs)
    # uint8 images are scaled to [0, 1] and normalized with the training set's statistics
    scale = 255.0 if x_dtype == np.uint8 else 1.0
    mean = float(x_tr.mean() / scale)
    std = float(x_tr.std() / scale) or 1.0
    return ArrayDataset(name=name, x_train=x_tr, y_train=y_tr, x_val=x_val, y_val=y_val,
                        x_test=a["x_test"], y_test=a["y_test"], n_classes=k, mean=mean, std=std,
                        scale=scale, source=where, extra={"task": task})


def _check_size(path: Path) -> None:
    size, mem = path.stat().st_size, environment.total_memory_bytes()
    if mem and size > MEMORY_FRACTION * mem:
        raise SpecError(f"{path}: {size / 2**30:.1f} GiB, more than half of this machine's "
                        f"{mem / 2**30:.1f} GiB of memory; hpo holds a dataset in memory (and once "
                        f"in Ray's object store). Use a subset, or a machine with more memory.",
                        field="dataset.path")


def _file(path: str | None, kind: str) -> Path:
    if not path:
        raise SpecError(f"dataset `{kind}` needs `path:` (the {kind} file).", field="dataset.path")
    p = Path(path).expanduser()
    if not p.is_file():
        raise SpecError(f"{p}: no such file.", field="dataset.path")
    _check_size(p)
    return p


def load_npz(path: str | None, val_size: int | None, task: str | None,
             n_classes: int | None = None) -> ArrayDataset:
    p = _file(path, "npz")
    try:
        with np.load(p, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (ValueError, OSError) as e:
        raise SpecError(f"{p}: not a readable .npz file of arrays ({e}).", field="dataset.path") from None
    return to_dataset(arrays, str(p), p.stem, val_size, task, n_classes)


def load_csv(path: str | None, label: str | None, val_size: int | None, task: str | None,
             test_fraction: float = 0.2, n_classes: int | None = None) -> ArrayDataset:
    """Feature columns + a label column; the last `test_fraction` of rows (seeded shuffle) is the
    test set, the validation split is made from the rest."""
    import pandas as pd

    p = _file(path, "csv")
    if not label:
        raise SpecError("dataset `csv` needs `label:` (the name of the label/target column).",
                        field="dataset.label")
    try:
        df = pd.read_csv(p)
    except (ValueError, OSError) as e:
        raise SpecError(f"{p}: not a readable CSV table ({e}).", field="dataset.path") from None
    if label not in df:
        from hpo.errors import did_you_mean

        raise SpecError(f"{p}: no column `{label}`.{did_you_mean(label, list(df.columns))} "
                        f"Columns: {', '.join(map(str, df.columns))}.", field="dataset.label")
    features = df.drop(columns=[label])
    bad = [c for c in features if not pd.api.types.is_numeric_dtype(features[c])]
    if bad:
        raise SpecError(f"{p}: feature columns must be numeric; not numeric: {', '.join(map(str, bad))}.",
                        field="dataset.path")
    y_raw = df[label]
    names = None
    if task == "classification" and not pd.api.types.is_numeric_dtype(y_raw):
        # class names become 0..k-1, the training rows' names first: a name only in the test
        # rows is then outside the classes (refused by name)
        perm0 = np.random.default_rng(0).permutation(len(y_raw))
        n_test0 = max(1, int(round(len(y_raw) * test_fraction)))
        seen = list(dict.fromkeys(y_raw.to_numpy()[perm0[n_test0:]]))
        names = [str(v) for v in sorted(seen, key=str)]
        rest = sorted({str(v) for v in y_raw} - set(names))
        names += rest
        y = pd.Categorical(y_raw.astype(str), categories=names).codes.astype(np.int64)
    elif not pd.api.types.is_numeric_dtype(y_raw):
        raise SpecError(f"{p}: label column `{label}` is not numeric; set dataset.task: "
                        f"classification to use its values as class names.", field="dataset.label")
    else:
        y = y_raw.to_numpy()
    x = features.to_numpy(dtype=np.float64)
    if np.isnan(x).any() or (np.issubdtype(np.asarray(y).dtype, np.floating) and np.isnan(y).any()):
        rows = int(np.isnan(x).any(axis=1).sum())
        raise SpecError(f"{p}: {rows or 'some'} row(s) with empty or NaN values; fill or drop them.",
                        field="dataset.path")
    perm = np.random.default_rng(0).permutation(len(y))
    n_test = max(1, int(round(len(y) * test_fraction)))
    test, train = perm[:n_test], perm[n_test:]
    arrays = {"x_train": x[train].astype(np.float32), "y_train": np.asarray(y)[train],
              "x_test": x[test].astype(np.float32), "y_test": np.asarray(y)[test]}
    ds = to_dataset(arrays, str(p), p.stem, val_size, task, n_classes, names)
    return _standardized(ds)


def _standardized(ds: ArrayDataset) -> ArrayDataset:
    """Tabular features: each column standardized with the training set's mean and std."""
    mean = ds.x_train.mean(axis=0)
    std = ds.x_train.std(axis=0)
    std[std == 0] = 1.0

    def z(x: np.ndarray) -> np.ndarray:
        return ((x - mean) / std).astype(np.float32)

    return replace(ds, x_train=z(ds.x_train), x_val=z(ds.x_val), x_test=z(ds.x_test), mean=0.0, std=1.0)


def load_function(ref: str, val_size: int | None, task: str | None,
                  n_classes: int | None = None) -> ArrayDataset:
    fn = import_ref(ref, "dataset.name", "a dataset function returns a dict of arrays")
    try:
        inspect.signature(fn).bind()
    except TypeError:
        raise SpecError(f"`{ref}` must be callable without arguments (it returns a dict with "
                        f"{', '.join(REQUIRED)}).", field="dataset.name") from None
    arrays = fn()
    if isinstance(arrays, Mapping):  # any mapping (an np.load NpzFile too) reads as a dict
        arrays = {k: arrays[k] for k in arrays}
    if not isinstance(arrays, dict):
        raise SpecError(f"`{ref}` returned {type(arrays).__name__}; it must return a dict with "
                        f"{', '.join(REQUIRED)} (and optionally x_val, y_val).", field="dataset.name")
    return to_dataset(arrays, f"dataset function {ref}", ref.rpartition(":")[2], val_size, task, n_classes)
