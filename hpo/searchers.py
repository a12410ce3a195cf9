"""Searcher registry: what to try next. Each entry is Ray Tune's own implementation.

An entry has an options model (validated before Ray starts; unknown options fail by name), a
check of the search space and objectives it can handle, and a factory that imports
Ray/Optuna/Nevergrad lazily (:mod:`hpo.adapters.optuna_search`).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from hpo.adapters import Search
from hpo.errors import SpecError
from hpo.registry import Registry
from hpo.space import Param, searched, to_param_space


class _Options(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class GridOptions(_Options):
    pass


class RandomOptions(_Options):
    seed: int | None = Field(None, description="default: the spec's seed")


@dataclass(frozen=True)
class Sampler:
    """What an Optuna sampler is and takes; the factory is in hpo.adapters.optuna_search."""

    what: str
    needs: str | None = None  # the package it imports
    multi_objective: bool = True
    numeric_only: bool = False  # categorical parameters only: refused


SAMPLERS = {
    "tpe": Sampler("Tree-structured Parzen Estimator"),
    "gp": Sampler("Gaussian-process Bayesian optimization", "scipy"),
    "cmaes": Sampler("CMA-ES evolution strategy", "cmaes", multi_objective=False, numeric_only=True),
    "qmc": Sampler("quasi-Monte Carlo (Sobol) sampling", "scipy"),
    "random": Sampler("independent random sampling"),
    "nsgaii": Sampler("NSGA-II genetic algorithm"),
}


class OptunaOptions(_Options):
    sampler: Literal[tuple(SAMPLERS)] = "tpe"  # type: ignore[valid-type]
    seed: int | None = Field(None, description="default: the spec's seed")
    n_startup_trials: int = Field(10, ge=0, description="random trials before TPE/GP/CMA-ES model them")
    multivariate: bool = Field(True, description="TPE: model parameters jointly (BENCHMARKS.md)")
    population_size: int = Field(20, ge=2, description="NSGA-II: trials per generation")


NEVERGRAD_OPTIMIZERS = ("PSO", "DE", "TwoPointsDE", "CMA", "NGOpt", "OnePlusOne")


class NevergradOptions(_Options):
    optimizer: Literal[NEVERGRAD_OPTIMIZERS] = "PSO"  # type: ignore[valid-type]
    seed: int | None = Field(None, description="default: the spec's seed")


@dataclass(frozen=True)
class SearcherEntry:
    options: type[_Options]
    check: Callable[[dict[str, Param], Any, dict[str, str]], None]  # (params, options, goals)
    # a searcher that learns: -> (Ray searcher, param space of the constants); None: `draw`
    build: Callable[[Search], tuple[Any, dict[str, Any]]] | None
    model_based: bool = False  # learns from results: can be warm-started from earlier trials
    # a searcher whose draws do not depend on results: every configuration, drawn up front
    # into the run's plan (hpo.runner.record)
    draw: Callable[[Search], list[dict[str, Any]]] | None = None
    points: bool = True  # takes points_to_evaluate


def _grid_only(params: dict[str, Param], opts: Any, goals: dict[str, str]) -> None:
    for name, p in searched(params).items():
        if not p.enumerated:
            raise SpecError(
                f"the grid searcher tries listed values only, but this parameter is "
                f"`{p.kind}`. Use `grid: [...]`, or searcher `random` / `optuna` for sampled "
                f"distributions.",
                field=f"params.{name}",
            )
        if p.is_conditional:
            raise SpecError(
                "a case here samples parameters of its own (a distribution inside a case); the "
                "grid searcher only enumerates fixed values. Give fixed values in every case, "
                "or use searcher random / optuna.", field=f"params.{name}.grid")
    # nothing searched: a single configuration (a baseline), said when the run starts


def _any(params: dict[str, Param], opts: Any, goals: dict[str, str]) -> None:
    pass  # nothing searched: a single configuration (a baseline), said when the run starts


def _learns(params: dict[str, Param]) -> None:
    if not searched(params):
        raise SpecError("no parameter is searched, so a searcher that learns has nothing to "
                        "choose; for a single configuration (a baseline) use searcher grid.",
                        field="params")


def _sampled(params: dict[str, Param], who: str) -> None:
    """Model-based searchers sample every value: no grids."""
    _learns(params)
    for name, p in searched(params).items():
        if p.enumerated:
            raise SpecError(
                f"{who} samples every parameter and cannot enumerate a grid; use "
                "`choice: [...]` with the same values (and budget.num_samples for how many).",
                field=f"params.{name}.grid",
            )


def _optuna_check(params: dict[str, Param], opts: OptunaOptions, goals: dict[str, str]) -> None:
    _sampled(params, "Optuna")
    sampler = SAMPLERS[opts.sampler]
    if len(goals) > 1 and not sampler.multi_objective:
        raise SpecError(f"sampler `{opts.sampler}` ({sampler.what}) optimizes one objective; with "
                        f"{len(goals)} objectives use sampler nsgaii or tpe.", field="searcher.sampler")
    if sampler.numeric_only and all(p.is_categorical for p in searched(params).values()):
        raise SpecError(f"sampler `{opts.sampler}` ({sampler.what}) models numeric parameters only, "
                        f"and every searched parameter here is categorical; use tpe or nsgaii.",
                        field="searcher.sampler")
    if sampler.needs:
        import importlib.util

        if importlib.util.find_spec(sampler.needs) is None:
            raise SpecError(f"sampler `{opts.sampler}` needs the `{sampler.needs}` package, which is "
                            f"not installed: pip install {sampler.needs}", field="searcher.sampler")


def _nevergrad_check(params: dict[str, Param], opts: NevergradOptions, goals: dict[str, str]) -> None:
    _sampled(params, "Nevergrad")
    if len(goals) > 1:
        raise SpecError("searcher `nevergrad` optimizes one objective; with several objectives "
                        "use searcher optuna (sampler nsgaii or tpe).", field="searcher.name")
    for name, p in searched(params).items():
        if p.is_group:
            raise SpecError("Nevergrad searches flat spaces; a group of cases is searched by "
                            "random or optuna.", field=f"params.{name}.{p.kind}")
        if p.q is not None:
            raise SpecError(f"Nevergrad takes no quantized distributions (`{p.kind}`); use "
                            f"{p.kind[1:]} or randint.", field=f"params.{name}.{p.kind}")

    if importlib.util.find_spec("nevergrad") is None:
        raise SpecError("searcher `nevergrad` needs the `nevergrad` package, which is not "
                        "installed: pip install nevergrad", field="searcher.name")


def draw(s: Search, extra: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Every configuration of a grid or random search, in order: the known points first (each
    in place of one sample; grids inside expanded), then `num_samples` passes over the space
    (every grid point per pass, distributions drawn anew), from one generator seeded with the
    searcher's seed: Ray's variant generation, as its BasicVariantGenerator does it. `extra`:
    constants added to every configuration."""
    import numpy as np
    from ray.tune.search.variant_generator import generate_variants

    seed = getattr(s.options, "seed", None)
    rng = np.random.default_rng(s.seed if seed is None else seed)
    space = {**to_param_space(s.params), **(extra or {})}
    out: list[dict[str, Any]] = []
    points = [dict(p) for p in s.points]
    for _ in range(max(s.num_samples, len(points))):
        fixed = {**space, **points.pop(0)} if points else space
        out.extend(cfg["config"] for _, cfg in generate_variants({"config": fixed}, random_state=rng))
    return out


def _optuna(s: Search) -> Any:
    from hpo.adapters.optuna_search import build

    return build(s)


def _nevergrad(s: Search) -> Any:
    from hpo.adapters.nevergrad_search import build_nevergrad

    return build_nevergrad(s)


SEARCHERS: Registry[SearcherEntry] = Registry("searcher")
SEARCHERS.add("grid", SearcherEntry(GridOptions, _grid_only, None, points=False, draw=draw))
SEARCHERS.add("random", SearcherEntry(RandomOptions, _any, None, draw=draw))
SEARCHERS.add("optuna", SearcherEntry(OptunaOptions, _optuna_check, _optuna, model_based=True))
SEARCHERS.add("nevergrad", SearcherEntry(NevergradOptions, _nevergrad_check, _nevergrad, model_based=True))
