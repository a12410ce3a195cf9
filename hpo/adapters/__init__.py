"""The Ray adapters of hpo's searchers and schedulers, below their registries (hpo.searchers,
hpo.schedulers): `optuna_search` and `nevergrad_search` build Ray's searchers from a `Search`,
`replay` holds the schedulers that see trials by hpo's id and are rebuilt on resume. They import
Ray, Optuna, Nevergrad and hpo's lower modules (space, optuna_space, contract, ray_compat), never
a registry or the runner.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hpo.space import Param


@dataclass(frozen=True)
class Search:
    """What a searcher is built from: the space, its options and the experiment's goals."""

    params: dict[str, Param]
    options: Any
    seed: int
    max_concurrent: int | None
    metric: str  # the primary metric (schedulers, single-objective searchers)
    mode: str
    objectives: dict[str, str] = field(default_factory=dict)  # metric -> min|max, when several
    constraints: dict[str, tuple[float | None, float | None]] = field(default_factory=dict)
    points: tuple[dict[str, Any], ...] = ()  # configurations tried first
    prior: tuple[tuple[dict[str, Any], dict[str, float]], ...] = ()  # (config, values) known
    num_samples: int = 1
    directions: dict[str, str] = field(default_factory=dict)  # every metric's natural direction

    @property
    def goals(self) -> dict[str, str]:
        """metric -> direction the searcher optimizes (the objectives, else the one metric)."""
        return self.objectives or {self.metric: self.mode}
