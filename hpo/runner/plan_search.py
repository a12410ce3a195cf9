"""The searcher of every run: the record's configurations first, then (for a searcher that
learns) its own suggestions, under one cap on running trials. Ray's public Searcher API.

Grid and random search hand Tune the configurations drawn into the run's plan
(hpo.runner.record), in plan order, each tagged with its plan index; a resume hands it the
unfinished trials (tagged with the checkpoint they continue from) and the items never started.
A searcher that learns (Optuna, Nevergrad) is `inner`: after the fixed configurations, its own
suggestions, tagged with their segment. It writes no state of its own (`save`): the record is
the state.
"""

from __future__ import annotations

from typing import Any

from ray.tune.search import Searcher

from hpo.contract import RECORD_KEY


class PlanSearcher(Searcher):
    def __init__(self, configs: list[dict[str, Any]], inner: Any = None, segment: int | None = None,
                 max_concurrent: int | None = None) -> None:
        super().__init__()
        self._configs = list(reversed(configs))  # popped from the end: first config first
        self._inner = inner
        self._segment = segment
        self._max = max_concurrent or 0
        self._live: set[str] = set()
        self._own: set[str] = set()  # trials the inner searcher suggested

    def set_search_properties(self, metric: str | None, mode: str | None, config: dict[str, Any],
                              **spec: Any) -> bool:
        if self._inner is not None:
            self._inner.set_search_properties(metric, mode, config, **spec)
        return True

    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:
        if self._max and len(self._live) >= self._max:
            return None
        if self._configs:
            config = self._configs.pop()
        elif self._inner is None:
            return Searcher.FINISHED
        else:
            config = self._inner.suggest(trial_id)
            if config is None or config == Searcher.FINISHED:
                return config
            self._own.add(trial_id)
            config = {**config, RECORD_KEY: {"segment": self._segment}}
        self._live.add(trial_id)
        return config

    def max_pending(self) -> int:
        """How many trials Tune may create ahead of resources: the cap; else, with a searcher
        that learns, one (each suggestion sees the results so far, as Tune does for it); else as
        many as the cluster has CPUs (at least 16), as Tune allows its own variant generator."""
        if self._max:
            return self._max
        if self._inner is not None:
            return 1
        import ray

        return max(16, int(ray.cluster_resources().get("CPU", 1) * 1.1)) if ray.is_initialized() else 16

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        if trial_id in self._own:
            self._inner.on_trial_result(trial_id, result)

    def on_trial_complete(self, trial_id: str, result: dict[str, Any] | None = None,
                          error: bool = False) -> None:
        self._live.discard(trial_id)
        if trial_id in self._own:
            self._own.discard(trial_id)
            self._inner.on_trial_complete(trial_id, result=result, error=error)

    def save(self, checkpoint_path: str) -> None:
        pass  # the run's record is its state: nothing pickled

    def restore(self, checkpoint_path: str) -> None:
        pass
