"""The experiment spec: one YAML file, loaded safely and validated structurally.

Semantic checks that need the registries (trainable params, metric names, searcher options)
live in :mod:`hpo.experiment`; this module knows only the shape of the file.
"""

from __future__ import annotations

import copy
import re
import typing
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from hpo.errors import SpecError, did_you_mean

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Budget(_Strict):
    max_epochs: int = Field(10, ge=1, description="epochs per trial; the schedulers' time budget")
    num_samples: int = Field(1, ge=1, description="samples (random/optuna) or grid repeats")
    max_concurrent_trials: int | None = Field(None, ge=1)
    time_budget_s: float | None = Field(None, gt=0)


class Resources(_Strict):
    cpu: float = Field(1, gt=0, description="CPUs per trial (torch threads follow it)")
    gpu: float = Field(0, ge=0, description="GPUs per trial; fractions pack trials on one GPU")


class CheckpointSpec(_Strict):
    every: int = Field(1, ge=0, description="checkpoint every N epochs; 0 = never")
    keep: int = Field(1, ge=1, description="checkpoints kept per trial")


class FailureSpec(_Strict):
    retries: int = Field(0, ge=0, description="retries of a failed trial (from its checkpoint)")
    max_failed_trials: int | None = Field(
        None, ge=1, description="abort the experiment after this many failed trials")


class EarlyStoppingSpec(_Strict):
    patience: int = Field(3, ge=1, description="epochs without improvement before a trial stops")
    min_delta: float = Field(0.0, ge=0, description="smallest change of the metric that counts")


class ConfirmSpec(_Strict):
    top_k: int = Field(3, ge=1, le=50, description="best configurations rerun after the search")
    seeds: int = Field(5, ge=2, le=100, description="new seeds per configuration")
    pick: Literal["pareto", "primary"] = Field(
        "pareto", description="with several objectives: the Pareto trials (best primary metric first, "
                              "up to top_k) or the top_k by the primary metric")


class ExecutionSpec(_Strict):
    pack: Literal["off", "auto"] | int = Field(
        "auto", description="train several configurations as one vectorized trial: auto (where "
                            "the trainable, searcher and scheduler allow it and it pays) | off | N")

    @field_validator("pack", mode="before")
    @classmethod
    def _yaml_booleans(cls, v: Any) -> Any:
        # YAML 1.1 reads an unquoted `off` as false (and `on` as true)
        return {False: "off", True: "auto"}.get(v, v) if isinstance(v, bool) else v

    @field_validator("pack")
    @classmethod
    def _size(cls, v: Any) -> Any:
        if isinstance(v, int) and v < 1:
            raise ValueError("pack size must be >= 1 (or off / auto)")
        return v


class DatasetSpec(_Strict):
    name: str = Field(description="a registered dataset, `npz`, `csv`, or a `module:function`")
    val_size: int | None = Field(None, ge=1, description="validation examples split off train")
    data_dir: str | None = Field(None, description="default: $HPO_DATA_DIR or ~/.cache/hpo")
    strict: bool = Field(False, description="fail instead of falling back to the embedded sample")
    train_size: int | None = Field(None, ge=1, description="keep only the first N training examples")
    path: str | None = Field(None, description="the file of `npz` / `csv` (relative: to the spec)")
    label: str | None = Field(None, description="`csv`: the label / target column")
    task: Literal["classification", "regression"] | None = Field(
        None, description="user data: default classification for integer labels, else regression")
    n_classes: int | None = Field(None, ge=2, description="user data, classification: the classes "
                                  "(default: the largest training label + 1); labels in [0, n_classes)")


class Bound(_Strict):
    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _ordered(self) -> Bound:
        if self.min is None and self.max is None:
            raise ValueError("give min:, max: or both")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min:g} > max {self.max:g}: no trial could satisfy it")
        return self


class ComponentSpec(BaseModel):
    """A searcher or scheduler: a registry name plus its options at the same level."""

    model_config = ConfigDict(extra="allow", frozen=True)
    name: str

    @property
    def options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class Spec(_Strict):
    name: str
    description: str = ""
    trainable: str = Field("", description="a built-in trainable, `model`, or a module:function")
    model: str | None = Field(None, description="your own model: `module:function` building an nn.Module")
    dataset: DatasetSpec
    metric: str | None = Field(None, description="the selection metric (with objectives: the primary one)")
    mode: Literal["min", "max"] | None = None
    objectives: dict[str, Literal["min", "max"]] = Field(
        default_factory=dict, description="several metrics searched at once: metric -> min | max")
    constraints: dict[str, Bound] = Field(
        default_factory=dict, description="metric -> {min:, max:}: trials outside are infeasible")
    points_to_evaluate: list[dict[str, Any]] = Field(
        default_factory=list, description="configurations tried first (every searched parameter)")
    warm_start: str | None = Field(
        None, description="an earlier run folder of the same space: its trials seed the searcher")
    searcher: ComponentSpec = ComponentSpec(name="grid")
    scheduler: ComponentSpec = ComponentSpec(name="fifo")
    budget: Budget = Budget()
    resources: Resources = Resources()
    checkpoint: CheckpointSpec = CheckpointSpec()
    failure: FailureSpec = FailureSpec()
    early_stopping: EarlyStoppingSpec | None = Field(
        None, description="stop a trial when `metric` stops improving (any trainable)")
    execution: ExecutionSpec = ExecutionSpec()
    tracking: dict[str, Any] = Field(
        default_factory=dict, description="loggers besides hpo's files: mlflow, wandb, tensorboard")
    confirm: ConfirmSpec | None = Field(
        None, description="rerun the best configurations with new seeds after the search")
    seed: int = 0
    storage: str = "runs"
    params: dict[str, Any] = Field(default_factory=dict)

    @field_validator("dataset", "searcher", "scheduler", mode="before")
    @classmethod
    def _name_shorthand(cls, v: Any) -> Any:
        return {"name": v} if isinstance(v, str) else v

    @model_validator(mode="after")
    def _trainable_or_model(self) -> Spec:
        if self.model is not None and self.trainable in ("", "model"):
            object.__setattr__(self, "trainable", "model")
        elif self.model is not None:
            raise ValueError(f"`model:` trains your own nn.Module with hpo's loop (trainable `model`); "
                             f"it cannot be combined with trainable `{self.trainable}`.")
        elif not self.trainable:
            raise ValueError("give `trainable:` (a built-in one, e.g. mlp) or `model:` (your own "
                             "nn.Module, `package.module:build`).")
        return self

    @field_validator("objectives")
    @classmethod
    def _several(cls, v: dict[str, str]) -> dict[str, str]:
        if len(v) == 1:
            raise ValueError("names one metric; with one metric use `metric:` (and `mode:`), "
                             "with several name each with its direction")
        return v

    @model_validator(mode="after")
    def _metric_or_objectives(self) -> Spec:
        if self.metric is None and not self.objectives:
            raise ValueError("give `metric:` (the one metric trials are selected by) or "
                             "`objectives:` (several metrics, each with min | max).")
        if self.objectives and self.metric is not None and self.metric not in self.objectives:
            raise ValueError(f"metric: `{self.metric}` (the primary objective) must be one of the "
                             f"objectives: {', '.join(self.objectives)}.")
        return self

    @field_validator("name")
    @classmethod
    def _safe_name(cls, v: str) -> str:
        # the name becomes a folder under storage: nothing that could escape it
        if not re.match(NAME_PATTERN, v) or ".." in v:
            raise ValueError("use 1-100 letters, digits, `_`, `.` or `-`, starting with a letter "
                             "or digit, without `..` (it names the run folder)")
        return v

    @model_validator(mode="after")
    def _params_names(self) -> Spec:
        for k in self.params:
            if not isinstance(k, str) or not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", k):
                raise ValueError(f"parameter name {k!r} must be an identifier")
        return self


# --- YAML ------------------------------------------------------------------------------------


class _Loader(yaml.SafeLoader):
    """SafeLoader that reads `1e-4` as a float and refuses duplicate keys."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, Any] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                m = key_node.start_mark
                raise SpecError(
                    f"duplicate key `{key}` at line {m.line + 1}, column {m.column + 1} "
                    f"(first at line {seen[key].line + 1}).",
                )
            seen[key] = key_node.start_mark
        return super().construct_mapping(node, deep=deep)


# YAML 1.1 (PyYAML) needs a dot in floats; YAML 1.2 and every user read `1e-4` as a number.
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def parse_yaml(text: str, file: str | None = None) -> Any:
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader is a SafeLoader
    except SpecError as e:
        raise SpecError(e.message, file=file) from None
    except yaml.MarkedYAMLError as e:
        m = e.problem_mark
        at = f"line {m.line + 1}, column {m.column + 1}: " if m else ""
        raise SpecError(f"invalid YAML: {at}{e.problem or e}", file=file) from None
    except yaml.YAMLError as e:
        raise SpecError(f"invalid YAML: {e}", file=file) from None


MAX_SPEC_BYTES = 1 << 20  # a spec is a page of YAML; a larger file is not one


def read_text(p: Path) -> str:
    """A spec file's text: UTF-8 (a BOM allowed), at most MAX_SPEC_BYTES, no NUL bytes; else a
    SpecError saying what and where (the byte offset), never a decoding traceback."""
    try:
        size = p.stat().st_size
        if size > MAX_SPEC_BYTES:
            raise SpecError(f"is {size:,} bytes; a spec is a YAML file of at most "
                            f"{MAX_SPEC_BYTES:,} bytes (is this the right file?).", file=str(p))
        data = p.read_bytes()
    except OSError as e:
        raise SpecError(f"cannot be read: {e.strerror}.", file=str(p)) from None
    nul = data.find(b"\0")
    if nul >= 0:
        raise SpecError(f"is a binary file (a NUL byte at byte {nul}), not a YAML spec.", file=str(p))
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise SpecError(f"is not UTF-8 text: byte 0x{data[e.start]:02x} at byte {e.start} (line "
                        f"{line}) cannot be decoded; save the spec as UTF-8 (e.g. `iconv -f "
                        f"latin1 -t utf-8`).", file=str(p)) from None


def read_spec_file(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    if not p.exists():
        raise SpecError("spec file does not exist, and no built-in study has that name "
                        "(`hpo studies` lists them).", file=str(p))
    if p.is_dir():
        raise SpecError("is a directory; give the path of a YAML spec file.", file=str(p))
    raw = parse_yaml(read_text(p), file=str(p))
    if not isinstance(raw, dict):
        raise SpecError(
            f"the top level must be a mapping of fields (name:, trainable:, ...), "
            f"got {type(raw).__name__}.",
            file=str(p),
        )
    return raw


# --- overrides (--set path=value) -------------------------------------------------------------


def apply_override(raw: dict[str, Any], assignment: str) -> None:
    """Apply one ``path=value`` override in place; the value is parsed as YAML."""
    if "=" not in assignment:
        raise SpecError(f"--set expects path=value, got {assignment!r}.", field="--set")
    path, value_text = assignment.split("=", 1)
    keys = path.strip().split(".")
    if not all(keys):
        raise SpecError(f"bad path {path!r}.", field="--set")
    top = list(Spec.model_fields)
    if keys[0] not in top:
        raise SpecError(
            f"`{keys[0]}` is not a spec field.{did_you_mean(keys[0], top)} "
            f"Allowed: {', '.join(top)}.",
            field=f"--set {path}",
        )
    value = parse_yaml(value_text, file="--set")
    node = raw
    for i, k in enumerate(keys[:-1]):
        child = node.get(k)
        if child is None:
            child = node[k] = {}
        elif isinstance(child, str) and i == 0 and k in ("dataset", "searcher", "scheduler"):
            child = node[k] = {"name": child}
        elif not isinstance(child, dict):
            raise SpecError(f"`{k}` is not a mapping, cannot set {path}.", field="--set")
        node = child
    node[keys[-1]] = value


# --- validation ------------------------------------------------------------------------------


def validate_raw(raw: dict[str, Any], file: str | None = None) -> Spec:
    spec, problems = validate_partly(raw)
    if problems:
        raise SpecError(problems[0] if len(problems) == 1 else "\n  " + "\n  ".join(problems), file=file)
    assert spec is not None
    return spec


def validate_partly(raw: dict[str, Any]) -> tuple[Spec | None, list[str]]:
    """The spec and its structural problems, one line each. With problems, the spec returned is
    the one left when the fields at fault are taken out (defaults in their place), so that the later
    checks (parameters, dataset, model) still run and are said with them; None where that is not a
    valid spec (a required field at fault, a check across fields)."""
    try:
        return Spec.model_validate(raw), []
    except ValidationError as e:
        problems = _validation_lines(e)
        errors = e.errors()
    pruned = copy.deepcopy(raw)
    for err in errors:
        *path, key = err["loc"] or (None,)
        at: Any = pruned
        for part in path:
            at = at.get(part) if isinstance(at, dict) and isinstance(part, str) else None
        if not (isinstance(at, dict) and isinstance(key, str) and key in at):
            return None, problems
        del at[key]
    try:
        return Spec.model_validate(pruned), problems
    except ValidationError:
        return None, problems


def _validation_lines(err: ValidationError) -> list[str]:
    lines = []
    for e in err.errors():
        loc = ".".join(str(x) for x in e["loc"])
        if e["type"] == "extra_forbidden":
            parent = _model_at(e["loc"][:-1])
            allowed = list(parent.model_fields) if parent else []
            key = str(e["loc"][-1])
            hint = did_you_mean(key, allowed)
            lines.append(f"{loc}: unknown field.{hint} Allowed: {', '.join(allowed)}.")
        elif e["type"] == "missing":
            lines.append(f"{loc}: required field is missing.")
        elif not loc:  # a check across fields: the message says which
            lines.append(e["msg"].removeprefix("Value error, "))
        else:
            got = e.get("input")
            lines.append(f"{loc}: {e['msg'].removeprefix('Value error, ')} (got {got!r}).")
    return lines


def _model_at(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    model: type[BaseModel] = Spec
    for part in loc:
        field = model.model_fields.get(str(part))
        ann = getattr(field, "annotation", None)
        # `Model | None` (optional sections such as early_stopping) -> Model
        ann = next((a for a in (typing.get_args(ann) or (ann,)) if a is not type(None)), None)
        if not (isinstance(ann, type) and issubclass(ann, BaseModel)):
            return None
        model = ann
    return model


def load_spec(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Spec:
    """Read, override and validate a spec file (structure only)."""
    return validate_raw(read_raw(path, overrides), file=str(path))


def read_raw(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> dict[str, Any]:
    """A spec file as a dict, overridden, its data path made absolute; not validated."""
    raw = read_spec_file(path)
    for o in overrides:
        apply_override(raw, o)
    _relative_to(raw, Path(path).resolve().parent)
    return raw


def _relative_to(raw: dict[str, Any], folder: Path) -> None:
    """A user data file given relative to the spec is found next to the spec, wherever `hpo`
    runs from; the run's spec.yaml then records the absolute path."""
    ds = raw.get("dataset")
    path = ds.get("path") if isinstance(ds, dict) else None
    if isinstance(path, str) and not Path(path).expanduser().is_absolute():
        ds["path"] = str(folder / path)


def spec_to_yaml(spec: Spec) -> str:
    data = spec.model_dump(mode="json")
    for key in ("searcher", "scheduler"):
        comp = getattr(spec, key)
        data[key] = {"name": comp.name, **comp.options}
    return yaml.safe_dump(data, sort_keys=False)
