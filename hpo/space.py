"""Search-space parameters as plain data, and their Ray Tune counterparts.

In a spec, a parameter is either a constant (a scalar or a list) or a one-key mapping naming a
distribution, e.g. ``{loguniform: [1.0e-4, 1.0e-1]}``. Ray is imported only when converting.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from hpo.errors import SpecError, unknown_name

# name -> (number of arguments, description used in error messages)
DISTRIBUTIONS: dict[str, str] = {
    "grid": "a non-empty list of values, every one tried",
    "choice": "a non-empty list of values, sampled",
    "uniform": "[low, high]",
    "loguniform": "[low, high] with 0 < low",
    "randint": "[low, high], integers, both inclusive",
    "quniform": "[low, high, q]",
    "qloguniform": "[low, high, q] with 0 < low",
}
_RANGE_ARGS = {"uniform": 2, "loguniform": 2, "randint": 2, "quniform": 3, "qloguniform": 3}


@dataclass(frozen=True)
class Constant:
    value: Any


@dataclass(frozen=True)
class Distribution:
    kind: str
    values: tuple[Any, ...] = ()  # grid / choice
    low: float = 0.0
    high: float = 0.0
    q: float | None = None

    @property
    def is_categorical(self) -> bool:
        return self.kind in ("grid", "choice")

    @property
    def is_group(self) -> bool:
        """A grid/choice of mappings: each value sets several parameters together (a case)."""
        return self.is_categorical and isinstance(self.values[0], dict)

    def candidates(self) -> list[Any]:
        """Values to check against the trainable's config model: all for categorical, else bounds."""
        if self.is_categorical:
            return list(self.values)
        if self.kind == "randint":
            return [int(self.low), int(self.high)]
        return [self.low, self.high]


Param = Constant | Distribution


def parse_param(name: str, raw: Any) -> Param:
    """Turn one raw YAML value of ``params`` into a Constant or a Distribution."""
    field = f"params.{name}"
    if not isinstance(raw, dict):
        return Constant(raw)
    if len(raw) != 1:
        raise SpecError(
            f"a searched parameter is a mapping with exactly one key (a distribution), got keys "
            f"{sorted(map(str, raw))}. Allowed distributions: {', '.join(DISTRIBUTIONS)}.",
            field=field,
        )
    kind, args = next(iter(raw.items()))
    if kind not in DISTRIBUTIONS:
        raise SpecError(unknown_name("distribution", kind, DISTRIBUTIONS), field=field)
    field = f"{field}.{kind}"
    if not isinstance(args, list):
        raise SpecError(f"expected {DISTRIBUTIONS[kind]}, got {args!r}.", field=field)
    if kind in ("grid", "choice"):
        if not args:
            raise SpecError(f"`{kind}` needs at least one value, got an empty list.", field=field)
        _check_cases(args, field)
        return Distribution(kind, values=tuple(_freeze(v) for v in args))
    n = _RANGE_ARGS[kind]
    if len(args) != n or not all(_is_number(a) for a in args):
        raise SpecError(f"expected {DISTRIBUTIONS[kind]} (numbers), got {args!r}.", field=field)
    low, high = float(args[0]), float(args[1])
    if kind == "randint" and not (float(args[0]).is_integer() and float(args[1]).is_integer()):
        raise SpecError(f"randint bounds must be integers, got {args!r}.", field=field)
    if not low < high:
        raise SpecError(f"low must be < high, got low={args[0]}, high={args[1]}.", field=field)
    if kind in ("loguniform", "qloguniform") and low <= 0:
        raise SpecError(f"loguniform needs low > 0, got low={args[0]}.", field=field)
    q = float(args[2]) if n == 3 else None
    if q is not None and q <= 0:
        raise SpecError(f"q must be > 0, got q={args[2]}.", field=field)
    return Distribution(kind, low=low, high=high, q=q)


def _check_cases(args: list[Any], field: str) -> None:
    """A list of mappings is a group of cases; it cannot be mixed with plain values."""
    dicts = [isinstance(a, dict) for a in args]
    if not any(dicts):
        return
    if not all(dicts):
        raise SpecError("mix of mappings and plain values: either every value is a mapping of "
                        "parameters set together (a case, e.g. {optimizer: adam, lr: 0.001}) "
                        "or none is.", field=field)
    for i, case in enumerate(args):
        if not case:
            raise SpecError(f"case {i + 1} is empty; a case sets at least one parameter.",
                            field=field)
        for k in case:
            if not isinstance(k, str) or not k.isidentifier():
                raise SpecError(f"case {i + 1}: parameter name {k!r} must be an identifier.",
                                field=field)
            if isinstance(case[k], dict):
                raise SpecError(f"case {i + 1}: `{k}` is a mapping; a case sets plain values "
                                f"(cases cannot hold distributions or nested cases).", field=field)


def case_label(case: dict[str, Any]) -> str:
    """A short readable name for a case: "optimizer=sgd, momentum=0.9, lr=0.01"."""
    return ", ".join(f"{k}={thaw(v)}" for k, v in case.items())


def expand_cases(config: dict[str, Any], groups: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """The trainable's config: each group's chosen case merged in, the group key removed."""
    out = {k: v for k, v in config.items() if k not in groups}
    for g in groups:
        case = config.get(g)
        if isinstance(case, dict):
            out.update(case)
    return out


def groups(params: dict[str, Param]) -> list[str]:
    return [k for k, p in params.items() if isinstance(p, Distribution) and p.is_group]


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _freeze(v: Any) -> Any:
    # Lists (e.g. hidden widths) become tuples so a Distribution stays hashable; thawed for Ray.
    if isinstance(v, dict):
        return {k: _freeze(x) for k, x in v.items()}
    return tuple(_freeze(x) for x in v) if isinstance(v, list) else v


def thaw(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: thaw(x) for k, x in v.items()}
    return [thaw(x) for x in v] if isinstance(v, tuple) else v


def grid_size(params: dict[str, Param]) -> int:
    """Number of grid points: the product of the lengths of every `grid` parameter."""
    n = 1
    for p in params.values():
        if isinstance(p, Distribution) and p.kind == "grid":
            n *= len(p.values)
    return n


def searched(params: dict[str, Param]) -> dict[str, Distribution]:
    return {k: p for k, p in params.items() if isinstance(p, Distribution)}


def to_tune(p: Param) -> Any:
    """The Ray Tune search-space object for one parameter (constants stay plain values)."""
    from ray import tune

    if isinstance(p, Constant):
        return p.value
    if p.kind == "grid":
        return tune.grid_search([thaw(v) for v in p.values])
    if p.kind == "choice":
        return tune.choice([thaw(v) for v in p.values])
    if p.kind == "uniform":
        return tune.uniform(p.low, p.high)
    if p.kind == "loguniform":
        return tune.loguniform(p.low, p.high)
    if p.kind == "randint":
        return tune.randint(int(p.low), int(p.high) + 1)  # Ray's upper bound is exclusive
    if p.kind == "quniform":
        return tune.quniform(p.low, p.high, p.q)
    if p.kind == "qloguniform":
        return tune.qloguniform(p.low, p.high, p.q)
    raise AssertionError(p.kind)  # parse_param admits only the kinds above


def to_param_space(params: dict[str, Param]) -> dict[str, Any]:
    return {k: to_tune(p) for k, p in params.items()}
