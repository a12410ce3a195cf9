"""Search-space parameters as plain data, and their Ray Tune counterparts (the Optuna side is
:mod:`hpo.optuna_space`).

In a spec, a parameter is either a constant (a scalar or a list) or a one-key mapping naming a
distribution, e.g. ``{loguniform: [1.0e-4, 1.0e-1]}``. The distribution kinds are one registry,
:data:`KINDS`; the searchers, the plan, the checks and the report read a parsed
:class:`Distribution`'s properties instead of branching on kind names. Ray is imported only
when converting. A group of cases may hold distributions of its own (a conditional space).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hpo.contract import expand_cases
from hpo.errors import SpecError, unknown_name


@dataclass(frozen=True)
class Kind:
    """One distribution kind: how it is written, what its values are, and its Ray Tune
    counterpart. Everything that treats kinds differently reads these fields."""

    doc: str  # the arguments it takes, for error messages
    n_args: int | None  # None: a non-empty list of values (grid, choice)
    tune: Callable[[Distribution], Any]  # the Ray Tune search-space object
    enumerated: bool = False  # every value is tried (grid), not sampled
    log: bool = False  # sampled (and best shown) on a log scale
    integer: bool = False


def _tune(name: str, *args: Callable[[Distribution], Any]) -> Callable[[Distribution], Any]:
    def make(p: Distribution) -> Any:
        from ray import tune

        return getattr(tune, name)(*(a(p) for a in args))

    return make


def _values(p: Distribution) -> list[Any]:
    return [_tune_case(v) if isinstance(v, dict) else thaw(v) for v in p.values]


def _tune_case(case: dict[str, Any]) -> dict[str, Any]:
    """A case for Ray: its distributions as Tune domains (Ray samples them once the case is
    chosen, so a parameter exists only in its case)."""
    return {k: to_tune(v) if isinstance(v, Distribution) else thaw(v) for k, v in case.items()}


def _low(p: Distribution) -> float:
    return p.low


def _high(p: Distribution) -> float:
    return p.high


def _q(p: Distribution) -> float | None:
    return p.q


KINDS: dict[str, Kind] = {
    "grid": Kind("a non-empty list of values, every one tried", None, _tune("grid_search", _values),
                 enumerated=True),
    "choice": Kind("a non-empty list of values, sampled", None, _tune("choice", _values)),
    "uniform": Kind("[low, high]", 2, _tune("uniform", _low, _high)),
    "loguniform": Kind("[low, high] with 0 < low", 2, _tune("loguniform", _low, _high), log=True),
    # Ray's randint excludes its upper bound; ours includes it
    "randint": Kind("[low, high], integers, both inclusive", 2,
                    _tune("randint", lambda p: int(p.low), lambda p: int(p.high) + 1), integer=True),
    "quniform": Kind("[low, high, q]", 3, _tune("quniform", _low, _high, _q)),
    "qloguniform": Kind("[low, high, q] with 0 < low", 3, _tune("qloguniform", _low, _high, _q), log=True),
}
DISTRIBUTIONS: dict[str, str] = {k: v.doc for k, v in KINDS.items()}  # name -> what it takes


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
    def spec(self) -> Kind:
        return KINDS[self.kind]

    @property
    def is_categorical(self) -> bool:
        return self.spec.n_args is None

    @property
    def is_log(self) -> bool:
        return self.spec.log

    @property
    def is_integer(self) -> bool:
        return self.spec.integer

    @property
    def enumerated(self) -> bool:
        """Every value is tried (a grid), rather than sampled."""
        return self.spec.enumerated

    @property
    def is_group(self) -> bool:
        """A grid/choice of mappings: each value sets several parameters together (a case)."""
        return self.is_categorical and isinstance(self.values[0], dict)

    @property
    def is_conditional(self) -> bool:
        """A group whose cases search parameters of their own (e.g. sgd's momentum)."""
        return self.is_group and any(isinstance(v, Distribution) for c in self.values for v in c.values())

    def labels(self) -> list[str]:
        """One readable name per case (the values it fixes; `case <i>` when it fixes none)."""
        return [case_label(c) or f"case {i + 1}" for i, c in enumerate(self.values)]

    def case_of(self, value: dict[str, Any]) -> int | None:
        """Which case a trial's chosen mapping is: same parameters, same fixed values."""
        for i, c in enumerate(self.values):
            if set(c) == set(value) and all(isinstance(v, Distribution) or thaw(v) == value[k]
                                             for k, v in c.items()):
                return i
        return None

    def candidates(self) -> list[Any]:
        """Values to check against the trainable's config model: all for categorical (a
        conditional case once with its ranges' lows, once with their highs), else bounds."""
        if self.is_group:
            return [concrete_case(c, j) for c in self.values
                    for j in range(2 if any(isinstance(v, Distribution) for v in c.values()) else 1)]
        if self.is_categorical:
            return list(self.values)
        if self.is_integer:
            return [int(self.low), int(self.high)]
        return [self.low, self.high]

    def middle(self) -> float:
        """The middle of a range (geometric for log scales)."""
        return math.sqrt(self.low * self.high) if self.is_log else (self.low + self.high) / 2

    def position(self, v: float) -> float:
        """Where `v` lies in the range, 0 at low and 1 at high (on a log scale when sampled so)."""
        f = math.log10 if self.is_log else float
        return (f(v) - f(self.low)) / (f(self.high) - f(self.low))


def optuna_category(v: Any) -> Any:
    """Optuna categories must be None/bool/int/float/str: lists and mappings become JSON."""
    return json.dumps(v, sort_keys=True) if isinstance(v, (list, dict)) else v


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
    if KINDS[kind].n_args is None:
        if not args:
            raise SpecError(f"`{kind}` needs at least one value, got an empty list.", field=field)
        _check_cases(args, field)
        if isinstance(args[0], dict):
            return Distribution(kind, values=tuple(_parse_case(c, i, field) for i, c in enumerate(args)))
        return Distribution(kind, values=tuple(_freeze(v) for v in args))
    n = KINDS[kind].n_args
    if len(args) != n or not all(_is_number(a) for a in args):
        raise SpecError(f"expected {DISTRIBUTIONS[kind]} (numbers), got {args!r}.", field=field)
    low, high = float(args[0]), float(args[1])
    if KINDS[kind].integer and not (float(args[0]).is_integer() and float(args[1]).is_integer()):
        raise SpecError(f"randint bounds must be integers, got {args!r}.", field=field)
    if not low < high:
        raise SpecError(f"low must be < high, got low={args[0]}, high={args[1]}.", field=field)
    if KINDS[kind].log and low <= 0:
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


def _parse_case(case: dict[str, Any], i: int, field: str) -> dict[str, Any]:
    """A case's values: plain values, or a sampled distribution of its own (a conditional
    parameter, e.g. `momentum: {uniform: [0, 0.99]}` in the sgd case only)."""
    out: dict[str, Any] = {}
    for k, v in case.items():
        if not isinstance(v, dict):
            out[k] = _freeze(v)
            continue
        p = parse_param(k, v)
        where = f"case {i + 1}: `{k}`"
        if isinstance(p, Distribution) and p.enumerated:
            raise SpecError(f"{where} is a `grid`; inside a case a parameter is fixed or sampled "
                            f"(choice, uniform, loguniform, ...), never enumerated.", field=field)
        if isinstance(p, Distribution) and p.is_group:
            raise SpecError(f"{where} holds cases of its own; cases do not nest.", field=field)
        out[k] = p
    return out


def concrete_case(case: dict[str, Any], j: int = 0) -> dict[str, Any]:
    """A case with each of its distributions replaced by a value: its low (j even) or high
    (j odd) bound, or its j-th category."""
    out = {}
    for k, v in case.items():
        if isinstance(v, Distribution):
            c = v.candidates()
            x = thaw(c[j % len(c)])
            out[k] = int(x) if v.is_integer else x
        else:
            out[k] = thaw(v)
    return out


def case_label(case: dict[str, Any]) -> str:
    """A short readable name for a case: "optimizer=sgd, momentum=0.9, lr=0.01" (the values it
    fixes; its sampled parameters are not part of its name)."""
    return ", ".join(f"{k}={thaw(v)}" for k, v in case.items() if not isinstance(v, Distribution))


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
        if isinstance(p, Distribution) and p.enumerated:
            n *= len(p.values)
    return n


def sample_configs(params: dict[str, Param], k: int = 4) -> list[dict[str, Any]]:
    """k trainable configurations spread over the space (groups' cases merged): categorical
    values in turn, a range's low, high and middle in turn; the first is every first candidate."""
    base = {n: thaw(p.value) for n, p in params.items() if not isinstance(p, Distribution)}
    out = []
    for i in range(k):
        cfg = dict(base)
        for name, p in params.items():
            if isinstance(p, Distribution):
                c = p.candidates() if p.is_categorical else [p.low, p.high, p.middle()]
                cfg[name] = concrete_case(c[i % len(c)]) if p.is_group else thaw(c[i % len(c)])
                if p.is_integer:
                    cfg[name] = int(cfg[name])
        out.append(expand_cases(cfg, groups(params)))
    return out


def searched(params: dict[str, Param]) -> dict[str, Distribution]:
    return {k: p for k, p in params.items() if isinstance(p, Distribution)}


def to_tune(p: Param) -> Any:
    """The Ray Tune search-space object for one parameter (constants stay plain values)."""
    return p.value if isinstance(p, Constant) else p.spec.tune(p)


def to_param_space(params: dict[str, Param]) -> dict[str, Any]:
    return {k: to_tune(p) for k, p in params.items()}
