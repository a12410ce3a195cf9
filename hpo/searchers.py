"""Searcher registry: what to try next. Each entry is Ray Tune's own implementation.

An entry has an options model (validated before Ray starts; unknown options fail by name), a
check of the search space it can handle, and a factory that imports Ray/Optuna lazily.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from hpo.errors import SpecError
from hpo.registry import Registry
from hpo.space import Param, searched, to_param_space


class _Options(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class GridOptions(_Options):
    pass


class RandomOptions(_Options):
    seed: int | None = Field(None, description="default: the spec's seed")


class OptunaOptions(_Options):
    sampler: Literal["tpe", "gp", "cmaes", "qmc", "random"] = "tpe"
    seed: int | None = Field(None, description="default: the spec's seed")
    n_startup_trials: int = Field(10, ge=0, description="random trials before TPE/GP model them")
    multivariate: bool = Field(False, description="TPE: model parameters jointly")


@dataclass(frozen=True)
class SearcherEntry:
    options: type[_Options]
    check: Callable[[dict[str, Param]], None]
    # (params, options, seed, max_concurrent) -> (Ray search_alg, param_space)
    build: Callable[..., tuple[Any, dict[str, Any]]]


def _grid_only(params: dict[str, Param]) -> None:
    for name, p in searched(params).items():
        if not p.enumerated:
            raise SpecError(
                f"the grid searcher tries listed values only, but this parameter is "
                f"`{p.kind}`. Use `grid: [...]`, or searcher `random` / `optuna` for sampled "
                f"distributions.",
                field=f"params.{name}",
            )
    if not searched(params):
        raise SpecError("no parameter is searched: give at least one `{grid: [...]}`.",
                        field="params")


def _any(params: dict[str, Param]) -> None:
    if not searched(params):
        raise SpecError("no parameter is searched: give at least one distribution.",
                        field="params")


def _no_grid(params: dict[str, Param]) -> None:
    _any(params)
    for name, p in searched(params).items():
        if p.is_group:
            raise SpecError(
                "a group of cases (a list of mappings) is enumerated by searcher `grid` or "
                "sampled by `random`; Optuna samples single values. Use searcher grid/random, "
                "or search each parameter with its own `choice`.",
                field=f"params.{name}.{p.kind}")
        if p.enumerated:
            raise SpecError(
                "Optuna samples every parameter and cannot enumerate a grid; use "
                "`choice: [...]` with the same values (and budget.num_samples for how many).",
                field=f"params.{name}.grid",
            )


def _basic(params: dict[str, Param], opts: Any, seed: int, max_concurrent: int | None) -> Any:
    from ray.tune.search import BasicVariantGenerator

    s = getattr(opts, "seed", None)
    # Ray ignores TuneConfig.max_concurrent_trials for a variant generator: it takes its own
    gen = BasicVariantGenerator(random_state=seed if s is None else s,
                                max_concurrent=max_concurrent or 0)
    return gen, to_param_space(params)


def _optuna(params: dict[str, Param], opts: OptunaOptions, seed: int, max_concurrent: int | None) -> Any:
    import optuna
    from ray.tune.search import ConcurrencyLimiter
    from ray.tune.search.optuna import OptunaSearch

    s = seed if opts.seed is None else opts.seed
    samplers: dict[str, Callable[[], Any]] = {
        "tpe": lambda: optuna.samplers.TPESampler(
            seed=s, n_startup_trials=opts.n_startup_trials, multivariate=opts.multivariate),
        "gp": lambda: optuna.samplers.GPSampler(seed=s, n_startup_trials=opts.n_startup_trials),
        "cmaes": lambda: optuna.samplers.CmaEsSampler(seed=s, n_startup_trials=opts.n_startup_trials),
        "qmc": lambda: optuna.samplers.QMCSampler(seed=s),
        "random": lambda: optuna.samplers.RandomSampler(seed=s),
    }
    try:
        sampler = samplers[opts.sampler]()
    except ImportError as e:
        raise SpecError(f"sampler `{opts.sampler}` needs an extra package: {e}. "
                        f"Install it with `pip install {e.name or 'cmaes scipy'}`.",
                        field="searcher.sampler") from None
    # Tune hands the whole param space (domains and constants) and metric/mode to the searcher
    alg = OptunaSearch(sampler=sampler)
    if max_concurrent:
        alg = ConcurrencyLimiter(alg, max_concurrent=max_concurrent)
    return alg, to_param_space(params)


SEARCHERS: Registry[SearcherEntry] = Registry("searcher")
SEARCHERS.add("grid", SearcherEntry(GridOptions, _grid_only, _basic))
SEARCHERS.add("random", SearcherEntry(RandomOptions, _any, _basic))
SEARCHERS.add("optuna", SearcherEntry(OptunaOptions, _no_grid, _optuna))
