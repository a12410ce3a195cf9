"""The built-in studies: the YAML specs shipped with hpo (the repository's search_spaces/,
installed as the package `hpo.studies`), found by name so `hpo run lr_reg` works after a plain
`pip install`."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import yaml


def studies_dir() -> Path:
    return Path(str(resources.files("hpo.studies")))


def list_studies() -> dict[str, str]:
    """name -> description, e.g. "lr_reg" or "compare/tpe" (sorted by name)."""
    root = studies_dir()
    out = {}
    for p in sorted(root.rglob("*.yaml")):
        name = p.relative_to(root).with_suffix("").as_posix()
        try:
            desc = (yaml.safe_load(p.read_text()) or {}).get("description", "")
        except yaml.YAMLError:
            desc = ""
        out[name] = str(desc or "")
    return out


def resolve(spec: str | Path) -> Path:
    """A spec argument as a file: an existing path as it is, else a built-in study's file when
    `spec` names one (with or without .yaml), else the path unchanged (its loader then says it
    does not exist)."""
    p = Path(spec)
    if p.exists():
        return p
    name = str(spec).removesuffix(".yaml").removesuffix(".yml")
    if name and ".." not in name and not p.is_absolute():
        study = studies_dir() / f"{name}.yaml"
        if study.is_file():
            return study
    return p
