"""MLflow as an experiment tracker sees a sweep: one parent run per sweep, one nested run per
trial (hpo's trial id as its name), the trial's parameters as params, the metrics the trainable
declares per epoch (step = epoch), the test metrics once at the end, and none of Ray's
bookkeeping (pid, done, training_iteration, config/..., should_checkpoint).

Why not Ray's `MLflowLoggerCallback`: it logs every number of Ray's result as a metric (pid, done,
should_checkpoint, config/lr), `test_acc` as NaN at every epoch where a trial did not test, and
has no parent run for the sweep.

A tracker must never stall trials: MLflow's HTTP client retries a dead server for minutes, so
requests here time out after REQUEST_TIMEOUT_S without retrying, and after the first failure the
callback logs nothing more (one warning; the run goes on, hpo's own record keeps everything).
"""

from __future__ import annotations

import math
import os
import time
import warnings
from typing import Any

from ray.tune import Callback

from hpo.adapters.replay import hpo_id
from hpo.contract import PACK_KEY, without_record

REQUEST_TIMEOUT_S = 10


def _flat(config: dict[str, Any], prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in config.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = str(v)[:500]
    return out


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


class MlflowSweep(Callback):
    def __init__(self, tracking_uri: str | None, experiment: str, tags: dict[str, str], run_name: str,
                 metrics: dict[str, str], sweep: dict[str, Any]) -> None:
        self.tracking_uri, self.experiment, self.tags = tracking_uri, experiment, tags
        self.run_name, self.sweep = run_name, sweep
        self.epoch_metrics = [m for m in metrics if not m.startswith("test_")]
        self.test_metrics = [m for m in metrics if m.startswith("test_")]
        self._client: Any = None
        self._exp_id: str | None = None
        self._parent: str | None = None
        self._runs: dict[str, str] = {}  # hpo trial id -> MLflow run id
        self._tests: dict[str, tuple[dict[str, float], int]] = {}  # last finite test values, epoch
        self._broken = False

    def __getstate__(self) -> dict[str, Any]:  # (Tune may pickle its callbacks: no client kept)
        return {**self.__dict__, "_client": None}

    def _call(self, fn: Any, *a: Any, **k: Any) -> Any:
        """One MLflow request; the first that fails switches the callback off with one warning."""
        if self._broken:
            return None
        try:
            return fn(*a, **k)
        except Exception as e:  # noqa: BLE001 - a tracker never fails or stalls the run
            self._broken = True
            warnings.warn(f"tracking.mlflow: {type(e).__name__}: {str(e)[:300]}; nothing more is "
                          f"logged to MLflow in this run (hpo's own record has every result).",
                          stacklevel=2)
            return None

    def setup(self, **info: Any) -> None:
        from mlflow.tracking import MlflowClient

        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", str(REQUEST_TIMEOUT_S))
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
        self._client = MlflowClient(self.tracking_uri)
        exp = self._call(self._client.get_experiment_by_name, self.experiment)
        self._exp_id = exp.experiment_id if exp is not None else self._call(
            self._client.create_experiment, self.experiment)
        if self._exp_id is None:
            return
        run = self._call(self._client.create_run, self._exp_id, run_name=self.run_name,
                         tags={**self.tags, "hpo_run": self.run_name, "hpo_role": "sweep"})
        if run is not None:
            self._parent = run.info.run_id
            self._log(self._parent, params=_flat(self.sweep))

    def _log(self, run_id: str, params: dict[str, str] | None = None,
             metrics: dict[str, float] | None = None, step: int = 0) -> None:
        from mlflow.entities import Metric, Param

        ts = int(time.time() * 1000)
        self._call(self._client.log_batch, run_id,
                   metrics=[Metric(k, float(v), ts, step) for k, v in (metrics or {}).items()],
                   params=[Param(k, v) for k, v in (params or {}).items()])

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        hid = hpo_id(trial)
        if self._parent is None or hid in self._runs:
            return
        run = self._call(self._client.create_run, self._exp_id, run_name=hid,
                         tags={"mlflow.parentRunId": self._parent, "hpo_run": self.run_name,
                               "hpo_trial": hid, **self.tags})
        if run is None:
            return
        self._runs[hid] = run.info.run_id
        config = {k: v for k, v in without_record(trial.config).items() if k != PACK_KEY}
        self._log(run.info.run_id, params=_flat(config))

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict[str, Any],
                        **info: Any) -> None:
        hid = hpo_id(trial)
        run_id = self._runs.get(hid)
        if run_id is None:
            return
        step = int(result.get("epoch") or result.get("training_iteration") or 0)
        metrics = {m: result[m] for m in self.epoch_metrics if _finite(result.get(m))}
        if metrics:
            self._log(run_id, metrics=metrics, step=step)
        tests = {m: result[m] for m in self.test_metrics if _finite(result.get(m))}
        if tests:
            self._tests[hid] = (tests, step)

    def _end(self, trial: Any, status: str) -> None:
        hid = hpo_id(trial)
        run_id = self._runs.pop(hid, None)
        if run_id is None:
            return
        tests, step = self._tests.pop(hid, ({}, 0))
        if tests:  # once, at the end: the test metrics of the weights the trial kept
            self._log(run_id, metrics=tests, step=step)
        self._call(self._client.set_terminated, run_id, status)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._end(trial, "FINISHED")

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._end(trial, "FAILED")

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        for hid in list(self._runs):  # still open: cut by the end of the run
            self._call(self._client.set_terminated, self._runs.pop(hid), "KILLED")
        if self._parent is not None:
            self._call(self._client.set_terminated, self._parent, "FINISHED")
