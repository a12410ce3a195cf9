"""The Ray session of a run: start (or join) Ray while the dataset is read, and check the
cluster's resources. One of the few places Ray is imported."""

from __future__ import annotations

import logging
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from hpo import ray_compat
from hpo.data import ArrayDataset, load_spec_dataset
from hpo.errors import SpecError
from hpo.experiment import Experiment
from hpo.ray_compat.ray_init import TOKEN_LOGGER, loopback_only, token_auth_like_the_head
from hpo.runner import served


def tune_env() -> None:
    # No TensorBoard logger: it imports torch into the driver (1.5 s, and a crash inside a Ray
    # Job's driver here); result.json (the collector's source) and progress.csv are kept.
    os.environ["TUNE_DISABLE_AUTO_CALLBACK_LOGGERS"] = "1"
    # num_to_keep forces an experiment-state snapshot after each checkpoint; measured on the
    # lr_reg grid it costs nothing here, so silence Ray's warning about it
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")


def start(exp: Experiment, address: str | None, dashboard: bool, out: Any,
          run_name: str | None = None) -> ArrayDataset:
    """Start (or join) Ray while the dataset is read, then check the cluster's resources. First
    the private Ray names hpo relies on are checked (hpo.ray_compat): one line per feature off."""
    ray_compat.announce(out)
    tune_env()
    with ThreadPoolExecutor(1) as pool:  # Ray's start (seconds, mostly the dashboard) overlaps
        loading = pool.submit(load_spec_dataset, exp.spec.dataset)
        init_ray(address, dashboard, out, run_name or exp.spec.name)
        data = loading.result()
    check_cluster(exp)
    return data


def init_ray(address: str | None, dashboard: bool, out: Any, run_name: str = "",
             num_cpus: int | None = None, num_gpus: int | None = None, warm: bool = True) -> str | None:
    """Join `address`, else the warm Ray of `hpo up` when one runs (and `warm`), else start a
    local Ray that ends with this process. Returns the dashboard's URL when Ray gave one."""
    import ray
    from ray.job_config import JobConfig

    logging.getLogger("ray.tune.tune").addFilter(_TUNE_RESUME_HINT)
    logging.getLogger("ray.tune.execution.experiment_state").addFilter(_SNAPSHOT_FAILED)
    if ray.is_initialized():
        return None
    # the driver's job on the dashboard's Jobs page carries the run's name in its metadata
    kwargs: dict[str, Any] = {"logging_level": logging.WARNING, "log_to_driver": True,
                              "job_config": JobConfig(metadata={"hpo_run": run_name})}
    head = None
    if not address and warm:
        from hpo.runner.warm import running

        head = running()
    if head:
        if head.get("auth_mode") == "token":
            token_auth_like_the_head()
        with loopback_only():  # else Ray swaps 127.0.0.1 for this machine's address, where no one listens
            ray.init(address=head["address"], runtime_env=_WORKER_ENV, **kwargs)
        url = f", dashboard {head['dashboard_url']}" if head.get("dashboard_url") else ""
        print(f"hpo: joined the warm Ray started by `hpo up` (process {head['pid']}, {head['address']}"
              f"{url}); `hpo down` stops it.", file=out, flush=True)
        return head.get("dashboard_url")
    if address:
        # no runtime_env of ours here: inside a Ray Job it would replace the job's own (its
        # working_dir, where this driver runs, would then be deleted under it)
        ctx = ray.init(address=address, **kwargs)
    else:
        # Ray 2.60 turns token authentication on for a new local cluster (kept on) and warns
        # about it on every start; hpo's own line below says the same and how to get the token
        logging.getLogger(TOKEN_LOGGER).addFilter(_TOKEN_NOTICE)
        with loopback_only():
            ctx = ray.init(include_dashboard=dashboard, dashboard_host="127.0.0.1",
                           runtime_env=_WORKER_ENV, num_cpus=num_cpus, num_gpus=num_gpus, **kwargs)
    url = getattr(ctx, "dashboard_url", None)
    if url:
        print(f"hpo: Ray dashboard: http://{url}/#/jobs (job metadata hpo_run={run_name}; workers, "
              f"logs, CPU/memory per node; no trial view: `hpo report` / `hpo runs` for those). "
              f"Token authentication is on: `ray get-auth-token` prints the token.", file=out, flush=True)
    return f"http://{url}" if url else None


# workers import torch (and hpo's trainables) as they start, while Tune is still setting up
_WORKER_ENV = {"worker_process_setup_hook": "hpo.trainables._ray.warm_up"}


class _Drop(logging.Filter):
    """Drops Ray's log lines that start with `prefix`, where hpo says the same in its own words."""

    def __init__(self, prefix: str) -> None:
        super().__init__()
        self.prefix = prefix

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.getMessage()).startswith(self.prefix)


class _NoTraceback(logging.Filter):
    """Keeps Ray's log line that starts with `prefix` but as one line: the exception's own
    line instead of its traceback (hpo says what it means and what to do)."""

    def __init__(self, prefix: str) -> None:
        super().__init__()
        self.prefix = prefix

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and str(record.getMessage()).startswith(self.prefix):
            e = record.exc_info[1]
            record.msg, record.args = f"{record.getMessage().rstrip(': ')}: {type(e).__name__}: {e}", None
            record.exc_info, record.exc_text = None, None
        return True


# (adding the same filter object again is a no-op)
_TOKEN_NOTICE = _Drop("Token authentication is enabled for this Ray cluster")
# Tune's "resume with Tuner.restore(...)": hpo prints `hpo resume RUN` instead
_TUNE_RESUME_HINT = _Drop("Experiment has been interrupted, but the most recent state was saved")
# a storage that stopped taking writes: Ray's snapshot fails with a traceback per attempt
_SNAPSHOT_FAILED = _NoTraceback("Saving experiment state to storage")


def check_cluster(exp: Experiment) -> None:
    import ray

    have = ray.cluster_resources()
    res = exp.spec.resources
    for key, need in (("CPU", res.cpu), ("GPU", res.gpu)):
        if need > have.get(key, 0):
            if not served.IN_HEAD:  # the head's Ray serves the next commands
                ray.shutdown()
            raise SpecError(f"each trial asks for {need} {key}, but the Ray cluster has "
                            f"{have.get(key, 0)}.", field=f"resources.{key.lower()}")
