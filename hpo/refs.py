"""User code named in a spec (`model:`, `trainable:` or `dataset:` as `module:function`).

Nothing else in a spec is ever imported. A reference is looked up on the user's search path:
the folder of the spec file, the current directory, then PYTHONPATH and the installed packages
(so `hpo run spec.yaml` finds `my_lab/` next to the spec, as a notebook would). The trials get
the same path in their Settings (`search_path`) and import user code only after setting it
(hpo.trainables._ray), also where Ray was started by someone else; on a cluster the code
travels with `hpo submit --working-dir` or is installed on every node.
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path
from typing import Any

from hpo.errors import SpecError

_EXTRA: list[str] = []  # folders added for this process, most recent first


def add_search_path(folder: str | Path) -> None:
    """Make modules in `folder` importable (the folder of a spec that names user code)."""
    p = str(Path(folder).resolve())
    if p not in _EXTRA:
        _EXTRA.insert(0, p)
    if p not in sys.path:
        sys.path.insert(0, p)


def search_path() -> list[str]:
    """The folders user code is looked up in, for this process and its Ray workers."""
    return list(dict.fromkeys([*_EXTRA, os.getcwd()]))


def import_ref(ref: str, field: str, what: str) -> Any:
    """The object named by a `module:function` reference, callable; else a one-line SpecError."""
    module_path, _, name = ref.partition(":")
    if not module_path or not name.isidentifier():
        raise SpecError(f"`{ref}` is not a `module:function` reference.", field=field)
    for p in reversed(search_path()):
        if p not in sys.path:
            sys.path.insert(0, p)
    try:
        module = importlib.import_module(module_path)
    except ImportError as e:
        raise SpecError(f"cannot import `{module_path}` ({e}); put it next to the spec or in the "
                        f"current folder, install it, or add it to PYTHONPATH.", field=field) from None
    obj = getattr(module, name, None)
    if obj is None:
        raise SpecError(f"`{module_path}` has no `{name}`.", field=field)
    if not callable(obj):
        raise SpecError(f"`{ref}` is not callable; {what}.", field=field)
    return obj
